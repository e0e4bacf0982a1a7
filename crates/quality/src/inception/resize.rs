//! Bilinear resizing with `align_corners = false` (PyTorch's `F.interpolate(mode="bilinear")`
//! without antialiasing), as two matrix products, so that it runs on any device.
use candle_core::{Device, Result, Tensor};

/// The `[out_len, in_len]` matrix of 1D linear interpolation with half-pixel centres.
///
/// Output pixel `i` covers `[i, i + 1) * in_len / out_len` of the input, whose centre sits at
/// `s = (i + 0.5) * in_len / out_len - 0.5`, clamped below at 0. With `k = floor(s)` (at most
/// `in_len - 1`) and `t = s - k`: `A[i, k] += 1 - t`, `A[i, k + 1] += t`, where `k + 1` falls
/// back to `k` at the last input pixel. Each row sums to 1; for `out_len == in_len` `A` is the
/// identity. Weights in f64, rounded to f32 once.
pub fn interpolation_matrix(in_len: usize, out_len: usize) -> Vec<f32> {
    let scale = in_len as f64 / out_len as f64;
    let mut a = vec![0.0f64; out_len * in_len];
    for i in 0..out_len {
        let s = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let k = (s.floor() as usize).min(in_len - 1);
        let t = (s - k as f64).clamp(0.0, 1.0);
        let k1 = if k + 1 < in_len { k + 1 } else { k };
        a[i * in_len + k] += 1.0 - t;
        a[i * in_len + k1] += t;
    }
    a.into_iter().map(|v| v as f32).collect()
}

/// `A^T`, `[in_len, out_len]`, on `device`.
fn matrix_t(in_len: usize, out_len: usize, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(interpolation_matrix(in_len, out_len), (out_len, in_len), device)?
        .t()?
        .contiguous()
}

/// Resizes f32 images `[B, C, H, W]` to `[B, C, out_h, out_w]`: `out[b, c] = A_h x[b, c] A_w^T`.
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if (h, w) == (out_h, out_w) {
        return Ok(x.clone()); // both matrices are the identity
    }
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        candle_core::bail!("cannot resize {h}x{w} images to {out_h}x{out_w}")
    }
    let a_w_t = matrix_t(w, out_w, x.device())?; // [W, out_w]
    let a_h_t = matrix_t(h, out_h, x.device())?; // [H, out_h]

    // Along the width: every row of every image times A_w^T.
    let y = x.contiguous()?.reshape((b * c * h, w))?.matmul(&a_w_t)?; // [B C H, out_w]

    // Along the height: make it the last axis, times A_h^T, and back.
    let y = y.reshape((b, c, h, out_w))?.transpose(2, 3)?.contiguous()?; // [B, C, out_w, H]
    let y = y.reshape((b * c * out_w, h))?.matmul(&a_h_t)?; // [B C out_w, out_h]
    y.reshape((b, c, out_w, out_h))?.transpose(2, 3)?.contiguous() // [B, C, out_h, out_w]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(a: &[f32], in_len: usize, i: usize) -> &[f32] {
        &a[i * in_len..(i + 1) * in_len]
    }

    #[test]
    fn half_pixel_centres() {
        // 2 -> 4: centres at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (past the last pixel).
        let a = interpolation_matrix(2, 4);
        assert_eq!(row(&a, 2, 0), [1.0, 0.0]);
        assert_eq!(row(&a, 2, 1), [0.75, 0.25]);
        assert_eq!(row(&a, 2, 2), [0.25, 0.75]);
        assert_eq!(row(&a, 2, 3), [0.0, 1.0]);
        // 4 -> 2: centres at 0.5 and 2.5, the means of pixel pairs.
        let a = interpolation_matrix(4, 2);
        assert_eq!(a, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
        // 1 -> 3: a constant.
        assert_eq!(interpolation_matrix(1, 3), [1.0, 1.0, 1.0]);
        // 3 -> 3: the identity.
        assert_eq!(
            interpolation_matrix(3, 3),
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn resizes_each_axis() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[[0f32, 1.0], [2.0, 3.0]]]], &dev).unwrap(); // [1, 1, 2, 2]
        let y = resize_bilinear(&x, 4, 2).unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, [0.0, 1.0, 0.5, 1.5, 1.5, 2.5, 2.0, 3.0]);
    }
}
