//! `Mixed_6a`: the grid reduction from 35x35 to 17x17.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::basic_conv::{chain, BasicConv2d};
use super::pool::max_pool3_stride2;

/// Three branches that halve the grid (`[B, in, H, W] -> [B, 480 + in, (H - 3) / 2 + 1, ...]`,
/// 288 x 35x35 -> 768 x 17x17):
///
/// - `branch3x3`: 3x3 stride 2 -> 384;
/// - `branch3x3dbl_1..3`: 1x1 -> 64, 3x3 (pad 1) -> 96, 3x3 stride 2 -> 96;
/// - a 3x3 stride-2 max pool of the input (no parameters).
#[derive(Debug, Clone)]
pub struct InceptionB {
    branch3x3: BasicConv2d,
    branch3x3dbl: [BasicConv2d; 3],
}

impl InceptionB {
    /// The block on `in_channels` (288).
    pub fn new(in_channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch3x3: BasicConv2d::square(in_channels, 384, 3, 2, 0, vb.pp("branch3x3"))?,
            branch3x3dbl: [
                BasicConv2d::one_by_one(in_channels, 64, vb.pp("branch3x3dbl_1"))?,
                BasicConv2d::square(64, 96, 3, 1, 1, vb.pp("branch3x3dbl_2"))?,
                BasicConv2d::square(96, 96, 3, 2, 0, vb.pp("branch3x3dbl_3"))?,
            ],
        })
    }
}

impl Module for InceptionB {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b3 = self.branch3x3.forward(x)?; // [B, 384, H', W']
        let b3dbl = chain(&self.branch3x3dbl, x)?; // [B, 96, H', W']
        let pool = max_pool3_stride2(x)?; // [B, in, H', W']
        Tensor::cat(&[b3, b3dbl, pool], 1)
    }
}
