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
    workbench::storage::slice("elu", data, l)
}

impl CustomOp1 for Elu {
    fn name(&self) -> &'static str {
        "elu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: num_like::Float>(x: &[T]) -> Vec<T> {
            // written once, not zeroed first: a third less memory traffic
            let mut y = Vec::with_capacity(x.len());
            y.spare_capacity_mut()[..x.len()]
                .par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(y, x)| T::elu_chunk(x, y));
            // SAFETY: the chunks cover all x.len() values and elu_chunk writes every one.
            unsafe { y.set_len(x.len()) };
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
            let mut dx = Vec::with_capacity(x.len());
            dx.spare_capacity_mut()[..x.len()]
                .par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .zip(y.par_chunks(CHUNK))
                .zip(dy.par_chunks(CHUNK))
                .for_each(|(((dx, x), y), dy)| {
                    for (((dx, &x), &y), &g) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                        // d ELU/dx = 1 for x > 0, exp(x) = y + 1 otherwise
                        dx.write(if x > T::default() { g } else { g * (y + T::one()) });
                    }
                });
            // SAFETY: the chunks cover all x.len() values (x, y and dy have one shape) and the
            // loop writes every one.
            unsafe { dx.set_len(x.len()) };
            dx
        }
        if lx.shape() != ly.shape() || lx.shape() != self.0.shape() {
            candle_core::bail!(
                "elu-grad: input {:?}, output {:?} and gradient {:?} differ in shape",
                lx.shape(),
                ly.shape(),
                self.0.shape()
            )
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

        /// `y = ELU(x)` over a chunk (every value of `y` written).
        #[inline(always)]
        fn elu_chunk(x: &[Self], y: &mut [std::mem::MaybeUninit<Self>]) {
            for (y, &x) in y.iter_mut().zip(x) {
                y.write(if x > Self::default() { x } else { x.exp_minus_one() });
            }
        }
    }
    impl Float for f32 {
        #[inline(always)]
        fn exp_minus_one(self) -> Self {
            // a polynomial the loop vectorises (no branch, no library call)
            workbench::fastmath::exp_nonpositive(self) - 1.0
        }
        fn one() -> Self {
            1.0
        }

        /// The plain loop, compiled for the widest SIMD the CPU has (the same bits on any:
        /// `fastmath`'s fused multiply-adds round once whatever the width).
        fn elu_chunk(x: &[f32], y: &mut [std::mem::MaybeUninit<f32>]) {
            workbench::fastmath::simd(|| {
                for (y, &x) in y.iter_mut().zip(x) {
                    y.write(if x > 0.0 { x } else { x.exp_minus_one() });
                }
            })
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
        // exp from a polynomial (2 ulp, `workbench::fastmath`) against the library's: 1e-6
        // relative, or 1e-7 absolute where exp(x) - 1 cancels near 0.
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
}
