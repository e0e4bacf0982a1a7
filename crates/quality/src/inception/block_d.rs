//! `Mixed_7a`: the grid reduction from 17x17 to 8x8.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::basic_conv::{chain, BasicConv2d};
use super::pool::max_pool3_stride2;

/// Three branches that halve the grid (`[B, 768, 17, 17] -> [B, 1280, 8, 8]`):
///
/// - `branch3x3_1`, `branch3x3_2`: 1x1 -> 192, 3x3 stride 2 -> 320;
/// - `branch7x7x3_1..4`: 1x1 -> 192, 1x7 (pad `(0, 3)`) -> 192, 7x1 (pad `(3, 0)`) -> 192,
///   3x3 stride 2 -> 192;
/// - a 3x3 stride-2 max pool of the input (no parameters).
#[derive(Debug, Clone)]
pub struct InceptionD {
    branch3x3: [BasicConv2d; 2],
    branch7x7x3: [BasicConv2d; 4],
}

impl InceptionD {
    /// The block on `in_channels` (768).
    pub fn new(in_channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            branch3x3: [
                BasicConv2d::one_by_one(in_channels, 192, vb.pp("branch3x3_1"))?,
                BasicConv2d::square(192, 320, 3, 2, 0, vb.pp("branch3x3_2"))?,
            ],
            branch7x7x3: [
                BasicConv2d::one_by_one(in_channels, 192, vb.pp("branch7x7x3_1"))?,
                BasicConv2d::new(192, 192, (1, 7), 1, (0, 3), vb.pp("branch7x7x3_2"))?,
                BasicConv2d::new(192, 192, (7, 1), 1, (3, 0), vb.pp("branch7x7x3_3"))?,
                BasicConv2d::square(192, 192, 3, 2, 0, vb.pp("branch7x7x3_4"))?,
            ],
        })
    }
}

impl Module for InceptionD {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b3 = chain(&self.branch3x3, x)?; // [B, 320, H', W']
        let b7 = chain(&self.branch7x7x3, x)?; // [B, 192, H', W']
        let pool = max_pool3_stride2(x)?; // [B, in, H', W']
        Tensor::cat(&[b3, b7, pool], 1)
    }
}
