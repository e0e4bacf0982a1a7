//! Bilinear resizing with `align_corners = true`, as two interpolation matrices.
//!
//! candle 0.11.1's `upsample_bilinear2d` has no backward pass. Bilinear resizing is linear and
//! separable: `out = A_h x A_w^T` for each image and channel, with `A` the `[out, in]` matrix of
//! linear-interpolation weights. Matrix products differentiate, so this trains.
use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Result, Tensor};

use super::profile::{timed, LayerKind};

/// The `[out_len, in_len]` matrix of 1D linear interpolation with aligned corners.
///
/// Output pixel `i` samples the input at `s = i (in_len - 1) / (out_len - 1)` (0 when
/// `out_len == 1`): `A[i, floor(s)] = 1 - t`, `A[i, floor(s) + 1] = t`, `t = s - floor(s)`.
/// Row `i` is a probability vector, and for `out_len == in_len` `A` is the identity.
pub fn interpolation_matrix(in_len: usize, out_len: usize) -> Vec<Vec<f64>> {
    let mut a = vec![vec![0.0; in_len]; out_len];
    let scale = if out_len > 1 {
        (in_len as f64 - 1.0) / (out_len as f64 - 1.0)
    } else {
        0.0
    };
    for (i, row) in a.iter_mut().enumerate() {
        let s = i as f64 * scale;
        let lo = (s.floor() as usize).min(in_len - 1);
        let hi = (lo + 1).min(in_len - 1);
        let t = s - lo as f64;
        row[lo] += 1.0 - t;
        row[hi] += t;
    }
    a
}

/// Resizes `[B, C, H, W]` to `[B, C, out_h, out_w]`, like PyTorch's
/// `F.interpolate(x, size, mode="bilinear", align_corners=True)`.
///
/// Keeps the transposed interpolation matrices it built, one per (length, length, dtype), since
/// the network resizes between the same few sizes at every call.
#[derive(Debug, Default)]
pub struct BilinearResize {
    matrices: Mutex<HashMap<(usize, usize, DType), Tensor>>,
}

impl BilinearResize {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// `A^T` `[in_len, out_len]`, built on first use.
    fn matrix_t(&self, in_len: usize, out_len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let key = (in_len, out_len, dtype);
        let mut cache = self
            .matrices
            .lock()
            .map_err(|_| candle_core::Error::Msg("resize cache poisoned".into()))?;
        if let Some(m) = cache.get(&key) {
            if m.device().same_device(device) {
                return Ok(m.clone());
            }
        }
        let a = interpolation_matrix(in_len, out_len);
        let flat: Vec<f64> = a.into_iter().flatten().collect();
        let m = Tensor::from_vec(flat, (out_len, in_len), device)?
            .t()?
            .contiguous()?
            .to_dtype(dtype)?;
        cache.insert(key, m.clone());
        Ok(m)
    }

    /// `out[b, c] = A_h x[b, c] A_w^T`.
    pub fn forward(&self, x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if (h, w) == (out_h, out_w) {
            return Ok(x.clone()); // A is the identity for equal sizes.
        }
        if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
            candle_core::bail!("cannot resize {h}x{w} to {out_h}x{out_w}")
        }
        timed(LayerKind::Resize, || {
            let a_w_t = self.matrix_t(w, out_w, x.dtype(), x.device())?;
            let a_h_t = self.matrix_t(h, out_h, x.dtype(), x.device())?;
            // Along the width: rows of x times A_w^T.
            let y = x.contiguous()?.reshape((b * c * h, w))?.matmul(&a_w_t)?; // [B C H, out_w]
                                                                              // Along the height: transpose so height is last, times A_h^T, transpose back.
            let y = y.reshape((b, c, h, out_w))?.transpose(2, 3)?.contiguous()?;
            let y = y.reshape((b * c * out_w, h))?.matmul(&a_h_t)?; // [B C out_w, out_h]
            y.reshape((b, c, out_w, out_h))?.transpose(2, 3)?.contiguous()
        })
    }
}
