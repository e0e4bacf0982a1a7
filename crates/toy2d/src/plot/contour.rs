//! Contour lines by marching squares: for a field sampled at the cell centres of a [`Grid`], the
//! segments where it crosses `level`, found square by square with linear interpolation on edges.
use super::Grid;
use ndarray::Array2;

/// A segment of a contour line, two points in data coordinates.
pub type Segment = [(f64, f64); 2];

/// The segments of the iso-line `f = level` of `values` (`(n, n)`, indexed `[iy, ix]`).
pub fn iso_lines(grid: &Grid, values: &Array2<f64>, level: f64) -> Vec<Segment> {
    let n = values.nrows().min(values.ncols());
    let mut out = Vec::new();
    if n < 2 {
        return out;
    }
    // Where along the edge from value a to value b the field equals the level (0..1).
    let t = |a: f64, b: f64| {
        if (b - a).abs() < 1e-300 {
            0.5
        } else {
            (level - a) / (b - a)
        }
    };
    for iy in 0..n - 1 {
        for ix in 0..n - 1 {
            let (x0, x1, y0, y1) = (
                grid.center(ix),
                grid.center(ix + 1),
                grid.center(iy),
                grid.center(iy + 1),
            );
            // corners counter-clockwise: (x0,y0), (x1,y0), (x1,y1), (x0,y1)
            let v = [
                values[[iy, ix]],
                values[[iy, ix + 1]],
                values[[iy + 1, ix + 1]],
                values[[iy + 1, ix]],
            ];
            if v.iter().any(|a| !a.is_finite()) {
                continue;
            }
            let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
            // the crossing points on the four edges
            let mut hits = Vec::with_capacity(4);
            for e in 0..4 {
                let (a, b) = (v[e], v[(e + 1) % 4]);
                if (a < level) != (b < level) {
                    let s = t(a, b);
                    let (p, q) = (corners[e], corners[(e + 1) % 4]);
                    hits.push((p.0 + s * (q.0 - p.0), p.1 + s * (q.1 - p.1)));
                }
            }
            match hits.len() {
                2 => out.push([hits[0], hits[1]]),
                // a saddle: pair the crossings by the centre value
                4 => {
                    let centre = v.iter().sum::<f64>() / 4.0;
                    if (centre < level) == (v[0] < level) {
                        out.push([hits[0], hits[3]]);
                        out.push([hits[1], hits[2]]);
                    } else {
                        out.push([hits[0], hits[1]]);
                        out.push([hits[2], hits[3]]);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circle_contour_lies_on_the_circle() {
        // f(x, y) = x^2 + y^2; the iso-line f = 4 is the circle of radius 2. Linear interpolation
        // on cells of side 0.1 puts the points within ~cell^2 / (2 r) = 0.0025 of it.
        let g = Grid::square(-3.0, 3.0, 60);
        let p = g.points();
        let f: Vec<f64> = p.outer_iter().map(|r| r[0] * r[0] + r[1] * r[1]).collect();
        let segs = iso_lines(&g, &g.reshape(&f).unwrap(), 4.0);
        assert!(segs.len() > 100);
        for s in &segs {
            for (x, y) in s {
                let r = (x * x + y * y).sqrt();
                assert!((r - 2.0).abs() < 0.01, "{r}");
            }
        }
        // nothing above the maximum
        assert!(iso_lines(&g, &g.reshape(&f).unwrap(), 100.0).is_empty());
    }
}
