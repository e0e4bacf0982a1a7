//! The network's one nonlinearity.
//!
//! `ELU(x) = x` for `x > 0`, `exp(x) - 1` otherwise (alpha = 1, PyTorch's `nn.ELU()` default),
//! and its derivative `1` for `x > 0`, `exp(x) = ELU(x) + 1` otherwise: the backward pass needs
//! only the input's sign and the output. On the CPU both passes are one loop over memory each (a
//! custom op); candle's own `elu` builds its derivative from several tensor ops, each a pass with
//! a fresh allocation. Other devices use candle's `elu`.
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::profile::{timed, LayerKind};

/// Elements per parallel chunk (large enough that splitting costs nothing).
const CHUNK: usize = 1 << 16;

/// `ELU(x)` with alpha = 1.
pub fn elu(x: &Tensor) -> Result<Tensor> {
    timed(LayerKind::Elu, || {
        if x.device().is_cpu() {
            x.contiguous()?.apply_op1(Elu)
        } else {
            x.elu(1.0)
        }
    })
}

struct Elu;

/// `d ELU / dx` times the incoming gradient, given the input (for its sign) and the output:
/// `(x, y) -> dy * (x > 0 ? 1 : y + 1)`; the incoming gradient is the op's field.
struct EluGrad(Tensor);

/// The elements of a contiguous tensor (the wrapper [`elu`] makes its input contiguous).
fn slice<'a, T>(data: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("elu: expected a contiguous tensor"),
    }
}

impl CustomOp1 for Elu {
    fn name(&self) -> &'static str {
        "elu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: num_like::Float>(x: &[T]) -> Vec<T> {
            let mut y = vec![T::default(); x.len()];
            y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = if x > T::default() { x } else { x.exp_minus_one() };
                }
            });
            y
        }
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(run(slice(x, l)?)),
            CpuStorage::F64(x) => CpuStorage::F64(run(slice(x, l)?)),
            _ => candle_core::bail!("elu on the CPU supports f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(y, &EluGrad(dy))?))
    }
}

impl CustomOp2 for EluGrad {
    fn name(&self) -> &'static str {
        "elu-grad"
    }

    fn cpu_fwd(&self, sx: &CpuStorage, lx: &Layout, sy: &CpuStorage, ly: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: num_like::Float>(x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
            let mut dx = vec![T::default(); x.len()];
            dx.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .zip(y.par_chunks(CHUNK))
                .zip(dy.par_chunks(CHUNK))
                .for_each(|(((dx, x), y), dy)| {
                    for (((dx, &x), &y), &g) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                        // d ELU/dx = 1 for x > 0, exp(x) = y + 1 otherwise
                        *dx = if x > T::default() { g } else { g * (y + T::one()) };
                    }
                });
            dx
        }
        let (dy_storage, dy_layout) = self.0.storage_and_layout();
        let candle_core::Storage::Cpu(sdy) = &*dy_storage else {
            candle_core::bail!("elu-grad: the gradient is not on the CPU")
        };
        let out = match (sx, sy, sdy) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(dy)) => {
                CpuStorage::F32(run(slice(x, lx)?, slice(y, ly)?, slice(dy, dy_layout)?))
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(dy)) => {
                CpuStorage::F64(run(slice(x, lx)?, slice(y, ly)?, slice(dy, dy_layout)?))
            }
            _ => candle_core::bail!("elu-grad on the CPU supports f32 and f64 of one type"),
        };
        Ok((out, lx.shape().clone()))
    }
}

/// The two float types the CPU loops run on.
mod num_like {
    pub trait Float:
        Copy + Default + PartialOrd + Send + Sync + std::ops::Mul<Output = Self> + std::ops::Add<Output = Self>
    {
        /// `exp(x) - 1` for `x <= 0`.
        fn exp_minus_one(self) -> Self;
        fn one() -> Self;
    }
    impl Float for f32 {
        fn exp_minus_one(self) -> Self {
            super::exp_f32(self) - 1.0
        }
        fn one() -> Self {
            1.0
        }
    }
    impl Float for f64 {
        fn exp_minus_one(self) -> Self {
            self.exp() - 1.0
        }
        fn one() -> Self {
            1.0
        }
    }
}

/// `exp(x)` in f32 for `x <= 0`, written so that the compiler vectorises the ELU loop (no branch,
/// no library call); within 2 ulp of `f32::exp` (tested). Cephes' `expf` method:
///
/// ```text
/// x = n ln 2 + r,  n = round(x / ln 2),  |r| <= ln(2)/2
/// exp(x) = 2^n exp(r),  exp(r) ~ 1 + r + r^2 P(r)   (P of degree 5, minimax on |r| <= ln(2)/2)
/// ```
///
/// Below `-87.3` the result would be subnormal; it is clamped there (`exp(-87.3) ~ 1e-38`, so
/// `ELU(x) = -1` to f32 precision either way).
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 split in two so that n * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    let x = x.max(-87.3);
    let n = (x * LOG2E + ROUND) - ROUND; // round(x / ln 2)
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0; // exp(r)
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23); // 2^n, n >= -126
    e * two_n
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn equals_candle_elu_and_its_gradient() {
        // Values either side of 0, 0 itself, and large negatives (exp underflows to 0).
        let v: Vec<f32> = (-40..40)
            .map(|i| i as f32 * 0.37)
            .chain([0.0, -0.0, -100.0, 1e-8, -1e-8])
            .collect();
        let x = Var::new(v.as_slice(), &Device::Cpu).unwrap();
        let r = Tensor::new(
            (0..v.len())
                .map(|i| (i as f32 * 0.13).sin())
                .collect::<Vec<_>>()
                .as_slice(),
            &Device::Cpu,
        )
        .unwrap();
        let ours = elu(&x).unwrap();
        let theirs = x.elu(1.0).unwrap();
        // exp from a polynomial (2 ulp) against the library's: 1e-6 relative, or 1e-7 absolute
        // where exp(x) - 1 cancels near 0.
        for (a, b) in ours
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .zip(theirs.to_vec1::<f32>().unwrap())
        {
            assert!((a - b).abs() <= 1e-6 * b.abs() + 1e-7, "{a} vs {b}");
        }
        let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g1.get(&x).unwrap().to_vec1::<f32>().unwrap(),
            g2.get(&x).unwrap().to_vec1::<f32>().unwrap(),
        );
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            // The derivative y + 1 against candle's exp(x): 1e-6 relative plus 1e-30 absolute.
            assert!((a - b).abs() <= 1e-6 * b.abs() + 1e-30, "x = {}: {a} vs {b}", v[i]);
        }
        // A strided input (every other element of a longer vector).
        let long = Tensor::new(v.as_slice(), &Device::Cpu)
            .unwrap()
            .reshape((v.len() / 5, 5))
            .unwrap();
        let t = long.t().unwrap();
        assert_eq!(
            elu(&t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            elu(&t.contiguous().unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
    }

    #[test]
    fn polynomial_exp_is_within_two_ulp_of_the_library_exp() {
        // Every 997th f32 in [-87, 0] plus the ends: |exp_f32 - exp| <= 2 ulp of exp.
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (a, b) = (exp_f32(x), x.exp());
            let ulp = f32::from_bits(b.to_bits() + 1) - b;
            assert!((a - b).abs() <= 2.0 * ulp, "x = {x}: {a} vs {b}");
            x = f32::from_bits(x.to_bits() - 997).min(-0.0);
            if x == -0.0 {
                break;
            }
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(-1000.0) >= 0.0);
    }
}
