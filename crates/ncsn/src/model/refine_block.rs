//! One RefineNet stage, conditional version (`CondRefineBlock`).
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::crp::CondCRPBlock;
use super::msf::CondMSFBlock;
use super::rcu::CondRCUBlock;

/// Fuses one or two feature maps into `features` channels at the resolution of the first:
///
/// ```text
/// h_k = RCU_k(x_k)            (2 blocks x 2 stages, width in_planes[k])
/// h   = MSF(h_1, h_2)         (only with two inputs; one input is used as it is)
/// out = RCU_out(CRP(h))       (CRP: 2 stages; RCU_out: 3 blocks in the last stage, else 1)
/// ```
///
/// Parameter names `adapt_convs.{k}`, `output_convs`, `msf` (absent for one input), `crp`.
#[derive(Debug)]
pub struct CondRefineBlock {
    adapt_convs: Vec<CondRCUBlock>,
    msf: Option<CondMSFBlock>,
    crp: CondCRPBlock,
    output_convs: CondRCUBlock,
}

impl CondRefineBlock {
    /// `in_planes`: channels of each input; `end`: the last stage of the cascade.
    pub fn new(in_planes: &[usize], features: usize, num_classes: usize, end: bool, vb: VarBuilder) -> Result<Self> {
        let adapt_convs = in_planes
            .iter()
            .enumerate()
            .map(|(k, &planes)| CondRCUBlock::new(planes, 2, 2, num_classes, vb.pp(format!("adapt_convs.{k}"))))
            .collect::<Result<Vec<_>>>()?;
        let output_convs = CondRCUBlock::new(features, if end { 3 } else { 1 }, 2, num_classes, vb.pp("output_convs"))?;
        // The reference builds the fusion for every stage but the first (`start`), which has one input.
        let msf = if in_planes.len() > 1 {
            Some(CondMSFBlock::new(in_planes, features, num_classes, vb.pp("msf"))?)
        } else {
            None
        };
        let crp = CondCRPBlock::new(features, 2, num_classes, vb.pp("crp"))?;
        Ok(Self {
            adapt_convs,
            msf,
            crp,
            output_convs,
        })
    }

    /// `xs[k]` `[B, in_planes[k], H_k, W_k]` -> `[B, features, out_h, out_w]`.
    pub fn forward(&self, xs: &[&Tensor], labels: &Tensor, output_shape: (usize, usize)) -> Result<Tensor> {
        if xs.len() != self.adapt_convs.len() {
            candle_core::bail!(
                "CondRefineBlock built for {} inputs got {}",
                self.adapt_convs.len(),
                xs.len()
            )
        }
        let hs = xs
            .iter()
            .zip(&self.adapt_convs)
            .map(|(x, rcu)| rcu.forward(x, labels))
            .collect::<Result<Vec<_>>>()?;
        let h = match &self.msf {
            Some(msf) => msf.forward(&hs, labels, output_shape)?,
            None => hs[0].clone(),
        };
        self.output_convs.forward(&self.crp.forward(&h, labels)?, labels)
    }
}
