//! Multi-resolution fusion of RefineNet, conditional version (`CondMSFBlock`).
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::{conv3x3, Conv2d};
use super::norm::CondInstanceNormPlusPlus;
use super::resize::BilinearResize;

/// `out = sum_k resize(conv_k(norm_k(x_k, i)), shape)`: each input path is normalised, brought to
/// `features` channels by a 3x3 convolution (with bias), resized bilinearly (aligned corners) to
/// the output resolution, and the paths are summed.
///
/// Parameter names `convs.{k}` and `norms.{k}`.
#[derive(Debug)]
pub struct CondMSFBlock {
    convs: Vec<Conv2d>,
    norms: Vec<CondInstanceNormPlusPlus>,
    resize: BilinearResize,
}

impl CondMSFBlock {
    /// One path per entry of `in_planes` (its channel count).
    pub fn new(in_planes: &[usize], features: usize, num_classes: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::with_capacity(in_planes.len());
        let mut norms = Vec::with_capacity(in_planes.len());
        for (k, &planes) in in_planes.iter().enumerate() {
            convs.push(conv3x3(planes, features, true, vb.pp(format!("convs.{k}")))?);
            norms.push(CondInstanceNormPlusPlus::new(
                planes,
                num_classes,
                vb.pp(format!("norms.{k}")),
            )?);
        }
        Ok(Self {
            convs,
            norms,
            resize: BilinearResize::new(),
        })
    }

    /// `xs[k]` `[B, in_planes[k], H_k, W_k]` -> `[B, features, out_h, out_w]`.
    pub fn forward(&self, xs: &[Tensor], labels: &Tensor, (out_h, out_w): (usize, usize)) -> Result<Tensor> {
        if xs.len() != self.convs.len() {
            candle_core::bail!("CondMSFBlock built for {} inputs got {}", self.convs.len(), xs.len())
        }
        let mut sum: Option<Tensor> = None;
        for ((x, norm), conv) in xs.iter().zip(&self.norms).zip(&self.convs) {
            let h = conv.forward(&norm.forward(x, labels)?)?;
            let h = self.resize.forward(&h, out_h, out_w)?;
            sum = Some(match sum {
                Some(s) => (s + h)?,
                None => h,
            });
        }
        sum.ok_or_else(|| candle_core::Error::Msg("CondMSFBlock without inputs".into()))
    }
}
