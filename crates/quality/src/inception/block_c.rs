//! The 17x17 blocks `Mixed_6b` to `Mixed_6e`, with factorised 7x7 convolutions.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::basic_conv::{chain, BasicConv2d};
use super::pool::avg_pool3_inside;

/// Four branches, each ending in 192 channels (`[B, 768, H, W] -> [B, 768, H, W]`); a 7x7
/// receptive field comes from a 1x7 kernel (pad `(0, 3)`) followed by a 7x1 (pad `(3, 0)`) or
/// the reverse, with `c7` channels in between:
///
/// - `branch1x1`: 1x1 -> 192;
/// - `branch7x7_1..3`: 1x1 -> c7, 1x7 -> c7, 7x1 -> 192;
/// - `branch7x7dbl_1..5`: 1x1 -> c7, 7x1 -> c7, 1x7 -> c7, 7x1 -> c7, 1x7 -> 192;
/// - `branch_pool`: 3x3 average over the pixels inside the image, 1x1 -> 192.
#[derive(Debug, Clone)]
pub struct InceptionC {
    branch1x1: BasicConv2d,
    branch7x7: [BasicConv2d; 3],
    branch7x7dbl: [BasicConv2d; 5],
    branch_pool: BasicConv2d,
}

impl InceptionC {
    /// A block on `in_channels` (768) with `c7` channels inside the 7x7 branches (128 for
    /// `Mixed_6b`, 160 for `6c` and `6d`, 192 for `6e`).
    pub fn new(in_channels: usize, c7: usize, vb: VarBuilder) -> Result<Self> {
        let row = |i, o, name: &str| BasicConv2d::new(i, o, (1, 7), 1, (0, 3), vb.pp(name)); // 1x7
        let col = |i, o, name: &str| BasicConv2d::new(i, o, (7, 1), 1, (3, 0), vb.pp(name)); // 7x1
        Ok(Self {
            branch1x1: BasicConv2d::one_by_one(in_channels, 192, vb.pp("branch1x1"))?,
            branch7x7: [
                BasicConv2d::one_by_one(in_channels, c7, vb.pp("branch7x7_1"))?,
                row(c7, c7, "branch7x7_2")?,
                col(c7, 192, "branch7x7_3")?,
            ],
            branch7x7dbl: [
                BasicConv2d::one_by_one(in_channels, c7, vb.pp("branch7x7dbl_1"))?,
                col(c7, c7, "branch7x7dbl_2")?,
                row(c7, c7, "branch7x7dbl_3")?,
                col(c7, c7, "branch7x7dbl_4")?,
                row(c7, 192, "branch7x7dbl_5")?,
            ],
            branch_pool: BasicConv2d::one_by_one(in_channels, 192, vb.pp("branch_pool"))?,
        })
    }
}

impl Module for InceptionC {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b1 = self.branch1x1.forward(x)?; // [B, 192, H, W]
        let b7 = chain(&self.branch7x7, x)?; // [B, 192, H, W]
        let b7dbl = chain(&self.branch7x7dbl, x)?; // [B, 192, H, W]
        let bp = self.branch_pool.forward(&avg_pool3_inside(x)?)?; // [B, 192, H, W]
        Tensor::cat(&[b1, b7, b7dbl, bp], 1)
    }
}
