//! The network's convolution as a candle custom op: stride 1, "same" padding
//! `p = d (k - 1) / 2` for an odd kernel `k` and a dilation `d`, with the forward pass and both
//! gradients computed as matrix products.
//!
//! Every convolution of the RefineNet is of this kind (downsampling is a mean pool), and for it
//! all three passes are one matrix product per image. Write `col(X_b)` for the im2col matrix of
//! image `b`: row `(i, u, v)`, column `(h, w)` holds `X_b[i, h + d u - p, w + d v - p]` (zero
//! outside the image), i.e. column `(h, w)` lists every input value the kernel sees at output
//! pixel `(h, w)`. Then, with `K = C_in k k`:
//!
//! ```text
//! Y_b  = W[C_out, K] col(X_b)[K, H W]                           forward
//! dW   = sum_b dY_b[C_out, H W] col(X_b)^T[H W, K]              weight gradient
//! dX   = conv(dY, W'),  W'[i, o, u, v] = W[o, i, k-1-u, k-1-v]  input gradient
//! ```
//!
//! The last line: `dX[i, a, c] = sum_{o, u, v} W[o, i, u, v] dY[o, a - d u + p, c - d v + p]`;
//! substituting `u = k - 1 - u'` gives `a - d u + p = a + d u' - p` (because `2 p = d (k - 1)`),
//! which is a "same" convolution of `dY` with the flipped, transposed kernel `W'`, on the same
//! padding and dilation. So no transposed convolution is needed anywhere.
//!
//! On the CPU the im2col buffer holds one image at a time per thread (`K x H W` values, a few
//! MB), is kept by the thread for the next call, and is never in the autograd graph; the
//! products run through the `gemm` crate (what candle's own CPU matmul uses). Images are split
//! across threads when the batch has at least as many images as there are threads, otherwise
//! the product itself is parallel. On other devices the forward value comes from candle's
//! `conv2d` (cuDNN with the `cudnn` feature) and the op only supplies the backward pass above:
//! the input gradient through the same `conv2d`, the weight gradient as a batched matmul of
//! im2col columns.
//!
//! Where the dilated kernel looks far into the padding (dilation 4 on 16x16: a kernel row 4
//! pixels out sees only zeros for a quarter of the output rows), the CPU products skip it: the
//! output is cut into bands of rows (`row_blocks`), each multiplied by the kernel rows that see
//! the image there, and the weight gradient is taken one kernel row at a time over the output
//! rows it sees (`weight_blocks`). For those convolutions the kernel and the im2col rows are
//! ordered kernel row first, `(u, i, v)`, so that a range of kernel rows is a block of
//! contiguous columns; the others keep the weight's own order `(i, u, v)`.
//!
//! Narrow layers (16 or 32 outputs, the MNIST recipe's network) run all three CPU passes without
//! im2col on CPUs with AVX-512 or AVX2 and FMA (`same_conv/direct.rs`): the `gemm` crate's
//! AVX-512 kernel does not fit so few output rows, and on either the copies of im2col are a large
//! share of the time at these widths.
//!
//! A kernel with few outputs against its inputs (the head, 128 -> 3, and so the stem's input
//! gradient) would need an im2col of every input channel for a product of a few rows. The CPU
//! passes take it the other way round (`few_outputs`): the forward pass multiplies the image by
//! the kernel first and adds the `C_out k^2` shifted rows of that product, and the weight gradient
//! shifts the output's gradient instead of the input.
use std::borrow::Cow;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

mod direct;
pub use direct::set_direct;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// `x [B, C_in, H, W]` convolved with `weight [C_out, C_in, k, k]` (k odd), stride 1, padding
/// `dilation (k - 1) / 2`, plus `bias [C_out]` if given: `y [B, C_out, H, W]`, differentiable in
/// every argument.
pub fn same_conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, dilation: usize) -> Result<Tensor> {
    let op = SameConv::checked(x, weight, bias, dilation)?;
    match (x.device().is_cpu(), bias) {
        (true, None) => x.apply_op2(weight, op),
        // The bias is the gemm's starting value: y = b + W col(x).
        (true, Some(b)) => x.apply_op3(weight, b, op),
        (false, None) => same_conv2d_via_candle(x, weight, dilation),
        (false, Some(b)) => same_conv2d_via_candle(x, weight, dilation)?.broadcast_add(&b.reshape((1, (), 1, 1))?),
    }
}

/// The path of every non-CPU device (without bias): the value from candle's `conv2d`, the
/// gradients from this module's backward pass. Public so that tests run it on the CPU too.
pub fn same_conv2d_via_candle(x: &Tensor, weight: &Tensor, dilation: usize) -> Result<Tensor> {
    let op = SameConv::checked(x, weight, None, dilation)?;
    let y = x
        .detach()
        .conv2d(&weight.detach(), op.padding(weight)?, 1, dilation, 1)?;
    x.apply_op3(weight, &y, WithConvGrad(op))
}

/// The gradient of a bias added to every pixel: `db[o] = sum_{b, h, w} dY[b, o, h, w]`.
pub fn conv_bias_grad(dy: &Tensor) -> Result<Tensor> {
    let dy = dy.detach();
    if dy.device().is_cpu() {
        dy.apply_op1_no_bwd(&BiasGrad)
    } else {
        dy.sum((0, 2, 3))
    }
}

/// The gradient of `sum(dy * same_conv2d(x, w))` with respect to `w`:
/// `dW[o, i, u, v] = sum_{b, h, w} dY[b, o, h, w] X[b, i, h + d u - p, w + d v - p]`.
pub fn conv_weight_grad(x: &Tensor, dy: &Tensor, kernel: usize, dilation: usize) -> Result<Tensor> {
    let (x, dy) = (x.detach(), dy.detach());
    if x.device().is_cpu() {
        return x.apply_op2_no_bwd(&dy, &WeightGrad { kernel, dilation });
    }
    // im2col with tensor ops: stack the k*k shifted views of the zero-padded input.
    let (b, cin, h, w) = x.dims4()?;
    let cout = dy.dim(1)?;
    let p = dilation * (kernel - 1) / 2;
    let padded = x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
    let mut views = Vec::with_capacity(kernel * kernel);
    for u in 0..kernel {
        for v in 0..kernel {
            views.push(padded.narrow(2, dilation * u, h)?.narrow(3, dilation * v, w)?);
        }
    }
    // col: [B, K, HW]; then dW = sum_b dY_b col_b^T
    let col = Tensor::stack(&views, 2)?.reshape((b, cin * kernel * kernel, h * w))?;
    dy.reshape((b, cout, h * w))?
        .matmul(&col.transpose(1, 2)?)?
        .sum(0)?
        .reshape((cout, cin, kernel, kernel))
}

/// The forward op: "same" convolution with the given dilation (kernel size from the weight).
#[derive(Debug, Clone, Copy)]
struct SameConv {
    dilation: usize,
}

impl SameConv {
    /// Checks that `x`, `weight` and `bias` fit a "same" convolution.
    fn checked(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, dilation: usize) -> Result<Self> {
        let (_, cin, _, _) = x.dims4()?;
        let (_, win, kh, kw) = weight.dims4()?;
        if win != cin || kh != kw || kh.is_multiple_of(2) || dilation == 0 {
            candle_core::bail!(
                "same_conv2d: expected a weight [C_out, {cin}, k, k] with k odd and dilation >= 1, got {:?} with dilation {dilation}",
                weight.dims()
            )
        }
        if x.dtype() != weight.dtype() {
            candle_core::bail!(
                "same_conv2d: input is {:?} but weight is {:?}",
                x.dtype(),
                weight.dtype()
            )
        }
        if let Some(b) = bias {
            if b.dims() != [weight.dim(0)?] || b.dtype() != weight.dtype() {
                candle_core::bail!(
                    "same_conv2d: expected a {:?} bias [{}], got {:?} {:?}",
                    weight.dtype(),
                    weight.dim(0)?,
                    b.dtype(),
                    b.dims()
                )
            }
        }
        Ok(Self { dilation })
    }

    fn padding(&self, weight: &Tensor) -> Result<usize> {
        Ok(self.dilation * (weight.dim(3)? - 1) / 2)
    }
}

/// Both gradients `(dX, dW)` of `y = same_conv2d(x, w, dilation)` given `dy`, the gradient of
/// the result: what autograd calls in the backward pass.
pub fn same_conv2d_backward(x: &Tensor, w: &Tensor, dy: &Tensor, dilation: usize) -> Result<(Tensor, Tensor)> {
    let k = w.dim(3)?;
    let flipped = flipped_kernel(w)?;
    let dy = dy.detach();
    let dx = if dy.device().is_cpu() {
        dy.apply_op2_no_bwd(&flipped, &SameConv { dilation })?
    } else {
        dy.conv2d(&flipped, dilation * (k - 1) / 2, 1, dilation, 1)?
    };
    Ok((dx, conv_weight_grad(x, &dy, k, dilation)?))
}

/// The kernel of the input gradient, `W'[i, o, u, v] = W[o, i, k-1-u, k-1-v]` (in and out
/// swapped, both taps reversed), as a new contiguous tensor.
pub fn flipped_kernel(w: &Tensor) -> Result<Tensor> {
    let w = w.detach();
    if w.device().is_cpu() {
        return w.apply_op1_no_bwd(&FlipKernel);
    }
    let k = w.dim(3)?;
    let reversed: Vec<u32> = (0..k as u32).rev().collect();
    let reversed = Tensor::new(reversed.as_slice(), w.device())?;
    w.transpose(0, 1)?
        .contiguous()?
        .index_select(&reversed, 2)?
        .index_select(&reversed, 3)
}

/// [`flipped_kernel`] on the CPU: one pass that reads each weight once (candle's
/// `index_select`, twice over a transposed copy, took 11 ms for a 256 x 256 x 3 x 3 kernel).
struct FlipKernel;

impl candle_core::CustomOp1 for FlipKernel {
    fn name(&self) -> &'static str {
        "same-conv2d-flip-kernel"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Copy>(w: &[T], cout: usize, cin: usize, k: usize) -> Vec<T> {
            let taps = k * k;
            let mut out = Vec::with_capacity(w.len());
            for i in 0..cin {
                for o in 0..cout {
                    let kernel = &w[(o * cin + i) * taps..][..taps];
                    // reversing both taps of a row-major k x k kernel reverses its k*k values
                    out.extend(kernel.iter().rev());
                }
            }
            out
        }
        let (cout, cin, k, _) = l.shape().dims4()?;
        let out = match s {
            CpuStorage::F32(w) => CpuStorage::F32(run(&gather(w, l), cout, cin, k)),
            CpuStorage::F64(w) => CpuStorage::F64(run(&gather(w, l), cout, cin, k)),
            _ => candle_core::bail!("same_conv2d on the CPU supports f32 and f64, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from((cin, cout, k, k))))
    }
}

impl SameConv {
    /// The CPU forward pass, with the bias (if any) as the products' starting value.
    fn forward_cpu(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, cin, h, width) = x.1.shape().dims4()?;
        let (cout, _, k, _) = w.1.shape().dims4()?;
        let g = Geometry {
            cin,
            h,
            w: width,
            k,
            d: self.dilation,
        };
        let shape = Shape::from((b, cout, h, width));
        let out = match (x.0, w.0, bias) {
            (CpuStorage::F32(xs), CpuStorage::F32(ws), None) => {
                CpuStorage::F32(conv_forward(&gather(xs, x.1), &gather(ws, w.1), None, b, cout, g))
            }
            (CpuStorage::F32(xs), CpuStorage::F32(ws), Some((CpuStorage::F32(bs), bl))) => CpuStorage::F32(
                conv_forward(&gather(xs, x.1), &gather(ws, w.1), Some(&gather(bs, bl)), b, cout, g),
            ),
            (CpuStorage::F64(xs), CpuStorage::F64(ws), None) => {
                CpuStorage::F64(conv_forward(&gather(xs, x.1), &gather(ws, w.1), None, b, cout, g))
            }
            (CpuStorage::F64(xs), CpuStorage::F64(ws), Some((CpuStorage::F64(bs), bl))) => CpuStorage::F64(
                conv_forward(&gather(xs, x.1), &gather(ws, w.1), Some(&gather(bs, bl)), b, cout, g),
            ),
            _ => candle_core::bail!("same_conv2d on the CPU supports f32 and f64, got {:?}", x.0.dtype()),
        };
        Ok((out, shape))
    }
}

impl CustomOp2 for SameConv {
    fn name(&self) -> &'static str {
        "same-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward_cpu((s1, l1), (s2, l2), None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = same_conv2d_backward(x, w, dy, self.dilation)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for SameConv {
    fn name(&self) -> &'static str {
        "same-conv2d-bias"
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
        self.forward_cpu((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = same_conv2d_backward(x, w, dy, self.dilation)?;
        Ok((Some(dx), Some(dw), Some(conv_bias_grad(dy)?)))
    }
}

/// The bias gradient on the CPU: `dy [B, C, H, W] -> [C]`, per-channel sums.
struct BiasGrad;

impl candle_core::CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "same-conv2d-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Float>(dy: &[T], b: usize, c: usize, hw: usize) -> Vec<T> {
            let mut db = vec![T::default(); c];
            for image in dy.chunks(c * hw).take(b) {
                for (o, plane) in image.chunks(hw).enumerate() {
                    let mut sum = T::default();
                    for &v in plane {
                        sum += v;
                    }
                    db[o] += sum;
                }
            }
            db
        }
        let (b, c, h, w) = l.shape().dims4()?;
        let out = match s {
            CpuStorage::F32(dy) => CpuStorage::F32(run(&gather(dy, l), b, c, h * w)),
            CpuStorage::F64(dy) => CpuStorage::F64(run(&gather(dy, l), b, c, h * w)),
            _ => candle_core::bail!("same_conv2d on the CPU supports f32 and f64, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from(c)))
    }
}

/// Gives a value computed elsewhere (the third argument, candle's `conv2d` of the first two)
/// the backward pass of [`SameConv`].
struct WithConvGrad(SameConv);

impl CustomOp3 for WithConvGrad {
    fn name(&self) -> &'static str {
        "same-conv2d-grad"
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
        Ok((
            workbench::storage::copy_fresh("same_conv2d", y, ly)?,
            ly.shape().clone(),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        y: &candle_core::CudaStorage,
        ly: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((
            workbench::storage::copy_fresh("same_conv2d", y, ly)?,
            ly.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _: &Tensor,
        _: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = same_conv2d_backward(x, w, dy, self.0.dilation)?;
        Ok((Some(dx), Some(dw), None))
    }
}

/// The weight-gradient op on the CPU: `(x, dy) -> dW`.
struct WeightGrad {
    kernel: usize,
    dilation: usize,
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "same-conv2d-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, cin, h, w) = l1.shape().dims4()?;
        let (_, cout, _, _) = l2.shape().dims4()?;
        let k = self.kernel;
        let g = Geometry {
            cin,
            h,
            w,
            k,
            d: self.dilation,
        };
        let shape = Shape::from((cout, cin, k, k));
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(dy)) => {
                CpuStorage::F32(conv_weight_grad_cpu(&gather(x, l1), &gather(dy, l2), b, cout, g))
            }
            (CpuStorage::F64(x), CpuStorage::F64(dy)) => {
                CpuStorage::F64(conv_weight_grad_cpu(&gather(x, l1), &gather(dy, l2), b, cout, g))
            }
            _ => candle_core::bail!("same_conv2d on the CPU supports f32 and f64, got {:?}", s1.dtype()),
        };
        Ok((out, shape))
    }
}

/// The values of a strided CPU tensor in row-major order (borrowed when already contiguous).
fn gather<'a, T: Copy>(data: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return Cow::Borrowed(&data[start..end]);
    }
    let (dims, strides) = (layout.dims(), layout.stride());
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; dims.len()];
    let mut offset = layout.start_offset();
    for _ in 0..n {
        out.push(data[offset]);
        // Next multi-index, last dimension fastest.
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            offset += strides[d];
            if index[d] < dims[d] {
                break;
            }
            offset -= strides[d] * dims[d];
            index[d] = 0;
        }
    }
    Cow::Owned(out)
}

/// The element types the CPU kernels run on.
trait Float: Copy + Send + Sync + Default + std::ops::AddAssign + 'static {
    const ONE: Self;
    /// This thread's im2col buffer: one per thread and type, kept between calls, so that it is
    /// allocated and zeroed only when a larger convolution needs it to grow (im2col overwrites
    /// every value it reads back).
    fn columns_buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>>;
    /// The forward pass without im2col ([`direct`]) where this type and the CPU have one for
    /// the convolution, else `None`.
    fn direct_forward(
        _x: &[Self],
        _wt: &[Self],
        _bias: Option<&[Self]>,
        _b: usize,
        _cout: usize,
        _g: Geometry,
    ) -> Option<Vec<Self>> {
        None
    }
    /// The weight gradient without im2col ([`direct`]) where this type and the CPU have one for
    /// the convolution, else `None`.
    fn direct_weight_grad(_x: &[Self], _dy: &[Self], _b: usize, _cout: usize, _g: Geometry) -> Option<Vec<Self>> {
        None
    }
}
thread_local! {
    static COLUMNS_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static COLUMNS_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}
impl Float for f32 {
    const ONE: Self = 1.0;
    fn columns_buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &COLUMNS_F32
    }
    fn direct_forward(
        x: &[Self],
        wt: &[Self],
        bias: Option<&[Self]>,
        b: usize,
        cout: usize,
        g: Geometry,
    ) -> Option<Vec<Self>> {
        direct::applies(cout, g).then(|| direct::forward(x, wt, bias, b, cout, g))
    }
    fn direct_weight_grad(x: &[Self], dy: &[Self], b: usize, cout: usize, g: Geometry) -> Option<Vec<Self>> {
        direct::applies(cout, g).then(|| direct::weight_grad(x, dy, b, cout, g))
    }
}
impl Float for f64 {
    const ONE: Self = 1.0;
    fn columns_buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &COLUMNS_F64
    }
}

/// Runs `f` with a scratch buffer for im2col: this thread's kept buffer, or a fresh one if it is
/// in use further up the stack (a rayon worker that steals another chunk while it waits).
fn with_columns<T: Float, R>(f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    T::columns_buffer().with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => f(&mut kept),
        Err(_) => f(&mut Vec::new()),
    })
}

/// Input channels, image size, kernel and dilation of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    cin: usize,
    h: usize,
    w: usize,
    k: usize,
    d: usize,
}

impl Geometry {
    /// Rows of the im2col matrix, `C_in k k`.
    fn rows(&self) -> usize {
        self.cin * self.k * self.k
    }
    /// Rows of the im2col matrix per kernel row `u`, `C_in k`.
    fn rows_per_tap_row(&self) -> usize {
        self.cin * self.k
    }
    /// Pixels per channel, `H W`.
    fn pixels(&self) -> usize {
        self.h * self.w
    }
    /// The output columns that kernel column `v` sees inside the image: `w + d v - p` in
    /// `[0, W)` (as [`Self::tap_rows`] for the rows).
    fn tap_columns(&self, v: usize) -> Range<usize> {
        Geometry { h: self.w, ..*self }.tap_rows(v)
    }
    /// The output rows that kernel row `u` sees inside the image: `h + d u - p` in `[0, H)`.
    /// Never empty for the centre row (`d u = p`).
    fn tap_rows(&self, u: usize) -> Range<usize> {
        let (h, shift) = (
            self.h as isize,
            (self.d * u) as isize - (self.d * (self.k - 1) / 2) as isize,
        );
        let top = (-shift).clamp(0, h) as usize;
        let bottom = (h - shift).clamp(0, h) as usize;
        top..bottom.max(top)
    }
}

/// How to use the threads for a batch of `b` images: split the images (each product
/// single-threaded) or run the images one by one with a parallel product.
fn plan(b: usize) -> (usize, Parallelism) {
    let threads = candle_core::utils::get_num_threads().max(1);
    if threads > 1 && b >= threads {
        (b.div_ceil(threads), Parallelism::None)
    } else if threads > 1 {
        (b, Parallelism::Rayon(threads))
    } else {
        (b, Parallelism::None)
    }
}

/// The kernel with its rows first: `W[o, i, u, v]` stored as `[C_out, k, C_in, k]`, so that the
/// weights of a range of kernel rows `u` are a block of contiguous columns. The im2col rows are
/// in the same order, `(u, i, v)`.
fn rows_first<T: Float>(w: &[T], cout: usize, g: Geometry) -> Cow<'_, [T]> {
    let Geometry { cin, k, .. } = g;
    if k == 1 {
        return Cow::Borrowed(w);
    }
    let mut out = Vec::with_capacity(w.len());
    for o in 0..cout {
        let kernel = &w[o * cin * k * k..][..cin * k * k];
        for u in 0..k {
            for i in 0..cin {
                out.extend_from_slice(&kernel[(i * k + u) * k..][..k]);
            }
        }
    }
    Cow::Owned(out)
}

/// Fills `col` with the im2col rows of kernel rows `taps` for output rows `rows` of one image
/// `x` (`[C_in, H, W]`): `col` is `[taps.len() C_in k, rows.len() W]`, its row `(u, i, v)`
/// (kernel row first, `rows_first`; else `(i, u, v)`, the weight's own order, for all `k` kernel
/// rows) and column `(h, w)` holding `x[i, h + d u - p, w + d v - p]`, zero outside the image.
///
/// Row `(u, i, v)` is channel `i` shifted by `s = dy W + dx` in row-major order
/// (`dy = d u - p` rows, `dx = d v - p` columns): one contiguous copy over the output rows whose
/// input row exists, then zeros where the shift wrapped around a row's end (the first `-dx` or
/// last `dx` columns of each row) and in the rows above or below the image.
fn im2col<T: Float>(x: &[T], g: Geometry, rows: Range<usize>, taps: Range<usize>, rows_first: bool, col: &mut [T]) {
    let Geometry { cin, h, w, k, d } = g;
    let p = (d * (k - 1) / 2) as isize;
    let (wi, hw) = (w as isize, h * w);
    let first = rows.start * w; // the flat index of the block's first pixel
    let n = rows.len() * w;
    for (t, u) in taps.enumerate() {
        // the block's output rows whose input row is inside the image, as offsets into a row
        let inside = g.tap_rows(u);
        let top = inside.start.clamp(rows.start, rows.end) * w - first;
        let bottom = inside.end.clamp(rows.start, rows.end) * w - first;
        let dy = (d * u) as isize - p; // input row = output row + dy
        for i in 0..cin {
            let channel = &x[i * hw..(i + 1) * hw];
            for v in 0..k {
                // row (u, i, v) of the block, or (i, u, v) of the whole matrix
                let r = if rows_first {
                    (t * cin + i) * k + v
                } else {
                    (i * k + u) * k + v
                };
                let row = &mut col[r * n..][..n];
                let dx = (d * v) as isize - p; // input column = output column + dx
                if dx.abs() >= wi || top >= bottom {
                    row.fill(T::default());
                    continue;
                }
                row[..top].fill(T::default());
                row[bottom..].fill(T::default());
                // out[j] = channel[first + j + s] for j in the valid rows, clipped to the
                // channel's ends (what the clipping leaves out are wrapped-around elements,
                // zeroed next).
                let s = first as isize + dy * wi + dx;
                let lo = (top as isize).max(-s) as usize;
                let hi = (bottom as isize).min(hw as isize - s) as usize;
                row[lo..hi].copy_from_slice(&channel[(lo as isize + s) as usize..(hi as isize + s) as usize]);
                let n = dx.unsigned_abs();
                for out in row[top..bottom].chunks_exact_mut(w) {
                    let wrapped = if dx > 0 { &mut out[w - n..] } else { &mut out[..n] };
                    for value in wrapped {
                        *value = T::default();
                    }
                }
            }
        }
    }
}

/// The im2col rows of kernel rows `taps` for output rows `rows` (see [`im2col`]), in `col`, which
/// only grows: im2col writes every value it returns, whatever was there before. For a 1x1
/// kernel that is the image's block itself (the caller reads it with row stride `H W`).
fn columns<'a, T: Float>(
    xb: &'a [T],
    g: Geometry,
    rows: Range<usize>,
    taps: Range<usize>,
    rows_first: bool,
    col: &'a mut Vec<T>,
) -> &'a [T] {
    if g.k == 1 {
        return &xb[rows.start * g.w..];
    }
    let n = taps.len() * g.rows_per_tap_row() * rows.len() * g.w;
    if col.len() < n {
        col.resize(n, T::default());
    }
    im2col(xb, g, rows, taps, rows_first, &mut col[..n]);
    &col[..n]
}

/// The forward pass's blocks of output rows, each with the kernel rows it multiplies.
///
/// A kernel row `u` sees the image only for the output rows [`Geometry::tap_rows`]; cut where
/// a kernel row enters or leaves the image, each band of output rows needs only the kernel rows
/// that see the image there, and the products of the others (with zeros) can be skipped. That
/// costs a product per band, and the `gemm` crate packs the kernel anew for each, so the bands
/// are used only when they skip at least an eighth of the products (a 3x3 kernel with dilation
/// 4 on 16x16: a sixth; with dilation 1 on 32x32 only 2%, and slower than one product).
fn row_blocks(g: Geometry) -> Vec<(Range<usize>, Range<usize>)> {
    let whole = vec![(0..g.h, 0..g.k)];
    if g.k == 1 || g.h == 0 {
        return whole;
    }
    let mut cuts: Vec<usize> = (0..g.k)
        .flat_map(|u| [g.tap_rows(u).start, g.tap_rows(u).end])
        .collect();
    cuts.extend([0, g.h]);
    cuts.sort_unstable();
    cuts.dedup();
    let bands: Vec<(Range<usize>, Range<usize>)> = cuts
        .windows(2)
        .filter(|c| c[0] < c[1])
        .map(|c| {
            let rows = c[0]..c[1];
            let inside = |u: &usize| g.tap_rows(*u).start <= rows.start && rows.end <= g.tap_rows(*u).end;
            // the kernel rows that see the image here are a range (the centre row always does)
            let first = (0..g.k).find(inside).unwrap_or(g.k / 2);
            let last = (0..g.k).rev().find(inside).unwrap_or(g.k / 2);
            (rows, first..last + 1)
        })
        .collect();
    let products: usize = bands.iter().map(|(rows, taps)| rows.len() * taps.len()).sum();
    if 8 * products <= 7 * g.h * g.k {
        bands
    } else {
        whole
    }
}

/// `y[b] = W col(x[b])` for every image: `x` `[B, C_in, H, W]`, `wt` `[C_out, C_in, k, k]`.
///
/// The output is not zeroed first: each image's block is written by the bias (if any) and then
/// the products, which with no bias write their destination without reading it.
fn conv_forward<T: Float>(x: &[T], wt: &[T], bias: Option<&[T]>, b: usize, cout: usize, g: Geometry) -> Vec<T> {
    let (kk, hw) = (g.rows(), g.pixels());
    let n = b * cout * hw;
    let (per_chunk, par) = plan(b);
    if per_chunk == 0 || n == 0 || kk == 0 {
        // nothing to multiply: the output is the bias (or zero) everywhere
        let mut y = vec![T::default(); n];
        if let Some(bias) = bias.filter(|_| hw > 0) {
            for (row, &bo) in y.chunks_mut(hw).zip(bias.iter().cycle()) {
                row.fill(bo);
            }
        }
        return y;
    }
    if few_outputs(cout, g) {
        return conv_forward_few_outputs(x, wt, bias, b, cout, g);
    }
    if let Some(y) = T::direct_forward(x, wt, bias, b, cout, g) {
        return y;
    }
    let blocks = row_blocks(g);
    // the kernel rows first only where bands need them (a copy of the kernel per call)
    let banded = is_banded(&blocks, g);
    let wt = if banded {
        rows_first(wt, cout, g)
    } else {
        Cow::Borrowed(wt)
    };
    let mut y: Vec<T> = Vec::with_capacity(n);
    let run = |(xs, ys): (&[T], &mut [MaybeUninit<T>])| {
        with_columns(|col| {
            for (xb, yb) in xs.chunks(g.cin * hw).zip(ys.chunks_mut(cout * hw)) {
                if let Some(bias) = bias {
                    // y[o, :] starts at b[o]; the products are added to it
                    for (row, &bo) in yb.chunks_mut(hw).zip(bias) {
                        for value in row {
                            value.write(bo);
                        }
                    }
                }
                // One product per block of output rows, over the kernel rows it needs.
                for (rows, taps) in &blocks {
                    let pixels = rows.len() * g.w;
                    let depth = taps.len() * g.rows_per_tap_row();
                    let rhs = columns(xb, g, rows.clone(), taps.clone(), banded, col);
                    let rhs_stride = if g.k == 1 { hw } else { pixels };
                    // SAFETY: the destination is yb's columns rows.start W .. + pixels (row
                    // stride hw; yb is [cout, hw]); the left factor is wt's columns of kernel
                    // rows `taps`, [cout, depth] with row stride kk; rhs is [depth, pixels] with
                    // row stride rhs_stride: all within their slices (the shapes were checked by
                    // the caller). The blocks cover every output pixel once and depth >= 1, so
                    // the products write every value of yb, reading it only where the bias wrote.
                    unsafe {
                        gemm(
                            cout,
                            pixels,
                            depth,
                            yb.as_mut_ptr().add(rows.start * g.w).cast::<T>(),
                            1,
                            hw as isize,
                            bias.is_some(),
                            wt.as_ptr().add(taps.start * g.rows_per_tap_row()),
                            1,
                            kk as isize,
                            rhs.as_ptr(),
                            1,
                            rhs_stride as isize,
                            T::ONE,
                            T::ONE,
                            false,
                            false,
                            false,
                            par,
                        )
                    }
                }
            }
        })
    };
    x.par_chunks(per_chunk * g.cin * hw)
        .zip(y.spare_capacity_mut()[..n].par_chunks_mut(per_chunk * cout * hw))
        .for_each(run);
    // SAFETY: the chunks cover all n values, and `run` wrote every one of them (above).
    unsafe { y.set_len(n) };
    y
}

/// Whether a convolution has few output channels against its input channels (2 to 15 outputs, at
/// least 4 inputs per output: the CIFAR-10 head, 128 -> 3, and the stem's input gradient): then
/// the CPU passes shift the `C_out k^2` planes of the product or of the output's gradient
/// ([`conv_forward_few_outputs`], [`conv_weight_grad_few_outputs`]) instead of the `C_in k^2` of
/// the input. With as many inputs as outputs the short products over `C_in` cost more than the
/// im2col they save (`configs/mnist-smoke.toml`, 8 channels: 20% slower steps). One output is
/// a matrix-vector product, which the `gemm` crate already takes its own way.
fn few_outputs(cout: usize, g: Geometry) -> bool {
    g.k > 1 && (2..16).contains(&cout) && g.cin >= 4 * cout
}

/// [`conv_forward`] for a kernel with few output channels ([`few_outputs`]), multiplying first and
/// shifting after. im2col would write `C_in k^2` rows of `H W`
/// values to feed a product with only `C_out` rows (for the CIFAR-10 head, 128 -> 3: 1,152 rows
/// for 3). Instead, per image, one product without im2col,
///
/// `P = W_r x[b]`, `W_r[(o, u, v), i] = W[o, i, u, v]` (`C_out k^2` rows of `H W` values),
///
/// then `y[o, h, w] = bias[o] + sum_{u, v} P[(o, u, v), h + d u - p, w + d v - p]`, the terms
/// whose pixel is outside the image left out, added tap by tap (`u`, then `v`). The sums are the
/// same as im2col's, in another order.
fn conv_forward_few_outputs<T: Float>(
    x: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    b: usize,
    cout: usize,
    g: Geometry,
) -> Vec<T> {
    let Geometry { cin, h, w, k, d } = g;
    let (hw, taps, p) = (h * w, k * k, d * (k - 1) / 2);
    let rows = cout * taps;
    let mut wr = vec![T::default(); rows * cin]; // W_r, [C_out k k, C_in]
    for o in 0..cout {
        for i in 0..cin {
            for t in 0..taps {
                wr[(o * taps + t) * cin + i] = wt[(o * cin + i) * taps + t];
            }
        }
    }
    let (per_chunk, par) = plan(b);
    let mut y = vec![T::default(); b * cout * hw];
    let run = |(xs, ys): (&[T], &mut [T])| {
        with_columns(|buf: &mut Vec<T>| {
            if buf.len() < rows * hw {
                buf.resize(rows * hw, T::default());
            }
            let products = &mut buf[..rows * hw];
            for (xb, yb) in xs.chunks(cin * hw).zip(ys.chunks_mut(cout * hw)) {
                // P^T = x_b^T W_r^T, `(H W) x C_in` times `C_in x (C_out k k)` (P itself,
                // `W_r x_b`, measured the same on the head's shape)
                // SAFETY: products is [rows, hw] (row stride hw), wr is [rows, cin] (row stride
                // cin), xb is the image [cin, hw] (row stride hw): all within their slices.
                unsafe {
                    gemm(
                        hw,
                        rows,
                        cin,
                        products.as_mut_ptr(),
                        hw as isize,
                        1,
                        false,
                        xb.as_ptr(),
                        hw as isize,
                        1,
                        wr.as_ptr(),
                        cin as isize,
                        1,
                        T::ONE,
                        T::ONE,
                        false,
                        false,
                        false,
                        par,
                    )
                }
                for (o, yo) in yb.chunks_mut(hw).enumerate() {
                    yo.fill(bias.map_or(T::default(), |bias| bias[o]));
                    for u in 0..k {
                        // output rows whose input row h + d u - p is inside the image
                        let inside = g.tap_rows(u);
                        for v in 0..k {
                            let plane = &products[(o * taps + u * k + v) * hw..][..hw];
                            // output columns whose input column c + d v - p is inside
                            let cols = g.tap_columns(v);
                            for row in inside.clone() {
                                // the input pixel of (row, cols.start), inside by `tap_rows`
                                let from = (row + d * u - p) * w + cols.start + d * v - p;
                                let src = &plane[from..][..cols.len()];
                                for (out, &value) in yo[row * w + cols.start..row * w + cols.end].iter_mut().zip(src) {
                                    *out += value;
                                }
                            }
                        }
                    }
                }
            }
        })
    };
    x.par_chunks(per_chunk * cin * hw)
        .zip(y.par_chunks_mut(per_chunk * cout * hw))
        .for_each(run);
    y
}

/// [`conv_weight_grad_cpu`] for a kernel with few output channels ([`few_outputs`]), shifting the output's
/// gradient instead of the input (as [`conv_forward_few_outputs`] does for the forward pass):
///
/// `dW[o, i, u, v] = sum_b sum_q S_b[(o, u, v), q] x[b, i, q]`, with
/// `S_b[(o, u, v), h, w] = dy[b, o, h - d u + p, w - d v + p]` (zero outside the image),
///
/// `C_out k^2` shifted planes of the gradient and one product per image, where im2col would shift
/// all `C_in k^2` planes of the input. The sums are the same, in another order.
fn conv_weight_grad_few_outputs<T: Float>(x: &[T], dy: &[T], b: usize, cout: usize, g: Geometry) -> Vec<T> {
    let Geometry { cin, h, w, k, d } = g;
    let (hw, taps, p) = (h * w, k * k, d * (k - 1) / 2);
    let rows = cout * taps;
    let (per_chunk, par) = plan(b);
    let partials: Vec<Vec<T>> = x
        .par_chunks(per_chunk * cin * hw)
        .zip(dy.par_chunks(per_chunk * cout * hw))
        .map(|(xs, dys)| {
            let mut dwr = vec![T::default(); rows * cin]; // dW by rows (o, u, v), [rows, C_in]
            with_columns(|buf: &mut Vec<T>| {
                if buf.len() < rows * hw {
                    buf.resize(rows * hw, T::default());
                }
                let shifted = &mut buf[..rows * hw];
                for (xb, dyb) in xs.chunks(cin * hw).zip(dys.chunks(cout * hw)) {
                    for o in 0..cout {
                        let grad = &dyb[o * hw..][..hw];
                        for u in 0..k {
                            for v in 0..k {
                                let plane = &mut shifted[(o * taps + u * k + v) * hw..][..hw];
                                plane.fill(T::default());
                                // output pixel (r, c) lands on input pixel (r + d u - p, c + d v - p)
                                let cols = g.tap_columns(v);
                                for row in g.tap_rows(u) {
                                    let to = (row + d * u - p) * w + cols.start + d * v - p;
                                    plane[to..to + cols.len()]
                                        .copy_from_slice(&grad[row * w + cols.start..row * w + cols.end]);
                                }
                            }
                        }
                    }
                    // dwr[(o, u, v), i] += sum_q shifted[(o, u, v), q] xb[i, q]: the right factor is
                    // the image transposed (row stride 1, column stride hw).
                    // SAFETY: dwr is [rows, cin]; shifted is [rows, hw]; xb is [cin, hw].
                    unsafe {
                        gemm(
                            rows,
                            cin,
                            hw,
                            dwr.as_mut_ptr(),
                            1,
                            cin as isize,
                            true,
                            shifted.as_ptr(),
                            1,
                            hw as isize,
                            xb.as_ptr(),
                            hw as isize,
                            1,
                            T::ONE,
                            T::ONE,
                            false,
                            false,
                            false,
                            par,
                        )
                    }
                }
            });
            dwr
        })
        .collect();
    let total = sum_in_order(partials, rows * cin);
    // dW[o, i, u, v] = dwr[(o, u, v), i]
    let mut dw = vec![T::default(); cout * cin * taps];
    for o in 0..cout {
        for t in 0..taps {
            for i in 0..cin {
                dw[(o * cin + i) * taps + t] = total[(o * taps + t) * cin + i];
            }
        }
    }
    dw
}

/// The elementwise sum of the threads' partial sums, added in their order (so the same bits for a
/// fixed thread count); `n` zeros if there are none.
fn sum_in_order<T: Float>(partials: Vec<Vec<T>>, n: usize) -> Vec<T> {
    let mut parts = partials.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![T::default(); n]);
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    total
}

/// Whether the convolution's [`row_blocks`] cut it into bands: then the kernel and the im2col
/// rows are taken kernel row first.
fn is_banded(blocks: &[(Range<usize>, Range<usize>)], g: Geometry) -> bool {
    blocks.len() > 1 || blocks[0].1.len() < g.k
}

/// The weight gradient's blocks: kernel rows with the output rows they see inside the image.
/// One block of every kernel row over the whole image, unless the convolution's forward pass
/// skips products ([`row_blocks`]): then one block per kernel row, each over only the output
/// rows it sees inside the image (the others would add products with zeros).
fn weight_blocks(g: Geometry, banded: bool) -> Vec<(Range<usize>, Range<usize>)> {
    if !banded {
        return vec![(0..g.h, 0..g.k)];
    }
    (0..g.k)
        .map(|u| (g.tap_rows(u), u..u + 1))
        .filter(|(rows, _)| !rows.is_empty())
        .collect()
}

/// `dW = sum_b dy[b] col(x[b])^T`, as `[C_out, C_in, k, k]`.
///
/// Computed as its transpose with the kernel rows first, `dW^T[(u, i, v), o] = sum_b
/// col(x[b]) dy[b]^T`, block by block ([`weight_blocks`]; a kernel row's block runs over only
/// the output rows that row sees inside the image, the other pixels would add products with
/// zero), and put in `W`'s order once at the end: the `gemm` crate runs this orientation about a
/// third faster on these shapes.
fn conv_weight_grad_cpu<T: Float>(x: &[T], dy: &[T], b: usize, cout: usize, g: Geometry) -> Vec<T> {
    let (kk, hw, per_u) = (g.rows(), g.pixels(), g.rows_per_tap_row());
    let (per_chunk, par) = plan(b);
    if per_chunk == 0 || hw == 0 {
        return vec![T::default(); cout * kk];
    }
    if few_outputs(cout, g) {
        return conv_weight_grad_few_outputs(x, dy, b, cout, g);
    }
    if let Some(dw) = T::direct_weight_grad(x, dy, b, cout, g) {
        return dw;
    }
    let banded = is_banded(&row_blocks(g), g);
    let blocks = weight_blocks(g, banded);
    // One partial sum per chunk of images, added in chunk order (deterministic for a fixed
    // thread count).
    let partials: Vec<Vec<T>> = x
        .par_chunks(per_chunk * g.cin * hw)
        .zip(dy.par_chunks(per_chunk * cout * hw))
        .map(|(xs, dys)| {
            let mut dwt = vec![T::default(); kk * cout];
            with_columns(|col| {
                for (rows, taps) in &blocks {
                    let pixels = rows.len() * g.w;
                    for (xb, dyb) in xs.chunks(g.cin * hw).zip(dys.chunks(cout * hw)) {
                        let cols = columns(xb, g, rows.clone(), taps.clone(), banded, col);
                        let cols_stride = if g.k == 1 { hw } else { pixels };
                        // dwt[(u, i, v), o] += sum_j cols[(u, i, v), j] dyb[o, rows.start W + j]
                        // for u in taps: the right factor is dyb's block, transposed (column
                        // stride hw).
                        // SAFETY: dwt is [kk, cout] and its rows taps.start per_u .. + depth are
                        // the block's; cols is [depth, pixels] with row stride cols_stride; dyb
                        // is [cout, hw] and the block's pixels are within it.
                        unsafe {
                            gemm(
                                taps.len() * per_u,
                                cout,
                                pixels,
                                dwt.as_mut_ptr().add(taps.start * per_u * cout),
                                1,
                                cout as isize,
                                true,
                                cols.as_ptr(),
                                1,
                                cols_stride as isize,
                                dyb.as_ptr().add(rows.start * g.w),
                                hw as isize,
                                1,
                                T::ONE,
                                T::ONE,
                                false,
                                false,
                                false,
                                par,
                            )
                        }
                    }
                }
            });
            dwt
        })
        .collect();
    let total = sum_in_order(partials, kk * cout);
    // dW[o, i, u, v] = dW^T[(u, i, v), o] (banded) or dW^T[(i, u, v), o]: a transpose, taken
    // `OUTS` output channels at a time so that each read of `total` uses a whole cache line and
    // the writes go to `OUTS` contiguous streams
    const OUTS: usize = 16;
    let (cin, k) = (g.cin, g.k);
    let mut dw = vec![T::default(); cout * kk];
    for o0 in (0..cout).step_by(OUTS) {
        let outs = o0..(o0 + OUTS).min(cout);
        for i in 0..cin {
            for u in 0..k {
                for v in 0..k {
                    let r = if banded {
                        (u * cin + i) * k + v
                    } else {
                        (i * k + u) * k + v
                    };
                    let column = (i * k + u) * k + v; // the position within W[o]
                    for (o, &value) in outs.clone().zip(&total[r * cout + outs.start..r * cout + outs.end]) {
                        dw[o * kk + column] = value;
                    }
                }
            }
        }
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn im2col_of_a_small_image_by_hand() {
        // One 3x3 channel 1..9, 3x3 kernel, dilation 1: row (u, v) = (0, 0) is the image shifted
        // down-right by one with zeros entering.
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let g = Geometry {
            cin: 1,
            h: 3,
            w: 3,
            k: 3,
            d: 1,
        };
        let mut col = vec![0.0; 9 * 9];
        im2col(&x, g, 0..3, 0..3, true, &mut col);
        assert_eq!(&col[..9], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
        assert_eq!(&col[4 * 9..5 * 9], &x[..]); // centre tap: the image itself
        assert_eq!(&col[8 * 9..], &[5., 6., 0., 8., 9., 0., 0., 0., 0.]);
        // the last output row alone, kernel rows 1 and 2 (rows (u, v) = (1, 0) .. (2, 2))
        let mut block = vec![0.0; 6 * 3];
        im2col(&x, g, 2..3, 1..3, true, &mut block);
        assert_eq!(&block[..3], &[0., 7., 8.]);
        assert_eq!(&block[3 * 3..], &[0.; 9]);
    }

    #[test]
    fn a_kept_buffer_with_stale_values_gives_the_same_columns() {
        // The thread's buffer is longer than this convolution needs and full of NaN from
        // "earlier" calls: the columns are its prefix, and every value of it is rewritten.
        let g = Geometry {
            cin: 2,
            h: 5,
            w: 4,
            k: 3,
            d: 2,
        };
        let x: Vec<f64> = (0..2 * 5 * 4).map(|i| i as f64 * 0.5 - 3.0).collect();
        let mut fresh = vec![0.0; g.rows() * g.pixels()];
        im2col(&x, g, 0..5, 0..3, true, &mut fresh);
        let mut stale = vec![f64::NAN; 3 * g.rows() * g.pixels()];
        assert_eq!(columns(&x, g, 0..5, 0..3, true, &mut stale), &fresh[..]);
    }

    #[test]
    fn im2col_equals_its_definition_for_every_shift_block_and_kernel_rows() {
        // Every kernel tap's shift, including shifts as wide as the image (dilation 4 on 3
        // columns) and non-square images, for every block of output rows and every range of
        // kernel rows: the copy-then-zero form against the definition.
        for (cin, h, w, k, d) in [
            (2, 5, 7, 3, 1),
            (1, 4, 3, 3, 2),
            (3, 3, 3, 3, 4),
            (2, 6, 5, 5, 1),
            (1, 1, 4, 3, 1),
            (2, 7, 7, 3, 4),
        ] {
            let g = Geometry { cin, h, w, k, d };
            let x: Vec<f64> = (0..cin * h * w).map(|i| i as f64 + 1.0).collect();
            let p = (d * (k - 1) / 2) as isize;
            for (r0, r1) in (0..h).flat_map(|r0| (r0 + 1..=h).map(move |r1| (r0, r1))) {
                for (t0, t1) in (0..k).flat_map(|t0| (t0 + 1..=k).map(move |t1| (t0, t1))) {
                    let n = (r1 - r0) * w;
                    let mut col = vec![-1.0; (t1 - t0) * cin * k * n];
                    im2col(&x, g, r0..r1, t0..t1, true, &mut col);
                    for (u, i, v) in (t0..t1).flat_map(|u| (0..cin).flat_map(move |i| (0..k).map(move |v| (u, i, v)))) {
                        for (a, b) in (r0..r1).flat_map(|a| (0..w).map(move |b| (a, b))) {
                            let (r, c) = (a as isize + (d * u) as isize - p, b as isize + (d * v) as isize - p);
                            let inside = (0..h as isize).contains(&r) && (0..w as isize).contains(&c);
                            let want = if inside {
                                x[i * h * w + r as usize * w + c as usize]
                            } else {
                                0.0
                            };
                            let got = col[(((u - t0) * cin + i) * k + v) * n + (a - r0) * w + b];
                            assert_eq!(
                                got, want,
                                "{g:?} rows {r0}..{r1} channel {i} tap ({u}, {v}) pixel ({a}, {b})"
                            );
                        }
                    }
                }
            }
            // The whole matrix in the weight's own order, (i, u, v): the same rows, permuted.
            let n = h * w;
            let (mut mine, mut ours) = (vec![-1.0; k * cin * k * n], vec![-1.0; k * cin * k * n]);
            im2col(&x, g, 0..h, 0..k, true, &mut mine);
            im2col(&x, g, 0..h, 0..k, false, &mut ours);
            for (u, i, v) in (0..k).flat_map(|u| (0..cin).flat_map(move |i| (0..k).map(move |v| (u, i, v)))) {
                let (a, b) = (((u * cin + i) * k + v) * n, ((i * k + u) * k + v) * n);
                assert_eq!(&mine[a..a + n], &ours[b..b + n], "{g:?} channel {i} tap ({u}, {v})");
            }
        }
    }

    #[test]
    fn row_blocks_cover_every_row_once_with_the_kernel_rows_that_see_the_image() {
        // The blocks tile 0..H in order. Each block's kernel rows include every kernel row whose
        // input row is inside the image for one of its output rows (the others multiply zeros),
        // and the bands are used exactly when they skip an eighth of the products.
        for (h, k, d, banded) in [
            (16, 3, 4, true),  // skips 8 of 48 row products
            (16, 3, 2, false), // 4 of 48
            (32, 3, 1, false), // 2 of 96
            (7, 3, 4, true),   // 8 of 21
            (7, 3, 2, true),   // 4 of 21
            (14, 3, 2, false), // 4 of 42
            (3, 3, 4, true),   // only the centre row sees the image
            (9, 5, 2, true),   // 12 of 45
            (1, 3, 1, true),   // 2 of 3
            (5, 1, 1, false),  // 1x1: nothing to skip
        ] {
            let g = Geometry { cin: 4, h, w: h, k, d };
            let blocks = row_blocks(g);
            assert_eq!(blocks.len() > 1 || blocks[0].1.len() < k, banded, "{g:?}: {blocks:?}");
            let mut next = 0;
            for (rows, taps) in &blocks {
                assert_eq!(rows.start, next, "{g:?}");
                assert!(!rows.is_empty() && !taps.is_empty(), "{g:?}");
                next = rows.end;
                for u in 0..k {
                    let seen = g.tap_rows(u);
                    if rows.clone().any(|r| seen.contains(&r)) {
                        assert!(taps.contains(&u), "{g:?} block {rows:?} needs kernel row {u}");
                    }
                }
            }
            assert_eq!(next, h, "{g:?}");
        }
    }

    #[test]
    fn the_flipped_kernel_is_its_definition() {
        // W'[i, o, u, v] = W[o, i, k-1-u, k-1-v] for a 3 x 2 x 3 x 3 kernel, from a contiguous
        // weight and from a strided view, against candle's index ops (the path of other devices).
        let w = Tensor::arange(0f64, 54., &Device::Cpu)
            .unwrap()
            .reshape((3, 2, 3, 3))
            .unwrap();
        let flipped = flipped_kernel(&w).unwrap();
        assert_eq!(flipped.dims(), [2, 3, 3, 3]);
        let got: Vec<f64> = flipped.flatten_all().unwrap().to_vec1().unwrap();
        for (i, o, u, v) in
            (0..2).flat_map(|i| (0..3).flat_map(move |o| (0..3).flat_map(move |u| (0..3).map(move |v| (i, o, u, v)))))
        {
            let want = (((o * 2 + i) * 3 + (2 - u)) * 3 + (2 - v)) as f64;
            assert_eq!(got[((i * 3 + o) * 3 + u) * 3 + v], want);
        }
        let strided = w.transpose(2, 3).unwrap(); // not contiguous
        let reversed = Tensor::new(&[2u32, 1, 0], &Device::Cpu).unwrap();
        let by_index = strided
            .transpose(0, 1)
            .unwrap()
            .contiguous()
            .unwrap()
            .index_select(&reversed, 2)
            .unwrap()
            .index_select(&reversed, 3)
            .unwrap();
        let a: Vec<f64> = flipped_kernel(&strided)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f64> = by_index.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn gather_reads_a_transposed_view_in_row_major_order() {
        let t = Tensor::arange(0f32, 6., &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let t = t.t().unwrap(); // [[0, 3], [1, 4], [2, 5]]
        let (storage, layout) = t.storage_and_layout();
        let candle_core::Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
            panic!("cpu f32")
        };
        assert_eq!(gather(data, layout).as_ref(), &[0., 3., 1., 4., 2., 5.]);
    }
}
