//! The 8x8 blocks `Mixed_7b` and `Mixed_7c`, whose 3x3 branches split into 1x3 and 3x1.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::basic_conv::{chain, BasicConv2d};
use super::pool::{avg_pool3_inside, max_pool3_same};

/// The pool in front of the pool branch's 1x1 convolution.
///
/// The ported TensorFlow graph averages in `Mixed_7b` but takes the maximum in `Mixed_7c`
/// (unlike the paper's description); FID is defined by the graph, so the port keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// 3x3 mean over the pixels inside the image (`Mixed_7b`).
    Average,
    /// 3x3 max, stride 1, borders ignored (`Mixed_7c`).
    Max,
}

/// Four branches (`[B, in, 8, 8] -> [B, 2048, 8, 8]`):
///
/// - `branch1x1`: 1x1 -> 320;
/// - `branch3x3_1`: 1x1 -> 384, then side by side `branch3x3_2a` 1x3 (pad `(0, 1)`) -> 384 and
///   `branch3x3_2b` 3x1 (pad `(1, 0)`) -> 384, concatenated: 768;
/// - `branch3x3dbl_1`, `branch3x3dbl_2`: 1x1 -> 448, 3x3 (pad 1) -> 384, then side by side
///   `branch3x3dbl_3a` 1x3 and `branch3x3dbl_3b` 3x1 -> 384 each: 768;
/// - `branch_pool`: the [`PoolKind`] pool, 1x1 -> 192.
#[derive(Debug, Clone)]
pub struct InceptionE {
    branch1x1: BasicConv2d,
    branch3x3_1: BasicConv2d,
    branch3x3_2: [BasicConv2d; 2],
    branch3x3dbl_12: [BasicConv2d; 2],
    branch3x3dbl_3: [BasicConv2d; 2],
    branch_pool: BasicConv2d,
    pool: PoolKind,
}

impl InceptionE {
    /// A block on `in_channels` (1280 for `Mixed_7b`, 2048 for `Mixed_7c`).
    pub fn new(in_channels: usize, pool: PoolKind, vb: VarBuilder) -> Result<Self> {
        let row = |i, o, name: &str| BasicConv2d::new(i, o, (1, 3), 1, (0, 1), vb.pp(name)); // 1x3
        let col = |i, o, name: &str| BasicConv2d::new(i, o, (3, 1), 1, (1, 0), vb.pp(name)); // 3x1
        Ok(Self {
            branch1x1: BasicConv2d::one_by_one(in_channels, 320, vb.pp("branch1x1"))?,
            branch3x3_1: BasicConv2d::one_by_one(in_channels, 384, vb.pp("branch3x3_1"))?,
            branch3x3_2: [row(384, 384, "branch3x3_2a")?, col(384, 384, "branch3x3_2b")?],
            branch3x3dbl_12: [
                BasicConv2d::one_by_one(in_channels, 448, vb.pp("branch3x3dbl_1"))?,
                BasicConv2d::square(448, 384, 3, 1, 1, vb.pp("branch3x3dbl_2"))?,
            ],
            branch3x3dbl_3: [row(384, 384, "branch3x3dbl_3a")?, col(384, 384, "branch3x3dbl_3b")?],
            branch_pool: BasicConv2d::one_by_one(in_channels, 192, vb.pp("branch_pool"))?,
            pool,
        })
    }
}

/// `[a(x), b(x)]` concatenated along the channels.
fn split(pair: &[BasicConv2d; 2], x: &Tensor) -> Result<Tensor> {
    Tensor::cat(&[pair[0].forward(x)?, pair[1].forward(x)?], 1)
}

impl Module for InceptionE {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b1 = self.branch1x1.forward(x)?; // [B, 320, H, W]
        let b3 = split(&self.branch3x3_2, &self.branch3x3_1.forward(x)?)?; // [B, 768, H, W]
        let inner = chain(&self.branch3x3dbl_12, x)?; // [B, 384, H, W]
        let b3dbl = split(&self.branch3x3dbl_3, &inner)?; // [B, 768, H, W]
        let pooled = match self.pool {
            PoolKind::Average => avg_pool3_inside(x)?,
            PoolKind::Max => max_pool3_same(x)?,
        };
        let bp = self.branch_pool.forward(&pooled)?; // [B, 192, H, W]
        Tensor::cat(&[b1, b3, b3dbl, bp], 1)
    }
}
