//! The network's convolution op (`ncsn::model::same_conv`) against candle's own `conv2d` and its
//! backward pass, and against finite differences.
use candle_core::{DType, Device, Tensor, Var};
use ncsn::model::same_conv::{same_conv2d, same_conv2d_backward, same_conv2d_via_candle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Input (a variable), weight (a variable) and an output gradient for one of [`CASES`].
fn case_tensors(rng: &mut ChaCha8Rng, case: Case, dtype: DType) -> (Var, Var, Tensor) {
    let (b, cin, cout, h, w, k, _) = case;
    let x = Var::from_tensor(&uniform(rng, &[b, cin, h, w], dtype)).unwrap();
    let wt = Var::from_tensor(&uniform(rng, &[cout, cin, k, k], dtype)).unwrap();
    (x, wt, uniform(rng, &[b, cout, h, w], dtype))
}

/// `max |a - b| / max |b|`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .max(1e-30);
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        / scale
}

/// Batch, C_in, C_out, H, W, kernel, dilation: kernels 1 and 3, dilations 1, 2 and 4, batch 1
/// and several, channel counts that are not multiples of the SIMD width (8 f32 lanes), non-square
/// images, and an image smaller than the dilated kernel (every off-centre tap in the padding).
/// The first three are larger: up to 360 rows of `K = C_in k k`, 12 to 25 output channels and
/// 25 to 256 pixels per channel (99 and 25 are no multiple of any SIMD width). Dilation 2 or 4
/// on images of 3 to 16 rows (all but the dilation-1 cases) cuts the output into bands of rows
/// that skip the padding (`row_blocks`), the last two cases with several images per thread.
/// Kernels with few outputs against their inputs (2 to 15, at least 4 inputs each) multiply
/// first and shift after (`same_conv::few_outputs`): the forward pass and the weight gradient of
/// `17 -> 4`, `24 -> 3` and `15 -> 2`, the input gradient (whose kernel is `C_out -> C_in`) of
/// `2 -> 13` and `3 -> 20`. On a CPU with AVX-512, kernels of 16 or 32 outputs and at least 8
/// inputs take the passes without im2col (`same_conv/direct.rs`; the input gradient when the
/// inputs are 16 or 32): `16 -> 16` on 8x8, and the last five: dilation 4 on 16x16 (tiles that
/// skip kernel rows and columns), a single image (blocks of outputs split across threads), a 5x5
/// kernel on 5 rows, 40 inputs (blocks of 16 and a rest of 8; `K` = 360), and 13-pixel rows
/// with dilation 2 and 20 inputs (tiles of 1 to 14 pixels, transposes with a rest).
type Case = (usize, usize, usize, usize, usize, usize, usize);
const CASES: [Case; 22] = [
    (2, 40, 25, 9, 11, 3, 2),
    (1, 30, 12, 16, 16, 3, 4),
    (3, 300, 14, 5, 5, 1, 1),
    (1, 3, 5, 7, 6, 3, 1),
    (4, 5, 9, 8, 8, 3, 1),
    (3, 17, 4, 6, 9, 3, 2),
    (2, 6, 7, 9, 9, 3, 4),
    (1, 9, 3, 3, 5, 3, 4),
    (5, 7, 11, 5, 4, 1, 1),
    (1, 1, 1, 4, 4, 1, 1),
    (2, 16, 16, 8, 8, 3, 1),
    (3, 2, 13, 10, 7, 5, 2),
    (5, 5, 7, 12, 12, 3, 4),
    (3, 4, 6, 16, 13, 3, 4),
    (2, 24, 3, 7, 10, 3, 4),
    (2, 3, 20, 6, 5, 3, 1),
    (1, 15, 2, 9, 9, 3, 1),
    (2, 16, 16, 16, 16, 3, 4),
    (1, 24, 32, 6, 30, 3, 2),
    (3, 8, 16, 5, 16, 5, 1),
    (2, 40, 32, 3, 16, 3, 1),
    (3, 20, 16, 9, 13, 3, 2),
];

/// The op's output and both gradients against candle's `conv2d` and candle's backward pass of
/// it, in f32. Each output is a sum of C_in k^2 <= 360 products of values in [-1, 1] (each
/// weight-gradient value of B H W <= 512); a sum of n such terms rounds by about sqrt(n) f32
/// epsilons of its size, so with both sides rounding in a different order the relative error
/// stays below ~1e-6 at these sizes: 1e-5 leaves room and still fails for any misplaced tap (an
/// error of order one).
#[test]
fn f32_output_and_gradients_equal_candle_conv2d() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for case in CASES {
        let (b, cin, cout, h, w, k, d) = case;
        let (x, wt, dy) = case_tensors(&mut rng, case, DType::F32);
        let ours = same_conv2d(&x, &wt, None, d).unwrap();
        let theirs = x.conv2d(&wt, d * (k - 1) / 2, 1, d, 1).unwrap();
        let case = format!("b{b} {cin}->{cout} {h}x{w} k{k} d{d}");
        assert!(rel_err(&ours, &theirs) < 1e-5, "{case}: output");
        let g1 = (ours * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(rel_err(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5, "{case}: dx");
        assert!(rel_err(g1.get(&wt).unwrap(), g2.get(&wt).unwrap()) < 1e-5, "{case}: dw");
        // The backward function called directly gives the same gradients.
        let (dx, dw) = same_conv2d_backward(&x, &wt, &dy, d).unwrap();
        assert!(rel_err(&dx, g1.get(&x).unwrap()) < 1e-6, "{case}: direct dx");
        assert!(rel_err(&dw, g1.get(&wt).unwrap()) < 1e-6, "{case}: direct dw");
    }
}

/// The path that GPUs take (value from candle's conv2d, gradients from the op's backward with a
/// flipped-kernel conv2d and an im2col matmul), run on the CPU: same values and gradients.
#[test]
fn the_device_path_equals_the_cpu_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for case in CASES {
        let (b, cin, cout, h, w, k, d) = case;
        let (x, wt, dy) = case_tensors(&mut rng, case, DType::F32);
        let cpu = same_conv2d(&x, &wt, None, d).unwrap();
        let dev = same_conv2d_via_candle(&x, &wt, d).unwrap();
        let case = format!("b{b} {cin}->{cout} {h}x{w} k{k} d{d}");
        assert!(rel_err(&dev, &cpu) < 1e-5, "{case}: output");
        let g1 = (cpu * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (dev * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(rel_err(g2.get(&x).unwrap(), g1.get(&x).unwrap()) < 1e-5, "{case}: dx");
        assert!(rel_err(g2.get(&wt).unwrap(), g1.get(&wt).unwrap()) < 1e-5, "{case}: dw");
    }
}

/// Central differences of `L = sum(r * conv(x, w))` in f64 along random directions of `x` and of
/// `w`. L is bilinear, so the central difference is exact up to rounding: 1e-9 relative.
#[test]
fn f64_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (b, cin, cout, h, w, k, d) in CASES {
        let x = uniform(&mut rng, &[b, cin, h, w], DType::F64);
        let wt = uniform(&mut rng, &[cout, cin, k, k], DType::F64);
        let r = uniform(&mut rng, &[b, cout, h, w], DType::F64);
        let vx = uniform(&mut rng, &[b, cin, h, w], DType::F64);
        let vw = uniform(&mut rng, &[cout, cin, k, k], DType::F64);
        let loss = |x: &Tensor, wt: &Tensor| -> f64 {
            (same_conv2d(x, wt, None, d).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let (dx, dw) = same_conv2d_backward(&x, &wt, &r, d).unwrap();
        let dot = |a: &Tensor, b: &Tensor| (a * b).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let eps = 1e-3;
        let step = |t: &Tensor, v: &Tensor, s: f64| (t + (v * s).unwrap()).unwrap();
        let fd_x = (loss(&step(&x, &vx, eps), &wt) - loss(&step(&x, &vx, -eps), &wt)) / (2.0 * eps);
        let fd_w = (loss(&x, &step(&wt, &vw, eps)) - loss(&x, &step(&wt, &vw, -eps))) / (2.0 * eps);
        let case = format!("b{b} {cin}->{cout} {h}x{w} k{k} d{d}");
        let (gx, gw) = (dot(&dx, &vx), dot(&dw, &vw));
        assert!(
            (fd_x - gx).abs() <= 1e-9 * gx.abs().max(1.0),
            "{case}: x: {fd_x} vs {gx}"
        );
        assert!(
            (fd_w - gw).abs() <= 1e-9 * gw.abs().max(1.0),
            "{case}: w: {fd_w} vs {gw}"
        );
    }
}

/// Strided views (a transposed image, a narrowed weight, a broadcast gradient) give the same
/// results as their contiguous copies.
#[test]
fn non_contiguous_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (b, cin, cout, h, w, k, d) = (2, 5, 6, 7, 9, 3, 2);
    // x stored as [B, C, W, H] and viewed transposed; the weight is a slice of a wider tensor.
    let x_t = uniform(&mut rng, &[b, cin, w, h], DType::F32).transpose(2, 3).unwrap();
    let wide = uniform(&mut rng, &[cout + 3, cin, k, k], DType::F32);
    let wt = wide.narrow(0, 1, cout).unwrap();
    assert!(!x_t.is_contiguous());
    let expected = same_conv2d(&x_t.contiguous().unwrap(), &wt.contiguous().unwrap(), None, d).unwrap();
    let got = same_conv2d(&x_t, &wt, None, d).unwrap();
    assert_eq!(
        got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        expected.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // A gradient that is a broadcast view (stride 0), as `sum` produces.
    let dy = Tensor::new(0.5f32, &Device::Cpu)
        .unwrap()
        .broadcast_as((b, cout, h, w))
        .unwrap();
    let (dx, dw) = same_conv2d_backward(&x_t, &wt, &dy, d).unwrap();
    let (dx2, dw2) = same_conv2d_backward(
        &x_t.contiguous().unwrap(),
        &wt.contiguous().unwrap(),
        &dy.contiguous().unwrap(),
        d,
    )
    .unwrap();
    assert!(rel_err(&dx, &dx2) == 0.0 && rel_err(&dw, &dw2) == 0.0);
}

/// With a bias: the value and all three gradients against candle's `conv2d` plus a broadcast
/// bias (tolerances as above).
#[test]
fn bias_is_added_and_differentiated() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for case in CASES {
        let (b, cin, cout, h, w, k, d) = case;
        let (x, wt, dy) = case_tensors(&mut rng, case, DType::F32);
        let bias = Var::from_tensor(&uniform(&mut rng, &[cout], DType::F32)).unwrap();
        let ours = same_conv2d(&x, &wt, Some(&bias), d).unwrap();
        let theirs = x
            .conv2d(&wt, d * (k - 1) / 2, 1, d, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap())
            .unwrap();
        let case = format!("b{b} {cin}->{cout} {h}x{w} k{k} d{d}");
        assert!(rel_err(&ours, &theirs) < 1e-5, "{case}: output");
        let g1 = (ours * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        for (var, name) in [(&x, "dx"), (&wt, "dw"), (&bias, "db")] {
            assert!(
                rel_err(g1.get(var).unwrap(), g2.get(var).unwrap()) < 1e-5,
                "{case}: {name}"
            );
        }
    }
}

#[test]
fn shapes_and_types_that_do_not_fit_are_errors() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
    let even = Tensor::zeros((2, 3, 2, 2), DType::F32, &dev).unwrap();
    let err = same_conv2d(&x, &even, None, 1).unwrap_err().to_string();
    assert!(err.contains("k odd"), "{err}");
    let wrong_in = Tensor::zeros((2, 4, 3, 3), DType::F32, &dev).unwrap();
    assert!(same_conv2d(&x, &wrong_in, None, 1).is_err());
    let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
    assert!(same_conv2d(&x, &w, None, 0).is_err(), "dilation 0");
    let bad_bias = Tensor::zeros(3, DType::F32, &dev).unwrap();
    let err = same_conv2d(&x, &w, Some(&bad_bias), 1).unwrap_err().to_string();
    assert!(err.contains("bias"), "{err}");
    let w64 = w.to_dtype(DType::F64).unwrap();
    let err = same_conv2d(&x, &w64, None, 1).unwrap_err().to_string();
    assert!(err.contains("F64") || err.contains("f64"), "{err}");
    let half = x.to_dtype(DType::F16).unwrap();
    let err = same_conv2d(&half, &w.to_dtype(DType::F16).unwrap(), None, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("f32 and f64"), "{err}");
}

/// On a CPU with AVX-512 or AVX2 and FMA, a kernel of 16 inputs and 32 outputs takes the direct passes (all three:
/// the input gradient is a convolution of 32 inputs and 16 outputs; `same_conv/direct.rs`)
/// and the same kernel with the switch off takes im2col: the two agree within the tolerance of
/// the comparisons with candle above (1e-5), and differ in the last bits somewhere in each pass
/// (their sums run in another order), which they would not if one path were taken both times.
/// Four images, so that each thread sums at least two: over a single image the two weight
/// gradients add the same products in the same order (pixel by pixel, the padding's zeros
/// adding nothing) and agree bit for bit.
#[test]
fn narrow_kernels_take_the_direct_passes() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        || (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
    {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let case = (4, 16, 32, 12, 14, 3, 2);
        let d = case.6;
        let (x, wt, dy) = case_tensors(&mut rng, case, DType::F32);
        let passes = |direct: bool| {
            ncsn::model::same_conv::set_direct(direct);
            let y = same_conv2d(&x, &wt, None, d).unwrap();
            let (dx, dw) = same_conv2d_backward(&x, &wt, &dy, d).unwrap();
            ncsn::model::same_conv::set_direct(true);
            [y, dx, dw]
        };
        let (direct, im2col) = (passes(true), passes(false));
        for (name, (a, b)) in ["output", "dx", "dw"].iter().zip(direct.iter().zip(&im2col)) {
            assert!(rel_err(a, b) < 1e-5, "{name}");
            // Counted in u32: a u8 sum of the mask wraps past 255 differing elements.
            let differ = a
                .ne(b)
                .unwrap()
                .to_dtype(DType::U32)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<u32>()
                .unwrap();
            assert!(differ > 0, "{name}: the two paths gave the same bits");
        }
    }
}
