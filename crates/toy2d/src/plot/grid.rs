//! A regular grid of points over a square `[lo, hi]^2`, where fields are evaluated for plots.
use anyhow::{bail, Result};
use ndarray::Array2;

/// `n x n` cell centres over `[lo, hi]^2`; point `(row iy, column ix)` is at index `iy * n + ix`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Lower edge of the square.
    pub lo: f64,
    /// Upper edge of the square.
    pub hi: f64,
    /// Cells per side.
    pub n: usize,
}

impl Grid {
    /// A grid of `n x n` cells over `[lo, hi]^2`.
    pub fn square(lo: f64, hi: f64, n: usize) -> Self {
        Self { lo, hi, n: n.max(1) }
    }

    /// Side length of a cell.
    pub fn cell(&self) -> f64 {
        (self.hi - self.lo) / self.n as f64
    }

    /// The centre coordinate of cell `i` along an axis.
    pub fn center(&self, i: usize) -> f64 {
        self.lo + (i as f64 + 0.5) * self.cell()
    }

    /// All cell centres, `(n * n, 2)`, row-major in `(iy, ix)`.
    pub fn points(&self) -> Array2<f64> {
        Array2::from_shape_fn((self.n * self.n, 2), |(k, d)| {
            let (iy, ix) = (k / self.n, k % self.n);
            if d == 0 {
                self.center(ix)
            } else {
                self.center(iy)
            }
        })
    }

    /// Reshapes one value per point (in [`Grid::points`] order) to `(n, n)` indexed `[iy, ix]`;
    /// an error unless there are exactly `n * n` values.
    pub fn reshape(&self, values: &[f64]) -> Result<Array2<f64>> {
        if values.len() != self.n * self.n {
            bail!(
                "figure grid: expected {} values ({n} x {n} cells), got {}",
                self.n * self.n,
                values.len(),
                n = self.n
            );
        }
        Ok(Array2::from_shape_fn((self.n, self.n), |(iy, ix)| {
            values[iy * self.n + ix]
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_cell_centres_in_row_major_order() {
        let g = Grid::square(-1.0, 1.0, 4);
        let p = g.points();
        assert_eq!(p.nrows(), 16);
        assert_eq!((p[[0, 0]], p[[0, 1]]), (-0.75, -0.75));
        // index 1 moves along x, index 4 along y
        assert_eq!((p[[1, 0]], p[[1, 1]]), (-0.25, -0.75));
        assert_eq!((p[[4, 0]], p[[4, 1]]), (-0.75, -0.25));
        let v: Vec<f64> = (0..16).map(|k| k as f64).collect();
        assert_eq!(g.reshape(&v).unwrap()[[1, 0]], 4.0);
        let e = g.reshape(&v[1..]).unwrap_err().to_string();
        assert!(e.contains("expected 16 values") && e.contains("got 15"), "{e}");
    }
}
