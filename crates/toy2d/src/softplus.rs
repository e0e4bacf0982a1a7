//! The activation of the toy networks, `softplus(a) = ln(1 + e^a)`, and its derivative
//! `softplus'(a) = sigmoid(a) = 1 / (1 + e^-a)`.
//!
//! Both are computed from `e = exp(-|a|)`, which lies in `(0, 1]` and so neither overflows nor
//! loses all its digits:
//!
//! `softplus(a) = max(a, 0) + ln(1 + e)`, `sigmoid(a) = [a >= 0 ? 1 : e] / (1 + e)`.
//!
//! On the CPU in `f32` the forward and the backward pass are one op each ([`Softplus`]), and
//! `exp` and `ln` are the workbench's polynomials (`workbench::fastmath`) instead of calls into
//! the C library: a loop of plain arithmetic that the compiler turns into SIMD (16 lanes with
//! AVX-512), where `libm`'s `expf` and `logf` take one element per call. In `ncsn2d`, which samples 6,000
//! particles for 1,000 steps through two layers of 256 softplus units, the library calls were 40%
//! of the run time. Elsewhere (other devices and dtypes) [`softplus`] is candle's ops composed.
use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Tensor};
use std::mem::MaybeUninit;
use workbench::fastmath::{exp_nonpositive, ln_1_to_2};
use workbench::storage::f32_slice;

/// `softplus(a)`, elementwise (fused on contiguous `f32` CPU tensors, see the module docs).
pub fn softplus(a: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() && a.dtype() == DType::F32 {
        a.contiguous()?.apply_op1(Softplus)
    } else {
        softplus_composite(a)
    }
}

/// [`softplus`] from candle's elementary ops (any device and dtype).
pub fn softplus_composite(a: &Tensor) -> Result<Tensor> {
    a.relu()? + (a.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// `softplus(a) = max(a, 0) + ln(1 + e)`, `e = exp(-|a|)`: the one formula of every softplus
/// loop here (inlined into each, so that the loop vectorises).
#[inline(always)]
pub(crate) fn softplus_of(a: f32) -> f32 {
    let e = exp_nonpositive(-a.abs());
    a.max(0.0) + ln_1_to_2(1.0 + e)
}

/// `sigmoid(a) = [a >= 0 ? 1 : e] / (1 + e)`, `e = exp(-|a|)`: the one formula of every sigmoid
/// loop here. `e` is computed again rather than kept from the forward pass: on activations
/// larger than the cache, reading a stored copy costs more than the few vector operations of
/// `exp`.
#[inline(always)]
fn sigmoid_of(a: f32) -> f32 {
    let e = exp_nonpositive(-a.abs());
    let numerator = if a >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// Forward pass over a slice: `out = softplus(a)`.
#[inline(always)]
fn forward_slice(a: &[f32], out: &mut [MaybeUninit<f32>]) {
    for (&a, out) in a.iter().zip(out.iter_mut()) {
        out.write(softplus_of(a));
    }
}

/// `out = sigmoid(a)` over a slice.
#[inline(always)]
fn sigmoid_slice(a: &[f32], out: &mut [MaybeUninit<f32>]) {
    for (&a, out) in a.iter().zip(out.iter_mut()) {
        out.write(sigmoid_of(a));
    }
}

/// Backward pass over a slice: `da = g sigmoid(a)`.
#[inline(always)]
fn backward_slice(a: &[f32], g: &[f32], da: &mut [MaybeUninit<f32>]) {
    for ((&a, &g), da) in a.iter().zip(g).zip(da.iter_mut()) {
        da.write(g * sigmoid_of(a));
    }
}

/// The backward pass of the tangent `dh = sigmoid(a) da` with respect to `a`:
/// `out = (g da) s (1 - s)`, `s = sigmoid(a)`, rounded as candle's ops round the composite.
#[inline(always)]
fn tangent_grad_slice(a: &[f32], da: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) {
    for (((&a, &da), &g), out) in a.iter().zip(da).zip(g).zip(out.iter_mut()) {
        let s = sigmoid_of(a);
        out.write((g * da) * (s * (1.0 - s))); // d/da [sigmoid(a) da] = s (1 - s) da
    }
}

/// The same loops compiled for AVX-512 and AVX2 with FMA (the results are the same bits: the
/// same operations in the same order, only more lanes at once).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::mem::MaybeUninit;

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn forward_slice(a: &[f32], out: &mut [MaybeUninit<f32>]) {
        super::forward_slice(a, out)
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn sigmoid_slice(a: &[f32], out: &mut [MaybeUninit<f32>]) {
        super::sigmoid_slice(a, out)
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn backward_slice(a: &[f32], g: &[f32], da: &mut [MaybeUninit<f32>]) {
        super::backward_slice(a, g, da)
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn tangent_grad_slice(a: &[f32], da: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) {
        super::tangent_grad_slice(a, da, g, out)
    }
}

/// See [`avx512`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::mem::MaybeUninit;

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn forward_slice(a: &[f32], out: &mut [MaybeUninit<f32>]) {
        super::forward_slice(a, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn sigmoid_slice(a: &[f32], out: &mut [MaybeUninit<f32>]) {
        super::sigmoid_slice(a, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn backward_slice(a: &[f32], g: &[f32], da: &mut [MaybeUninit<f32>]) {
        super::backward_slice(a, g, da)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn tangent_grad_slice(a: &[f32], da: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) {
        super::tangent_grad_slice(a, da, g, out)
    }
}

/// `rows[n, j] = softplus(rows[n, j] + bias[j])` in place, for rows of `bias.len()` values: the
/// bias of a layer and its activation in one pass (the sampler's blocks, [`crate::folded`]); the
/// same bits as [`crate::linear::add_bias`] followed by [`softplus`].
pub fn bias_softplus_in_place(rows: &mut [f32], bias: &[f32]) {
    assert!(
        !bias.is_empty() && rows.len().is_multiple_of(bias.len()),
        "bias_softplus_in_place: {} values in rows of {}",
        rows.len(),
        bias.len()
    );
    for row in rows.chunks_exact_mut(bias.len()) {
        workbench::fastmath::simd(|| {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = softplus_of(*v + b);
            }
        })
    }
}

/// `softplus(a)` over a slice, into a new vector (what [`softplus`] computes on a tensor).
pub(crate) fn softplus_vec(a: &[f32]) -> Vec<f32> {
    map(a, Pass::Softplus)
}

/// `g sigmoid(a)` over slices, into a new vector: the backward pass of [`softplus`] at `a` for the
/// gradient `g` (of `a`'s length).
pub(crate) fn softplus_grad_vec(a: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(
        a.len(),
        g.len(),
        "softplus_grad_vec: {} activations, {} gradients",
        a.len(),
        g.len()
    );
    map(a, Pass::SoftplusGrad(g))
}

/// `sigmoid(a)` over a slice, into a new vector: the value every softplus backward pass here
/// multiplies by (`g * s` of a stored `s` is the same bits as the fused loops' `g * sigmoid(a)`).
pub(crate) fn sigmoid_vec(a: &[f32]) -> Vec<f32> {
    map(a, Pass::Sigmoid)
}

/// What [`map`] computes elementwise.
#[derive(Debug, Clone, Copy)]
enum Pass<'a> {
    /// `softplus(a)`.
    Softplus,
    /// `sigmoid(a)`.
    Sigmoid,
    /// The backward pass of softplus, `g sigmoid(a)`, for the gradient `g`; also the tangent
    /// `sigmoid(a) da` of a softplus layer, for the input tangent `da`.
    SoftplusGrad(&'a [f32]),
    /// The backward pass of that tangent with respect to `a`, `(g da) s (1 - s)`, for the input
    /// tangent `da` and the gradient `g`.
    TangentGrad(&'a [f32], &'a [f32]),
}

/// `pass` over `a`, elementwise into a new vector, with the widest SIMD the CPU has. The output is
/// written once, never zeroed first.
fn map(a: &[f32], pass: Pass<'_>) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len());
    let dst = &mut out.spare_capacity_mut()[..a.len()];
    let run = |dst: &mut [MaybeUninit<f32>]| {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY (all eight calls): the CPU has the instructions (checked on the line above).
            let fma = std::is_x86_feature_detected!("fma");
            if fma && std::is_x86_feature_detected!("avx512f") {
                return match pass {
                    Pass::Softplus => unsafe { avx512::forward_slice(a, dst) },
                    Pass::Sigmoid => unsafe { avx512::sigmoid_slice(a, dst) },
                    Pass::SoftplusGrad(g) => unsafe { avx512::backward_slice(a, g, dst) },
                    Pass::TangentGrad(da, g) => unsafe { avx512::tangent_grad_slice(a, da, g, dst) },
                };
            }
            if fma && std::is_x86_feature_detected!("avx2") {
                return match pass {
                    Pass::Softplus => unsafe { avx2::forward_slice(a, dst) },
                    Pass::Sigmoid => unsafe { avx2::sigmoid_slice(a, dst) },
                    Pass::SoftplusGrad(g) => unsafe { avx2::backward_slice(a, g, dst) },
                    Pass::TangentGrad(da, g) => unsafe { avx2::tangent_grad_slice(a, da, g, dst) },
                };
            }
        }
        match pass {
            Pass::Softplus => forward_slice(a, dst),
            Pass::Sigmoid => sigmoid_slice(a, dst),
            Pass::SoftplusGrad(g) => backward_slice(a, g, dst),
            Pass::TangentGrad(da, g) => tangent_grad_slice(a, da, g, dst),
        }
    };
    run(dst);
    // SAFETY: each loop above writes every one of the `a.len()` elements (the slices zip to the
    // shortest, and the callers pass `g` and `da` of `a`'s length).
    unsafe { out.set_len(a.len()) };
    out
}

/// `sigmoid(a) = 1 / (1 + e^-a)`, elementwise: on contiguous `f32` CPU tensors one op ([`Sigmoid`],
/// the same `exp` as softplus), candle-nn's elsewhere. The tangent of a softplus layer is
/// `sigmoid(a) da`.
pub fn sigmoid(a: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() && a.dtype() == DType::F32 {
        a.contiguous()?.apply_op1(Sigmoid)
    } else {
        candle_nn::ops::sigmoid(a)
    }
}

/// The op of [`sigmoid`]; backward `g s (1 - s)` from its output `s`.
#[derive(Debug, Clone, Copy)]
pub struct Sigmoid;

impl candle_core::CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "sigmoid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice("softplus", s, l)?;
        Ok((CpuStorage::F32(map(a, Pass::Sigmoid)), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // d sigmoid / da = s (1 - s)
        Ok(Some((grad_res * (res * res.affine(-1.0, 1.0)?)?)?))
    }
}

/// The tangent of a softplus layer, `dh = softplus'(a) da = sigmoid(a) da` (forward-mode, for
/// the Jacobian-vector products of sliced and implicit score matching): on contiguous `f32` CPU
/// tensors one op, forward and backward (the same bits as the composite), candle's ops elsewhere.
pub fn softplus_tangent(a: &Tensor, da: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() && a.dtype() == DType::F32 && da.dtype() == DType::F32 {
        a.contiguous()?.apply_op2(&da.contiguous()?, SoftplusTangent)
    } else {
        sigmoid(a)? * da
    }
}

/// The op of [`softplus_tangent`]: forward `sigmoid(a) da` (the kernel of softplus's backward
/// pass), backward `g sigmoid(a)` for `da` and `(g da) s (1 - s)` for `a`.
#[derive(Debug, Clone, Copy)]
struct SoftplusTangent;

/// The backward pass of [`SoftplusTangent`] with respect to `a`: `(a, da, g) -> (g da) s (1 - s)`.
#[derive(Debug, Clone, Copy)]
struct TangentGrad;

impl candle_core::CustomOp2 for SoftplusTangent {
    fn name(&self) -> &'static str {
        "softplus-tangent"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, da) = (
            f32_slice("softplus_tangent", s1, l1)?,
            f32_slice("softplus_tangent", s2, l2)?,
        );
        if a.len() != da.len() {
            bail!("softplus_tangent: {} tangents for {} inputs", da.len(), a.len());
        }
        Ok((CpuStorage::F32(map(a, Pass::SoftplusGrad(da))), l1.shape().clone()))
    }

    fn bwd(&self, a: &Tensor, da: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let grad_a = a.apply_op3_no_bwd(da, &g, &TangentGrad)?;
        let grad_da = a.apply_op2_no_bwd(&g, &SoftplusGrad)?; // g sigmoid(a)
        Ok((Some(grad_a), Some(grad_da)))
    }
}

impl candle_core::CustomOp3 for TangentGrad {
    fn name(&self) -> &'static str {
        "softplus-tangent-grad"
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
        let op = "softplus_tangent";
        let (a, da, g) = (f32_slice(op, s1, l1)?, f32_slice(op, s2, l2)?, f32_slice(op, s3, l3)?);
        if a.len() != da.len() || a.len() != g.len() {
            bail!(
                "softplus_tangent backward: {} inputs, {} tangents, {} gradients",
                a.len(),
                da.len(),
                g.len()
            );
        }
        Ok((CpuStorage::F32(map(a, Pass::TangentGrad(da, g))), l1.shape().clone()))
    }
}

/// [`softplus`] as one op on contiguous `f32` CPU tensors: one pass forward, one pass backward
/// (`g sigmoid(a)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Softplus;

/// The backward pass of [`Softplus`]: `(a, g) -> dL/da`.
#[derive(Debug, Clone, Copy)]
struct SoftplusGrad;

impl candle_core::CustomOp1 for Softplus {
    fn name(&self) -> &'static str {
        "softplus"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice("softplus", s, l)?;
        Ok((CpuStorage::F32(map(a, Pass::Softplus)), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad_res.contiguous()?, &SoftplusGrad)?,
        ))
    }
}

impl candle_core::CustomOp2 for SoftplusGrad {
    fn name(&self) -> &'static str {
        "softplus-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, g) = (f32_slice("softplus", s1, l1)?, f32_slice("softplus", s2, l2)?);
        if a.len() != g.len() {
            bail!("softplus backward: {} gradients for {} inputs", g.len(), a.len());
        }
        Ok((CpuStorage::F32(map(a, Pass::SoftplusGrad(g))), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The values of the tests: zero, both signs, tiny and huge values (where `exp` under- and
    /// overflows), the cut-off at -87 and a dense ramp over [-100, 100].
    fn inputs() -> Vec<f32> {
        let mut v = vec![
            0.0f32, -0.0, 1e-30, -1e-30, 20.0, -20.0, 86.9, -86.9, 87.1, -87.1, 90.0, -90.0,
        ];
        v.extend([1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY]);
        v.extend((0..200_001).map(|i| (i as f32 - 100_000.0) * 1e-3));
        v
    }

    /// `softplus(a)` and `sigmoid(a)` in f64, the reference.
    fn exact(a: f32) -> (f64, f64) {
        let a = a as f64;
        let e = (-a.abs()).exp();
        (
            a.max(0.0) + e.ln_1p(),
            if a >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) },
        )
    }

    #[test]
    fn fused_softplus_and_its_gradient_match_the_exact_values() {
        let values = inputs();
        let n = values.len();
        let a = Var::from_vec(values.clone(), n, &Device::Cpu).unwrap();
        // A loss with a different weight per element, so that each gradient element differs.
        let w: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.01 - 7.0).collect();
        let wt = Tensor::from_vec(w.clone(), n, &Device::Cpu).unwrap();
        let run = |f: fn(&Tensor) -> Result<Tensor>| {
            let y = f(a.as_tensor()).unwrap();
            let loss = (&y * &wt).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap().get(&a).unwrap().to_vec1::<f32>().unwrap();
            (y.to_vec1::<f32>().unwrap(), g)
        };
        let (y, g) = run(softplus);
        let (yc, gc) = run(softplus_composite);
        let eps = f32::EPSILON as f64;
        for i in 0..n {
            let (sp, sig) = exact(values[i]);
            // Forward: 4 ulp relative (the two kernels and the sum), plus 2^-24 absolute: the
            // rounding of 1 + e to f32 before the logarithm (candle's composite rounds the same).
            let tol = 4.0 * eps * sp + 2f64.powi(-24);
            for (name, got) in [("fused", y[i]), ("composite", yc[i])] {
                assert!(
                    got as f64 == sp || (got as f64 - sp).abs() <= tol,
                    "{name} softplus({}) = {got}, want {sp}",
                    values[i]
                );
            }
            // Backward: g sigmoid(a), 4 ulp relative (exp, the division and the product), and
            // absolute |g| e^-87 for the `e` cut off below -87.
            let want = w[i] as f64 * sig;
            let tol = 4.0 * eps * want.abs() + (w[i] as f64).abs() * (-87f64).exp();
            assert!(
                (g[i] as f64 - want).abs() <= tol,
                "d softplus({}) = {}, want {want}",
                values[i],
                g[i]
            );
            assert!((gc[i] as f64 - want).abs() <= tol.max(1e-6 * want.abs()));
        }
        // Exactly: ln 2 and slope 1/2 at 0; the identity far right; 0 far left.
        assert_eq!((y[0], g[0]), (2f32.ln(), 0.5 * w[0]));
        assert_eq!((y[12], y[13], y[14], y[15]), (1e30, 0.0, f32::INFINITY, 0.0));
    }

    #[test]
    fn fused_sigmoid_and_its_gradient_match_the_exact_values() {
        let values = inputs();
        let n = values.len();
        let a = Var::from_vec(values.clone(), n, &Device::Cpu).unwrap();
        let s = sigmoid(a.as_tensor()).unwrap();
        let g = s
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(&a)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let s = s.to_vec1::<f32>().unwrap();
        let eps = f32::EPSILON as f64;
        for i in 0..n {
            let (_, want) = exact(values[i]);
            // 3 ulp (exp, 1 + e, the division), and e^-87 absolute for the cut-off.
            assert!(
                (s[i] as f64 - want).abs() <= 3.0 * eps * want + (-87f64).exp(),
                "sigmoid({})",
                values[i]
            );
            // s (1 - s): the error of s (3 ulp of s <= 1) goes through with a factor |1 - 2s| <= 1,
            // absolute, since 1 - s is exact and loses the relative accuracy near s = 1; plus
            // the two roundings of the product.
            let dwant = want * (1.0 - want);
            let tol = 2.0 * eps * dwant + 3.0 * eps * want + (-87f64).exp();
            assert!((g[i] as f64 - dwant).abs() <= tol, "sigmoid'({})", values[i]);
        }
    }

    #[test]
    fn the_fused_tangent_gives_the_bits_of_the_composite_forward_and_backward() {
        // sigmoid(a) da through one op, against candle's product of the fused sigmoid and da:
        // the same roundings, so the same bits for the output and both gradients, over the
        // whole range of `inputs()` (both tails, the cut-off, infinities).
        let values = inputs();
        let n = values.len();
        let tangent: Vec<f32> = (0..n).map(|i| ((i % 997) as f32 - 498.0) * 0.013).collect();
        let weight: Vec<f32> = (0..n).map(|i| ((i % 89) as f32 - 44.0) * 0.07).collect();
        let a = Var::from_vec(values, n, &Device::Cpu).unwrap();
        let da = Var::from_vec(tangent, n, &Device::Cpu).unwrap();
        let w = Tensor::from_vec(weight, n, &Device::Cpu).unwrap();
        let run = |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| {
            let y = f(a.as_tensor(), da.as_tensor()).unwrap();
            let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let bits = |t: &Tensor| {
                t.to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            [bits(&y), bits(grads.get(&a).unwrap()), bits(grads.get(&da).unwrap())]
        };
        let fused = run(&|a, da| softplus_tangent(a, da));
        let composite = run(&|a, da| sigmoid(a)? * da);
        for (name, (f, c)) in ["dh", "d a", "d da"].iter().zip(fused.iter().zip(&composite)) {
            let differ = f.iter().zip(c).filter(|(p, q)| p != q).count();
            assert_eq!(differ, 0, "{name}: {differ} of {n} values differ");
        }
    }

    #[test]
    fn nan_goes_through() {
        // A non-finite loss must stay visible (the trainers count or stop on it).
        let a = Tensor::new(&[f32::NAN, 1.0], &Device::Cpu).unwrap();
        let y = softplus(&a).unwrap().to_vec1::<f32>().unwrap();
        assert!(y[0].is_nan() && y[1].is_finite());
    }

    #[test]
    fn the_simd_loops_give_the_scalar_bits() {
        let a = inputs();
        let g: Vec<f32> = a.iter().map(|v| (v * 3.7).sin()).collect();
        let (y1, d1) = (map(&a, Pass::Softplus), map(&a, Pass::SoftplusGrad(&g)));
        // One element at a time: no loop for the compiler to vectorise.
        let (mut y2, mut d2) = (
            vec![MaybeUninit::new(0.0f32); a.len()],
            vec![MaybeUninit::new(0.0f32); a.len()],
        );
        for i in 0..a.len() {
            forward_slice(&a[i..=i], &mut y2[i..=i]);
            backward_slice(&a[i..=i], &g[i..=i], &mut d2[i..=i]);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // SAFETY: every element was written by the loop.
        let init = |v: &[MaybeUninit<f32>]| v.iter().map(|x| unsafe { x.assume_init() }).collect::<Vec<_>>();
        assert_eq!(bits(&y1), bits(&init(&y2)));
        assert_eq!(bits(&d1), bits(&init(&d2)));
    }
}
