//! CondInstanceNorm++: the only place where the noise level enters the network.
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::norm_op::cond_instance_norm_cpu;
use super::profile::{timed, LayerKind};

/// The `eps` of the instance norm and of the cross-channel normalisation (PyTorch's default).
pub const NORM_EPS: f64 = 1e-5;

/// Conditional instance normalisation "plus" (the reference's `ConditionalInstanceNorm2dPlus`).
///
/// For noise level `i`, channel `c` of an image `x`:
///
/// ```text
/// mu_c = mean_{h,w} x_c                  s_c^2 = mean_{h,w} (x_c - mu_c)^2   (biased)
/// m    = mean_c mu_c                     v     = sum_c (mu_c - m)^2 / (C - 1) (unbiased)
/// z_c  = gamma[i,c] * ( (x_c - mu_c) / sqrt(s_c^2 + eps) + alpha[i,c] * (mu_c - m) / sqrt(v + eps) )
///        + beta[i,c]
/// ```
///
/// Plain instance norm forgets the channel means `mu_c`, which shifts colours; the `alpha` term
/// gives them back, normalised across channels. `gamma`, `alpha`, `beta` are the three column
/// blocks (in that order) of one embedding `embed.weight` `[L, 3C]`; `gamma` multiplies the
/// `alpha` term too. Initialisation: `gamma`, `alpha` ~ N(1, 0.02^2), `beta` = 0.
#[derive(Debug, Clone)]
pub struct CondInstanceNormPlusPlus {
    embed: Tensor,
    num_features: usize,
}

impl CondInstanceNormPlusPlus {
    /// A norm for `num_features` channels and `num_classes` noise levels.
    pub fn new(num_features: usize, num_classes: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("embed");
        // A fresh map creates the variable on this call; a checkpoint already holds it. An `Init`
        // fills a whole tensor alike, so the beta block is zeroed after it is drawn.
        let fresh = !vb.contains_tensor("weight");
        let embed = vb.get_with_hints(
            (num_classes, 3 * num_features),
            "weight",
            Init::Randn { mean: 1.0, stdev: 0.02 },
        )?;
        if fresh {
            // In place: the tensor shares its storage with the new variable.
            let zeros = Tensor::zeros((num_classes, num_features), embed.dtype(), embed.device())?;
            embed.slice_set(&zeros, 1, 2 * num_features)?;
        }
        Ok(Self { embed, num_features })
    }

    /// `x` `[B, C, H, W]`, `labels` `u32` `[B]` (noise-level indices, checked by the caller).
    pub fn forward(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        timed(LayerKind::Norm, || {
            let c = x.dim(1)?;
            if c != self.num_features {
                candle_core::bail!("CondInstanceNorm++ built for {} channels got {c}", self.num_features)
            }
            let e = self.embed.embedding(labels)?; // [B, 3C]: gamma | alpha | beta
            if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
                cond_instance_norm_cpu(x, &e)
            } else {
                cond_instance_norm(x, &e)
            }
        })
    }
}

/// CondInstanceNorm++ of `x` `[B, C, H, W]` with each image's embedding row `e` `[B, 3C]`
/// (`gamma | alpha | beta`), in tensor ops: the definition, and the path of every device but the
/// CPU (which runs the same function as one op, [`cond_instance_norm_cpu`]).
pub fn cond_instance_norm(x: &Tensor, e: &Tensor) -> Result<Tensor> {
    let (b, c, _, _) = x.dims4()?;
    let mu = x.mean_keepdim((2, 3))?; // mu_c, [B, C, 1, 1]
    let centered = x.broadcast_sub(&mu)?; // x_c - mu_c
    let s2 = centered.sqr()?.mean_keepdim((2, 3))?; // s_c^2, biased

    let means = mu.reshape((b, c))?;
    let m = means.mean_keepdim(1)?; // m = mean_c mu_c
    let v = means.var_keepdim(1)?; // v, unbiased (divides by C - 1)
    let means = means.broadcast_sub(&m)?.broadcast_div(&(v + NORM_EPS)?.sqrt()?)?; // (mu_c - m) / sqrt(v + eps)

    let gamma = e.narrow(1, 0, c)?;
    let alpha = e.narrow(1, c, c)?;
    let beta = e.narrow(1, 2 * c, c)?;

    // z = gamma ((x_c - mu_c) / sqrt(s_c^2 + eps) + alpha (mu_c - m) / sqrt(v + eps)) + beta
    //   = (x_c - mu_c) * scale_c + shift_c, with the per-channel factors computed on [B, C]
    // first, so that only two passes touch the whole image.
    let scale = gamma.reshape((b, c, 1, 1))?.broadcast_div(&(s2 + NORM_EPS)?.sqrt()?)?;
    let shift = ((gamma * alpha)? * means)? + beta;
    centered
        .broadcast_mul(&scale)?
        .broadcast_add(&shift?.reshape((b, c, 1, 1))?)
}
