//! The network as a noise-conditional score: [`ScoreNet`] pairs a [`CondRefineNetDilated`] with
//! the noise levels it was trained for and implements `langevin::NoiseConditionalScore`, the
//! shape every sampler of the project takes (the exact score of a Gaussian mixture is another).
//! [`build_model`] makes a network with fresh (optionally seeded) variables.
use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use langevin::NoiseConditionalScore;

use super::{CondRefineNetDilated, ModelConfig};

/// Builds the network of `config` with fresh variables of `dtype` on `device`; with `seed` they
/// are drawn reproducibly (every layer draws from a generator seeded with it:
/// [`workbench::init::seeded_var_builder`]), without it from candle's generator (for a network
/// whose weights are loaded next). The variables are returned in their `VarMap`: they
/// are the parameters to differentiate and optimise (`varmap.all_vars()`).
///
/// `f32` is the training and sampling dtype; `f64` runs the same layers (for gradient checks).
pub fn build_model(
    config: &ModelConfig,
    dtype: DType,
    device: &Device,
    seed: Option<u64>,
) -> Result<(VarMap, CondRefineNetDilated)> {
    let varmap = VarMap::new();
    let vb = match seed {
        Some(seed) => workbench::init::seeded_var_builder(&varmap, seed, dtype, device),
        None => VarBuilder::from_varmap(&varmap, dtype, device),
    };
    let model = CondRefineNetDilated::new(config, vb)?;
    Ok((varmap, model))
}

/// The network `config` with the weights of `params` as constants: a forward pass through it
/// records no graph (candle records one through every `Var`, and keeps each activation until
/// the output is dropped), so each activation is freed once the next layer has read it, as
/// under PyTorch's `no_grad`: a sampling step at ngf 128 and batch 32 then holds about a third
/// of the memory. The tensors share their storage with `params`, so the network sees the
/// variables' values as they change.
pub fn frozen_model(
    config: &ModelConfig,
    params: &VarMap,
    dtype: DType,
    device: &Device,
) -> Result<CondRefineNetDilated> {
    let weights: HashMap<String, Tensor> = workbench::vars::named_vars(params)
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().detach()))
        .collect();
    CondRefineNetDilated::new(config, VarBuilder::from_tensors(weights, dtype, device))
}

/// The score of a batch from the network's output `f(x, i)`: the paper's `s = f(x, i)`, or
/// with `over_sigma` NCSNv2's `s = f(x, i) / sigma_i` (the network then only has to output a
/// vector of norm ~ `sqrt(D)` at every level, as the DSM target `-z` has). `sigmas` holds the
/// levels (`(L,)`), `labels` the level index of each image (`u32`, `(B,)`).
pub fn score_of(
    model: &CondRefineNetDilated,
    x: &Tensor,
    labels: &Tensor,
    sigmas: &Tensor,
    over_sigma: bool,
) -> Result<Tensor> {
    let f = model.forward(x, labels)?;
    if !over_sigma {
        return Ok(f);
    }
    // sigma_i of each image, shaped (B, 1, 1, 1) to divide its output.
    let sigma = sigmas
        .index_select(labels, 0)?
        .to_dtype(f.dtype())?
        .reshape((f.dim(0)?, 1, 1, 1))?;
    f.broadcast_div(&sigma)
}

/// A score network with its noise levels `sigma_1 > ... > sigma_L`: `s_theta(x, sigma_i)` is
/// the network at labels `i` for every image of the batch (divided by `sigma_i` when the run
/// was trained so: [`ScoreNet::over_sigma`]).
#[derive(Clone, Copy)]
pub struct ScoreNet<'a> {
    model: &'a CondRefineNetDilated,
    sigmas: &'a [f64],
    over_sigma: bool,
}

impl<'a> ScoreNet<'a> {
    /// Pairs `model` with `sigmas`, one per noise level of the network.
    pub fn new(model: &'a CondRefineNetDilated, sigmas: &'a [f64]) -> Result<Self> {
        let l = model.config().num_classes;
        if l != sigmas.len() {
            candle_core::bail!(
                "score network: the model has {l} noise levels but {} sigmas were given",
                sigmas.len()
            )
        }
        Ok(Self {
            model,
            sigmas,
            over_sigma: false,
        })
    }

    /// The score as NCSNv2 parametrises it, `f(x, i) / sigma_i` (`true`), or the paper's `f(x, i)`.
    pub fn over_sigma(self, over_sigma: bool) -> Self {
        Self { over_sigma, ..self }
    }

    /// The network.
    pub fn model(&self) -> &'a CondRefineNetDilated {
        self.model
    }

    /// `[channels, height, width]` of the images the network scores.
    pub fn image_dims(&self) -> [usize; 3] {
        let m = self.model.config();
        [m.channels, m.image_size, m.image_size]
    }
}

impl NoiseConditionalScore<Tensor> for ScoreNet<'_> {
    fn sigmas(&self) -> &[f64] {
        self.sigmas
    }

    /// The network at labels `level` for every image of `x`, detached from the autograd graph:
    /// the weights are variables, so without it every step's `x` would hold on to the previous
    /// step's activations, and a 1,000-step chain would keep all of them alive.
    fn score(&self, x: &Tensor, level: usize) -> langevin::Result<Tensor> {
        let labels = Tensor::full(level as u32, x.dim(0)?, x.device())?;
        let f = self.model.forward(x, &labels)?.detach();
        Ok(if self.over_sigma {
            f.affine(1.0 / self.sigmas[level], 0.0)?
        } else {
            f
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_sigma_divides_each_image_by_its_own_level() {
        let config = ModelConfig {
            ngf: 4,
            channels: 1,
            image_size: 8,
            num_classes: 3,
        };
        let (_, model) = build_model(&config, DType::F64, &Device::Cpu, Some(3)).unwrap();
        let sigmas = [1.0, 0.25, 0.0625];
        let sigmas_t = Tensor::new(&sigmas, &Device::Cpu).unwrap();
        let x = Tensor::arange(0f64, 128.0, &Device::Cpu)
            .unwrap()
            .affine(1.0 / 128.0, 0.0)
            .unwrap()
            .reshape((2, 1, 8, 8))
            .unwrap();
        let labels = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let f = model.forward(&x, &labels).unwrap();
        let s = score_of(&model, &x, &labels, &sigmas_t, true).unwrap();
        let plain = score_of(&model, &x, &labels, &sigmas_t, false).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            a.sub(b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        assert_eq!(diff(&plain, &f), 0.0);
        // Image 0 at sigma_1 = 1 is unchanged; image 1 at sigma_3 = 1/16 is 16 times larger (exact
        // in binary).
        assert_eq!(diff(&s.get(0).unwrap(), &f.get(0).unwrap()), 0.0);
        assert_eq!(
            diff(&s.get(1).unwrap(), &f.get(1).unwrap().affine(16.0, 0.0).unwrap()),
            0.0
        );
        // The sampler's view agrees.
        let net = ScoreNet::new(&model, &sigmas).unwrap().over_sigma(true);
        let one = x.narrow(0, 1, 1).unwrap();
        let at = net.score(&one, 2).unwrap();
        assert_eq!(diff(&at, &s.narrow(0, 1, 1).unwrap()), 0.0);
    }

    #[test]
    fn the_frozen_network_computes_the_same_and_records_no_graph() {
        let config = ModelConfig {
            ngf: 4,
            channels: 1,
            image_size: 8,
            num_classes: 3,
        };
        let dev = Device::Cpu;
        let (params, model) = build_model(&config, DType::F32, &dev, Some(5)).unwrap();
        let frozen = frozen_model(&config, &params, DType::F32, &dev).unwrap();
        let x = Tensor::arange(0f32, 128.0, &dev)
            .unwrap()
            .affine(1.0 / 128.0, 0.0)
            .unwrap()
            .reshape((2, 1, 8, 8))
            .unwrap();
        let labels = Tensor::new(&[0u32, 2], &dev).unwrap();
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let live = model.forward(&x, &labels).unwrap();
        let fixed = frozen.forward(&x, &labels).unwrap();
        assert_eq!(
            values(&live),
            values(&fixed),
            "the same weights, the same ops: the same bits"
        );

        // Through the variables the output depends on every parameter; through the frozen
        // network on none (no graph was recorded).
        let vars = workbench::vars::named_vars(&params);
        let grads = live.sum_all().unwrap().backward().unwrap();
        assert!(vars.iter().all(|(_, v)| grads.get(v.as_tensor()).is_some()));
        let grads = fixed.sum_all().unwrap().backward().unwrap();
        assert!(vars.iter().all(|(_, v)| grads.get(v.as_tensor()).is_none()));

        // The frozen weights share the variables' storage: a change to a variable shows.
        let (_, first) = &vars[0];
        first.set(&first.as_tensor().affine(2.0, 0.5).unwrap()).unwrap();
        let changed = frozen.forward(&x, &labels).unwrap();
        assert_eq!(values(&changed), values(&model.forward(&x, &labels).unwrap()));
        assert_ne!(values(&changed), values(&fixed));
    }
}
