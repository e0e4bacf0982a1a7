//! Langevin dynamics and annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).
//!
//! This crate knows noise schedules and the update rule, not where a score comes from: every
//! sampler takes the score as a closure, so the same code drives the exact scores of `gmm`, the
//! 2D networks of `toy2d` and the image model of `ncsn`.
//!
//! - [`schedule`]: geometric noise levels `sigma_1 > ... > sigma_L` and NCSNv2's rules for choosing them.
//! - [`particles`]: the [`Particles`] trait, implemented for `ndarray::Array2<f64>` and `candle_core::Tensor`.
//! - [`dynamics`]: plain Langevin dynamics with a fixed step and the two step conventions.
//! - [`annealed`]: annealed Langevin dynamics, the final denoising step, more steps at the
//!   low noise levels ([`LowNoiseSteps`]), a step from each level to the next ([`Predictor`]), and
//!   [`annealed::Projection`] hooks (used for inpainting).
//! - [`trajectory`]: what every sampler returns, the final particles and the recorded snapshots.
//! - [`score`]: the [`NoiseConditionalScore`] trait (a score known at levels `sigma_i`) and the
//!   sampler driven by one, [`sample_annealed`].
//! - [`blocks`]: independent chains on blocks of rows, on every core, each block with its own
//!   seeded stream (the samples do not depend on the thread count).
//!
//! Every sampler has two forms: the score returns a new batch (`score(x, ...) -> X`), or, the
//! `_into` form, it writes into a buffer the sampler reuses (`score(x, ..., &mut out)`); with
//! arrays the update is in place ([`Particles::langevin_update`]), so a step allocates nothing.
//!
//! ## The two step conventions
//!
//! The paper writes the Langevin update with step size `alpha`:
//! `x <- x + alpha/2 * s(x) + sqrt(alpha) * z`, `z ~ N(0, I)`, and anneals with
//! `alpha_i = eps * sigma_i^2 / sigma_L^2`. The reference implementation (ermongroup/ncsn) writes
//! `x <- x + step * s(x) + sqrt(2 * step) * z` with `step = eps * sigma_i^2 / sigma_L^2`, which is
//! the paper's update with `alpha = 2 * step`: the reference's `eps` is half of the paper's for the
//! same chain. [`StepConvention::Paper`] and [`StepConvention::Reference`] name the two explicitly.
pub mod annealed;
pub mod blocks;
pub mod dynamics;
mod error;
pub mod particles;
pub mod schedule;
pub mod score;
pub mod trajectory;

pub use annealed::{
    annealed_langevin, annealed_langevin_into, annealed_langevin_projected, annealed_langevin_projected_into,
    AnnealedLangevin, LowNoiseSteps, NoProjection, Predictor, Projection, StepBand,
};
pub use blocks::in_blocks;
pub use dynamics::{langevin, langevin_into, StepConvention};
pub use error::Error;
pub use particles::{randn_tensor, Particles};
pub use schedule::{geometric_sigmas, ncsnv2};
pub use score::{sample_annealed, NoiseConditionalScore};
pub use trajectory::{Snapshot, Trajectory};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
