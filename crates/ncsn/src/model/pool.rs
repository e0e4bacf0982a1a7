//! Average pooling written with ops that candle can differentiate.
//!
//! candle 0.11.1 has a backward pass for `avg_pool2d` only when kernel == stride. The 2x2 mean
//! pool of the downsampling blocks is such a case; the chained residual pooling's 5x5 window
//! with stride 1 is not, so it is written as sums of shifted views of a zero-padded tensor
//! (`narrow` and `add` differentiate).
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

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
/// The map is linear and symmetric (pixel `a` feeds pixel `b` with weight 1/25 exactly when `b`
/// feeds `a`), so its backward pass is the same pool applied to the gradient. On the CPU that is
/// one custom op for both passes; elsewhere the box is summed from shifted views of a padded
/// tensor, which candle differentiates.
pub fn avg_pool5_same(x: &Tensor) -> Result<Tensor> {
    timed(LayerKind::Pool, || {
        if x.device().is_cpu() {
            return x.contiguous()?.apply_op1(BoxPool5);
        }
        let (_, _, h, w) = x.dims4()?;
        // The 5x5 box is separable: 5 shifted views along the width, then 5 along the height.
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

/// The 5x5 box mean on the CPU, one plane at a time: row sums, then column sums of those.
struct BoxPool5;

impl CustomOp1 for BoxPool5 {
    fn name(&self) -> &'static str {
        "avg-pool5-same"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T>(x: &[T], h: usize, w: usize, scale: T) -> Vec<T>
        where
            T: Copy + Default + Send + Sync + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
        {
            let mut y = vec![T::default(); x.len()];
            if x.is_empty() {
                return y;
            }
            y.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).for_each_init(
                || vec![T::default(); h * w],
                |rows, (y, x)| {
                    // rows[r, c] = sum_{|v| <= 2} x[r, c + v]
                    for (x, rows) in x.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
                        box_sum(rows, x);
                    }
                    // y[r, c] = (1/25) sum_{|u| <= 2} rows[r + u, c], a whole row at a time
                    for r in 0..h {
                        let y = &mut y[r * w..(r + 1) * w];
                        let window = r.saturating_sub(2)..(r + 3).min(h);
                        y.fill(T::default());
                        for rr in window {
                            for (y, &v) in y.iter_mut().zip(&rows[rr * w..(rr + 1) * w]) {
                                *y = *y + v;
                            }
                        }
                        for y in y.iter_mut() {
                            *y = *y * scale;
                        }
                    }
                },
            );
            y
        }
        let (_, _, h, w) = l.shape().dims4()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("avg_pool5_same: expected a contiguous input")
        };
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(run(&x[a..b], h, w, 1.0 / 25.0)),
            CpuStorage::F64(x) => CpuStorage::F64(run(&x[a..b], h, w, 1.0 / 25.0)),
            _ => candle_core::bail!("avg_pool5_same on the CPU supports f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        // The pool is its own adjoint.
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&BoxPool5)?))
    }
}

/// `out[c] = sum_{|v| <= 2, 0 <= c + v < w} x[c + v]` along a row, each sum from zero and in
/// the order of `v` (the shifted-view form's order: the same bits). The interior `2 <= c < w - 2`,
/// whose five terms are all inside the row, is one loop over windows that the compiler vectorises.
fn box_sum<T: Copy + Default + std::ops::Add<Output = T>>(out: &mut [T], x: &[T]) {
    let w = x.len();
    let sum = |c: usize| {
        let mut s = T::default();
        for &v in &x[c.saturating_sub(2)..(c + 3).min(w)] {
            s = s + v;
        }
        s
    };
    if w < 5 {
        for (c, out) in out.iter_mut().enumerate() {
            *out = sum(c);
        }
        return;
    }
    for c in [0, 1, w - 2, w - 1] {
        out[c] = sum(c);
    }
    for (out, v) in out[2..w - 2].iter_mut().zip(x.windows(5)) {
        *out = T::default() + v[0] + v[1] + v[2] + v[3] + v[4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The box mean as first written: every output's five-by-five sum with bounds, row sums
    /// then column sums, each from zero in the order of the offsets.
    fn reference(x: &[f32], h: usize, w: usize) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        for (y, x) in y.chunks_mut(h * w).zip(x.chunks(h * w)) {
            let mut rows = vec![0f32; h * w];
            for r in 0..h {
                for c in 0..w {
                    let mut s = 0f32;
                    for cc in c.saturating_sub(2)..(c + 3).min(w) {
                        s += x[r * w + cc];
                    }
                    rows[r * w + c] = s;
                }
            }
            for r in 0..h {
                for c in 0..w {
                    let mut s = 0f32;
                    for rr in r.saturating_sub(2)..(r + 3).min(h) {
                        s += rows[rr * w + c];
                    }
                    y[r * w + c] = s * (1.0 / 25.0);
                }
            }
        }
        y
    }

    #[test]
    fn the_vectorised_op_is_the_scalar_loops_bit_for_bit() {
        // Rows and columns shorter than the window, as long as it, and the model's 14 and 28;
        // values of mixed sign and scale, and negative zeros (0 + -0 = +0 must stay).
        for (b, c, h, w) in [
            (1, 2, 28, 28),
            (2, 3, 14, 14),
            (1, 1, 4, 3),
            (1, 1, 5, 5),
            (1, 2, 1, 7),
            (1, 1, 7, 1),
        ] {
            let n = b * c * h * w;
            let v: Vec<f32> = (0..n)
                .map(|i| match i % 11 {
                    3 => -0.0,
                    k => ((i * 7919 % 1009) as f32 - 504.0) * 10f32.powi(k as i32 % 5 - 2),
                })
                .collect();
            let x = Tensor::from_vec(v.clone(), (b, c, h, w), &Device::Cpu).unwrap();
            let ours = avg_pool5_same(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let expected = reference(&v, h, w);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ours), bits(&expected), "{b}x{c}x{h}x{w}");
        }
    }

    #[test]
    fn the_cpu_op_equals_the_shifted_view_form_and_its_gradient() {
        // Same additions in the same order: equal bit for bit, values and gradients.
        let dev = Device::Cpu;
        let v: Vec<f32> = (0..2 * 3 * 7 * 6)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(v, (2, 3, 7, 6), &dev).unwrap()).unwrap();
        let r = x.as_tensor().sin().unwrap();
        let ours = avg_pool5_same(&x).unwrap();
        let views = {
            let rows = box_sum5(&x, 3, 6).unwrap();
            box_sum5(&rows, 2, 7).unwrap().affine(1.0 / 25.0, 0.0).unwrap()
        };
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&ours), flat(&views));
        let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (views * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (flat(g1.get(&x).unwrap()), flat(g2.get(&x).unwrap()));
        for (a, b) in a.iter().zip(&b) {
            // The gradient sums the same 25 terms in another order: 1e-6 relative.
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
