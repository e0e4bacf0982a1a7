//! The perturbed empirical distribution of a finite point set.
use crate::{GaussianMixture, GmmError};
use ndarray::{Array1, Array2, ArrayView2};

/// The empirical distribution of `points` (`n` rows) perturbed by `N(0, sigma^2 I)`:
/// `q_sigma(x~) = 1/n sum_i N(x~; x_i, sigma^2 I)`, a mixture of `n` isotropic Gaussians.
///
/// Its score is what denoising score matching converges to on that finite set, and
/// `x~ + sigma^2 grad log q_sigma(x~)` is the optimal denoiser (Tweedie's formula): a
/// softmax-weighted average of the training points.
pub fn empirical(points: ArrayView2<f64>, sigma: f64) -> Result<GaussianMixture, GmmError> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(GmmError::Sigma(sigma));
    }
    let n = points.nrows();
    if n == 0 {
        return Err(GmmError::Shape {
            field: "points",
            expected: "at least one point".into(),
            got: "0 rows".into(),
        });
    }
    let weights = Array1::from_elem(n, 1.0 / n as f64);
    // 1/n summed n times is 1 only within rounding; renormalise exactly against the sum check.
    let weights = &weights / weights.sum();
    GaussianMixture::new(
        weights,
        points.to_owned(),
        Array2::from_elem(points.raw_dim(), sigma * sigma),
    )
}
