//! The stem: plain convolutions and two max pools, 3 x 299x299 -> 192 x 35x35.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::basic_conv::BasicConv2d;
use super::pool::max_pool3_stride2;

/// The five convolutions in front of the Inception blocks (sizes for a 299x299 input):
///
/// ```text
/// Conv2d_1a_3x3  3x3 stride 2    3 -> 32    299 -> 149
/// Conv2d_2a_3x3  3x3             32 -> 32   149 -> 147
/// Conv2d_2b_3x3  3x3 pad 1       32 -> 64   147 -> 147
/// max pool 3x3 stride 2                     147 -> 73
/// Conv2d_3b_1x1  1x1             64 -> 80    73 -> 73
/// Conv2d_4a_3x3  3x3             80 -> 192   73 -> 71
/// max pool 3x3 stride 2                      71 -> 35
/// ```
#[derive(Debug, Clone)]
pub struct Stem {
    conv_1a: BasicConv2d,
    conv_2a: BasicConv2d,
    conv_2b: BasicConv2d,
    conv_3b: BasicConv2d,
    conv_4a: BasicConv2d,
}

impl Stem {
    /// The stem's convolutions, at the top level of the parameter names (`Conv2d_1a_3x3`, ...).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv_1a: BasicConv2d::square(3, 32, 3, 2, 0, vb.pp("Conv2d_1a_3x3"))?,
            conv_2a: BasicConv2d::square(32, 32, 3, 1, 0, vb.pp("Conv2d_2a_3x3"))?,
            conv_2b: BasicConv2d::square(32, 64, 3, 1, 1, vb.pp("Conv2d_2b_3x3"))?,
            conv_3b: BasicConv2d::one_by_one(64, 80, vb.pp("Conv2d_3b_1x1"))?,
            conv_4a: BasicConv2d::square(80, 192, 3, 1, 0, vb.pp("Conv2d_4a_3x3"))?,
        })
    }
}

impl Module for Stem {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv_1a.forward(x)?; // [B, 32, 149, 149]
        let x = self.conv_2a.forward(&x)?; // [B, 32, 147, 147]
        let x = self.conv_2b.forward(&x)?; // [B, 64, 147, 147]
        let x = max_pool3_stride2(&x)?; // [B, 64, 73, 73]
        let x = self.conv_3b.forward(&x)?; // [B, 80, 73, 73]
        let x = self.conv_4a.forward(&x)?; // [B, 192, 71, 71]
        max_pool3_stride2(&x) // [B, 192, 35, 35]
    }
}
