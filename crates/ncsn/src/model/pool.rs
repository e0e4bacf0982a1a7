//! Average pooling written with ops that candle can differentiate.
//!
//! candle 0.11.1 has a backward pass for `avg_pool2d` only when kernel == stride. The 2x2 mean
//! pool of the downsampling blocks is such a case; the chained residual pooling's 5x5 window
//! with stride 1 is not, so it is written as sums of shifted views of a zero-padded tensor
//! (`narrow` and `add` differentiate).
use candle_core::{Result, Tensor};

use super::profile::{timed, LayerKind};

/// Mean of each 2x2 block: `[B, C, H, W] -> [B, C, H/2, W/2]`, H and W even.
pub fn mean_pool2(x: &Tensor) -> Result<Tensor> {
    timed(LayerKind::Pool, || {
        let (_, _, h, w) = x.dims4()?;
        if !h.is_multiple_of(2) || !w.is_multiple_of(2) {
            candle_core::bail!("mean_pool2 needs an even height and width, got {h}x{w}")
        }
        x.avg_pool2d(2)
    })
}

/// PyTorch's `AvgPool2d(kernel_size=5, stride=1, padding=2)` (count_include_pad = true):
///
/// `y[h, w] = (1/25) sum_{|u| <= 2, |v| <= 2} x[h + u, w + v]`, with `x = 0` outside the image,
/// so border outputs are partial sums divided by 25, not by the number of pixels inside.
///
/// The 5x5 box is separable: sum 5 shifted views along the width, then 5 along the height
/// (10 shifted adds instead of 25).
pub fn avg_pool5_same(x: &Tensor) -> Result<Tensor> {
    timed(LayerKind::Pool, || {
        let (_, _, h, w) = x.dims4()?;
        let rows = box_sum5(x, 3, w)?; // sum_v x[h, w + v]
        let boxes = box_sum5(&rows, 2, h)?; // sum_u rows[h + u, w]
        boxes.affine(1.0 / 25.0, 0.0)
    })
}

/// `s[i] = sum_{k = -2..=2} x[i + k]` along `dim` (of length `len`), zero outside `0..len`.
fn box_sum5(x: &Tensor, dim: usize, len: usize) -> Result<Tensor> {
    let padded = x.pad_with_zeros(dim, 2, 2)?;
    let mut sum = padded.narrow(dim, 0, len)?;
    for shift in 1..5 {
        sum = (sum + padded.narrow(dim, shift, len)?)?;
    }
    Ok(sum)
}
