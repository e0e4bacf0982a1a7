//! What a sampler needs from a model: a noise-conditional score.
//!
//! A noise-conditional score network `s_theta(x, sigma_i)` (NCSN) is trained for a fixed list of
//! noise levels `sigma_1 > ... > sigma_L` and is evaluated at a level index `i`. The exact score
//! of a perturbed Gaussian mixture, `grad_x log (p * N(0, sigma_i^2 I))(x)`, answers the same
//! question. [`NoiseConditionalScore`] is that common shape, so that one sampler (and every test
//! of it) serves an exact score, the 2D networks and the image network alike.
use crate::annealed::{annealed_langevin_projected, AnnealedLangevin, Projection};
use crate::error::invalid;
use crate::trajectory::Trajectory;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoProjection, StepConvention};
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// 1D data `N(mu, s^2)`: perturbed by `N(0, sigma_i^2)` it is `N(mu, s^2 + sigma_i^2)`, whose
    /// score is `-(x - mu) / (s^2 + sigma_i^2)`.
    struct Gaussian {
        mu: f64,
        s2: f64,
        sigmas: Vec<f64>,
    }

    impl NoiseConditionalScore<Array2<f64>> for Gaussian {
        fn sigmas(&self) -> &[f64] {
            &self.sigmas
        }
        fn score(&self, x: &Array2<f64>, level: usize) -> Result<Array2<f64>> {
            let v = self.s2 + self.sigmas[level] * self.sigmas[level];
            Ok(x.mapv(|xi| -(xi - self.mu) / v))
        }
    }

    #[test]
    fn check_levels_refuses_another_count_or_other_values() {
        let g = Gaussian {
            mu: 0.0,
            s2: 1.0,
            sigmas: vec![1.0, 0.3, 0.1],
        };
        assert!(check_levels(&g, &AnnealedLangevin::paper(vec![1.0, 0.3, 0.1])).is_ok());
        // The same levels rounded to f32 (as a network stores them) are the same levels.
        let rounded = vec![1.0, f64::from(0.3f32), f64::from(0.1f32)];
        assert!(check_levels(&g, &AnnealedLangevin::paper(rounded)).is_ok());
        let fewer = check_levels(&g, &AnnealedLangevin::paper(vec![1.0, 0.3])).unwrap_err();
        let msg = fewer.to_string();
        assert!(
            msg.contains("`sigmas`") && msg.contains("2 noise levels") && msg.contains("knows 3"),
            "{msg}"
        );
        let other = check_levels(&g, &AnnealedLangevin::paper(vec![1.0, 0.31, 0.1])).unwrap_err();
        assert!(other.to_string().contains("level 1"), "{other}");
        // The sampler checks before it moves a particle.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let c = AnnealedLangevin::paper(vec![1.0, 0.3]);
        assert!(sample_annealed(Array2::zeros((3, 1)), &g, &c, &mut NoProjection, &mut rng).is_err());
    }

    /// The exact mean and variance of the chain of [`sample_annealed_gaussian`] every `every`
    /// steps (and at the end), for a step rule `alpha(level)`, update coefficients
    /// `(drift, noise) = coef(alpha)` and the sigma the score is evaluated at, `seen(level)`.
    /// From a point start the chain is Gaussian at every step: with `v = s^2 + seen^2`,
    /// `x' = x - drift (x - mu) / v + noise z`, so `m' = m - drift (m - mu) / v` and
    /// `V' = (1 - drift / v)^2 V + noise^2`.
    fn moments(
        g: &Gaussian,
        x0: f64,
        steps: usize,
        every: usize,
        alpha: impl Fn(usize) -> f64,
        coef: impl Fn(f64) -> (f64, f64),
        seen: impl Fn(usize) -> f64,
    ) -> Vec<(f64, f64)> {
        let (mut m, mut var) = (x0, 0.0);
        let mut out = Vec::new();
        for level in 0..g.sigmas.len() {
            let (drift, noise) = coef(alpha(level));
            let v = g.s2 + seen(level) * seen(level);
            for t in 0..steps {
                if (level * steps + t).is_multiple_of(every) {
                    out.push((m, var));
                }
                m -= drift * (m - g.mu) / v;
                var = (1.0 - drift / v).powi(2) * var + noise * noise;
            }
        }
        out.push((m, var));
        out
    }

    #[test]
    fn sample_annealed_gaussian() {
        // Data N(1, 0.5^2), levels 4, 2, 1, 0.5; the paper's step alpha_i = eps sigma_i^2 / sigma_L^2
        // with eps = 0.05, 100 steps per level, 20,000 particles started at x = 4. Snapshots every
        // 10 steps follow the transients within each level, where the step size shows.
        let g = Gaussian {
            mu: 1.0,
            s2: 0.25,
            sigmas: vec![4.0, 2.0, 1.0, 0.5],
        };
        let (n, x0, steps, every) = (20_000usize, 4.0, 100usize, 10usize);
        let mut config = AnnealedLangevin::paper(g.sigmas.clone());
        config.eps = 0.05;
        config.steps_per_level = steps;
        config.record_every = Some(every);
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let out = sample_annealed(Array2::from_elem((n, 1), x0), &g, &config, &mut NoProjection, &mut rng).unwrap();
        let sigma_l = g.sigmas[3];
        let paper_step = |level: usize| config.eps * (g.sigmas[level] / sigma_l).powi(2);
        let paper = |alpha: f64| (alpha / 2.0, alpha.sqrt()); // x + alpha/2 s + sqrt(alpha) z
        let exact = moments(&g, x0, steps, every, paper_step, paper, |l| g.sigmas[l]);
        assert_eq!(out.snapshots.len(), exact.len());

        // Tolerances: the chain is Gaussian, N(m, V), at every step. From n particles the sample
        // mean has sd sqrt(V / n) and the sample variance sd V sqrt(2 / n); 5 sd each (0.7% and
        // 5% of V), over 40 checkpoints.
        let tolerance = |var: f64| (5.0 * (var / n as f64).sqrt(), 5.0 * var * (2.0 / n as f64).sqrt());
        for (k, (snap, &(m, var))) in out.snapshots.iter().zip(&exact).enumerate().skip(1) {
            let mean = snap.x.mean().unwrap();
            let sample_var = snap.x.mapv(|v| (v - mean) * (v - mean)).mean().unwrap();
            let (tm, tv) = tolerance(var);
            assert!((mean - m).abs() < tm, "step {}: mean {mean}, exact {m}", k * every);
            assert!(
                (sample_var - var).abs() < tv,
                "step {}: variance {sample_var}, exact {var}",
                k * every
            );
        }

        // The end is the last level's distribution N(mu, s^2 + sigma_L^2) up to the discretisation
        // of the step: on a Gaussian of variance v the stationary variance of the paper's update
        // is v / (1 - alpha / (4 v)) (1.026 v here). The chain has reached it up to what is left
        // of the last level's transient, (1 - alpha_L / (2 v_L))^(2T) = 0.95^200 < 4e-5 of the
        // excess variance it started the level with (about 1.6 v_L): within 1e-4 v_L.
        let (m_end, var_end) = exact[exact.len() - 1];
        let v_l = g.s2 + sigma_l * sigma_l;
        assert!((m_end - g.mu).abs() < 1e-9);
        assert!((var_end - v_l / (1.0 - config.eps / (4.0 * v_l))).abs() < 1e-4 * v_l);
        assert_eq!(out.samples, out.snapshots[out.snapshots.len() - 1].x);

        // A wrong step size or a wrong noise scale changes these moments by more than twice the
        // tolerances at some checkpoint, so this test fails for each of them.
        let sqrt_step = |level: usize| config.eps * g.sigmas[level] / sigma_l; // sigma_i, not squared
        let reference = |alpha: f64| StepConvention::Reference.coefficients(alpha); // twice the step
        let noise_2 = |alpha: f64| (alpha / 2.0, (2.0 * alpha).sqrt()); // noise sqrt(2 alpha)
        let next_level = |l: usize| g.sigmas[(l + 1).min(3)]; // the score at the wrong sigma
        let wrong = [
            (
                "steps ~ sigma_i",
                moments(&g, x0, steps, every, sqrt_step, paper, |l| g.sigmas[l]),
            ),
            (
                "reference update",
                moments(&g, x0, steps, every, paper_step, reference, |l| g.sigmas[l]),
            ),
            (
                "noise sqrt(2 alpha)",
                moments(&g, x0, steps, every, paper_step, noise_2, |l| g.sigmas[l]),
            ),
            (
                "level + 1",
                moments(&g, x0, steps, every, paper_step, paper, next_level),
            ),
        ];
        for (name, w) in wrong {
            let off = w.iter().zip(&exact).skip(1).any(|(&(mw, vw), &(m, var))| {
                let (tm, tv) = tolerance(var);
                (mw - m).abs() > 2.0 * tm || (vw - var).abs() > 2.0 * tv
            });
            assert!(off, "{name} would pass");
        }
    }
}
