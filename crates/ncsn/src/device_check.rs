//! `ncsn check-device`: does the network compute the same numbers on a device as on the CPU?
//!
//! The check runs a committed reference fixture (the weights of the reference PyTorch
//! `CondRefineNetDilated` with ngf 8 on 3x32x32 images, an input batch and PyTorch's output for
//! it; `scripts/make_reference_fixture.py` wrote them, `tests/model_reference.rs` holds the CPU
//! to them) through the three computations a training run and a sampling run need, once on the
//! CPU and once on the requested device:
//!
//! 1. the forward pass on the fixture's input, compared with PyTorch's stored output (each
//!    device) and between the devices;
//! 2. the DSM loss as [`crate::Trainer`] computes it (`score_matching::anneal_dsm`), on a batch
//!    whose images, levels and noise are drawn on the host from one seeded ChaCha generator, so
//!    that both devices get the same numbers;
//! 3. the gradients of that loss with respect to a few named parameters: the first convolution,
//!    the last normalisation's embedding (gamma, alpha, beta of every level) and the last
//!    convolution, i.e. the two ends of the backward pass and a conditioning path.
//!
//! Each comparison is a [`Check`]: a measured number, its tolerance, and PASS or FAIL. On
//! `--device cpu` the CPU is compared with itself: the numbers are (close to) zero, and the run
//! is the dry run that keeps the command working on machines without a GPU.
//!
//! # Tolerances and why
//!
//! - Forward pass against PyTorch: max |ours - PyTorch| < [`REFERENCE_FORWARD_TOL`] = 1e-4,
//!   absolute, the tolerance of `tests/model_reference.rs`: both are `f32`, the outputs are O(1)
//!   (max |score| about 2.5), and the two libraries sum convolutions in different orders.
//! - Forward pass, device against CPU: max |device - cpu| / max |cpu| <= [`DEVICE_FORWARD_TOL`]
//!   = 1e-4. `f32` rounds at 6e-8 relative; the forward pass chains 75 convolutions, each a sum
//!   of up to 9 x 16 products (ngf 8 has at most 16 channels) that cuBLAS/cuDNN and the CPU's
//!   GEMM add in different orders, with instance normalisations in between. Rounding differences
//!   of that kind stay near 1e-6 (the CPU against PyTorch, another summation order, differs by
//!   2.6e-6 absolute on outputs of about 2.5); 1e-4 leaves more than an order of magnitude of
//!   room, while a wrong kernel (a padding, a dilation, a transposed weight) changes the output
//!   by O(1).
//! - DSM loss and gradients, device against CPU: <= [`DEVICE_GRADIENT_TOL`] = 1e-3, relative (for
//!   the loss |device - cpu| / |cpu|, for a gradient max |diff| / max |cpu gradient|). The
//!   backward pass doubles the chain of rounding, the normalisations' gradients subtract means
//!   (cancellation), and the loss sums 3 x 32 x 32 squared terms per image; 1e-3 still fails any
//!   gradient that is wrong rather than rounded differently.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use score_matching::anneal_dsm::{anneal_dsm_loss, draw_levels, sigmas_tensor};

use crate::error::{Error, Result};
use crate::load::load_weights_file;
use crate::model::ModelConfig;
use crate::vars::named_vars;

/// Where the fixture is in a checkout of the repository, relative to its root.
pub const DEFAULT_FIXTURE_DIR: &str = "crates/ncsn/tests/data";
/// The reference network's weights (names and shapes as `ncsn::model::reference_shapes`).
pub const FIXTURE_WEIGHTS: &str = "reference_ngf8_32x32x3.safetensors";
/// The input batch `x`, its level indices `labels` and PyTorch's output `score`.
pub const FIXTURE_IO: &str = "reference_ngf8_32x32x3_io.safetensors";
/// The fixture's network width.
pub const NGF: usize = 8;
/// The fixture's image channels.
pub const CHANNELS: usize = 3;
/// The fixture's image height = width.
pub const IMAGE_SIZE: usize = 32;
/// Images in the DSM batch.
pub const DSM_BATCH: usize = 4;
/// The parameters whose gradients are compared: the two ends of the network and the embedding
/// of the last CondInstanceNorm++ (the noise conditioning).
pub const GRADIENT_PARAMS: [&str; 3] = ["begin_conv.weight", "normalizer.embed.weight", "end_conv.weight"];
/// Max |ours - PyTorch| of the forward pass, absolute (as `tests/model_reference.rs`).
pub const REFERENCE_FORWARD_TOL: f64 = 1e-4;
/// Max |device - cpu| / max |cpu| of the forward pass.
pub const DEVICE_FORWARD_TOL: f64 = 1e-4;
/// Relative difference, device against CPU, of the DSM loss and of each gradient.
pub const DEVICE_GRADIENT_TOL: f64 = 1e-3;

/// The reference fixture, read and checked: the network's shape (its number of noise levels is
/// the fixture's), the input batch on the CPU and PyTorch's output.
pub struct Fixture {
    /// The weights file (loaded again onto each device).
    pub weights: PathBuf,
    /// ngf 8, 3 channels, 32x32, `num_classes` from the weights.
    pub config: ModelConfig,
    /// The input batch `[B, 3, 32, 32]`, `f32`, on the CPU.
    pub x: Tensor,
    /// Its noise-level indices `[B]`, `u32`, on the CPU.
    pub labels: Tensor,
    /// PyTorch's output for it, flattened.
    pub reference_output: Vec<f32>,
}

impl Fixture {
    /// Reads the fixture's two files from `dir`. A missing file, or a fixture of another network
    /// or image shape, is an [`Error::Data`] naming the file and what was expected.
    pub fn load(dir: &Path) -> Result<Self> {
        let weights = dir.join(FIXTURE_WEIGHTS);
        let io_path = dir.join(FIXTURE_IO);
        let tensors = read_safetensors(&weights)?;
        let io = read_safetensors(&io_path)?;

        // The number of noise levels is the first dimension of any embedding; its second is
        // 3 * ngf for the last normaliser (gamma, alpha, beta per channel).
        let embed = "normalizer.embed.weight";
        let num_classes = match tensors.get(embed).map(|t| t.dims().to_vec()).as_deref() {
            Some(&[levels, width]) if width == 3 * NGF && levels >= 1 => levels,
            other => {
                return Err(Error::data(
                    &weights,
                    format!(
                        "tensor `{embed}` has shape {other:?}: expected [num_classes, {}] (a network with ngf {NGF})",
                        3 * NGF
                    ),
                ))
            }
        };
        let config = ModelConfig {
            ngf: NGF,
            channels: CHANNELS,
            image_size: IMAGE_SIZE,
            num_classes,
        };

        let get = |name: &str| {
            io.get(name)
                .ok_or_else(|| Error::data(&io_path, format!("has no tensor `{name}` (expected x, labels, score)")))
        };
        let (x, labels, score) = (get("x")?, get("labels")?, get("score")?);
        let image = [CHANNELS, IMAGE_SIZE, IMAGE_SIZE];
        let batch = match x.dims() {
            [b, rest @ ..] if rest == image && *b >= 1 => *b,
            dims => {
                return Err(Error::data(
                    &io_path,
                    format!("tensor `x` has shape {dims:?}: expected [batch, {CHANNELS}, {IMAGE_SIZE}, {IMAGE_SIZE}]"),
                ))
            }
        };
        if score.dims() != x.dims() {
            return Err(Error::data(
                &io_path,
                format!(
                    "tensor `score` has shape {:?}: expected that of `x`, {:?}",
                    score.dims(),
                    x.dims()
                ),
            ));
        }
        if labels.dims() != [batch] {
            return Err(Error::data(
                &io_path,
                format!("tensor `labels` has shape {:?}: expected [{batch}]", labels.dims()),
            ));
        }
        let label_values = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        if let Some(bad) = label_values.iter().find(|&&l| l < 0 || l as usize >= num_classes) {
            return Err(Error::data(
                &io_path,
                format!("tensor `labels` holds {bad}: expected level indices 0..{num_classes} (the weights' levels)"),
            ));
        }
        Ok(Fixture {
            weights,
            config,
            x: x.to_dtype(DType::F32)?,
            labels: labels.to_dtype(DType::U32)?,
            reference_output: score.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        })
    }

    /// The noise levels the checks use: the paper's, geometric from 1 to 0.01, one per class.
    pub fn sigmas(&self) -> Result<Vec<f64>> {
        Ok(langevin::geometric_sigmas(1.0, 0.01, self.config.num_classes)?)
    }
}

/// A safetensors file read onto the CPU, with errors naming it.
fn read_safetensors(path: &Path) -> Result<std::collections::HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::data(
            path,
            "not found: expected the reference fixture (a checkout's crates/ncsn/tests/data; \
             run from the repository's root or pass --fixture-dir)",
        ));
    }
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::data(path, format!("is not a readable safetensors file: {e}")))
}

/// What one device computed, copied to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The forward pass on the fixture's input, flattened.
    pub output: Vec<f32>,
    /// The DSM loss of the seeded batch.
    pub loss: f64,
    /// The loss's gradient for each of [`GRADIENT_PARAMS`], flattened, in that order.
    pub gradients: Vec<(String, Vec<f32>)>,
}

/// The DSM batch of `seed` on `device`: [`DSM_BATCH`] images uniform in [0, 1), their level
/// indices (of `num_levels`) and the noise `z`, drawn on the host from one ChaCha generator in
/// that order (the trainer's), so that every device gets the same numbers.
pub fn dsm_batch(seed: u64, num_levels: usize, device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = [DSM_BATCH, CHANNELS, IMAGE_SIZE, IMAGE_SIZE];
    let pixels: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random::<f32>()).collect();
    let images = Tensor::from_vec(pixels, &shape[..], device)?;
    let levels = draw_levels(&mut rng, DSM_BATCH, num_levels, device)?;
    let z = langevin::randn_tensor(&mut rng, &shape, DType::F32, device)?;
    Ok((images, levels, z))
}

/// Runs the fixture's network on `device`: the forward pass on the fixture's input, then the
/// DSM loss on the batch [`dsm_batch`] draws from `seed`, and its gradients.
pub fn evaluate(fixture: &Fixture, device: &Device, seed: u64) -> Result<Evaluation> {
    let sigmas = fixture.sigmas()?;
    let loaded = load_weights_file(&fixture.weights, &fixture.config, sigmas.clone(), DType::F32, device)?;
    let model = &loaded.model;
    let x = fixture.x.to_device(device)?;
    let labels = fixture.labels.to_device(device)?;
    let output = model.forward(&x, &labels)?.flatten_all()?.to_vec1::<f32>()?;

    let (batch, levels, z) = dsm_batch(seed, sigmas.len(), device)?;
    let sigmas_t = sigmas_tensor(&sigmas, device)?;
    let loss = anneal_dsm_loss(|xt, l| model.forward(xt, l), &batch, &z, &levels, &sigmas_t)?;
    let grads = loss.backward()?;

    let vars = named_vars(&loaded.params);
    let mut gradients = Vec::with_capacity(GRADIENT_PARAMS.len());
    for name in GRADIENT_PARAMS {
        let var = vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::Argument(format!("the network has no parameter `{name}`")))?;
        let grad = grads
            .get(var)
            .ok_or_else(|| Error::Argument(format!("the DSM loss has no gradient for `{name}`")))?;
        gradients.push((name.to_string(), grad.flatten_all()?.to_vec1::<f32>()?));
    }
    Ok(Evaluation {
        output,
        loss: f64::from(loss.to_scalar::<f32>()?),
        gradients,
    })
}

/// One comparison: a measured difference and the largest one allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is compared, e.g. `forward, cuda vs cpu`.
    pub name: String,
    /// How the difference is measured, e.g. `max|diff| / max|cpu|`.
    pub measure: &'static str,
    /// The difference (NaN or infinite when either side was not finite).
    pub value: f64,
    /// The largest difference that passes.
    pub tolerance: f64,
}

impl Check {
    /// Whether the difference is within the tolerance (never for a NaN).
    pub fn passed(&self) -> bool {
        self.value <= self.tolerance
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}  {}: {} = {:.3e} (tolerance {:.0e})",
            if self.passed() { "PASS" } else { "FAIL" },
            self.name,
            self.measure,
            self.value,
            self.tolerance
        )
    }
}

/// max |a - b| over the elements, NaN if any difference is NaN (`f64::max` would skip it, and
/// a NaN output would pass), infinite if the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).fold(0.0, |acc: f64, (&x, &y)| {
        let d = (f64::from(x) - f64::from(y)).abs();
        if d.is_nan() || acc.is_nan() {
            f64::NAN
        } else {
            acc.max(d)
        }
    })
}

/// max |test - base| / max |base|: the largest difference on the scale of the values. Zero when
/// both are all zeros; infinite when only `test` is not.
pub fn relative_max_diff(base: &[f32], test: &[f32]) -> f64 {
    let diff = max_abs_diff(base, test);
    let scale = base.iter().fold(0.0, |acc: f64, &v| acc.max(f64::from(v).abs()));
    if diff == 0.0 {
        0.0
    } else {
        diff / scale
    }
}

/// The checks of a run: both forward passes against PyTorch's output, and the device's
/// forward pass, loss and gradients against the CPU's. `device` names the device in the lines.
pub fn compare(fixture: &Fixture, cpu: &Evaluation, dev: &Evaluation, device: &str) -> Vec<Check> {
    let reference = &fixture.reference_output;
    let mut checks = vec![
        Check {
            name: "forward, cpu vs PyTorch's stored output".into(),
            measure: "max|diff|",
            value: max_abs_diff(&cpu.output, reference),
            tolerance: REFERENCE_FORWARD_TOL,
        },
        Check {
            name: format!("forward, {device} vs PyTorch's stored output"),
            measure: "max|diff|",
            value: max_abs_diff(&dev.output, reference),
            tolerance: REFERENCE_FORWARD_TOL,
        },
        Check {
            name: format!("forward, {device} vs cpu"),
            measure: "max|diff| / max|cpu|",
            value: relative_max_diff(&cpu.output, &dev.output),
            tolerance: DEVICE_FORWARD_TOL,
        },
        Check {
            name: format!("DSM loss, {device} vs cpu ({:.6} vs {:.6})", dev.loss, cpu.loss),
            measure: "|diff| / |cpu|",
            value: (dev.loss - cpu.loss).abs() / cpu.loss.abs(),
            tolerance: DEVICE_GRADIENT_TOL,
        },
    ];
    for ((name, c), (dev_name, d)) in cpu.gradients.iter().zip(&dev.gradients) {
        let value = if name == dev_name {
            relative_max_diff(c, d)
        } else {
            f64::INFINITY
        };
        checks.push(Check {
            name: format!("gradient of {name}, {device} vs cpu"),
            measure: "max|diff| / max|cpu|",
            value,
            tolerance: DEVICE_GRADIENT_TOL,
        });
    }
    if cpu.gradients.len() != dev.gradients.len() {
        checks.push(Check {
            name: format!("gradients compared, {device} vs cpu"),
            measure: "count difference",
            value: f64::INFINITY,
            tolerance: 0.0,
        });
    }
    checks
}

/// Loads the fixture in `dir`, evaluates it on the CPU and on `device` with the same `seed`,
/// and compares ([`compare`]).
pub fn check_device(dir: &Path, device: &Device, device_name: &str, seed: u64) -> Result<(Fixture, Vec<Check>)> {
    let fixture = Fixture::load(dir)?;
    let cpu = evaluate(&fixture, &Device::Cpu, seed)?;
    let dev = evaluate(&fixture, device, seed)?;
    let checks = compare(&fixture, &cpu, &dev, device_name);
    Ok((fixture, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_measured_and_nan_is_never_within_tolerance() {
        assert_eq!(max_abs_diff(&[1.0, -2.0, 3.0], &[1.5, -2.0, 2.0]), 1.0);
        // On the scale of the base: max |diff| 0.5 over max |base| 4.
        assert_eq!(relative_max_diff(&[1.0, -4.0], &[1.5, -4.0]), 0.125);
        assert_eq!(relative_max_diff(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(relative_max_diff(&[0.0], &[1e-9]), f64::INFINITY);
        // A NaN anywhere (first, middle or last) makes the difference NaN, which fails.
        for i in 0..3 {
            let mut b = vec![1.0f32; 3];
            b[i] = f32::NAN;
            let d = max_abs_diff(&[1.0; 3], &b);
            assert!(d.is_nan(), "NaN at {i} gave {d}");
            let check = Check {
                name: "x".into(),
                measure: "m",
                value: d,
                tolerance: 1.0,
            };
            assert!(!check.passed());
            assert!(check.to_string().starts_with("FAIL"), "{check}");
        }
        assert_eq!(max_abs_diff(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
