//! The NCSN score network (Song & Ermon 2019), a faithful port of the reference implementation's
//! `CondRefineNetDilated` (ermongroup/ncsn): same layers, order, initialisation and parameter
//! names, so a converted reference checkpoint loads as it is.
//!
//! One file per building block:
//! - [`norm`]: CondInstanceNorm++, the only way the noise level enters;
//! - [`conv`]: convolutions with PyTorch's default initialisation, conv + 2x2 mean pool;
//! - [`same_conv`]: the convolution itself, a custom op whose forward and gradients are matrix
//!   products;
//! - [`pool`], [`resize`]: average pooling and bilinear resizing written with differentiable ops;
//! - [`residual`]: the encoder's residual blocks; [`rcu`], [`msf`], [`crp`], [`refine_block`]:
//!   RefineNet's parts; [`refinenet`]: the whole network;
//! - [`shapes`]: the reference's state_dict listing;
//! - [`score`]: [`build_model`], and [`ScoreNet`], the network with its noise levels as a
//!   `langevin::NoiseConditionalScore`;
//! - [`profile`]: per-layer-kind timing hooks (`crate::bench` reports them).
use serde::{Deserialize, Serialize};

pub mod activation;
pub mod conv;
pub mod crp;
pub mod msf;
pub mod norm;
pub mod norm_op;
pub mod pool;
pub mod profile;
pub mod rcu;
pub mod refine_block;
pub mod refinenet;
pub mod residual;
pub mod resize;
pub mod same_conv;
pub mod score;
pub mod shapes;

pub use norm::CondInstanceNormPlusPlus;
pub use refinenet::CondRefineNetDilated;
pub use score::{build_model, frozen_model, score_of, ScoreNet};
pub use shapes::{reference_shapes, ParamShape};

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

    /// Checks the fields; the message names the field and what was expected.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.ngf < 2 {
            // CondInstanceNorm++ takes an unbiased variance across channels: it needs 2 or more.
            return Err(format!(
                "model config field `ngf`: expected at least 2, got {}",
                self.ngf
            ));
        }
        if self.channels == 0 {
            return Err("model config field `channels`: expected at least 1, got 0".into());
        }
        if self.image_size == 0 || !self.image_size.is_multiple_of(2) {
            return Err(format!(
                "model config field `image_size`: expected a positive even size (the encoder halves it once), got {}",
                self.image_size
            ));
        }
        if self.num_classes == 0 {
            return Err("model config field `num_classes`: expected at least 1 noise level, got 0".into());
        }
        Ok(())
    }

    /// Number of trainable scalars: the sum over [`reference_shapes`].
    pub fn num_parameters(&self) -> usize {
        reference_shapes(self)
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }
}
