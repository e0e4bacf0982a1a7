//! The score field of the paper's mixture (Chapter 1): no learning and no randomness, only the
//! exact `s(x) = grad_x log p(x)` of `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)`.
//!
//! The score of a mixture is the responsibility-weighted average of the component scores,
//! `s(x) = sum_k r_k(x) (-(x - mu_k))` (unit variances), so:
//!
//! - at a mode it vanishes (one `r_k` is ~1 and `x = mu_k`);
//! - where `r_small = r_large = 1/2` it turns from one mode to the other. With
//!   `log r_small/r_large = log(w_small/w_large) - (||x - mu_small||^2 - ||x - mu_large||^2)/2` and
//!   `||x - mu_small||^2 - ||x - mu_large||^2 = 20 (x_1 + x_2)`, that is the line
//!   `x_1 + x_2 = log(w_small / w_large) / 10 = -0.139`;
//! - at the origin, equally far from both modes, `r = (0.2, 0.8)` (the weights) and
//!   `s(0) = 0.2 (-5, -5) + 0.8 (5, 5) = (3, 3)`.
//!
//! The report measures each of these on the mixture itself (responsibilities and scores from
//! [`gmm::GaussianMixture`]), so the book's numbers come from the code, and it keeps the cut of
//! `log p` and of the score along the diagonal `x = u (1, 1)/sqrt 2` that the figure draws.
use super::{fmt_num, Context, Table};
use anyhow::{ensure, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use ndarray::{array, Array2};
use serde::Serialize;

/// The square of the field panel.
pub const BOUNDS: (f64, f64) = (-10.0, 10.0);
/// Arrows per side of the field panel.
pub const ARROW_GRID: usize = 21;
/// The diagonal cut: `u` in `[-CUT, CUT]`.
pub const CUT: f64 = 12.0;
/// Points of the diagonal cut.
pub const CUT_POINTS: usize = 961;

/// What the experiment found; serialised as `scores.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The mixture's weights, small mode first.
    pub weights: Vec<f64>,
    /// The modes, small mode first.
    pub means: Vec<Vec<f64>>,
    /// `||s||` at each mode (zero up to rounding).
    pub score_norm_at_modes: Vec<f64>,
    /// `s(0)`, the score at the origin, halfway between the modes.
    pub score_at_origin: Vec<f64>,
    /// The responsibilities `r_k(0)` at the origin (equal to the weights).
    pub responsibilities_at_origin: Vec<f64>,
    /// `x_1 + x_2` on the line where `r_small = r_large = 1/2` (bisection along the diagonal).
    pub equal_responsibility_sum: f64,
    /// The same from the closed form `log(w_small / w_large) / 10`.
    pub equal_responsibility_sum_formula: f64,
    /// The score's component along the diagonal `(1,1)/sqrt 2`, half a unit before and after
    /// the line of equal responsibilities: it turns from one mode to the other.
    pub diagonal_score_across_boundary: Vec<f64>,
    /// The largest `||s||` on the arrow grid of the figure (over `[-10, 10]^2`).
    pub max_score_norm_on_grid: f64,
    /// Not in the JSON: `u` along the diagonal cut `x = u (1,1)/sqrt 2`.
    #[serde(skip)]
    pub cut_u: Vec<f64>,
    /// Not in the JSON: `log p` along the cut.
    #[serde(skip)]
    pub cut_log_p: Vec<f64>,
    /// Not in the JSON: `s(x) . (1,1)/sqrt 2` along the cut, the slope of the curve above.
    #[serde(skip)]
    pub cut_score: Vec<f64>,
}

/// `x = u (1, 1) / sqrt 2` for each `u`.
fn on_diagonal(u: &[f64]) -> Array2<f64> {
    let c = std::f64::consts::FRAC_1_SQRT_2;
    Array2::from_shape_fn((u.len(), 2), |(i, _)| u[i] * c)
}

/// The score's component along the diagonal at each `u`.
fn diagonal_score(p: &GaussianMixture, u: &[f64]) -> Vec<f64> {
    let c = std::f64::consts::FRAC_1_SQRT_2;
    p.score(on_diagonal(u).view())
        .outer_iter()
        .map(|s| c * (s[0] + s[1]))
        .collect()
}

/// `u` where the small mode's responsibility crosses 1/2 along the diagonal, by bisection on
/// `[-5 sqrt 2, 5 sqrt 2]` (between the modes it falls from ~1 to ~0).
fn equal_responsibility(p: &GaussianMixture) -> Result<f64> {
    let r_small = |u: f64| p.responsibilities(on_diagonal(&[u]).view())[[0, 0]];
    let (mut lo, mut hi) = (-5.0 * 2f64.sqrt(), 5.0 * 2f64.sqrt());
    ensure!(
        r_small(lo) > 0.5 && r_small(hi) < 0.5,
        "the small mode's responsibility does not cross 1/2 between the modes"
    );
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if r_small(mid) > 0.5 {
            lo = mid
        } else {
            hi = mid
        }
    }
    Ok(0.5 * (lo + hi))
}

/// Runs the experiment.
pub fn compute(_ctx: &Context) -> Result<Report> {
    let p = paper_mixture();
    let means = p.means().to_owned();
    let norms = p.score(means.view()).outer_iter().map(|s| s.dot(&s).sqrt()).collect();
    let origin = array![[0.0, 0.0]];
    let u_half = equal_responsibility(&p)?;
    let w = p.weights();
    let grid = crate::plot::Grid::square(BOUNDS.0, BOUNDS.1, ARROW_GRID).points();
    let max_norm = p
        .score(grid.view())
        .outer_iter()
        .map(|s| s.dot(&s).sqrt())
        .fold(0.0, f64::max);
    let cut_u: Vec<f64> = (0..CUT_POINTS)
        .map(|i| -CUT + 2.0 * CUT * i as f64 / (CUT_POINTS - 1) as f64)
        .collect();
    Ok(Report {
        weights: w.to_vec(),
        means: means.outer_iter().map(|m| m.to_vec()).collect(),
        score_norm_at_modes: norms,
        score_at_origin: p.score(origin.view()).row(0).to_vec(),
        responsibilities_at_origin: p.responsibilities(origin.view()).row(0).to_vec(),
        // x_1 + x_2 = sqrt 2 u on the diagonal
        equal_responsibility_sum: 2f64.sqrt() * u_half,
        equal_responsibility_sum_formula: (w[0] / w[1]).ln() / 10.0,
        diagonal_score_across_boundary: diagonal_score(&p, &[u_half - 0.5, u_half + 0.5]),
        max_score_norm_on_grid: max_norm,
        cut_log_p: p.log_density(on_diagonal(&cut_u).view()).to_vec(),
        cut_score: diagonal_score(&p, &cut_u),
        cut_u,
    })
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            "scores: the exact score field of the 0.2/0.8 mixture",
            &["quantity", "value"],
        );
        let v = |x: &[f64]| format!("({})", x.iter().map(|v| fmt_num(*v)).collect::<Vec<_>>().join(", "));
        table.row(vec!["||s|| at the modes".into(), v(&self.score_norm_at_modes)]);
        table.row(vec!["s(0)".into(), v(&self.score_at_origin)]);
        table.row(vec!["r(0)".into(), v(&self.responsibilities_at_origin)]);
        table.row(vec![
            "x₁ + x₂ where r = 1/2 (bisection, formula)".into(),
            v(&[self.equal_responsibility_sum, self.equal_responsibility_sum_formula]),
        ]);
        table.row(vec![
            "diagonal score 0.5 before, after that line".into(),
            v(&self.diagonal_score_across_boundary),
        ]);
        table.row(vec![
            "max ||s|| on [-10,10]²".into(),
            fmt_num(self.max_score_norm_on_grid),
        ]);
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_has_the_closed_form_landmarks() {
        let r = compute(&crate::experiments::tests::context(0)).unwrap();
        // The modes are stationary points: the score there is zero up to rounding (the other
        // component's responsibility is 4 e^-100 or e^-100 / 4 and its pull 14 units long).
        assert!(
            r.score_norm_at_modes.iter().all(|n| *n < 1e-12),
            "{:?}",
            r.score_norm_at_modes
        );
        // At the origin r = weights and s = 0.2 (-5, -5) + 0.8 (5, 5) = (3, 3).
        for (a, b) in r.responsibilities_at_origin.iter().zip([0.2, 0.8]) {
            assert!((a - b).abs() < 1e-12, "{a}");
        }
        assert!(
            r.score_at_origin.iter().all(|s| (s - 3.0).abs() < 1e-12),
            "{:?}",
            r.score_at_origin
        );
        // Bisection to 1e-15 against ln(1/4)/10 = -0.1386.
        assert!((r.equal_responsibility_sum - r.equal_responsibility_sum_formula).abs() < 1e-9);
        assert!((r.equal_responsibility_sum + 0.138_629).abs() < 1e-6);
        // Half a unit before the line the small mode pulls back (negative diagonal component),
        // half a unit after the large mode pulls forward: near -(u + 5 sqrt 2) and
        // -(u - 5 sqrt 2) weighted by r, about -6 and +6.
        let [before, after] = r.diagonal_score_across_boundary[..] else {
            panic!()
        };
        assert!(before < -5.0 && after > 5.0, "{before} {after}");
        // The cut's score is the derivative of its log p (central differences on the cut).
        let du = r.cut_u[1] - r.cut_u[0];
        for i in (1..r.cut_u.len() - 1).step_by(40) {
            let fd = (r.cut_log_p[i + 1] - r.cut_log_p[i - 1]) / (2.0 * du);
            // error of a central difference: du^2/6 |f'''|, |f'''| <= ~1e3 only near the
            // boundary, where the sampled i never lands closer than ~du
            assert!(
                (fd - r.cut_score[i]).abs() < 0.05 * (1.0 + r.cut_score[i].abs()),
                "{i}: {fd} vs {}",
                r.cut_score[i]
            );
        }
    }
}
