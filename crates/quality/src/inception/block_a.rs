//! The 35x35 blocks `Mixed_5b`, `Mixed_5c`, `Mixed_5d`.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::basic_conv::{chain, BasicConv2d};
use super::pool::avg_pool3_inside;

/// Four branches on the same input, concatenated along the channels
/// (`[B, in, H, W] -> [B, 224 + pool_features, H, W]`):
///
/// - `branch1x1`: 1x1 -> 64;
/// - `branch5x5_1`, `branch5x5_2`: 1x1 -> 48, 5x5 (pad 2) -> 64;
/// - `branch3x3dbl_1..3`: 1x1 -> 64, 3x3 -> 96, 3x3 -> 96;
/// - `branch_pool`: 3x3 average over the pixels inside the image, 1x1 -> `pool_features`.
#[derive(Debug, Clone)]
pub struct InceptionA {
    branch1x1: BasicConv2d,
    branch5x5: [BasicConv2d; 2],
    branch3x3dbl: [BasicConv2d; 3],
    branch_pool: BasicConv2d,
}

impl InceptionA {
    /// A block on `in_channels` whose pool branch has `pool_features` outputs (32 for `Mixed_5b`,
    /// 64 for the others).
    pub fn new(in_channels: usize, pool_features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch1x1: BasicConv2d::one_by_one(in_channels, 64, vb.pp("branch1x1"))?,
            branch5x5: [
                BasicConv2d::one_by_one(in_channels, 48, vb.pp("branch5x5_1"))?,
                BasicConv2d::square(48, 64, 5, 1, 2, vb.pp("branch5x5_2"))?,
            ],
            branch3x3dbl: [
                BasicConv2d::one_by_one(in_channels, 64, vb.pp("branch3x3dbl_1"))?,
                BasicConv2d::square(64, 96, 3, 1, 1, vb.pp("branch3x3dbl_2"))?,
                BasicConv2d::square(96, 96, 3, 1, 1, vb.pp("branch3x3dbl_3"))?,
            ],
            branch_pool: BasicConv2d::one_by_one(in_channels, pool_features, vb.pp("branch_pool"))?,
        })
    }
}

impl Module for InceptionA {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b1 = self.branch1x1.forward(x)?; // [B, 64, H, W]
        let b5 = chain(&self.branch5x5, x)?; // [B, 64, H, W]
        let b3 = chain(&self.branch3x3dbl, x)?; // [B, 96, H, W]
        let bp = self.branch_pool.forward(&avg_pool3_inside(x)?)?; // [B, pool_features, H, W]
        Tensor::cat(&[b1, b5, b3, bp], 1)
    }
}
