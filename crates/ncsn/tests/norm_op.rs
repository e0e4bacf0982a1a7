//! The CPU op of CondInstanceNorm++ (`model/norm_op.rs`) against the layer's definition in tensor
//! ops (`model::norm::cond_instance_norm`), which candle differentiates.
//!
//! The definition evaluated in f64 is the truth. The op accumulates every sum in f64 and rounds
//! each result once, so in f32 it must be within a few ulp of the truth: 1e-6 of the largest
//! magnitude of the compared tensor (an ulp is 6e-8 relative; values near zero are sums of
//! terms as large as that magnitude). In f64 the op and the definition differ only by their
//! summation orders: 1e-12 of the largest magnitude. A wrong term of the backward pass is off by
//! O(1).
use candle_core::{DType, Device, Tensor, Var, D};
use ncsn::model::norm::cond_instance_norm;
use ncsn::model::norm_op::cond_instance_norm_cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn randn(rng: &mut ChaCha8Rng, shape: &[usize], mean: f64, std: f64) -> Tensor {
    let t = langevin::randn_tensor(rng, shape, DType::F64, &Device::Cpu).unwrap();
    ((t * std).unwrap() + mean).unwrap()
}

/// max |a - b| / max(|b|, 1e-30) over all elements (b the truth).
fn relative_gap(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let gap = (a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max(D::Minus1)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let scale = b.abs().unwrap().max(D::Minus1).unwrap().to_scalar::<f64>().unwrap();
    gap / scale.max(1e-30)
}

/// Value and gradients (x, e) of `sum(w * f(x, e))`.
fn value_and_grads(
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    e: &Tensor,
    w: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (xv, ev) = (Var::from_tensor(x).unwrap(), Var::from_tensor(e).unwrap());
    let z = f(xv.as_tensor(), ev.as_tensor()).unwrap();
    let grads = (&z * w).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(xv.as_tensor()).unwrap().clone();
    let de = grads.get(ev.as_tensor()).unwrap().clone();
    (z, dx, de)
}

/// Batch, channels (odd ones: not a multiple of any SIMD width), height, width.
const SHAPES: [[usize; 4]; 4] = [[1, 5, 7, 9], [3, 2, 4, 4], [4, 16, 8, 8], [2, 33, 3, 5]];

#[test]
fn the_op_equals_the_definition_and_its_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for shape in SHAPES {
        let [b, c, _, _] = shape;
        // Channel means spread apart (so the cross-channel term matters) and a non-zero mean.
        let offsets = randn(&mut rng, &[b, c, 1, 1], 0.0, 3.0);
        let x = randn(&mut rng, &shape, 0.5, 2.0).broadcast_add(&offsets).unwrap();
        let e = randn(&mut rng, &[b, 3 * c], 1.0, 0.5);
        let w = randn(&mut rng, &shape, 0.0, 1.0);
        let truth = value_and_grads(cond_instance_norm, &x, &e, &w);
        let f64_op = value_and_grads(cond_instance_norm_cpu, &x, &e, &w);
        let to32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let f32_op = value_and_grads(cond_instance_norm_cpu, &to32(&x), &to32(&e), &to32(&w));
        for (name, truth, op64, op32) in [
            ("z", &truth.0, &f64_op.0, &f32_op.0),
            ("dx", &truth.1, &f64_op.1, &f32_op.1),
            ("de", &truth.2, &f64_op.2, &f32_op.2),
        ] {
            let (g64, g32) = (relative_gap(op64, truth), relative_gap(op32, truth));
            assert!(g64 < 1e-12, "{shape:?} {name}: f64 op off by {g64:e} of its scale");
            assert!(g32 < 1e-6, "{shape:?} {name}: f32 op off by {g32:e} of its scale");
        }
    }
}

#[test]
fn a_strided_input_is_read_by_its_layout() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = randn(&mut rng, &[2, 3, 6, 5], 0.0, 1.0).transpose(2, 3).unwrap(); // [2, 3, 5, 6], strided
    assert!(!x.is_contiguous());
    let e = randn(&mut rng, &[2, 9], 1.0, 0.3);
    let gap = relative_gap(
        &cond_instance_norm_cpu(&x, &e).unwrap(),
        &cond_instance_norm(&x.contiguous().unwrap(), &e).unwrap(),
    );
    assert!(gap < 1e-12, "off by {gap:e}");
}

#[test]
fn wrong_shapes_and_types_are_errors() {
    let x = Tensor::zeros((2, 4, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let e = Tensor::zeros((2, 11), DType::F32, &Device::Cpu).unwrap();
    let err = cond_instance_norm_cpu(&x, &e).unwrap_err().to_string();
    assert!(err.contains("expected [2, 12]"), "{err}");
    let x16 = x.to_dtype(DType::F16).unwrap();
    let e16 = Tensor::zeros((2, 12), DType::F16, &Device::Cpu).unwrap();
    let err = cond_instance_norm_cpu(&x16, &e16).unwrap_err().to_string();
    assert!(err.contains("f32 and f64"), "{err}");
}
