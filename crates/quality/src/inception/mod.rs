//! Inception-v3 as pytorch-fid ports TensorFlow's FID graph (`pt_inception-2015-12-05`): the
//! network whose 2048 pool features define the FID and whose 1008 logits define the Inception
//! score.
//!
//! One file per part, in the order the image goes through them:
//! - [`resize`]: bilinear resizing to 299x299 (half-pixel centres) as two matrix products;
//! - [`basic_conv`]: convolution + batch norm (running statistics) + ReLU, the only layer with
//!   parameters besides `fc`;
//! - [`pool`]: the 3x3 pools (max with stride 2, max and border-aware average with stride 1);
//! - [`stem`]: five convolutions and two pools, 3 x 299x299 -> 192 x 35x35;
//! - [`block_a`] (`Mixed_5b..5d`, 35x35), [`block_b`] (`Mixed_6a`, to 17x17), [`block_c`]
//!   (`Mixed_6b..6e`, 17x17), [`block_d`] (`Mixed_7a`, to 8x8), [`block_e`] (`Mixed_7b`, `7c`).
//!
//! Parameter names are those of pytorch-fid's state_dict (`Conv2d_1a_3x3.conv.weight`,
//! `Mixed_5b.branch1x1.bn.running_var`, ..., `fc.weight`, `fc.bias`), so the file written by
//! `scripts/convert_inception_weights.py` loads as it is.
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

use crate::{Error, FeatureNetwork, Result};

pub mod basic_conv;
pub mod block_a;
pub mod block_b;
pub mod block_c;
pub mod block_d;
pub mod block_e;
pub mod pool;
pub mod resize;
pub mod stem;

use block_a::InceptionA;
use block_b::InceptionB;
use block_c::InceptionC;
use block_d::InceptionD;
use block_e::{InceptionE, PoolKind};
use stem::Stem;

/// The name stored with feature statistics computed by this network.
pub const NAME: &str = "inception-v3-fid (pytorch-fid pt_inception-2015-12-05)";
/// Height and width every image is resized to.
pub const INPUT_SIZE: usize = 299;
/// Length of the pool features.
pub const FEATURE_DIM: usize = 2048;
/// Number of logits: the 1000 ImageNet classes plus 8 unused ones of the original graph.
pub const NUM_CLASSES: usize = 1008;

/// Inception-v3, FID variant. Build it with [`InceptionV3::load`] from converted weights.
///
/// For images `(N, C, H, W)` with values in `[0, 1]`:
///
/// ```text
/// x      = 2 * resize_299(images) - 1               bilinear, half-pixel centres; [0,1] -> [-1,1]
/// maps   = Mixed_7c(...(Mixed_5b(stem(x))))          [N, 2048, 8, 8]
/// pool   = mean over the 8x8 grid of maps            [N, 2048]   (the FID features)
/// logits = pool fc.weight^T + fc.bias                [N, 1008]   (the Inception score's)
/// ```
///
/// Grayscale images (`C = 1`) are repeated to three channels first, the common way to measure
/// MNIST-like data with Inception; the numbers are then not comparable with RGB statistics.
#[derive(Debug, Clone)]
pub struct InceptionV3 {
    stem: Stem,
    mixed_5: [InceptionA; 3],
    mixed_6a: InceptionB,
    mixed_6: [InceptionC; 4],
    mixed_7a: InceptionD,
    mixed_7: [InceptionE; 2],
    fc_weight: Tensor,
    fc_bias: Tensor,
    device: Device,
}

impl InceptionV3 {
    /// The network with the parameters of `vb` (f32), named as in pytorch-fid's state_dict.
    ///
    /// On a fresh `VarMap` the convolutions and `fc` start at zero and every batch norm at the
    /// identity; set the variables afterwards (as [`InceptionV3::load`] does).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let a = |c, pool, name: &str| InceptionA::new(c, pool, vb.pp(name));
        let c = |c7, name: &str| InceptionC::new(768, c7, vb.pp(name));
        Ok(Self {
            stem: Stem::new(vb.clone())?,
            // -> 256, 288, 288 channels at 35x35
            mixed_5: [
                a(192, 32, "Mixed_5b")?,
                a(256, 64, "Mixed_5c")?,
                a(288, 64, "Mixed_5d")?,
            ],
            mixed_6a: InceptionB::new(288, vb.pp("Mixed_6a"))?, // -> 768 x 17x17
            // 768 x 17x17 each
            mixed_6: [
                c(128, "Mixed_6b")?,
                c(160, "Mixed_6c")?,
                c(160, "Mixed_6d")?,
                c(192, "Mixed_6e")?,
            ],
            mixed_7a: InceptionD::new(768, vb.pp("Mixed_7a"))?, // -> 1280 x 8x8
            mixed_7: [
                InceptionE::new(1280, PoolKind::Average, vb.pp("Mixed_7b"))?, // -> 2048
                InceptionE::new(2048, PoolKind::Max, vb.pp("Mixed_7c"))?,     // -> 2048
            ],
            fc_weight: vb.get_with_hints((NUM_CLASSES, FEATURE_DIM), "fc.weight", Init::Const(0.0))?,
            fc_bias: vb.get_with_hints(NUM_CLASSES, "fc.bias", Init::Const(0.0))?,
            device: vb.device().clone(),
        })
    }

    /// Reads the weights from a safetensors file (see `scripts/convert_inception_weights.py`)
    /// onto `device`.
    ///
    /// Every parameter must be present, with its shape and finite values; the error names the
    /// file and the tensor (and both shapes). Tensors the network does not use (such as
    /// `num_batches_tracked`) are ignored.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            Error::file(
                path,
                format!(
                    "not a safetensors file of Inception weights ({e}); convert pytorch-fid's \
                     pt_inception-2015-12-05-6726825d.pth with scripts/convert_inception_weights.py"
                ),
            )
        })?;
        let varmap = VarMap::new();
        let model = Self::new(VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        let vars = workbench::vars::named_vars(&varmap);
        workbench::vars::load_named(&vars, &tensors, "")
            .map_err(|e| Error::file(path, format!("Inception-v3 weights: {e}")))?;
        Ok(model)
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pool features `[N, 2048]` of network inputs `x` `[N, 3, 299, 299]` with values in
    /// `[-1, 1]` (already resized and rescaled).
    pub fn pool_features(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.stem.forward(x)?; // [N, 192, 35, 35]
        for block in &self.mixed_5 {
            x = block.forward(&x)?; // [N, 256 | 288 | 288, 35, 35]
        }
        x = self.mixed_6a.forward(&x)?; // [N, 768, 17, 17]
        for block in &self.mixed_6 {
            x = block.forward(&x)?; // [N, 768, 17, 17]
        }
        x = self.mixed_7a.forward(&x)?; // [N, 1280, 8, 8]
        for block in &self.mixed_7 {
            x = block.forward(&x)?; // [N, 2048, 8, 8]
        }
        Ok(x.mean((2, 3))?) // adaptive average pool to 1x1: [N, 2048]
    }

    /// Logits `[N, 1008]` of pool features `[N, 2048]`: `pool fc.weight^T + fc.bias`.
    pub fn logits(&self, pool: &Tensor) -> Result<Tensor> {
        Ok(pool.matmul(&self.fc_weight.t()?)?.broadcast_add(&self.fc_bias)?)
    }

    /// The network's input `[N, 3, 299, 299]` in `[-1, 1]` from images `[N, 1 | 3, H, W]` in
    /// `[0, 1]` on any device: resize, map to `[-1, 1]`, grayscale repeated to three channels.
    pub fn preprocess(&self, images: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = images.dims4()?;
        self.check_dims((c, h, w))?;
        let x = images.to_device(&self.device)?.to_dtype(DType::F32)?;
        let x = resize::resize_bilinear(&x, INPUT_SIZE, INPUT_SIZE)?; // [N, C, 299, 299]
        let x = x.affine(2.0, -1.0)?; // [0, 1] -> [-1, 1]
        Ok(if c == 1 { x.repeat((1, 3, 1, 1))? } else { x }) // gray -> RGB
    }
}

impl FeatureNetwork for InceptionV3 {
    fn name(&self) -> &str {
        NAME
    }

    fn feature_dim(&self) -> usize {
        FEATURE_DIM
    }

    /// Accepts 1 (grayscale, repeated to RGB) or 3 channels and any height and width of at
    /// least 1 pixel (every image is resized to 299x299).
    fn check_dims(&self, (c, h, w): (usize, usize, usize)) -> Result<()> {
        if (c == 1 || c == 3) && h >= 1 && w >= 1 {
            return Ok(());
        }
        Err(Error::Shape(format!(
            "{NAME} measures images of 3 channels (RGB) or 1 (grayscale, repeated to RGB) and any \
             height and width of at least 1 pixel (resized to {INPUT_SIZE}x{INPUT_SIZE}); got \
             {c} channel(s) of {h}x{w}"
        )))
    }

    /// Pool features `(N, 2048)` and logits `(N, 1008)` of images `(N, C, H, W)` in `[0, 1]`,
    /// computed in f32 on the network's device (the images are moved there).
    fn features_and_logits(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        let dims = images.dims();
        let &[n, c, h, w] = dims else {
            return Err(Error::Shape(format!(
                "{NAME} expects a batch of images (N, C, H, W); got a tensor of shape {dims:?}"
            )));
        };
        self.check_dims((c, h, w))?;
        if n == 0 {
            let pool = Tensor::zeros((0, FEATURE_DIM), DType::F32, &self.device)?;
            let logits = Tensor::zeros((0, NUM_CLASSES), DType::F32, &self.device)?;
            return Ok((pool, logits));
        }
        let pool = self.pool_features(&self.preprocess(images)?)?;
        let logits = self.logits(&pool)?;
        Ok((pool, logits))
    }
}
