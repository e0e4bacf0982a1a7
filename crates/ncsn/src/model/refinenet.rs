//! The score network of NCSN: `CondRefineNetDilated` of the reference implementation.
use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::elu;
use super::conv::Conv2d;
use super::norm::CondInstanceNormPlusPlus;
use super::refine_block::CondRefineBlock;
use super::residual::{ConditionalResidualBlock, Resample};
use super::ModelConfig;

/// `s_theta(x, sigma_i)`: a RefineNet over a dilated residual encoder, conditioned on the noise
/// level index `i` only through its CondInstanceNorm++ layers.
///
/// ```text
/// x in [0,1] -> 2x - 1 -> begin_conv (3x3, C -> ngf)
/// res1: 2 blocks, ngf                          H x W        -> layer1
/// res2: down (conv + 2x2 mean pool), ngf->2ngf  H/2 x W/2    -> layer2
/// res3: 2 blocks, 2ngf, dilation 2             H/2 x W/2    -> layer3
/// res4: 2 blocks, 2ngf, dilation 4             H/2 x W/2    -> layer4
/// refine1([layer4]) -> 2ngf;  refine2([layer3, ref1]) -> 2ngf;
/// refine3([layer2, ref2]) -> ngf;  refine4([layer1, ref3]) -> ngf  (back at H x W)
/// normalizer, ELU, end_conv (3x3, ngf -> C)
/// ```
///
/// The first block of res3 and res4 is a "down" block with dilation, which in the reference
/// keeps the resolution and adds a dilated shortcut convolution. For 28x28 inputs the reference
/// passes `adjust_padding=True` to res4's first block, but that flag only acts on non-dilated
/// downsampling, so the 28x28 network has the same structure as the 32x32 one.
#[derive(Debug)]
pub struct CondRefineNetDilated {
    cfg: ModelConfig,
    begin_conv: Conv2d,
    normalizer: CondInstanceNormPlusPlus,
    end_conv: Conv2d,
    res1: Vec<ConditionalResidualBlock>,
    res2: Vec<ConditionalResidualBlock>,
    res3: Vec<ConditionalResidualBlock>,
    res4: Vec<ConditionalResidualBlock>,
    refine1: CondRefineBlock,
    refine2: CondRefineBlock,
    refine3: CondRefineBlock,
    refine4: CondRefineBlock,
}

impl CondRefineNetDilated {
    /// Builds the network; parameter names follow the reference's PyTorch state_dict
    /// (`res1.0.normalize1.embed.weight`, `refine1.adapt_convs.0.1_1_conv.weight`, ...).
    ///
    /// With a fresh `VarMap` the variables are created with the reference's initialisation:
    /// drawn from a seeded generator through [`workbench::init::seeded_var_builder`] (what
    /// `ncsn::model::build_model` does), or from candle's unseeded one through
    /// `VarBuilder::from_varmap`. With a checkpoint, every name and shape must be present.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let (ngf, l) = (cfg.ngf, cfg.num_classes);
        let res = |name: &str, input: usize, output: usize, resample: Resample, dilation: Option<usize>| {
            let vb = vb.pp(name);
            Ok::<_, candle_core::Error>(vec![
                ConditionalResidualBlock::new(input, output, l, resample, dilation, vb.pp("0"))?,
                ConditionalResidualBlock::new(output, output, l, Resample::None, dilation, vb.pp("1"))?,
            ])
        };
        Ok(Self {
            cfg: cfg.clone(),
            begin_conv: Conv2d::new(cfg.channels, ngf, 3, 1, true, vb.pp("begin_conv"))?,
            normalizer: CondInstanceNormPlusPlus::new(ngf, l, vb.pp("normalizer"))?,
            end_conv: Conv2d::new(ngf, cfg.channels, 3, 1, true, vb.pp("end_conv"))?,
            res1: res("res1", ngf, ngf, Resample::None, None)?,
            res2: res("res2", ngf, 2 * ngf, Resample::Down, None)?,
            res3: res("res3", 2 * ngf, 2 * ngf, Resample::Down, Some(2))?,
            res4: res("res4", 2 * ngf, 2 * ngf, Resample::Down, Some(4))?,
            refine1: CondRefineBlock::new(&[2 * ngf], 2 * ngf, l, false, vb.pp("refine1"))?,
            refine2: CondRefineBlock::new(&[2 * ngf, 2 * ngf], 2 * ngf, l, false, vb.pp("refine2"))?,
            refine3: CondRefineBlock::new(&[2 * ngf, 2 * ngf], ngf, l, false, vb.pp("refine3"))?,
            refine4: CondRefineBlock::new(&[ngf, ngf], ngf, l, true, vb.pp("refine4"))?,
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Checks `x` `[B, C, H, W]` (B >= 1, H, W even) and `labels` `u32` `[B]` with values `< L`.
    fn check_inputs(&self, x: &Tensor, labels: &Tensor) -> Result<()> {
        let dims = x.dims();
        let [b, c, h, w] = dims else {
            candle_core::bail!(
                "model input x: expected shape [B, {}, H, W], got {dims:?}",
                self.cfg.channels
            )
        };
        if *b == 0 || *c != self.cfg.channels || *h == 0 || *w == 0 || !h.is_multiple_of(2) || !w.is_multiple_of(2) {
            candle_core::bail!(
                "model input x: expected shape [B, {}, H, W] with B >= 1 and H, W even and positive, got {dims:?}",
                self.cfg.channels
            )
        }
        if labels.dtype() != DType::U32 || labels.dims() != [*b] {
            candle_core::bail!(
                "model input labels: expected u32 noise-level indices of shape [{b}], got {:?} {:?}",
                labels.dtype(),
                labels.dims()
            )
        }
        // The range is checked where reading the labels is free, on the host. On a GPU it would
        // cost a device synchronisation per network evaluation; there the trainer and the sampler
        // make labels in range by construction (levels drawn below L, one sigma per level).
        if !labels.device().is_cpu() {
            return Ok(());
        }
        let max = labels.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.cfg.num_classes {
            candle_core::bail!(
                "model input labels: noise-level index {max} out of range (the model has {} levels, 0..{})",
                self.cfg.num_classes,
                self.cfg.num_classes
            )
        }
        Ok(())
    }

    /// The score `s_theta(x, sigma_labels)`, same shape as `x`.
    ///
    /// `x`: `[B, C, H, W]` in `[0, 1]` (H, W even); `labels`: `u32` noise-level indices `[B]`.
    pub fn forward(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.check_inputs(x, labels)?;
        let x = x.affine(2.0, -1.0)?; // [0, 1] -> [-1, 1]
        let output = self.begin_conv.forward(&x)?;
        let run = |blocks: &[ConditionalResidualBlock], x: Tensor| {
            blocks.iter().try_fold(x, |x, block| block.forward(&x, labels))
        };
        let layer1 = run(&self.res1, output)?;
        let layer2 = run(&self.res2, layer1.clone())?;
        let layer3 = run(&self.res3, layer2.clone())?;
        let layer4 = run(&self.res4, layer3.clone())?;
        let hw = |t: &Tensor| -> Result<(usize, usize)> { Ok((t.dim(2)?, t.dim(3)?)) };

        let ref1 = self.refine1.forward(&[&layer4], labels, hw(&layer4)?)?;
        let ref2 = self.refine2.forward(&[&layer3, &ref1], labels, hw(&layer3)?)?;
        let ref3 = self.refine3.forward(&[&layer2, &ref2], labels, hw(&layer2)?)?;
        let output = self.refine4.forward(&[&layer1, &ref3], labels, hw(&layer1)?)?;

        let output = elu(&self.normalizer.forward(&output, labels)?)?;
        self.end_conv.forward(&output)
    }
}
