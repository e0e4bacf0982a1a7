//! The noise-conditional MLP at one noise level, as plain `f32` weights evaluated block by block
//! on the CPU: the inner loop of every learned Langevin sampler of the toys.
//!
//! At a fixed level `i` the network `2 -> H -> H -> 2` is three affine maps with softplus between
//! them ([`crate::model::NoiseConditionalMlp::forward_at_level`] folds the level's scale, shift,
//! input scale and `1 / sigma_i` into the weights). Through candle each layer is three passes
//! over an `(N, H)` tensor, each allocated (and zeroed) anew: for the 4,000 particles of an
//! `ncsn2d` draw that is 4 MB per pass, more than a core's L2 cache, so every pass goes to memory.
//! Here the particles go through in blocks of [`BLOCK`] rows: each layer is one `gemm` call (the
//! call candle's CPU matmul makes) into a buffer reused by every block, and the bias and the
//! softplus are one pass over it while it is still in cache. The results equal candle's to the
//! rounding of the sums (the crate orders them by the size of the product; tested).
use crate::softplus::bias_softplus_in_place;

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
        Ok(Self { layers })
    }

    /// The scores of the points `x` (`n` rows of 2, row-major) into `out` (the same shape).
    ///
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
        let (mut padded, mut s) = (vec![0f32; 2 * BLOCK], vec![0f32; 2 * BLOCK]);
        for (xb, ob) in x.chunks(2 * BLOCK).zip(out.chunks_mut(2 * BLOCK)) {
            let xb = if xb.len() == 2 * BLOCK {
                xb
            } else {
                padded[..xb.len()].copy_from_slice(xb);
                padded[xb.len()..].fill(0.0);
                &padded
            };
            affine(&self.layers[0], xb, &mut h1);
            bias_softplus_in_place(&mut h1, &self.layers[0].bias); // softplus(W1 x + b1)
            affine(&self.layers[1], &h1, &mut h2);
            bias_softplus_in_place(&mut h2, &self.layers[1].bias); // softplus(W2 h1 + b2)
            affine(&self.layers[2], &h2, &mut s);
            let b3 = &self.layers[2].bias;
            for (o, s) in ob.chunks_exact_mut(2).zip(s.chunks_exact(2)) {
                o[0] = s[0] + b3[0]; // W3 h2 + b3
                o[1] = s[1] + b3[1];
            }
        }
    }
}

/// `y = x W^T` for the rows of `x` (the bias comes after): `(rows, in) x (in, out)`.
pub(crate) fn affine(layer: &Affine, x: &[f32], y: &mut [f32]) {
    let (out, inp) = layer.dims();
    let rows = x.len() / inp;
    // x (rows x inp) times W^T (inp x out), one thread: the blocks are the parallel unit
    crate::plain::matmul(1, (rows, out, inp), y, (x, inp, 1), (&layer.weight_t, out, 1));
}
