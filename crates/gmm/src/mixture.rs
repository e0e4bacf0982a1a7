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
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
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
    /// The score kernel's constants, contiguous (component-major): `ln w_k - 1/2 sum_d ln(2 pi v_kd)`,
    /// `mu_kd` and `1 / v_kd`.
    kernel: Kernel,
}

/// What [`GaussianMixture::score_point`] reads, laid out for one pass per point.
#[derive(Debug, Clone, PartialEq)]
struct Kernel {
    log_coef: Vec<f64>,
    means: Vec<f64>,
    inv_var: Vec<f64>,
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
        let kernel = Kernel {
            log_coef: (&log_weights + &log_norms).to_vec(),
            means: means.iter().copied().collect(), // logical (row-major) order, whatever the strides
            inv_var: variances.iter().map(|v| 1.0 / v).collect(),
        };
        Ok(Self {
            weights,
            means,
            variances,
            log_weights,
            log_norms,
            kernel,
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
        let mut s = Array2::zeros(x.raw_dim());
        self.score_into(x, s.view_mut());
        s
    }

    /// [`GaussianMixture::score`] written into `out` (shape `(N, D)`), allocating nothing: the
    /// form a sampler calls at every step.
    pub fn score_into(&self, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
        self.check_points(&x);
        assert_eq!(out.dim(), x.dim(), "score_into: `out` must have the shape of `x`");
        match (x.as_slice(), out.as_slice_mut()) {
            (Some(xs), Some(os)) => {
                let d = self.dim();
                for (xn, sn) in xs.chunks_exact(d).zip(os.chunks_exact_mut(d)) {
                    self.score_point(xn, sn);
                }
            }
            (_, _) => {
                // Strided views: copy each row (rare; the samplers pass contiguous arrays).
                let mut xn = vec![0.0; self.dim()];
                let mut sn = vec![0.0; self.dim()];
                for (row, mut orow) in x.outer_iter().zip(out.outer_iter_mut()) {
                    xn.iter_mut().zip(row.iter()).for_each(|(a, b)| *a = *b);
                    self.score_point(&xn, &mut sn);
                    orow.iter_mut().zip(&sn).for_each(|(a, b)| *a = *b);
                }
            }
        }
    }

    /// The score at one point `x` (length `D`) into `out`, in two passes over the components and
    /// no temporaries. With `l_k = ln w_k + ln N_k(x)`
    /// `= ln w_k - 1/2 sum_d ln(2 pi v_kd) - 1/2 sum_d (x_d - mu_kd)^2 / v_kd`:
    ///
    /// 1. `m = max_k l_k`;
    /// 2. `e_k = exp(l_k - m)` (in `(0, 1]`, no overflow; one of them is exactly 1), and
    ///    `s_d = sum_k e_k g_kd / sum_k e_k` with `g_kd = -(x_d - mu_kd) / v_kd`: the
    ///    responsibilities `r_k = e_k / sum_j e_j` applied without being stored.
    ///
    /// For the two-component mixture of Fig. 3 that is one `exp` per point (`exp(0)` is skipped).
    #[inline]
    pub fn score_point(&self, x: &[f64], out: &mut [f64]) {
        assert!(
            x.len() == self.dim() && out.len() == x.len(),
            "score_point: expected D values"
        );
        match x.len() {
            // The same code with D known to the compiler (the 2D toys): loops unrolled.
            2 => self.score_point_d(x, out, 2),
            d => self.score_point_d(x, out, d),
        }
    }

    #[inline(always)]
    fn score_point_d(&self, x: &[f64], out: &mut [f64], d: usize) {
        let (x, out) = (&x[..d], &mut out[..d]);
        let Kernel {
            log_coef,
            means,
            inv_var,
        } = &self.kernel;
        let components = || log_coef.iter().zip(means.chunks_exact(d)).zip(inv_var.chunks_exact(d));
        // l_k = ln w_k + log_norm_k - 1/2 sum_d (x_d - mu_kd)^2 / v_kd
        let log_joint = |c: f64, mu: &[f64], iv: &[f64]| {
            let mut quad = 0.0;
            for i in 0..d {
                quad += (x[i] - mu[i]) * (x[i] - mu[i]) * iv[i];
            }
            c - 0.5 * quad
        };
        let mut m = f64::NEG_INFINITY;
        for ((&c, mu), iv) in components() {
            m = m.max(log_joint(c, mu, iv));
        }
        out.fill(0.0);
        let mut total = 0.0;
        for ((&c, mu), iv) in components() {
            let shifted = log_joint(c, mu, iv) - m;
            let e = if shifted == 0.0 { 1.0 } else { shifted.exp() }; // e_k = exp(l_k - m)
            total += e;
            for i in 0..d {
                out[i] += e * ((mu[i] - x[i]) * iv[i]); // e_k g_kd, g_kd = -(x_d - mu_kd) / v_kd
            }
        }
        let inv_total = 1.0 / total;
        out.iter_mut().for_each(|o| *o *= inv_total); // s_d = sum_k e_k g_kd / sum_k e_k
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
    ///
    /// A sample whose responsibilities are not numbers (a non-finite coordinate, or one so far out
    /// that its squared distance to every mode overflows) belongs to no component: if there is
    /// any, the result is [`GmmError::NonFinite`] with their count. A diverged chain has no mode
    /// weights, and counting its particles anywhere would hide the divergence.
    pub fn mode_weights(&self, samples: ArrayView2<f64>) -> Result<Vec<f64>, GmmError> {
        let mut counts = vec![0usize; self.n_components()];
        let mut non_finite = 0usize;
        let r = self.responsibilities(samples.view());
        for row in r.outer_iter() {
            if row.iter().any(|v| v.is_nan()) {
                non_finite += 1;
                continue;
            }
            let (k, _) = row.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |best, (k, &v)| if v > best.1 { (k, v) } else { best },
            );
            counts[k] += 1;
        }
        if non_finite > 0 {
            return Err(GmmError::NonFinite {
                count: non_finite,
                total: samples.nrows(),
            });
        }
        let n = samples.nrows().max(1) as f64;
        Ok(counts.into_iter().map(|c| c as f64 / n).collect())
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
