//! CONTRACT STUB (to be replaced by the objectives/models engineer): the score models.
use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;
use ndarray::{Array2, ArrayView2};

/// How a noise-conditional MLP is told the noise level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditioning {
    /// A learned embedding of the level index modulates the hidden layers.
    Embedding,
    /// NCSNv2's form: an unconditional network divided by sigma, `s(x, sigma) = f(x) / sigma`.
    DivideBySigma,
}

/// Anything that gives a score on a batch of 2D points (`level` for noise-conditional models).
pub trait ScoreModel {
    /// `x`: `[N, 2]` f32; `levels`: `u32` `[N]` (ignored by unconditional models).
    fn score(&self, x: &Tensor, levels: Option<&Tensor>) -> Result<Tensor>;
}

/// s(x): 2 -> hidden -> hidden -> 2 with softplus, as the reference toy.
pub struct ScoreMlp;

impl ScoreMlp {
    /// New MLP with parameters under `vb`.
    pub fn new(_hidden: usize, _vb: VarBuilder) -> Result<Self> {
        candle_core::bail!("stub")
    }
}

impl ScoreModel for ScoreMlp {
    fn score(&self, _x: &Tensor, _levels: Option<&Tensor>) -> Result<Tensor> {
        candle_core::bail!("stub")
    }
}

/// s(x, sigma_i).
pub struct NoiseConditionalMlp;

impl NoiseConditionalMlp {
    /// New noise-conditional MLP for the given levels.
    pub fn new(_hidden: usize, _sigmas: &[f64], _conditioning: Conditioning, _vb: VarBuilder) -> Result<Self> {
        candle_core::bail!("stub")
    }
}

impl ScoreModel for NoiseConditionalMlp {
    fn score(&self, _x: &Tensor, _levels: Option<&Tensor>) -> Result<Tensor> {
        candle_core::bail!("stub")
    }
}

/// Evaluates a model on ndarray points (`level`: the noise index for conditional models).
pub fn score_array(
    _model: &dyn ScoreModel,
    _x: ArrayView2<f64>,
    _level: Option<usize>,
    _device: &Device,
) -> Result<Array2<f64>> {
    candle_core::bail!("stub")
}
