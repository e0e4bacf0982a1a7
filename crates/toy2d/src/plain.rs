//! Plain `f32` buffers where candle's ops cost more than the arithmetic (the written-out training
//! steps, the folded sampler): the matrix product as candle's CPU matmul calls `gemm`, column sums
//! as the layers' bias gradient adds them, and a parameter's values read in place.
use candle_core::{bail, Result, Storage, Tensor};
use gemm::{gemm, Parallelism};

/// `sum_n rows[n, j]` for rows of `width` values, added row after row.
pub fn column_sums(rows: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0f32; width];
    for row in rows.chunks_exact(width) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    sums
}

/// `dst (m x n) = lhs (m x k) rhs (k x n)`, each factor given as its values and its (row,
/// column) strides: the `gemm` call candle's CPU matmul makes for the same shapes and strides,
/// so the same bits.
pub fn matmul(
    threads: usize,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs;
    assert!(
        dst.len() == m * n
            && (m * k == 0 || last(m, k, lhs_rs, lhs_cs) < lhs.len())
            && (k * n == 0 || last(k, n, rhs_rs, rhs_cs) < rhs.len()),
        "matmul: buffers too small for ({m} x {k}) ({k} x {n})"
    );
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every index the product reads or writes is within the slices (checked above).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// A tensor's values, read in place (the storage stays locked for reading while this lives): the
/// parameters of a written-out step, which no one writes during it.
pub struct Values<'a, G: std::ops::Deref<Target = Storage>> {
    storage: G,
    layout: &'a candle_core::Layout,
}

impl<G: std::ops::Deref<Target = Storage>> Values<'_, G> {
    pub fn get(&self) -> Result<&[f32]> {
        match &*self.storage {
            Storage::Cpu(s) => workbench::storage::f32_slice("plain", s, self.layout),
            _ => bail!("expected a CPU tensor"),
        }
    }
}

/// [`Values`] of a contiguous `f32` CPU tensor ([`Values::get`] checks).
pub fn read(t: &Tensor) -> Result<Values<'_, impl std::ops::Deref<Target = Storage> + '_>> {
    let (storage, layout) = t.storage_and_layout();
    Ok(Values { storage, layout })
}
