//! A Gaussian mixture with diagonal covariances and its exact score.
//!
//! `p(x) = sum_k w_k N(x; mu_k, diag(v_k))`. With `g_k(x) = -(x - mu_k) / v_k` (the score of
//! component `k`) and the responsibilities `r_k(x) = w_k N_k(x) / p(x)`:
//!
//! - score: `s(x) = grad log p(x) = sum_k r_k(x) g_k(x)`;
//! - divergence: `tr grad s(x) = sum_k r_k (||g_k||^2 - sum_d 1/v_kd) - ||s||^2`,
//!   from `d r_k / d x_d = r_k (g_kd - s_d)` and `d g_kd / d x_d = -1/v_kd`.
//!
//! All of it goes through `log N_k` and log-sum-exp, so it stays finite far (30+ standard
//! deviations) from every mode, where `p` itself underflows.
use crate::GmmError;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// `ln(2 pi)`.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A mixture of Gaussians with diagonal covariances in `D` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    weights: Array1<f64>,
    means: Array2<f64>,
    variances: Array2<f64>,
    log_weights: Array1<f64>,
    /// `-1/2 sum_d ln(2 pi v_kd)` for each component.
    log_norms: Array1<f64>,
}

impl GaussianMixture {
    /// A mixture from weights `(K)`, means `(K, D)` and variances `(K, D)`.
    ///
    /// Weights must be positive and sum to 1 within `1e-9`; variances finite and `> 0`.
    pub fn new(weights: Array1<f64>, means: Array2<f64>, variances: Array2<f64>) -> Result<Self, GmmError> {
        let k = weights.len();
        if k == 0 {
            return Err(GmmError::Weights("expected at least one component".into()));
        }
        if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w > 0.0)) {
            return Err(GmmError::Weights(format!(
                "weight {i} is {w}; expected a finite value > 0"
            )));
        }
        let total = weights.sum();
        if (total - 1.0).abs() > 1e-9 {
            return Err(GmmError::Weights(format!("they sum to {total}; expected 1")));
        }
        if means.nrows() != k || means.ncols() == 0 {
            return Err(GmmError::Shape {
                field: "means",
                expected: format!("({k}, D) with D >= 1, one row per weight"),
                got: format!("{:?}", means.shape()),
            });
        }
        if variances.shape() != means.shape() {
            return Err(GmmError::Shape {
                field: "variances",
                expected: format!("{:?}, the shape of `means`", means.shape()),
                got: format!("{:?}", variances.shape()),
            });
        }
        for ((c, d), &v) in variances.indexed_iter() {
            if !(v.is_finite() && v > 0.0) {
                return Err(GmmError::Variance {
                    component: c,
                    dim: d,
                    value: v,
                });
            }
        }
        for ((c, _), &m) in means.indexed_iter() {
            if !m.is_finite() {
                return Err(GmmError::Mean { component: c, value: m });
            }
        }
        let log_weights = weights.mapv(f64::ln);
        let log_norms = variances.map_axis(Axis(1), |v| -0.5 * v.iter().map(|vd| LN_2PI + vd.ln()).sum::<f64>());
        Ok(Self {
            weights,
            means,
            variances,
            log_weights,
            log_norms,
        })
    }

    /// An isotropic mixture: component `k` is `N(mu_k, variances[k] I)`.
    pub fn isotropic(weights: &[f64], means: Array2<f64>, variances: &[f64]) -> Result<Self, GmmError> {
        if variances.len() != weights.len() {
            return Err(GmmError::Shape {
                field: "variances",
                expected: format!("{} values, one per weight", weights.len()),
                got: format!("{} values", variances.len()),
            });
        }
        let d = means.ncols();
        let vars = Array2::from_shape_fn((variances.len(), d), |(k, _)| variances[k]);
        Self::new(Array1::from(weights.to_vec()), means, vars)
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.means.ncols()
    }
    /// Number of components `K`.
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }
    /// Mixture weights `w_k`.
    pub fn weights(&self) -> ArrayView1<'_, f64> {
        self.weights.view()
    }
    /// Means `mu_k`, one row per component.
    pub fn means(&self) -> ArrayView2<'_, f64> {
        self.means.view()
    }
    /// Diagonal variances `v_k`, one row per component.
    pub fn variances(&self) -> ArrayView2<'_, f64> {
        self.variances.view()
    }

    fn check_points(&self, x: &ArrayView2<f64>) {
        // Points come from the program, not from a file: a wrong width is a programming error.
        assert_eq!(
            x.ncols(),
            self.dim(),
            "points have {} columns, the mixture has D = {}",
            x.ncols(),
            self.dim()
        );
    }

    /// `log(w_k N_k(x_n))` for every point and component, shape `(N, K)`.
    fn joint_log(&self, x: &ArrayView2<f64>) -> Array2<f64> {
        self.check_points(x);
        let mut out = Array2::zeros((x.nrows(), self.n_components()));
        for (n, xn) in x.outer_iter().enumerate() {
            for k in 0..self.n_components() {
                // log N_k(x) = -1/2 sum_d (x_d - mu_kd)^2 / v_kd - 1/2 sum_d ln(2 pi v_kd)
                let mut quad = 0.0;
                for d in 0..self.dim() {
                    let diff = xn[d] - self.means[[k, d]];
                    quad += diff * diff / self.variances[[k, d]];
                }
                out[[n, k]] = self.log_weights[k] + self.log_norms[k] - 0.5 * quad;
            }
        }
        out
    }

    /// `log p(x)` for each row of `x` (log-sum-exp over components).
    pub fn log_density(&self, x: ArrayView2<f64>) -> Array1<f64> {
        self.joint_log(&x).map_axis(Axis(1), |row| log_sum_exp(row))
    }

    /// `p(x)` for each row of `x` (underflows to 0 far from the modes; use `log_density` there).
    pub fn density(&self, x: ArrayView2<f64>) -> Array1<f64> {
        self.log_density(x).mapv(f64::exp)
    }

    /// Responsibilities `r_k(x) = w_k N_k(x) / p(x)`, shape `(N, K)`; each row sums to 1.
    pub fn responsibilities(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut j = self.joint_log(&x);
        for mut row in j.outer_iter_mut() {
            let lse = log_sum_exp(row.view());
            row.mapv_inplace(|v| (v - lse).exp());
        }
        j
    }

    /// The exact score `s(x) = grad_x log p(x) = sum_k r_k(x) (-(x - mu_k) / v_k)`, shape `(N, D)`.
    pub fn score(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let r = self.responsibilities(x.view());
        let mut s = Array2::zeros(x.raw_dim());
        for (n, xn) in x.outer_iter().enumerate() {
            for k in 0..self.n_components() {
                for d in 0..self.dim() {
                    s[[n, d]] += r[[n, k]] * -(xn[d] - self.means[[k, d]]) / self.variances[[k, d]];
                }
            }
        }
        s
    }

    /// The exact divergence of the score, `tr grad_x s(x)`, for each row of `x`:
    /// `sum_k r_k (||g_k||^2 - sum_d 1/v_kd) - ||s||^2` with `g_k = -(x - mu_k)/v_k`.
    pub fn score_divergence(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let r = self.responsibilities(x.view());
        let s = self.score(x.view());
        let mut out = Array1::zeros(x.nrows());
        for (n, xn) in x.outer_iter().enumerate() {
            let mut acc = 0.0;
            for k in 0..self.n_components() {
                let mut g2 = 0.0;
                let mut inv_v = 0.0;
                for d in 0..self.dim() {
                    let g = -(xn[d] - self.means[[k, d]]) / self.variances[[k, d]];
                    g2 += g * g;
                    inv_v += 1.0 / self.variances[[k, d]];
                }
                acc += r[[n, k]] * (g2 - inv_v);
            }
            out[n] = acc - s.row(n).dot(&s.row(n));
        }
        out
    }

    /// `n` samples, shape `(n, D)`: a component `k ~ w`, then `mu_k + sqrt(v_k) * z`.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Array2<f64> {
        let mut out = Array2::zeros((n, self.dim()));
        for mut row in out.outer_iter_mut() {
            let k = self.draw_component(rng);
            for d in 0..self.dim() {
                let z: f64 = StandardNormal.sample(rng);
                row[d] = self.means[[k, d]] + self.variances[[k, d]].sqrt() * z;
            }
        }
        out
    }

    fn draw_component<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for (k, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return k;
            }
        }
        self.n_components() - 1
    }

    /// The mixture convolved with `N(0, sigma^2 I)`: `p_sigma(x~) = int p(x) N(x~; x, sigma^2 I) dx`
    /// `= sum_k w_k N(x~; mu_k, diag(v_k) + sigma^2 I)`. Its score is the exact noise-conditional
    /// score `grad log p_sigma` that NCSN learns at level `sigma`.
    pub fn perturbed(&self, sigma: f64) -> Result<Self, GmmError> {
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(GmmError::Sigma(sigma));
        }
        Self::new(
            self.weights.clone(),
            self.means.clone(),
            self.variances.mapv(|v| v + sigma * sigma),
        )
    }

    /// The fraction of `samples` assigned to each component, a sample going to the component with
    /// the largest responsibility. On well-separated modes this estimates the mode weights.
    pub fn mode_weights(&self, samples: ArrayView2<f64>) -> Vec<f64> {
        let mut counts = vec![0usize; self.n_components()];
        let r = self.responsibilities(samples.view());
        for row in r.outer_iter() {
            let (k, _) = row.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |best, (k, &v)| if v > best.1 { (k, v) } else { best },
            );
            counts[k] += 1;
        }
        let n = samples.nrows().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / n).collect()
    }
}

/// `log sum_i exp(a_i)`, shifted by the maximum so that nothing overflows or underflows to -inf.
fn log_sum_exp(a: ArrayView1<f64>) -> f64 {
    let m = a.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + a.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}
