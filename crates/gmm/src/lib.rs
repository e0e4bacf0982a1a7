//! The exact world: Gaussian mixtures whose densities, scores and score divergences are known in
//! closed form, and the toy data sets of the book.
//!
//! Everything a learned model does later has an exact counterpart here: a mixture perturbed by
//! Gaussian noise, `p_sigma = p * N(0, sigma^2 I)`, is again a mixture (each component's variance
//! grows by `sigma^2`), so the noise-conditional score that NCSN learns is exact on these data.
//!
//! - [`GaussianMixture`]: weights, means, diagonal variances; `log_density`, `score`,
//!   `score_divergence`, `responsibilities`, `sample`, `perturbed`, `mode_weights`.
//! - [`empirical`]: the perturbed empirical distribution of a finite point set (the optimal
//!   denoiser for that set).
//! - [`datasets`]: the paper's mixture, a ring of modes, two moons, a spiral and a curve with
//!   zero thickness.
pub mod datasets;
mod empirical;
mod error;
mod mixture;

pub use empirical::empirical;
pub use error::GmmError;
pub use mixture::GaussianMixture;
