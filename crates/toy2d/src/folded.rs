//! The noise-conditional MLP at one noise level, as plain `f32` weights evaluated block by block
//! on the CPU: the inner loop of every learned Langevin sampler of the toys.
//!
//! At a fixed level `i` the network `2 -> H -> H -> 2` is three affine maps with softplus between
//! them ([`crate::model::NoiseConditionalMlp::forward_at_level`] folds the level's scale, shift,
//! input scale and `1 / sigma_i` into the weights). Through candle each layer is three passes
//! over an `(N, H)` tensor, each allocated (and zeroed) anew: for the 4,000 particles of an
//! `ncsn2d` draw that is 4 MB per pass, more than a core's L2 cache, so every pass goes to memory.
//! Here the particles go through in blocks of [`BLOCK`] rows into buffers reused by every block:
//! the first layer (two inputs, two multiply-adds per unit) and its softplus are one pass; the
//! hidden layer is one `gemm` call (the call candle's CPU matmul makes); its bias, its softplus
//! and the two output units' sums are one pass over each row while it is in L1. The results
//! equal candle's to the rounding of the sums (tested against the `f64` network).
use crate::softplus::softplus_of;

/// Rows per block: two `(BLOCK, H)` activations of `H = 256` are 256 KB, well inside L2.
pub const BLOCK: usize = 128;

/// `y = W x + b` for a batch of rows, `W` of shape `(out, in)`, stored transposed.
#[derive(Debug, Clone)]
pub struct Affine {
    /// `W^T`, of shape `(in, out)`, row-major: the `out` weights of input `k` side by side,
    /// which is how the `gemm` crate's kernels read them (stored as `W`, every call would gather
    /// them one float at a time: a fifth of the sampler's time).
    pub weight_t: Vec<f32>,
    /// `b`, `out` values.
    pub bias: Vec<f32>,
}

impl Affine {
    fn dims(&self) -> (usize, usize) {
        let out = self.bias.len();
        (out, self.weight_t.len() / out.max(1))
    }
}

/// `s(x) = L3(softplus(L2(softplus(L1 x))))`, from 2D points to 2D vectors.
#[derive(Debug, Clone)]
pub struct FoldedMlp {
    pub(crate) layers: [Affine; 3],
    /// The output layer's `W`, `(2, H)` row-major: each output unit's weights side by side, the
    /// order its sums read them.
    out_rows: Vec<f32>,
}

impl FoldedMlp {
    /// The network of three layers `2 -> H`, `H -> H`, `H -> 2`; an error names a layer whose
    /// shape does not fit.
    pub fn new(layers: [Affine; 3]) -> candle_core::Result<Self> {
        let h = layers[0].bias.len();
        let want = [(h, 2), (h, h), (2, h)];
        for (k, (layer, want)) in layers.iter().zip(want).enumerate() {
            if h == 0 || layer.dims() != want || layer.weight_t.len() != want.0 * want.1 {
                candle_core::bail!(
                    "FoldedMlp: layer {} has {} weights and {} biases, expected (out, in) = {want:?}",
                    k + 1,
                    layer.weight_t.len(),
                    layer.bias.len()
                );
            }
        }
        let w3 = &layers[2].weight_t; // (H, 2)
        let out_rows = (0..2).flat_map(|c| (0..h).map(move |j| w3[2 * j + c])).collect();
        Ok(Self { layers, out_rows })
    }

    /// The scores of the points `x` (`n` rows of 2, row-major) into `out` (the same shape).
    ///
    /// Per block: the first layer and its softplus in one pass (two inputs: two multiply-adds
    /// per unit, no product worth a `gemm` call), the hidden layer as one `gemm` call, and its
    /// bias, its softplus and the two output units' sums row by row while the row is in L1.
    /// Every block is a full [`BLOCK`] rows (the last one padded with zeros): the `gemm` crate
    /// splits the sum over the hidden units differently for different numbers of rows, so this
    /// makes a point's score the same bits whatever the number of points and its place among them.
    ///
    /// # Panics
    /// If `x` is not whole rows of 2 or `out` is not as long as `x` (a caller's bug: the samplers
    /// pass `(n, 2)` arrays).
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        assert!(
            x.len() == out.len() && x.len().is_multiple_of(2),
            "FoldedMlp::forward: {} inputs and {} outputs, expected rows of 2 and an output per input",
            x.len(),
            out.len()
        );
        let h = self.layers[0].bias.len();
        let (mut h1, mut h2) = (vec![0f32; BLOCK * h], vec![0f32; BLOCK * h]);
        let mut padded = vec![0f32; 2 * BLOCK];
        let isa = Isa::detect();
        for (xb, ob) in x.chunks(2 * BLOCK).zip(out.chunks_mut(2 * BLOCK)) {
            let xb = if xb.len() == 2 * BLOCK {
                xb
            } else {
                padded[..xb.len()].copy_from_slice(xb);
                padded[xb.len()..].fill(0.0);
                &padded
            };
            isa.first_layer(&self.layers[0], xb, &mut h1); // h1 = softplus(W1 x + b1)
            affine(&self.layers[1], &h1, &mut h2); // W2 h1
            isa.output_layer(&mut h2, &self.layers[1].bias, &self.out_rows, &self.layers[2].bias, ob);
        }
    }
}

/// `h[n, j] = softplus(x[n, 0] W[j, 0] + x[n, 1] W[j, 1] + b[j])`: a layer of two inputs and its
/// activation in one pass over the units of each row.
#[inline(always)]
fn first_layer(layer: &Affine, x: &[f32], h: &mut [f32]) {
    let (w0, w1) = layer.weight_t.split_at(layer.bias.len()); // the rows of W^T: input 0, input 1
    for (p, row) in x.chunks_exact(2).zip(h.chunks_exact_mut(layer.bias.len())) {
        for (((v, &a), &c), &b) in row.iter_mut().zip(w0).zip(w1).zip(&layer.bias) {
            *v = softplus_of(p[1].mul_add(c, p[0] * a) + b);
        }
    }
}

/// `out[n] = W3 softplus(a[n] + b2) + b3` for the rows `a[n]` of the hidden layer's products
/// (`w3` is `W3` as two rows): for each row, its bias and softplus in place, then the two output
/// units' sums while the row is in L1. Only the rows of `out` are computed.
#[inline(always)]
fn output_layer(a: &mut [f32], b2: &[f32], w3: &[f32], b3: &[f32], out: &mut [f32]) {
    let (w_x, w_y) = w3.split_at(b2.len());
    for (row, o) in a.chunks_exact_mut(b2.len()).zip(out.chunks_exact_mut(2)) {
        for (v, b) in row.iter_mut().zip(b2) {
            *v = softplus_of(*v + b);
        }
        o[0] = dot(row, w_x) + b3[0];
        o[1] = dot(row, w_y) + b3[1];
    }
}

/// Lanes of [`dot`]'s partial sums: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// `sum_j a[j] b[j]` in a fixed order that does not depend on the CPU's SIMD width: partial sum
/// `l` collects the terms `j = l (mod LANES)` with fused multiply-adds, then the partial sums are
/// added pairwise, halving the count each time.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (ac, bc) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = ac[l].mul_add(bc[l], acc[l]);
        }
    }
    let whole = a.len() / LANES * LANES;
    for (l, (x, y)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
        acc[l] = x.mul_add(*y, acc[l]);
    }
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for l in 0..n {
            acc[l] += acc[l + n];
        }
    }
    acc[0]
}

/// The SIMD instructions the block kernels are compiled for, found once per call. The kernels are
/// `#[inline(always)]` functions, compiled again inside a function with each set of target
/// features (a closure around them may be compiled without, and then every `mul_add` is a
/// library call): more lanes at once, the same operations in the same order, the same bits.
#[derive(Clone, Copy)]
enum Isa {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("fma") {
            if std::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Plain
    }

    fn first_layer(self, layer: &Affine, x: &[f32], h: &mut [f32]) {
        match self {
            Isa::Plain => first_layer(layer, x, h),
            // SAFETY (both): `detect` found the instructions on this CPU.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::first_layer_avx2(layer, x, h) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::first_layer_avx512(layer, x, h) },
        }
    }

    fn output_layer(self, a: &mut [f32], b2: &[f32], w3: &[f32], b3: &[f32], out: &mut [f32]) {
        match self {
            Isa::Plain => output_layer(a, b2, w3, b3, out),
            // SAFETY (both): `detect` found the instructions on this CPU.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::output_layer_avx2(a, b2, w3, b3, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::output_layer_avx512(a, b2, w3, b3, out) },
        }
    }
}

/// The kernels compiled with AVX-512 or AVX2, and FMA ([`Isa`]).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Affine;

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn first_layer_avx512(layer: &Affine, x: &[f32], h: &mut [f32]) {
        super::first_layer(layer, x, h)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn first_layer_avx2(layer: &Affine, x: &[f32], h: &mut [f32]) {
        super::first_layer(layer, x, h)
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn output_layer_avx512(a: &mut [f32], b2: &[f32], w3: &[f32], b3: &[f32], out: &mut [f32]) {
        super::output_layer(a, b2, w3, b3, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn output_layer_avx2(a: &mut [f32], b2: &[f32], w3: &[f32], b3: &[f32], out: &mut [f32]) {
        super::output_layer(a, b2, w3, b3, out)
    }
}

/// `y = x W^T` for the rows of `x` (the bias comes after): `(rows, in) x (in, out)`.
pub(crate) fn affine(layer: &Affine, x: &[f32], y: &mut [f32]) {
    let (out, inp) = layer.dims();
    let rows = x.len() / inp;
    // x (rows x inp) times W^T (inp x out), one thread: the blocks are the parallel unit
    crate::plain::matmul(1, (rows, out, inp), y, (x, inp, 1), (&layer.weight_t, out, 1));
}
