//! Training the MNIST classifier, reproducibly from one seed.
//!
//! Everything random comes from the seed: the initial weights from a [`SeededVarMap`]-backed
//! builder (ChaCha8 stream 0 of `seed`), the batch order and the shifts from a ChaCha8
//! generator on stream 1 of the same seed. candle's own generator is never used, so the same
//! seed gives the same weights, bit for bit, on the same machine.
//!
//! Each step minimises the cross-entropy of a batch,
//!
//! ```text
//! L = -(1/B) sum_b log softmax(f(x_b))_{y_b}
//! ```
//!
//! with Adam, the learning rate following a cosine from `lr` down to 0 over the run:
//! `lr_t = lr (1 + cos(pi t / T)) / 2` at step `t` of `T`. 4,500 digits are few for a network of
//! 30k parameters; each digit is shifted by a random `(dx, dy)` of up to `max_shift` pixels in
//! each direction (the vacated border filled with 0, the background), a fresh shift every time
//! it is drawn, which is most of what keeps the held-out accuracy near the training accuracy.
//!
//! [`SeededVarMap`]: workbench::SeededVarMap
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Module, Optimizer, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use workbench::init::seeded_var_builder;
use workbench::vars::named_vars;
use workbench::{Adam, AdamConfig};

use super::net::{MnistClassifier, CLASSES};
use crate::{Error, Result};

/// The ChaCha8 stream of the seed that draws batches and shifts (stream 0 draws the weights).
const DATA_STREAM: u64 = 1;
/// Image side: the classifier takes 28x28 digits.
const SIDE: usize = 28;

/// How to train the classifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainClassifier {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Adam's initial learning rate (decayed by a cosine to 0).
    pub lr: f64,
    /// Largest random shift, in pixels, in each direction (0: no augmentation).
    pub max_shift: usize,
}

impl Default for TrainClassifier {
    /// The settings of the shipped weights: 20 epochs of 50 images, lr 3e-3, shifts of up to 2
    /// pixels.
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 50,
            lr: 3e-3,
            max_shift: 2,
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's (shifted) images, in nats.
    pub mean_loss: f64,
    /// Fraction of the epoch's (shifted) images classified correctly while training.
    pub train_accuracy: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
}

/// A trained classifier.
pub struct Trained {
    /// The network (its parameters live in `varmap`).
    pub net: MnistClassifier,
    /// The parameters, for [`MnistClassifier::save_weights`].
    pub varmap: VarMap,
    /// One report per epoch.
    pub epochs: Vec<EpochReport>,
}

/// Trains a classifier on `images` `(N, 1, 28, 28)` with values in `[0, 1]` and their
/// `labels` (digits 0 to 9), on the images' device, calling `on_epoch` after each epoch.
/// Deterministic in `seed` (see the module docs).
pub fn train(
    images: &Tensor,
    labels: &[u8],
    config: &TrainClassifier,
    seed: u64,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained> {
    let (n, c, h, w) = images.dims4().map_err(|_| {
        Error::Shape(format!(
            "training images: expected (N, 1, 28, 28), got {:?}",
            images.dims()
        ))
    })?;
    if (c, h, w) != (1, SIDE, SIDE) || n == 0 {
        return Err(Error::Shape(format!(
            "training images: expected (N, 1, 28, 28) with N > 0, got ({n}, {c}, {h}, {w})"
        )));
    }
    if labels.len() != n {
        return Err(Error::Mismatch(format!(
            "{n} training images but {} labels",
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| usize::from(l) >= CLASSES) {
        return Err(Error::Mismatch(format!("label {bad} is not a digit 0 to 9")));
    }
    if config.epochs == 0 || config.batch_size == 0 || !config.lr.is_finite() || config.lr <= 0.0 {
        return Err(Error::Mismatch(format!(
            "training settings: expected epochs > 0, batch_size > 0 and a finite lr > 0, got {config:?}"
        )));
    }
    let device = images.device().clone();
    // The pixels on the host, where batches are assembled and shifted.
    let pixels: Vec<f32> = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;

    let varmap = VarMap::new();
    let net = MnistClassifier::new(seeded_var_builder(&varmap, seed, DType::F32, &device))?;
    let adam_config = AdamConfig {
        lr: config.lr,
        ..Default::default()
    };
    let mut adam = Adam::new(named_vars(&varmap), adam_config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(DATA_STREAM);

    let steps_per_epoch = n.div_ceil(config.batch_size);
    let total_steps = (config.epochs * steps_per_epoch) as f64;
    let mut order: Vec<usize> = (0..n).collect();
    let mut reports = Vec::with_capacity(config.epochs);
    let mut step = 0usize;
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for batch in order.chunks(config.batch_size) {
            // lr_t = lr (1 + cos(pi t / T)) / 2
            let lr = config.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total_steps).cos());
            adam.set_learning_rate(lr);
            let (x, y) = shifted_batch(&pixels, labels, batch, config.max_shift, &mut rng, &device)?;
            let logits = net.forward(&x)?; // (B, 10)
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?; // mean over the batch
            adam.backward_step(&loss)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
            let predicted = logits.argmax(D::Minus1)?; // (B,) u32
            correct += predicted.eq(&y)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as usize;
            step += 1;
        }
        let report = EpochReport {
            epoch,
            mean_loss: loss_sum / n as f64,
            train_accuracy: correct as f64 / n as f64,
            lr: adam.learning_rate(),
        };
        if !report.mean_loss.is_finite() {
            return Err(Error::NonFinite {
                what: format!("the training loss of epoch {epoch} (lr {})", config.lr),
                count: 1,
            });
        }
        on_epoch(&report);
        reports.push(report);
    }
    Ok(Trained {
        net,
        varmap,
        epochs: reports,
    })
}

/// The images at `batch`, each shifted by its own random `(dx, dy)` in
/// `[-max_shift, max_shift]^2`, as `(B, 1, 28, 28)`, and their labels `(B,)` as `u32`.
fn shifted_batch(
    pixels: &[f32],
    labels: &[u8],
    batch: &[usize],
    max_shift: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let area = SIDE * SIDE;
    let mut data = vec![0f32; batch.len() * area];
    let s = max_shift.min(SIDE) as i32;
    for (out, &i) in data.chunks_exact_mut(area).zip(batch) {
        let (dx, dy) = (rng.random_range(-s..=s), rng.random_range(-s..=s));
        shift_into(&pixels[i * area..(i + 1) * area], dx as isize, dy as isize, out);
    }
    let x = Tensor::from_vec(data, (batch.len(), 1, SIDE, SIDE), device)?;
    let y: Vec<u32> = batch.iter().map(|&i| u32::from(labels[i])).collect();
    Ok((x, Tensor::from_vec(y, batch.len(), device)?))
}

/// `out[y][x] = image[y - dy][x - dx]`, 0 where that falls outside: the digit moves `dx` pixels
/// right and `dy` down. `out` must hold zeros.
fn shift_into(image: &[f32], dx: isize, dy: isize, out: &mut [f32]) {
    let side = SIDE as isize;
    for y in 0..side {
        let sy = y - dy;
        if !(0..side).contains(&sy) {
            continue;
        }
        for x in 0..side {
            let sx = x - dx;
            if (0..side).contains(&sx) {
                out[(y * side + x) as usize] = image[(sy * side + sx) as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_the_digit_and_fill_with_zeros() {
        let mut image = vec![0f32; SIDE * SIDE];
        image[5 * SIDE + 7] = 1.0; // (y 5, x 7)
        image[27 * SIDE + 27] = 0.5; // the corner, shifted out
        let mut out = vec![0f32; SIDE * SIDE];
        shift_into(&image, 2, -1, &mut out);
        assert_eq!(out[4 * SIDE + 9], 1.0, "right 2, up 1");
        assert_eq!(out.iter().sum::<f32>(), 1.0);
    }

    /// 20 synthetic "digits" (a bright square whose position depends on the label) and labels.
    fn synthetic() -> (Tensor, Vec<u8>) {
        let n = 20;
        let mut data = vec![0f32; n * SIDE * SIDE];
        let labels: Vec<u8> = (0..n).map(|i| (i % CLASSES) as u8).collect();
        for (i, &l) in labels.iter().enumerate() {
            let (y0, x0) = (2 + 2 * usize::from(l), 4 + usize::from(l));
            for y in y0..y0 + 5 {
                for x in x0..x0 + 5 {
                    data[i * SIDE * SIDE + y * SIDE + x] = 1.0;
                }
            }
        }
        (
            Tensor::from_vec(data, (n, 1, SIDE, SIDE), &Device::Cpu).unwrap(),
            labels,
        )
    }

    fn weights(trained: &Trained) -> Vec<(String, Vec<f32>)> {
        named_vars(&trained.varmap)
            .into_iter()
            .map(|(name, v)| (name, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    }

    #[test]
    fn training_is_reproducible_from_the_seed() {
        let (images, labels) = synthetic();
        let config = TrainClassifier {
            epochs: 1,
            batch_size: 8,
            ..Default::default()
        };
        let mut seen = Vec::new();
        let a = train(&images, &labels, &config, 7, |r| seen.push(*r)).unwrap();
        let b = train(&images, &labels, &config, 7, |_| {}).unwrap();
        let c = train(&images, &labels, &config, 8, |_| {}).unwrap();
        assert_eq!(weights(&a), weights(&b), "same seed, same weights");
        assert_eq!(a.epochs, b.epochs);
        let (wa, wc) = (weights(&a), weights(&c));
        assert!(
            wa.iter().zip(&wc).all(|(x, y)| x.1 != y.1),
            "another seed changes every tensor"
        );
        assert_eq!(seen, a.epochs);
        assert_eq!(seen.len(), 1);
        assert!(seen[0].mean_loss.is_finite() && seen[0].mean_loss > 0.0);
        // The cosine schedule: 3 steps of T = 3, the last at t = 2: lr (1 + cos(2 pi / 3)) / 2.
        assert!((seen[0].lr - config.lr * 0.25).abs() < 1e-12, "{}", seen[0].lr);
    }

    #[test]
    fn training_refuses_inputs_that_do_not_fit() {
        let (images, labels) = synthetic();
        let config = TrainClassifier::default();
        let err = |r: Result<Trained>| r.err().expect("an error").to_string();
        let e = err(train(&images, &labels[..5], &config, 0, |_| {}));
        assert!(e.contains("20 training images but 5 labels"), "{e}");
        let mut bad = labels.clone();
        bad[3] = 10;
        assert!(err(train(&images, &bad, &config, 0, |_| {})).contains("label 10"));
        let rgb = Tensor::zeros((2, 3, 28, 28), DType::F32, &Device::Cpu).unwrap();
        assert!(err(train(&rgb, &labels[..2], &config, 0, |_| {})).contains("(2, 3, 28, 28)"));
        let zero = TrainClassifier { epochs: 0, ..config };
        assert!(err(train(&images, &labels, &zero, 0, |_| {})).contains("epochs > 0"));
    }
}
