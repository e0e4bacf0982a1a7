//! Chained residual pooling of RefineNet, conditional version (`CondCRPBlock`).
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::elu;
use super::conv::{conv3x3, Conv2d};
use super::norm::CondInstanceNormPlusPlus;
use super::pool::avg_pool5_same;

/// `x <- ELU(x)`, then a chain of `n_stages` pooling stages, each added to the output:
///
/// ```text
/// path_0 = x,   path_k = conv_k(avgpool5(norm_k(path_{k-1}, i))),   out = x + sum_k path_k
/// ```
///
/// with a 5x5 average pool of stride 1 and zero padding 2 (the reference uses average, not max,
/// pooling here) and 3x3 convolutions without bias. Parameter names `convs.{k}`, `norms.{k}`.
#[derive(Debug, Clone)]
pub struct CondCRPBlock {
    convs: Vec<Conv2d>,
    norms: Vec<CondInstanceNormPlusPlus>,
}

impl CondCRPBlock {
    /// `n_stages` stages on `features` channels.
    pub fn new(features: usize, n_stages: usize, num_classes: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::with_capacity(n_stages);
        let mut norms = Vec::with_capacity(n_stages);
        for k in 0..n_stages {
            norms.push(CondInstanceNormPlusPlus::new(
                features,
                num_classes,
                vb.pp(format!("norms.{k}")),
            )?);
            convs.push(conv3x3(features, features, false, vb.pp(format!("convs.{k}")))?);
        }
        Ok(Self { convs, norms })
    }

    /// `[B, features, H, W]` -> same shape.
    pub fn forward(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let mut x = elu(x)?;
        let mut path = x.clone();
        for (norm, conv) in self.norms.iter().zip(&self.convs) {
            path = conv.forward(&avg_pool5_same(&norm.forward(&path, labels)?)?)?;
            x = (path.clone() + x)?;
        }
        Ok(x)
    }
}
