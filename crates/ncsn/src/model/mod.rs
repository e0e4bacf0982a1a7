//! CONTRACT STUB (to be replaced by the model engineer): the public API of the image model.
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Shape of the score network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Base width (128 for CIFAR-10, 64 for MNIST).
    pub ngf: usize,
    /// Image channels (3 or 1).
    pub channels: usize,
    /// Image height = width (32 or 28).
    pub image_size: usize,
    /// Number of noise levels L (the embedding size of the conditional norms).
    pub num_classes: usize,
}

impl ModelConfig {
    /// The paper's CIFAR-10 model.
    pub fn cifar10() -> Self {
        Self {
            ngf: 128,
            channels: 3,
            image_size: 32,
            num_classes: 10,
        }
    }
    /// The reference's MNIST model.
    pub fn mnist() -> Self {
        Self {
            ngf: 64,
            channels: 1,
            image_size: 28,
            num_classes: 10,
        }
    }
}

/// The reference CondRefineNetDilated.
pub struct CondRefineNetDilated {
    _cfg: ModelConfig,
}

impl CondRefineNetDilated {
    /// Builds the network; parameter names follow the reference state_dict.
    pub fn new(cfg: &ModelConfig, _vb: VarBuilder) -> Result<Self> {
        Ok(Self { _cfg: cfg.clone() })
    }
    /// `x`: `[B, C, H, W]` in `[0, 1]`; `labels`: `u32` noise-level indices `[B]`. Returns the score, shape of `x`.
    pub fn forward(&self, _x: &Tensor, _labels: &Tensor) -> Result<Tensor> {
        candle_core::bail!("model not implemented yet")
    }
}
