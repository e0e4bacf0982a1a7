//! The encoder's pre-activation residual block (the reference's `ConditionalResidualBlock`).
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::elu;
use super::conv::{dilated_conv3x3, Conv2d, ConvMeanPool};
use super::norm::CondInstanceNormPlusPlus;

/// Whether a block keeps the resolution or (for the non-dilated variant) halves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// Same resolution.
    None,
    /// "down": a shortcut convolution is always present. Without dilation the second
    /// convolution and the shortcut are followed by a 2x2 mean pool (halving H and W); with
    /// dilation the reference keeps the resolution and only the shortcut convolution remains.
    Down,
}

/// A convolution of the main path or the shortcut: plain (possibly dilated) or conv-then-mean-pool.
#[derive(Debug, Clone)]
enum BlockConv {
    Plain(Conv2d),
    MeanPool(ConvMeanPool),
}

impl BlockConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Plain(conv) => conv.forward(x),
            Self::MeanPool(conv) => conv.forward(x),
        }
    }
}

/// `out = shortcut(x) + conv2(ELU(norm2(conv1(ELU(norm1(x, i)))), i))`, where `shortcut` is the
/// identity when the block keeps both width and resolution, else a convolution.
///
/// Parameter names: `normalize1`, `conv1`, `normalize2`, `conv2` (`conv2.conv` when it mean-pools),
/// `shortcut` (`shortcut.conv` when it mean-pools).
#[derive(Debug, Clone)]
pub struct ConditionalResidualBlock {
    normalize1: CondInstanceNormPlusPlus,
    conv1: Conv2d,
    normalize2: CondInstanceNormPlusPlus,
    conv2: BlockConv,
    shortcut: Option<BlockConv>,
}

impl ConditionalResidualBlock {
    /// `input_dim -> output_dim` channels; `dilation` `None` means ordinary 3x3 convolutions.
    pub fn new(
        input_dim: usize,
        output_dim: usize,
        num_classes: usize,
        resample: Resample,
        dilation: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let norm = |dim: usize, name: &str| CondInstanceNormPlusPlus::new(dim, num_classes, vb.pp(name));
        let (conv1, normalize2, conv2, shortcut) = match (resample, dilation) {
            (Resample::Down, Some(d)) => (
                dilated_conv3x3(input_dim, input_dim, d, vb.pp("conv1"))?,
                norm(input_dim, "normalize2")?,
                BlockConv::Plain(dilated_conv3x3(input_dim, output_dim, d, vb.pp("conv2"))?),
                Some(BlockConv::Plain(dilated_conv3x3(
                    input_dim,
                    output_dim,
                    d,
                    vb.pp("shortcut"),
                )?)),
            ),
            (Resample::Down, None) => (
                Conv2d::new(input_dim, input_dim, 3, 1, true, vb.pp("conv1"))?,
                norm(input_dim, "normalize2")?,
                BlockConv::MeanPool(ConvMeanPool::new(input_dim, output_dim, 3, vb.pp("conv2"))?),
                Some(BlockConv::MeanPool(ConvMeanPool::new(
                    input_dim,
                    output_dim,
                    1,
                    vb.pp("shortcut"),
                )?)),
            ),
            (Resample::None, dilation) => {
                let d = dilation.unwrap_or(1);
                if input_dim != output_dim {
                    candle_core::bail!(
                        "a residual block without resampling keeps the width in the reference \
                         ({input_dim} -> {output_dim} requested)"
                    )
                }
                (
                    Conv2d::new(input_dim, output_dim, 3, d, true, vb.pp("conv1"))?,
                    norm(output_dim, "normalize2")?,
                    BlockConv::Plain(Conv2d::new(output_dim, output_dim, 3, d, true, vb.pp("conv2"))?),
                    None,
                )
            }
        };
        let normalize1 = norm(input_dim, "normalize1")?;
        Ok(Self {
            normalize1,
            conv1,
            normalize2,
            conv2,
            shortcut,
        })
    }

    /// `x` `[B, input_dim, H, W]` -> `[B, output_dim, H', W']`.
    pub fn forward(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let h = elu(&self.normalize1.forward(x, labels)?)?;
        let h = self.conv1.forward(&h)?;
        let h = elu(&self.normalize2.forward(&h, labels)?)?;
        let h = self.conv2.forward(&h)?;
        match &self.shortcut {
            Some(shortcut) => shortcut.forward(x)? + h,
            None => x + h,
        }
    }
}
