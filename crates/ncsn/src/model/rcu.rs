//! Residual convolution unit of RefineNet, conditional version (`CondRCUBlock`).
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::elu;
use super::conv::{conv3x3, Conv2d};
use super::norm::CondInstanceNormPlusPlus;

/// `n_blocks` residual blocks of `n_stages` (norm, ELU, 3x3 conv without bias) each:
/// `x <- x + (conv . ELU . norm)^{n_stages}(x)`. Width is unchanged.
///
/// Parameter names `{block}_{stage}_norm` and `{block}_{stage}_conv`, counting from 1.
#[derive(Debug, Clone)]
pub struct CondRCUBlock {
    blocks: Vec<Vec<(CondInstanceNormPlusPlus, Conv2d)>>,
}

impl CondRCUBlock {
    /// A unit on `features` channels.
    pub fn new(features: usize, n_blocks: usize, n_stages: usize, num_classes: usize, vb: VarBuilder) -> Result<Self> {
        let mut blocks = Vec::with_capacity(n_blocks);
        for i in 1..=n_blocks {
            let mut stages = Vec::with_capacity(n_stages);
            for j in 1..=n_stages {
                let norm = CondInstanceNormPlusPlus::new(features, num_classes, vb.pp(format!("{i}_{j}_norm")))?;
                let conv = conv3x3(features, features, false, vb.pp(format!("{i}_{j}_conv")))?;
                stages.push((norm, conv));
            }
            blocks.push(stages);
        }
        Ok(Self { blocks })
    }

    /// `[B, features, H, W]` -> same shape.
    pub fn forward(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for stages in &self.blocks {
            let residual = x.clone();
            for (norm, conv) in stages {
                x = conv.forward(&elu(&norm.forward(&x, labels)?)?)?;
            }
            x = (x + residual)?;
        }
        Ok(x)
    }
}
