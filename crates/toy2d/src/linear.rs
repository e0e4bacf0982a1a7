//! The toys' linear layer, `y = x W^T + b`, initialised as PyTorch's `nn.Linear` (as in the
//! reference toy): weight and bias from `U(-1/sqrt(in), 1/sqrt(in))`.
//!
//! It is candle-nn's `Linear` with one change on the CPU: the bias is added by one op of its own
//! ([`add_bias`]) whose backward pass sums the gradient over the batch row by row. candle's
//! `broadcast_add` reduces that sum column by column through its general strided reduction,
//! which was a sixth of a training step of the 2D networks (`perf`, `manifold`). And the
//! product `x W^T` is [`matmul_wt`], whose weight gradient comes out in `W`'s own layout.
use candle_core::{bail, CpuStorage, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use workbench::storage::f32_slice;

/// `y = x W^T + b` with `W` of shape `(out, in)` and `b` of shape `(out,)`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// New layer `in_dim -> out_dim` with parameters `weight` and `bias` under `vb`.
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let bound = 1.0 / (in_dim as f64).sqrt();
        let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
        Ok(Self {
            weight: vb.get_with_hints((out_dim, in_dim), "weight", init)?,
            bias: vb.get_with_hints(out_dim, "bias", init)?,
        })
    }

    /// `W`, shape `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `b`, shape `(out,)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl Module for Linear {
    /// `x` of shape `(N, in)` to `(N, out)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        add_bias(&matmul_wt(x, &self.weight)?, &self.bias)
    }
}

/// `x W^T` for `x` of shape `(N, in)` and `W` of shape `(out, in)`, as `x.matmul(&w.t())`, but
/// differentiated without the transpose: the gradient of `W` is computed as `g^T x`, in `W`'s
/// layout. candle differentiates the transpose by handing back `(x^T g)^T`, a transposed view,
/// and adds such a view to the gradient it collects for `W` element by element through its
/// strides: 34 us for 128 x 128 and 265 us for 256 x 256 on the 2-core Xeon, against 3.5 and
/// 15 us for a contiguous add, a quarter of an `ncsn2d` training step. On the CPU the value is
/// candle's product itself (the same bits) and only the backward pass is this op's; elsewhere it
/// is `x.matmul(&w.t())`.
pub fn matmul_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.matmul(&w.t()?);
    }
    let y = x.detach().matmul(&w.detach().t()?)?;
    x.apply_op3(w, &y, MatmulWtGrad)
}

/// The backward pass of [`matmul_wt`] for a value computed by candle (its third argument).
#[derive(Debug, Clone, Copy)]
struct MatmulWtGrad;

impl candle_core::CustomOp3 for MatmulWtGrad {
    fn name(&self) -> &'static str {
        "matmul-wt"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((workbench::storage::copy_fresh("matmul_wt", y, ly)?, ly.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // dx = g W (what candle computes for x.matmul(&w.t())); dW = g^T x, the same sums over
        // the batch as candle's (x^T g)^T, in W's layout
        Ok((Some(g.matmul(w)?), Some(g.t()?.matmul(x)?), None))
    }
}

/// `a + b` for `a` of shape `(N, H)` and `b` of shape `(H,)`, `b` added to every row: one op on
/// contiguous `f32` CPU tensors, candle's `broadcast_add` elsewhere.
pub fn add_bias(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, h) = a.dims2()?;
    if b.dims() != [h] {
        bail!("add_bias: a bias of shape {:?} for rows of {h}", b.dims());
    }
    if a.device().is_cpu() && a.dtype() == DType::F32 && b.dtype() == DType::F32 {
        a.contiguous()?.apply_op2(&b.contiguous()?, AddBias)
    } else {
        a.broadcast_add(b)
    }
}

/// The op of [`add_bias`]: forward `y[n, j] = a[n, j] + b[j]`; backward `da = g`,
/// `db[j] = sum_n g[n, j]`.
#[derive(Debug, Clone, Copy)]
struct AddBias;

/// `sum_n g[n, j]` of a `(N, H)` tensor, row after row (each row adds to all `H` sums at once).
#[derive(Debug, Clone, Copy)]
struct ColumnSums;

impl candle_core::CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_slice("add_bias", s1, l1)?, f32_slice("add_bias", s2, l2)?);
        if b.is_empty() || a.len() % b.len() != 0 {
            bail!("add_bias: {} values in rows of {}", a.len(), b.len());
        }
        let mut out = Vec::with_capacity(a.len());
        for row in a.chunks_exact(b.len()) {
            out.extend(row.iter().zip(b).map(|(x, y)| x + y));
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, _b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = g.contiguous()?.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(g.clone()), Some(db)))
    }
}

impl candle_core::CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "column-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice("add_bias", s, l)?;
        let (_, h) = l.shape().dims2()?;
        let mut sums = vec![0.0f32; h];
        for row in g.chunks_exact(h.max(1)) {
            for (s, v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        Ok((CpuStorage::F32(sums), Shape::from(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matmul_wt_is_candles_product_with_a_contiguous_weight_gradient() {
        // x W^T and both gradients against candle's x.matmul(&w.t()): the same products and
        // sums over the batch, so the same bits; and W's gradient in W's layout.
        let dev = Device::Cpu;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        let x = Var::from_tensor(&langevin::randn_tensor(&mut rng, &[41, 23], DType::F32, &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&langevin::randn_tensor(&mut rng, &[17, 23], DType::F32, &dev).unwrap()).unwrap();
        let weights = langevin::randn_tensor(&mut rng, &[41, 17], DType::F32, &dev).unwrap();
        let run = |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| {
            let y = f(x.as_tensor(), w.as_tensor()).unwrap();
            let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let (dx, dw) = (grads.get(&x).unwrap(), grads.get(&w).unwrap());
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (v(&y), v(dx), v(dw), dw.is_contiguous())
        };
        let (y1, dx1, dw1, contiguous) = run(&|x, w| matmul_wt(x, w));
        let (y2, dx2, dw2, _) = run(&|x, w| x.matmul(&w.t()?));
        assert_eq!((y1, dx1, dw1), (y2, dx2, dw2));
        assert!(contiguous);
        // A weight used twice (a layer and its tangent) collects both gradients.
        let both = |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| {
            let y = (f(x.as_tensor(), w.as_tensor()).unwrap()
                + f(&x.as_tensor().sqr().unwrap(), w.as_tensor()).unwrap())
            .unwrap();
            let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            grads.get(&w).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(both(&|x, w| matmul_wt(x, w)), both(&|x, w| x.matmul(&w.t()?)));
    }

    #[test]
    fn the_fused_bias_equals_broadcast_add_forward_and_backward() {
        let dev = Device::Cpu;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let a = Var::from_tensor(&langevin::randn_tensor(&mut rng, &[37, 19], DType::F32, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&langevin::randn_tensor(&mut rng, &[19], DType::F32, &dev).unwrap()).unwrap();
        // A loss that weighs every output differently.
        let w = langevin::randn_tensor(&mut rng, &[37, 19], DType::F32, &dev).unwrap();
        let run = |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| {
            let y = f(a.as_tensor(), b.as_tensor()).unwrap();
            let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (v(&y), v(grads.get(&a).unwrap()), v(grads.get(&b).unwrap()))
        };
        let (y1, da1, db1) = run(&|a, b| add_bias(a, b));
        let (y2, da2, db2) = run(&|a, b| a.broadcast_add(b));
        // The same additions: the outputs and da are the same bits.
        assert_eq!((y1, da1), (y2, da2));
        // db: 37 terms summed in f32 in some order: within 37 ulp of the largest partial sum.
        let scale = w
            .abs()
            .unwrap()
            .sum(0)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        for (p, q) in db1.iter().zip(&db2) {
            assert!((p - q).abs() <= 37.0 * f32::EPSILON * scale, "{p} vs {q}");
        }
        assert!(add_bias(a.as_tensor(), &Tensor::zeros(18, DType::F32, &dev).unwrap()).is_err());
    }
}
