//! CONTRACT STUB (to be replaced by the objectives/models engineer): training loops.
use crate::model::{Conditioning, NoiseConditionalMlp, ScoreMlp};
use candle_core::Device;
use gmm::GaussianMixture;
use ndarray::Array2;
use rand_chacha::ChaCha8Rng;

/// Distribution of the random projections of sliced score matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionKind {
    /// v ~ N(0, I).
    Gaussian,
    /// v uniform on {-1, +1}^D.
    Rademacher,
}

/// The objective a [`ScoreMlp`] is trained with.
#[derive(Debug, Clone)]
pub enum Objective {
    /// Explicit score matching against the exact score of a known mixture (an oracle, for teaching).
    Explicit(GaussianMixture),
    /// Implicit score matching (Hyvarinen): 1/2 ||s||^2 + tr(grad s).
    Implicit,
    /// Sliced score matching: v^T grad(v^T s) + 1/2 (v^T s)^2, or with `variance_reduced` 1/2 ||s||^2.
    Sliced {
        projection: ProjectionKind,
        variance_reduced: bool,
    },
    /// Denoising score matching at one noise level.
    Denoising { sigma: f64 },
}

/// Settings of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub hidden: usize,
    /// Show an indicatif progress bar.
    pub progress: bool,
}

/// What a run recorded.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    /// Loss at every step.
    pub loss_history: Vec<f64>,
}

/// A sampler of training data: `n` points from `rng`.
pub type DataSampler<'a> = dyn FnMut(usize, &mut ChaCha8Rng) -> Array2<f64> + 'a;

/// Trains an unconditional [`ScoreMlp`] with `objective` on data from `data`.
pub fn train_score(
    _objective: &Objective,
    _data: &mut DataSampler<'_>,
    _cfg: &TrainConfig,
    _device: &Device,
) -> anyhow::Result<(ScoreMlp, TrainReport)> {
    anyhow::bail!("stub")
}

/// Trains a [`NoiseConditionalMlp`] with noise-conditional DSM (lambda = sigma^2) over `sigmas`.
pub fn train_ncsn(
    _data: &mut DataSampler<'_>,
    _sigmas: &[f64],
    _conditioning: Conditioning,
    _cfg: &TrainConfig,
    _device: &Device,
) -> anyhow::Result<(NoiseConditionalMlp, TrainReport)> {
    anyhow::bail!("stub")
}

#[allow(unused)]
fn _uses(_: &GaussianMixture) {}
