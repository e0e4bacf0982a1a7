//! The network as a noise-conditional score: [`ScoreNet`] pairs a [`CondRefineNetDilated`] with
//! the noise levels it was trained for and implements `langevin::NoiseConditionalScore`, the
//! shape every sampler of the project takes (the exact score of a Gaussian mixture is another).
//! [`build_model`] makes a network with fresh (optionally seeded) variables.
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

/// A score network with its noise levels `sigma_1 > ... > sigma_L`: `s_theta(x, sigma_i)` is
/// the network at labels `i` for every image of the batch.
#[derive(Clone, Copy)]
pub struct ScoreNet<'a> {
    model: &'a CondRefineNetDilated,
    sigmas: &'a [f64],
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
        Ok(Self { model, sigmas })
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
        Ok(self.model.forward(x, &labels)?.detach())
    }
}
