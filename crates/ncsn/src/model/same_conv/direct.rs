//! The three passes of a narrow f32 convolution (16 or 32 output channels: the MNIST recipe's
//! network) computed directly, without im2col, on CPUs with AVX-512 or AVX2 and FMA, with
//! vectors along the output channels.
//!
//! im2col copies every input value `k^2` times and the `gemm` crate then multiplies a kernel of
//! 16 or 32 rows, for which its widest AVX-512 micro-kernel (64 rows by 6 columns) does not fit:
//! its narrower ones load as many values as they multiply. Here a tile holds `OV` vectors of
//! output channels (AVX-512: `OV` = 2 vectors of 16 for 32 outputs, else 1; AVX2: 2 vectors of 8)
//! by up to `ACCUMULATORS / OV` neighbouring pixels of one row in registers (AVX-512: 24 sums,
//! at most 14 pixels; AVX2: 12 sums, so 6 pixels), and each step loads the weights of one input
//! channel and tap and multiplies them by the tile's input pixels, broadcast one at a time:
//!
//! ```text
//! y[o, h, w] = bias[o] + sum_{u, v} sum_i W[o, i, u, v] x[i, h + d u - p, w + d v - p]
//! ```
//!
//! for the vectors of `o` and the pixels `w` of the tile. Along the output channels a vector
//! never straddles the image's edge, so the kernel rows that see only padding at a tile's row
//! are skipped, and so are the kernel columns that see only padding at all of its pixels; the
//! tiles are cut by dynamic programming so as to trade wide tiles against skipped columns
//! ([`row_tiles`]), and the other kernel columns read the image from a copy with zeros at both
//! ends of every row. The sums are kept pixel by pixel (`[H W, OV LANES]`) while the input channels
//! pass in blocks of 16 and written out through transposes in registers (16 x 16 or 8 x 8).
//!
//! The input gradient is the same pass with the flipped kernel (`same_conv.rs`), and the weight
//! gradient ([`weight_grad`]) the same tiles with the roles turned: output channels by input
//! channels of one tap, summed over the output pixels at which the tap sees the image.
//!
//! The sums run in another order than the `gemm` crate's (taps, then input channels; images,
//! then pixels), so they round differently; the wide layers of the CIFAR-10 network (128 and 256
//! channels), where `gemm`'s own kernel fits, keep im2col and their products bit for bit. The
//! order does not depend on the instruction set (each lane of a tile is one output's own sum), so
//! AVX-512 and AVX2 give the same values; their tiles differ in width, and a tile adds the
//! padding's zeros for the kernel columns that only some of its pixels see there, which can turn
//! an exact zero's sign and nothing else.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::{plan, Geometry};

/// The layers this path takes have a multiple of this many outputs (and at most
/// [`MAX_OUTPUTS`]): one vector of AVX-512, two of AVX2, so both take the same layers.
const OUTPUT_BLOCK: usize = 16;
/// The most pixels per tile (a row of 28 in two tiles).
const MAX_PX: usize = 14;
/// Input channels per block of the forward pass: the block's kernel, `k^2 CB OV LANES` values (18
/// KiB for 3x3 and 32 outputs with AVX-512, half that with AVX2), stays in the L1 cache while
/// every tile of the image passes over it. The blocks set the order of the sums, so both
/// instruction sets use the same.
const CB: usize = 16;
/// The fewest input channels for which this path is taken.
const MIN_INPUTS: usize = 8;
/// The most output channels for which this path is taken: from 64 on, `gemm`'s widest kernel
/// fits, and on the CIFAR-10 network's layers (128 and 256 channels) blocks of 64 outputs were
/// no faster than im2col on the whole (0.88-1.24 of its time by shape and run; crate README).
const MAX_OUTPUTS: usize = 32;

/// Vectors of output channels per tile for `cout` outputs: 2 where they divide it, else 1.
fn vectors_per_block<K: Kernels>(cout: usize) -> usize {
    if cout.is_multiple_of(2 * K::LANES) {
        2
    } else {
        1
    }
}

/// The most pixels (or, in the weight gradient, input channels) per tile with `ov` vectors of
/// outputs.
fn max_px<K: Kernels>(ov: usize) -> usize {
    (K::ACCUMULATORS / ov).min(MAX_PX)
}

/// Whether the convolutions that this module can compute take its path (the default).
static DIRECT: AtomicBool = AtomicBool::new(true);

/// Turns the direct passes on or off for the whole process; off, the narrow layers run im2col
/// and `gemm` as every other convolution does. For comparing the two paths (`benches/conv.rs
/// --ab`).
pub fn set_direct(on: bool) {
    DIRECT.store(on, Ordering::Relaxed);
}

/// Whether this module computes the convolution's passes: the switch [`set_direct`] on, a
/// kernel wider than one pixel, at least [`MIN_INPUTS`] input channels, 16 or 32 outputs
/// ([`OUTPUT_BLOCK`], [`MAX_OUTPUTS`]), and a CPU with AVX-512 or AVX2 and FMA.
pub(super) fn applies(cout: usize, g: Geometry) -> bool {
    DIRECT.load(Ordering::Relaxed)
        && g.k > 1
        && g.h > 0
        && g.w > 0
        && g.cin >= MIN_INPUTS
        && cout > 0
        && cout <= MAX_OUTPUTS
        && cout.is_multiple_of(OUTPUT_BLOCK)
        && isa().is_some()
}

/// The instruction sets the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
}

/// The best of [`Isa`] that this CPU has, if any.
#[cfg(target_arch = "x86_64")]
fn isa() -> Option<Isa> {
    if std::is_x86_feature_detected!("avx512f") {
        Some(Isa::Avx512)
    } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        Some(Isa::Avx2)
    } else {
        None
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn isa() -> Option<Isa> {
    None
}

/// Up to `max` ([`max_px`]) neighbouring output pixels of a row, `w0 .. w0 + px`, and the kernel
/// columns `v` that see the image at one of them at least (the others see only padding there and
/// are skipped; the image is read from a copy padded with zeros at both ends of every row).
#[derive(Debug, Clone, PartialEq)]
struct Tile {
    w0: usize,
    px: usize,
    taps: Range<usize>,
}

/// The kernel taps (rows or columns) whose range of outputs `seen(tap)` inside the image meets
/// the outputs `a .. b`: a range, since the ranges move with the tap, and never empty, since
/// the centre tap (`d tap = p`) sees every output.
fn taps_seeing(k: usize, seen: impl Fn(usize) -> Range<usize>, a: usize, b: usize) -> Range<usize> {
    let sees = |t: &usize| seen(*t).start < b && a < seen(*t).end;
    let first = (0..k).find(sees).unwrap_or(k / 2);
    let last = (0..k).rev().find(sees).unwrap_or(k / 2);
    first..last + 1
}

/// The kernel columns that see the image at one of the output columns `a .. b` at least.
fn column_taps(g: Geometry, a: usize, b: usize) -> Range<usize> {
    taps_seeing(g.k, |v| g.tap_columns(v), a, b)
}

/// Twice the cycles per input channel of a tile of `ov` vectors of outputs by `px` pixels and
/// `taps` kernel columns (per kernel row): `ov px` fused multiply-adds at two a cycle, `ov + px`
/// loads at two a cycle, at least 4 cycles (one FMA's latency: fewer than 8 independent sums
/// leave the units idle), and about a cycle for the loop around them.
fn tile_cost(ov: usize, px: usize, taps: usize) -> usize {
    taps * ((ov * px).max(ov + px).max(8) + 2)
}

/// The tiles of an output row for `ov` vectors of outputs: the cut into pieces of at most `max`
/// ([`max_px`]) pixels that costs the fewest cycles ([`tile_cost`], by dynamic programming over
/// the cut points). Wide pieces use the registers best; a piece at an edge that some kernel
/// column sees only as padding skips that column, so the cut trades the two.
fn row_tiles(g: Geometry, ov: usize, max: usize) -> Vec<Tile> {
    let w = g.w;
    // best[b]: the cost of columns 0 .. b and where its last piece starts
    let mut best: Vec<(usize, usize)> = vec![(0, 0); w + 1];
    for b in 1..=w {
        best[b] = (b.saturating_sub(max)..b)
            .map(|a| (best[a].0 + tile_cost(ov, b - a, column_taps(g, a, b).len()), a))
            .min()
            .unwrap_or((0, 0));
    }
    let mut tiles = Vec::new();
    let mut b = w;
    while b > 0 {
        let a = best[b].1;
        tiles.push(Tile {
            w0: a,
            px: b - a,
            taps: column_taps(g, a, b),
        });
        b = a;
    }
    tiles.reverse();
    tiles
}

/// The kernel rows `u` that see the image at output row `h`.
fn row_taps(g: Geometry, h: usize) -> Range<usize> {
    taps_seeing(g.k, |u| g.tap_rows(u), h, h + 1)
}

/// An image with `p` zeros at both ends of every row: `[C_in, H, W + 2p]`. The rows need no
/// padding, since a tile is one row and skips the kernel rows outside the image.
#[derive(Debug, Clone, Copy)]
struct Padded {
    pad: usize,
    cols: usize,
    rows: usize,
}

impl Padded {
    fn of(g: Geometry) -> Self {
        let pad = g.d * (g.k - 1) / 2;
        Padded {
            pad,
            cols: g.w + 2 * pad,
            rows: g.h,
        }
    }
    fn plane(&self) -> usize {
        self.rows * self.cols
    }
    /// Copies image `xb` (`[C_in, H, W]`) into `xp` between the zeros (which it never writes).
    fn copy(&self, xb: &[f32], g: Geometry, xp: &mut [f32]) {
        for (row, padded) in xb.chunks_exact(g.w).zip(xp.chunks_exact_mut(self.cols)) {
            padded[self.pad..self.pad + g.w].copy_from_slice(row);
        }
    }
}

/// `y = conv(x, wt) + bias` for `x` `[B, C_in, H, W]`, `wt` `[C_out, C_in, k, k]`, where
/// [`applies`] holds (the caller checks).
pub(super) fn forward(x: &[f32], wt: &[f32], bias: Option<&[f32]>, b: usize, cout: usize, g: Geometry) -> Vec<f32> {
    match isa() {
        Some(Isa::Avx512) => forward_with::<kernel::Avx512>(x, wt, bias, b, cout, g),
        Some(Isa::Avx2) => forward_with::<kernel::Avx2>(x, wt, bias, b, cout, g),
        None => unreachable!("the direct convolution needs AVX-512 or AVX2 (`applies`)"),
    }
}

/// [`forward`] with the kernels `K`.
fn forward_with<K: Kernels>(
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    b: usize,
    cout: usize,
    g: Geometry,
) -> Vec<f32> {
    match vectors_per_block::<K>(cout) {
        2 => forward_by::<K, 2>(x, wt, bias, b, cout, g),
        _ => forward_by::<K, 1>(x, wt, bias, b, cout, g),
    }
}

/// [`forward`] with the kernels `K` and blocks of `OV` vectors of outputs.
fn forward_by<K: Kernels, const OV: usize>(
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    b: usize,
    cout: usize,
    g: Geometry,
) -> Vec<f32> {
    let ob_len = OV * K::LANES;
    let (hw, kk, cin) = (g.pixels(), g.k * g.k, g.cin);
    // The kernel by blocks of OB = OV LANES outputs, blocks of CB inputs, taps, inputs of the
    // block: wr[ob kk C_in OB + i0 kk OB + (t cb + ii) OB + l] = W[ob OB + l, i0 + ii, t]
    let mut wr = vec![0f32; wt.len()];
    for (o, kernel) in wt.chunks_exact(cin * kk).enumerate() {
        let (ob, l) = (o / ob_len, o % ob_len);
        for i in 0..cin {
            let (i0, ii) = (i / CB * CB, i % CB);
            let cb = CB.min(cin - i0);
            for t in 0..kk {
                wr[ob * kk * cin * ob_len + i0 * kk * ob_len + (t * cb + ii) * ob_len + l] = kernel[i * kk + t];
            }
        }
    }
    let tiles = row_tiles(g, OV, max_px::<K>(OV));
    let rows: Vec<Range<usize>> = (0..g.h).map(|h| row_taps(g, h)).collect();
    // every value is written once, by its block's transpose (below), so the output is not
    // zeroed first
    let n = b * cout * hw;
    let mut y: Vec<f32> = Vec::with_capacity(n);
    let padded = Padded::of(g);
    // One block of OB outputs of one image: the sums in `acc` (`[H W, OB]`, pixel by pixel),
    // input block by input block, then written out channel by channel.
    let block = |xp: &[f32], yo: &mut [MaybeUninit<f32>], ob: usize, acc: &mut Vec<f32>| {
        acc.clear();
        match bias {
            Some(bias) => (0..hw).for_each(|_| acc.extend_from_slice(&bias[ob * ob_len..][..ob_len])),
            None => acc.resize(hw * ob_len, 0.0),
        }
        for i0 in (0..cin).step_by(CB) {
            let cb = CB.min(cin - i0);
            let w = &wr[ob * kk * cin * ob_len + i0 * kk * ob_len..][..kk * cb * ob_len];
            let xs = &xp[i0 * padded.plane()..][..cb * padded.plane()];
            for (h, taps) in rows.iter().enumerate() {
                for tile in &tiles {
                    // SAFETY: K's instruction set is present (`applies`, `forward`); the tile's
                    // taps read the padded image inside it (`row_tiles`, `row_taps`), and its
                    // pixels' sums are inside `acc`.
                    unsafe { K::tile::<OV>(xs, w, cb, g, padded, h, taps.clone(), tile, acc) }
                }
            }
        }
        // yo[l, p] = acc[p, l]
        // SAFETY: K's instruction set is present; acc is [hw, OB] and yo [OB, hw].
        unsafe { K::transpose(acc, hw, ob_len, yo.as_mut_ptr().cast::<f32>()) }
    };
    let (per_chunk, par) = plan(b);
    if matches!(par, gemm::Parallelism::None) {
        // images split across threads
        x.par_chunks(per_chunk * cin * hw)
            .zip(y.spare_capacity_mut()[..n].par_chunks_mut(per_chunk * cout * hw))
            .for_each(|(xs, ys)| {
                let mut acc = Vec::with_capacity(hw * ob_len);
                let mut xp = vec![0f32; cin * padded.plane()];
                for (xb, yb) in xs.chunks(cin * hw).zip(ys.chunks_mut(cout * hw)) {
                    padded.copy(xb, g, &mut xp);
                    for (ob, yo) in yb.chunks_mut(ob_len * hw).enumerate() {
                        block(&xp, yo, ob, &mut acc);
                    }
                }
            });
    } else {
        // fewer images than threads: each image's blocks of outputs across threads
        let mut xp = vec![0f32; cin * padded.plane()];
        for (xb, yb) in x
            .chunks(cin * hw)
            .zip(y.spare_capacity_mut()[..n].chunks_mut(cout * hw))
        {
            padded.copy(xb, g, &mut xp);
            yb.par_chunks_mut(ob_len * hw)
                .enumerate()
                .for_each(|(ob, yo)| block(&xp, yo, ob, &mut Vec::with_capacity(hw * ob_len)));
        }
    }
    // SAFETY: the blocks cover all n values, and each block's transpose wrote every one of its
    // values.
    unsafe { y.set_len(n) };
    y
}

/// `dW = sum_b dy[b] * x[b]` (the weight gradient) as `[C_out, C_in, k, k]`, for `x`
/// `[B, C_in, H, W]` and `dy` `[B, C_out, H, W]`, where [`applies`] holds (the caller checks):
///
/// ```text
/// dW[o, i, u, v] = sum_b sum_{h, w: the input pixel inside} dy[b, o, h, w] x[b, i, h + d u - p, w + d v - p]
/// ```
///
/// A tile holds `OV` vectors of output channels by up to [`max_px`] input channels of one
/// tap in registers and runs over the output pixels at which the tap sees the image (a
/// rectangle: the others would add products with padding), each a load of the pixel's `OV`
/// vectors of `dy` (laid out pixel by pixel first) and a broadcast of each input channel's value.
/// The sums run over the images in order, then the pixels row by row (in rows of at most
/// [`ROWS_BYTES`] of `dy`, so that they stay in the L1 cache while the tiles pass over them).
pub(super) fn weight_grad(x: &[f32], dy: &[f32], b: usize, cout: usize, g: Geometry) -> Vec<f32> {
    match isa() {
        Some(Isa::Avx512) => weight_grad_with::<kernel::Avx512>(x, dy, b, cout, g),
        Some(Isa::Avx2) => weight_grad_with::<kernel::Avx2>(x, dy, b, cout, g),
        None => unreachable!("the direct convolution needs AVX-512 or AVX2 (`applies`)"),
    }
}

/// [`weight_grad`] with the kernels `K`.
fn weight_grad_with<K: Kernels>(x: &[f32], dy: &[f32], b: usize, cout: usize, g: Geometry) -> Vec<f32> {
    match vectors_per_block::<K>(cout) {
        2 => weight_grad_by::<K, 2>(x, dy, b, cout, g),
        _ => weight_grad_by::<K, 1>(x, dy, b, cout, g),
    }
}

/// The most bytes of `dy`'s block of outputs over a group of output rows (see [`weight_grad`]).
const ROWS_BYTES: usize = 32 << 10;

/// [`weight_grad`] with the kernels `K` and blocks of `OV` vectors of outputs.
fn weight_grad_by<K: Kernels, const OV: usize>(x: &[f32], dy: &[f32], b: usize, cout: usize, g: Geometry) -> Vec<f32> {
    let ob_len = OV * K::LANES;
    let (hw, kk, cin) = (g.pixels(), g.k * g.k, g.cin);
    // the input channels in near-equal tiles of at most max_px(OV)
    let parts = cin.div_ceil(max_px::<K>(OV));
    let channel_tiles: Vec<(usize, usize)> = (0..parts)
        .scan(0, |i0, part| {
            let n = cin / parts + usize::from(part < cin % parts);
            let tile = (*i0, n);
            *i0 += n;
            Some(tile)
        })
        .collect();
    let rows_per_group = (ROWS_BYTES / (g.w * ob_len * 4)).max(1);
    let (per_chunk, _) = plan(b);
    // one partial sum per chunk of images, [k k, C_out / OB, C_in, OB], added in chunk order
    // (deterministic for a fixed thread count)
    let partials: Vec<Vec<f32>> = x
        .par_chunks(per_chunk * cin * hw)
        .zip(dy.par_chunks(per_chunk * cout * hw))
        .map(|(xs, dys)| {
            let mut dw = vec![0f32; kk * cout * cin];
            let mut dyt = vec![0f32; hw * cout];
            for (xb, dyb) in xs.chunks(cin * hw).zip(dys.chunks(cout * hw)) {
                // dyt[p, o] = dy[o, p]
                // SAFETY: K's instruction set is present (`applies`, `weight_grad`); dyb is
                // [cout, hw], dyt [hw, cout].
                unsafe { K::transpose(dyb, cout, hw, dyt.as_mut_ptr()) };
                for ob in 0..cout / ob_len {
                    for h0 in (0..g.h).step_by(rows_per_group) {
                        let group = h0..(h0 + rows_per_group).min(g.h);
                        for u in 0..g.k {
                            let rows = g.tap_rows(u);
                            let rows = rows.start.max(group.start)..rows.end.min(group.end);
                            for v in 0..g.k {
                                let cols = g.tap_columns(v);
                                if rows.is_empty() || cols.is_empty() {
                                    continue;
                                }
                                let t = u * g.k + v;
                                for &(i0, n) in &channel_tiles {
                                    let at = ((t * (cout / ob_len) + ob) * cin + i0) * ob_len;
                                    // SAFETY: K's instruction set is present; the rows and columns are those
                                    // at which tap (u, v) sees the image, so every read of xb is
                                    // inside it; the tile's sums are inside dw.
                                    unsafe {
                                        K::weight_tile::<OV>(
                                            xb,
                                            &dyt,
                                            cout,
                                            ob,
                                            g,
                                            (u, v),
                                            rows.clone(),
                                            cols.clone(),
                                            (i0, n),
                                            &mut dw[at..at + n * ob_len],
                                        )
                                    }
                                }
                            }
                        }
                    }
                }
            }
            dw
        })
        .collect();
    let total = super::sum_in_order(partials, kk * cout * cin);
    // dW[o, i, t] = total[t, o / OB, i, o % OB]
    let mut out = vec![0f32; cout * cin * kk];
    for t in 0..kk {
        for ob in 0..cout / ob_len {
            for i in 0..cin {
                let sums = &total[((t * (cout / ob_len) + ob) * cin + i) * ob_len..][..ob_len];
                for (l, &value) in sums.iter().enumerate() {
                    out[((ob * ob_len + l) * cin + i) * kk + t] = value;
                }
            }
        }
    }
    out
}

/// The vector kernels of one instruction set: [`kernel::Avx512`] (16 lanes, 32 registers) and
/// [`kernel::Avx2`] (8 lanes, 16 registers). Both add every output's products in the same order
/// (the tile is a set of independent sums, one per output and pixel or input channel), so they
/// give the same values (see the module's doc for the sign of zero); only the number of sums a
/// tile holds differs.
trait Kernels {
    /// f32 lanes of a vector.
    const LANES: usize;
    /// Accumulators per tile: vectors of output channels times pixels (the other registers hold
    /// the weights and the broadcast pixel).
    const ACCUMULATORS: usize;

    /// One tile over one block of `cb` input channels: its pixels' sums in `acc` (`[H W, OV
    /// LANES]`) plus the products of the block's padded image planes `xs` (`[cb, H, W + 2p]`)
    /// and its repacked kernel `w` (`[k k, cb, OV LANES]`).
    ///
    /// # Safety
    /// The CPU has the instruction set; the tile and the kernel rows `rows` see the image (so
    /// every read of `xs` is inside the padded image), and `tile.px` is at most
    /// [`max_px`]`::<Self>(OV)`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const OV: usize>(
        xs: &[f32],
        w: &[f32],
        cb: usize,
        g: Geometry,
        padded: Padded,
        h: usize,
        rows: Range<usize>,
        tile: &Tile,
        acc: &mut [f32],
    );

    /// `to[c, r] = from[r, c]` for `from` `[rows, cols]` and `to` `[cols, rows]`: blocks of
    /// `LANES x LANES` transposed in registers, the rest one value at a time. Writes every value
    /// of `to` once and reads none, so `to` may be uninitialised.
    ///
    /// # Safety
    /// The CPU has the instruction set; `to` is valid for `rows cols` writes.
    unsafe fn transpose(from: &[f32], rows: usize, cols: usize, to: *mut f32);

    /// One weight-gradient tile: `n` input channels from `i0` (at most [`max_px`]`::<Self>(OV)`)
    /// of tap `(u, v)` for the outputs of block `ob`, in `dw` (`[n, OV LANES]`), plus the sums
    /// over output rows `rows` and columns `cols` of `dyt` (`[H W, C_out]`) times the input
    /// pixels they see.
    ///
    /// # Safety
    /// The CPU has the instruction set; the tap sees the image at every pixel of `rows` x `cols`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn weight_tile<const OV: usize>(
        xb: &[f32],
        dyt: &[f32],
        cout: usize,
        ob: usize,
        g: Geometry,
        tap: (usize, usize),
        rows: Range<usize>,
        cols: Range<usize>,
        channels: (usize, usize),
        dw: &mut [f32],
    );
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use super::{Geometry, Kernels, Padded, Tile};
    use std::arch::x86_64::{
        __m256, __m512, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_shuffle_ps,
        _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps,
        _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_storeu_ps, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
    };
    use std::ops::Range;

    /// `$f::<$ov, P>(args)` for `P = $n`, one of the widths listed.
    macro_rules! with_width {
        ($n:expr, [$($p:literal)*], $f:ident::<$ov:ident> $args:tt) => {
            match $n {
                $($p => $f::<$ov, $p> $args,)*
                n => unreachable!("a tile of width {n}"),
            }
        };
    }

    /// The kernels of one instruction set, written once: `$isa` implements [`Kernels`] by the
    /// functions of module `$module`, compiled for `$feature` with vectors `$vec` of `$lanes`
    /// lanes, tiles of the widths listed, and `$transpose_block` for `LANES x LANES` blocks.
    macro_rules! kernels {
        (
            $(#[$doc:meta])*
            $isa:ident in $module:ident: $feature:literal, $vec:ty, lanes $lanes:literal,
            accumulators $acc:literal, widths [$($p:literal)*],
            $load:ident, $store:ident, $set1:ident, $fmadd:ident, $transpose_block:ident
        ) => {
            $(#[$doc])*
            pub(super) struct $isa;

            impl Kernels for $isa {
                const LANES: usize = $lanes;
                const ACCUMULATORS: usize = $acc;

                unsafe fn tile<const OV: usize>(
                    xs: &[f32],
                    w: &[f32],
                    cb: usize,
                    g: Geometry,
                    padded: Padded,
                    h: usize,
                    rows: Range<usize>,
                    tile: &Tile,
                    acc: &mut [f32],
                ) {
                    $module::tile::<OV>(xs, w, cb, g, padded, h, rows, tile, acc)
                }

                unsafe fn transpose(from: &[f32], rows: usize, cols: usize, to: *mut f32) {
                    $module::transpose(from, rows, cols, to)
                }

                unsafe fn weight_tile<const OV: usize>(
                    xb: &[f32],
                    dyt: &[f32],
                    cout: usize,
                    ob: usize,
                    g: Geometry,
                    tap: (usize, usize),
                    rows: Range<usize>,
                    cols: Range<usize>,
                    channels: (usize, usize),
                    dw: &mut [f32],
                ) {
                    $module::weight_tile::<OV>(xb, dyt, cout, ob, g, tap, rows, cols, channels, dw)
                }
            }

            mod $module {
                use super::*;

                const LANES: usize = $lanes;

                #[target_feature(enable = $feature)]
                #[allow(clippy::too_many_arguments)]
                pub(super) unsafe fn tile<const OV: usize>(
                    xs: &[f32],
                    w: &[f32],
                    cb: usize,
                    g: Geometry,
                    padded: Padded,
                    h: usize,
                    rows: Range<usize>,
                    tile: &Tile,
                    acc: &mut [f32],
                ) {
                    with_width!(tile.px, [$($p)*], run::<OV>(xs, w, cb, g, padded, h, rows, tile, acc))
                }

                #[target_feature(enable = $feature)]
                pub(super) unsafe fn transpose(from: &[f32], rows: usize, cols: usize, to: *mut f32) {
                    assert!(from.len() >= rows * cols);
                    let (whole_rows, whole_cols) = (rows / LANES * LANES, cols / LANES * LANES);
                    for r0 in (0..whole_rows).step_by(LANES) {
                        for c0 in (0..whole_cols).step_by(LANES) {
                            let block: [$vec; LANES] =
                                std::array::from_fn(|j| $load(from.as_ptr().add((r0 + j) * cols + c0)));
                            for (l, col) in $transpose_block(block).iter().enumerate() {
                                $store(to.add((c0 + l) * rows + r0), *col);
                            }
                        }
                    }
                    for r in 0..rows {
                        let cs = if r < whole_rows { whole_cols..cols } else { 0..cols };
                        for c in cs {
                            to.add(c * rows + r).write(from[r * cols + c]);
                        }
                    }
                }

                #[target_feature(enable = $feature)]
                #[allow(clippy::too_many_arguments)]
                pub(super) unsafe fn weight_tile<const OV: usize>(
                    xb: &[f32],
                    dyt: &[f32],
                    cout: usize,
                    ob: usize,
                    g: Geometry,
                    tap: (usize, usize),
                    rows: Range<usize>,
                    cols: Range<usize>,
                    channels: (usize, usize),
                    dw: &mut [f32],
                ) {
                    with_width!(
                        channels.1,
                        [$($p)*],
                        weight_run::<OV>(xb, dyt, cout, ob, g, tap, rows, cols, channels.0, dw)
                    )
                }

                /// The forward tile of `P` pixels: for each kernel row and column that sees the
                /// image and each input channel of the block, the `OV` vectors of weights times
                /// each pixel, broadcast.
                #[target_feature(enable = $feature)]
                #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
                unsafe fn run<const OV: usize, const P: usize>(
                    xs: &[f32],
                    w: &[f32],
                    cb: usize,
                    g: Geometry,
                    padded: Padded,
                    h: usize,
                    rows: Range<usize>,
                    tile: &Tile,
                    acc: &mut [f32],
                ) {
                    let (k, d, ob_len) = (g.k, g.d, OV * LANES);
                    let p = (d * (k - 1) / 2) as isize;
                    let at = acc.as_mut_ptr().add((h * g.w + tile.w0) * ob_len);
                    let mut sums: [[$vec; P]; OV] = std::array::from_fn(|q| {
                        std::array::from_fn(|j| $load(at.add(j * ob_len + q * LANES)))
                    });
                    let (xp, wp) = (xs.as_ptr(), w.as_ptr());
                    for u in rows {
                        let hi = (h as isize + (d * u) as isize - p) as usize;
                        for v in tile.taps.clone() {
                            // the padded row's column of output column w0 under kernel column v
                            let wi = tile.w0 + d * v;
                            let mut x = xp.add(hi * padded.cols + wi);
                            let mut ws = wp.add((u * k + v) * cb * ob_len);
                            for _ in 0..cb {
                                let wv: [$vec; OV] = std::array::from_fn(|q| $load(ws.add(q * LANES)));
                                for j in 0..P {
                                    let xv = $set1(*x.add(j));
                                    for q in 0..OV {
                                        sums[q][j] = $fmadd(wv[q], xv, sums[q][j]);
                                    }
                                }
                                x = x.add(padded.plane());
                                ws = ws.add(ob_len);
                            }
                        }
                    }
                    for (q, sums) in sums.iter().enumerate() {
                        for (j, v) in sums.iter().enumerate() {
                            $store(at.add(j * ob_len + q * LANES), *v);
                        }
                    }
                }

                /// The weight-gradient tile of `P` input channels: for each output pixel at
                /// which the tap sees the image, the `OV` vectors of `dy` times each channel's
                /// input pixel, broadcast.
                #[target_feature(enable = $feature)]
                #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
                unsafe fn weight_run<const OV: usize, const P: usize>(
                    xb: &[f32],
                    dyt: &[f32],
                    cout: usize,
                    ob: usize,
                    g: Geometry,
                    (u, v): (usize, usize),
                    rows: Range<usize>,
                    cols: Range<usize>,
                    i0: usize,
                    dw: &mut [f32],
                ) {
                    let (hw, ob_len) = (g.h * g.w, OV * LANES);
                    let p = (g.d * (g.k - 1) / 2) as isize;
                    let (dy_, dx_) = ((g.d * u) as isize - p, (g.d * v) as isize - p);
                    let at = dw.as_mut_ptr();
                    let mut sums: [[$vec; P]; OV] = std::array::from_fn(|q| {
                        std::array::from_fn(|j| $load(at.add(j * ob_len + q * LANES)))
                    });
                    let xp = xb.as_ptr().add(i0 * hw);
                    for h in rows {
                        let hi = (h as isize + dy_) as usize;
                        let mut x = xp.offset((hi * g.w) as isize + cols.start as isize + dx_);
                        let mut d = dyt.as_ptr().add((h * g.w + cols.start) * cout + ob * ob_len);
                        for _ in cols.clone() {
                            let dv: [$vec; OV] = std::array::from_fn(|q| $load(d.add(q * LANES)));
                            for j in 0..P {
                                let xv = $set1(*x.add(j * hw));
                                for q in 0..OV {
                                    sums[q][j] = $fmadd(dv[q], xv, sums[q][j]);
                                }
                            }
                            x = x.add(1);
                            d = d.add(cout);
                        }
                    }
                    for (q, sums) in sums.iter().enumerate() {
                        for (j, s) in sums.iter().enumerate() {
                            $store(at.add(j * ob_len + q * LANES), *s);
                        }
                    }
                }
            }
        };
    }

    kernels!(
        /// AVX-512: 16 lanes; 32 registers, 24 of them sums (tiles of up to 14 pixels, a row of
        /// 28 in two).
        Avx512 in avx512: "avx512f", __m512, lanes 16, accumulators 24, widths [1 2 3 4 5 6 7 8 9 10 11 12 13 14],
        _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, transpose16
    );
    kernels!(
        /// AVX2 with FMA: 8 lanes; 16 registers, 12 of them sums (two vectors of outputs by up
        /// to 6 pixels, the shape of the `gemm` crate's own AVX2 kernel).
        Avx2 in avx2: "avx2,fma", __m256, lanes 8, accumulators 12, widths [1 2 3 4 5 6 7 8 9 10 11 12],
        _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, transpose8
    );

    /// The 16 x 16 transpose of 16 vectors: `out[l][j] = rows[j][l]`, in four rounds of
    /// shuffles. Write `L_k` for a vector's 128-bit lane `k` (elements `4k .. 4k + 4`).
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved, elements 0, 1 and 2, 3 of each lane
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // u[4g + m], lane k: element 4k + m of rows 4g .. 4g + 4
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, m) = (i / 4, i % 4);
            let (a, b) = (t[4 * g + m / 2], t[4 * g + 2 + m / 2]);
            if m % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(a, b)
            } else {
                _mm512_shuffle_ps::<0xEE>(a, b)
            }
        });
        // v[8h + 4s + m]: lanes 0 and 2 (s = 0) or 1 and 3 (s = 1) of u[8h + m], then of
        // u[8h + 4 + m]
        let v: [__m512; 16] = std::array::from_fn(|i| {
            let (h, s, m) = (i / 8, (i / 4) % 2, i % 4);
            let (a, b) = (u[8 * h + m], u[8 * h + 4 + m]);
            if s == 0 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xDD>(a, b)
            }
        });
        // out[8 s2 + 4 s1 + m] = (L_k of u[m], u[4 + m], u[8 + m], u[12 + m]), k = 2 s2 + s1:
        // column 4k + m of all 16 rows
        std::array::from_fn(|o| {
            let (s2, s1, m) = (o / 8, (o / 4) % 2, o % 4);
            let (a, b) = (v[4 * s1 + m], v[8 + 4 * s1 + m]);
            if s2 == 0 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xDD>(a, b)
            }
        })
    }

    /// The 8 x 8 transpose of 8 vectors: `out[l][j] = rows[j][l]`, in three rounds of shuffles.
    /// Write `H_k` for a vector's 128-bit half `k` (elements `4k .. 4k + 4`).
    #[target_feature(enable = "avx2")]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved, elements 0, 1 and 2, 3 of each half
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        // u[4g + m], half k: element 4k + m of rows 4g .. 4g + 4
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (g, m) = (i / 4, i % 4);
            let (a, b) = (t[4 * g + m / 2], t[4 * g + 2 + m / 2]);
            if m % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(a, b)
            } else {
                _mm256_shuffle_ps::<0xEE>(a, b)
            }
        });
        // out[4k + m] = (H_k of u[m], H_k of u[4 + m]): column 4k + m of all 8 rows
        std::array::from_fn(|o| {
            let (k, m) = (o / 4, o % 4);
            if k == 0 {
                _mm256_permute2f128_ps::<0x20>(u[m], u[4 + m])
            } else {
                _mm256_permute2f128_ps::<0x31>(u[m], u[4 + m])
            }
        })
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod kernel {
    use super::{Geometry, Kernels, Padded, Tile};
    use std::ops::Range;

    /// Stands in for the x86-64 kernels elsewhere: never called (`applies` is false there).
    macro_rules! absent {
        ($($isa:ident)*) => {$(
            pub(super) struct $isa;
            impl Kernels for $isa {
                const LANES: usize = 16;
                const ACCUMULATORS: usize = 24;
                unsafe fn tile<const OV: usize>(
                    _: &[f32],
                    _: &[f32],
                    _: usize,
                    _: Geometry,
                    _: Padded,
                    _: usize,
                    _: Range<usize>,
                    _: &Tile,
                    _: &mut [f32],
                ) {
                    unreachable!("the direct convolution is taken only on x86-64 (`applies`)")
                }
                unsafe fn transpose(_: &[f32], _: usize, _: usize, _: *mut f32) {
                    unreachable!("the direct convolution is taken only on x86-64 (`applies`)")
                }
                unsafe fn weight_tile<const OV: usize>(
                    _: &[f32],
                    _: &[f32],
                    _: usize,
                    _: usize,
                    _: Geometry,
                    _: (usize, usize),
                    _: Range<usize>,
                    _: Range<usize>,
                    _: (usize, usize),
                    _: &mut [f32],
                ) {
                    unreachable!("the direct convolution is taken only on x86-64 (`applies`)")
                }
            }
        )*};
    }
    absent!(Avx512 Avx2);
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn transposes<K: Kernels>() {
        for (rows, cols) in [(16, 16), (8, 8), (49, 32), (196, 64), (5, 16), (32, 196), (17, 23)] {
            let from: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut to = vec![-1f32; rows * cols];
            // SAFETY: the caller checked K's instruction set; `to` holds rows cols values.
            unsafe { K::transpose(&from, rows, cols, to.as_mut_ptr()) };
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        to[c * rows + r],
                        from[r * cols + c],
                        "{} lanes, {rows} x {cols}: row {r} column {c}",
                        K::LANES
                    );
                }
            }
        }
    }

    #[test]
    fn transpose_transposes_whole_blocks_and_the_rest() {
        if std::is_x86_feature_detected!("avx512f") {
            transposes::<kernel::Avx512>();
        }
        if std::is_x86_feature_detected!("avx2") {
            transposes::<kernel::Avx2>();
        }
    }

    /// Values of a simple deterministic sequence in [-1, 1) (no RNG needed for a bit comparison).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// The two instruction sets add every product in the same order, so they give the same bits
    /// (a claim of the module's doc, and why the MNIST recipe's runs do not depend on the CPU's
    /// vector width). Runs where the CPU has both.
    #[test]
    fn avx512_and_avx2_give_the_same_bits() {
        if !(std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma"))
        {
            return;
        }
        for (b, cin, cout, h, k, d) in [(3, 16, 32, 14, 3, 4), (2, 32, 16, 28, 3, 1), (1, 40, 32, 13, 5, 1)] {
            let g = Geometry { cin, h, w: h, k, d };
            let x = values(b * cin * h * h, 1);
            let wt = values(cout * cin * k * k, 2);
            let bias = values(cout, 3);
            let dy = values(b * cout * h * h, 4);
            assert_eq!(
                forward_with::<kernel::Avx512>(&x, &wt, Some(&bias), b, cout, g),
                forward_with::<kernel::Avx2>(&x, &wt, Some(&bias), b, cout, g),
                "forward, {cin} -> {cout}, {h}x{h}, k {k}, d {d}"
            );
            assert_eq!(
                weight_grad_with::<kernel::Avx512>(&x, &dy, b, cout, g),
                weight_grad_with::<kernel::Avx2>(&x, &dy, b, cout, g),
                "weight gradient, {cin} -> {cout}, {h}x{h}, k {k}, d {d}"
            );
        }
    }
}
