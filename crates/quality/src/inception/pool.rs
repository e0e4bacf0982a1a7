//! The three pools of the Inception blocks, on any device, from candle's pools without padding.
//!
//! All use a 3x3 window. candle's `avg_pool2d` and `max_pool2d` take no padding, so the two
//! "same size" pools pad by hand with a value that leaves the result as the padded pool defines
//! it.
use candle_core::{Result, Tensor};

/// Max over 3x3 windows with stride 2 and no padding: `[B, C, H, W] -> [B, C, (H - 3) / 2 + 1,
/// (W - 3) / 2 + 1]` (the stem's and the grid reductions' pool).
pub fn max_pool3_stride2(x: &Tensor) -> Result<Tensor> {
    x.max_pool2d_with_stride(3, 2)
}

/// Max over the 3x3 window centred on each pixel, outside pixels ignored: same shape out.
///
/// A pool padded with `-inf` ignores the border. Repeating the edge row or column instead
/// gives the same maxima for a 3x3 window with stride 1: the copy of an edge pixel lands only
/// in windows that already hold that pixel.
pub fn max_pool3_same(x: &Tensor) -> Result<Tensor> {
    let padded = x.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?; // [B, C, H + 2, W + 2]
    padded.max_pool2d_with_stride(3, 1)
}

/// Mean over the pixels of the 3x3 window centred on each pixel that lie inside the image
/// (TensorFlow's `SAME` average pool, PyTorch's `count_include_pad=False`): same shape out.
///
/// `y[r, c] = sum_{window inside} x / n(r, c)`, `n = n_rows(r) * n_cols(c)` with `n_rows` = 3
/// inside, 2 on the first and last row (1 when H = 1). Computed as the pool of the zero-padded
/// input, which divides by 9, times `9 / n`, a `[1, 1, H, W]` map built on the host (its values
/// 1, 1.5, 2.25, 3, 4.5, 9 are exact in f32).
pub fn avg_pool3_inside(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?; // [B, C, H + 2, W + 2]
    let sum_over_9 = padded.avg_pool2d_with_stride(3, 1)?; // sum / 9, [B, C, H, W]
    let correction = Tensor::from_vec(inside_correction(h, w), (1, 1, h, w), x.device())?.to_dtype(x.dtype())?;
    sum_over_9.broadcast_mul(&correction) // sum / n
}

/// `9 / n(r, c)` row-major for an `h x w` image, `n` the number of window pixels inside.
fn inside_correction(h: usize, w: usize) -> Vec<f32> {
    // Pixels of [i - 1, i + 1] inside [0, len).
    let inside = |i: usize, len: usize| (i + 2).min(len) - i.saturating_sub(1);
    let mut out = Vec::with_capacity(h * w);
    for r in 0..h {
        for c in 0..w {
            out.push(9.0 / (inside(r, h) * inside(c, w)) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The pools by their definitions, one pixel at a time.
    fn naive(x: &[f32], h: usize, w: usize, max: bool) -> Vec<f32> {
        let mut out = Vec::new();
        for r in 0..h as i64 {
            for c in 0..w as i64 {
                let mut window = Vec::new();
                for rr in r - 1..=r + 1 {
                    for cc in c - 1..=c + 1 {
                        if (0..h as i64).contains(&rr) && (0..w as i64).contains(&cc) {
                            window.push(x[rr as usize * w + cc as usize]);
                        }
                    }
                }
                out.push(if max {
                    window.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
                } else {
                    window.iter().sum::<f32>() / window.len() as f32
                });
            }
        }
        out
    }

    #[test]
    fn same_size_pools_match_their_definitions() {
        for (h, w) in [(1, 1), (1, 4), (2, 3), (5, 4)] {
            let v: Vec<f32> = (0..h * w).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
            let x = Tensor::from_vec(v.clone(), (1, 1, h, w), &Device::Cpu).unwrap();
            let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let avg = flat(avg_pool3_inside(&x).unwrap());
            let max = flat(max_pool3_same(&x).unwrap());
            for (a, b) in avg.iter().zip(naive(&v, h, w, false)) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{h}x{w}: {a} vs {b}");
            }
            assert_eq!(max, naive(&v, h, w, true), "{h}x{w}");
        }
    }
}
