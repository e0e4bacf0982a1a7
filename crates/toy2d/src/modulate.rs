//! The noise level's scale and shift of a hidden layer, `y[n, j] = gamma[l_n, j] a[n, j] +
//! beta[l_n, j]`, where `l_n` is the level of example `n` and `gamma`, `beta` are tables of one
//! row per level (the conditioning of [`crate::model::NoiseConditionalMlp`]).
//!
//! Composed from candle's ops this is two gathers of whole `(N, H)` tables, a product and a sum,
//! and in the backward pass two more products and two scatters into zeroed tables: eight passes
//! over the activations, each allocating its output, a quarter of an `ncsn2d` training step.
//! On contiguous `f32` CPU tensors it is one op: one pass forward, and backward
//!
//! `da[n, j] = g[n, j] gamma[l_n, j]`, `dgamma[l, j] = sum_{n: l_n = l} g[n, j] a[n, j]`,
//! `dbeta[l, j] = sum_{n: l_n = l} g[n, j]`,
//!
//! one pass each. The products and the sums (in the order of `n`) are those of the composed
//! ops, so the results are the same bits.
use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};
use std::sync::Arc;
use workbench::storage::f32_slice;

/// `gamma[levels] * a + beta[levels]` for `a` of shape `(N, H)`, `levels` of shape `(N,)` (`u32`)
/// and tables `gamma`, `beta` of shape `(L, H)`; an error names a level out of range.
pub fn modulate(a: &Tensor, levels: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let (n, h) = a.dims2()?;
    let (l, hg) = gamma.dims2()?;
    if hg != h || beta.dims() != gamma.dims() || levels.dims() != [n] {
        bail!(
            "modulate: activations {:?}, levels {:?}, tables {:?} and {:?}; expected (N, H), (N,), (L, H), (L, H)",
            a.dims(),
            levels.dims(),
            gamma.dims(),
            beta.dims()
        );
    }
    let cpu_f32 = [a, gamma, beta]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32);
    if !cpu_f32 {
        return (a * gamma.index_select(levels, 0)?)? + beta.index_select(levels, 0)?;
    }
    let lv = levels.to_vec1::<u32>()?;
    if let Some(bad) = lv.iter().find(|&&v| v as usize >= l) {
        bail!("modulate: level {bad} out of range, the tables have {l} rows");
    }
    let op = Modulate {
        levels: lv.into(),
        table_rows: l,
    };
    a.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// The op of [`modulate`] (forward and backward), with the levels read once on the host.
#[derive(Debug, Clone)]
struct Modulate {
    levels: Arc<[u32]>,
    table_rows: usize,
}

/// A backward pass of [`Modulate`], each one pass over the `(N, H)` gradient `g`.
#[derive(Debug, Clone)]
enum Grad {
    /// `g[n, j] gamma[l_n, j]` (the second input is `gamma`).
    Input(Modulate),
    /// `sum_{n: l_n = l} g[n, j] a[n, j]` (the second input is `a`).
    Scale(Modulate),
    /// `sum_{n: l_n = l} g[n, j]` (the second input is not read).
    Shift(Modulate),
}

impl candle_core::CustomOp3 for Modulate {
    fn name(&self) -> &'static str {
        "modulate"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, gamma, beta) = (
            f32_slice("modulate", s1, l1)?,
            f32_slice("modulate", s2, l2)?,
            f32_slice("modulate", s3, l3)?,
        );
        let h = l1.shape().dims2()?.1;
        let mut y = Vec::with_capacity(a.len());
        for (row, &l) in a.chunks_exact(h).zip(self.levels.iter()) {
            let l = l as usize;
            let (g, b) = (&gamma[l * h..(l + 1) * h], &beta[l * h..(l + 1) * h]);
            y.extend(row.iter().zip(g).zip(b).map(|((a, g), b)| a * g + b)); // gamma a + beta
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let da = g.apply_op2_no_bwd(gamma, &Grad::Input(self.clone()))?;
        let dgamma = g.apply_op2_no_bwd(a, &Grad::Scale(self.clone()))?;
        let dbeta = g.apply_op2_no_bwd(a, &Grad::Shift(self.clone()))?;
        Ok((Some(da), Some(dgamma), Some(dbeta)))
    }
}

impl candle_core::CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        "modulate-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, other) = (f32_slice("modulate", s1, l1)?, f32_slice("modulate", s2, l2)?);
        let h = l1.shape().dims2()?.1;
        let rows = g.chunks_exact(h).zip(match self {
            Grad::Input(m) | Grad::Scale(m) | Grad::Shift(m) => m.levels.iter(),
        });
        match self {
            Grad::Input(_) => {
                let mut da = Vec::with_capacity(g.len());
                for (g, &l) in rows {
                    let gamma = &other[l as usize * h..(l as usize + 1) * h];
                    da.extend(g.iter().zip(gamma).map(|(g, s)| g * s)); // g gamma[l_n]
                }
                Ok((CpuStorage::F32(da), l1.shape().clone()))
            }
            Grad::Scale(m) | Grad::Shift(m) => {
                let scale = matches!(self, Grad::Scale(_));
                let mut sums = vec![0f32; m.table_rows * h];
                for (n, (g, &l)) in rows.enumerate() {
                    let sum = &mut sums[l as usize * h..(l as usize + 1) * h];
                    if scale {
                        let a = &other[n * h..(n + 1) * h];
                        for ((s, g), a) in sum.iter_mut().zip(g).zip(a) {
                            *s += g * a; // dgamma[l_n] += g a
                        }
                    } else {
                        for (s, g) in sum.iter_mut().zip(g) {
                            *s += g; // dbeta[l_n] += g
                        }
                    }
                }
                Ok((CpuStorage::F32(sums), Shape::from((m.table_rows, h))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn the_fused_op_gives_the_bits_of_candles_ops_forward_and_backward() {
        let dev = Device::Cpu;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
        let randn = |rng: &mut rand_chacha::ChaCha8Rng, dims: &[usize]| {
            Var::from_tensor(&langevin::randn_tensor(rng, dims, DType::F32, &dev).unwrap()).unwrap()
        };
        // 37 examples, 19 units (no SIMD width), 5 levels of which level 3 is never drawn.
        let (a, gamma, beta) = (
            randn(&mut rng, &[37, 19]),
            randn(&mut rng, &[5, 19]),
            randn(&mut rng, &[5, 19]),
        );
        let levels: Vec<u32> = (0..37u32).map(|i| [0, 4, 1, 2, 4, 0, 2][i as usize % 7]).collect();
        let levels = Tensor::from_vec(levels, 37, &dev).unwrap();
        let w = langevin::randn_tensor(&mut rng, &[37, 19], DType::F32, &dev).unwrap();
        let run = |f: &dyn Fn() -> Result<Tensor>| {
            let y = f().unwrap();
            let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let get = |x: &Var| v(grads.get(x).unwrap());
            [v(&y), get(&a), get(&gamma), get(&beta)]
        };
        let fused = run(&|| modulate(&a, &levels, &gamma, &beta));
        let composed = run(&|| (a.as_tensor() * gamma.index_select(&levels, 0)?)? + beta.index_select(&levels, 0)?);
        for (name, (f, c)) in ["y", "da", "dgamma", "dbeta"].iter().zip(fused.iter().zip(&composed)) {
            assert_eq!(f, c, "{name}");
        }
        // The undrawn level gets zero gradients; the others do not.
        assert!(fused[2][3 * 19..4 * 19].iter().all(|&v| v == 0.0));
        assert!(fused[3][4 * 19..5 * 19].iter().all(|&v| v != 0.0));
        // A level past the tables is an error, not a panic.
        let bad = Tensor::from_vec(vec![5u32; 37], 37, &dev).unwrap();
        assert!(modulate(&a, &bad, &gamma, &beta).is_err());
        assert!(modulate(&a, &levels.narrow(0, 0, 36).unwrap(), &gamma, &beta).is_err());
    }
}
