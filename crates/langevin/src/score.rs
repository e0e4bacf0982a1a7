//! What a sampler needs from a model: a noise-conditional score.
//!
//! A noise-conditional score network `s_theta(x, sigma_i)` (NCSN) is trained for a fixed list of
//! noise levels `sigma_1 > ... > sigma_L` and is evaluated at a level index `i`. The exact score
//! of a perturbed Gaussian mixture, `grad_x log (p * N(0, sigma_i^2 I))(x)`, answers the same
//! question. [`NoiseConditionalScore`] is that common shape, so that one sampler (and every test
//! of it) serves an exact score, the 2D networks and the image network alike.
use crate::annealed::{annealed_langevin_projected, AnnealedLangevin, Projection, Trajectory};
use crate::error::invalid;
use crate::{Particles, Result};
use rand::Rng;

/// A score `s(x, sigma_i)` known at the noise levels `sigmas()` (decreasing).
pub trait NoiseConditionalScore<X> {
    /// The noise levels `sigma_1 > ... > sigma_L` the score is defined at.
    fn sigmas(&self) -> &[f64];

    /// `s(x, sigma_level)` for every particle of `x` (`level` is 0-based, `< sigmas().len()`).
    fn score(&self, x: &X, level: usize) -> Result<X>;
}

impl<X, S: NoiseConditionalScore<X> + ?Sized> NoiseConditionalScore<X> for &S {
    fn sigmas(&self) -> &[f64] {
        (**self).sigmas()
    }
    fn score(&self, x: &X, level: usize) -> Result<X> {
        (**self).score(x, level)
    }
}

/// Checks that `config` anneals through exactly the levels the score knows.
pub fn check_levels<X, S: NoiseConditionalScore<X> + ?Sized>(score: &S, config: &AnnealedLangevin) -> Result<()> {
    let known = score.sigmas();
    if known.len() != config.sigmas.len() {
        return Err(invalid(
            "sigmas",
            format!(
                "the sampler has {} noise levels, the score knows {}",
                config.sigmas.len(),
                known.len()
            ),
        ));
    }
    // The same numbers to f32 rounding: a network stores its levels as f32 at most.
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
    if let Some(i) = (0..known.len()).find(|&i| !same(known[i], config.sigmas[i])) {
        return Err(invalid(
            "sigmas",
            format!(
                "level {i}: the sampler uses sigma = {}, the score knows sigma = {}",
                config.sigmas[i], known[i]
            ),
        ));
    }
    Ok(())
}

/// Annealed Langevin dynamics (Algorithm 1) driven by a [`NoiseConditionalScore`], with a
/// [`Projection`] (use [`crate::NoProjection`] for plain sampling). The configuration's levels
/// must be the score's ([`check_levels`]).
pub fn sample_annealed<X, S, P, R>(
    x0: X,
    score: &S,
    config: &AnnealedLangevin,
    projection: &mut P,
    rng: &mut R,
) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    S: NoiseConditionalScore<X> + ?Sized,
    P: Projection<X>,
    R: Rng + ?Sized,
{
    check_levels(score, config)?;
    annealed_langevin_projected(x0, |x, level, _sigma| score.score(x, level), config, projection, rng)
}
