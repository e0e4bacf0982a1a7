//! Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).
//!
//! ```text
//! x_0 ~ uniform (or any start)
//! for i = 1..=L:                                  # sigma_1 > ... > sigma_L
//!     alpha_i = eps * sigma_i^2 / sigma_L^2       # step shrinks with the noise level
//!     for t = 1..=T_i:                            # T_i = T, or T' below a noise level
//!         x <- x + alpha_i/2 * s(x, sigma_i) + sqrt(alpha_i) * z,   z ~ N(0, I)
//!         (matched noise: sqrt(alpha_i (1 - alpha_i/(4 sigma_i^2))) * z instead)
//! optional final denoising:  x <- x + sigma_L^2 * s(x, sigma_L)   (Tweedie's formula)
//! ```
//!
//! Scaling `alpha_i` with `sigma_i^2` keeps the "signal-to-noise ratio"
//! `alpha_i s / (2 sqrt(alpha_i) z)` of each update independent of the level.
//!
//! The paper takes the same `T` at every level. [`LowNoiseSteps`] lets the levels below a noise
//! level take another number, so that a budget of score evaluations can be spent unevenly over
//! the levels (the book's chapter on images measures what that does on MNIST).
//!
//! [`StepBand`] multiplies the step at the levels of a band of noise, at no extra evaluation: a
//! longer step where the chains choose what they draw puts noise back there, and the chains choose
//! again below the band (the same chapter measures what that does on MNIST).
//!
//! `matched_noise` gives each update the noise that leaves a chain at the level's variance on a
//! direction of pure noise. Where the perturbed data is `N(mu, sigma^2)` along a direction, the
//! update `x + d s + b z` (`d = alpha/2` in the paper's form) maps the distance to `mu` to
//! `(1 - d/sigma^2)` times itself plus `b z`, so a chain settles at variance
//! `b^2 / (1 - (1 - d/sigma^2)^2)`. The paper's `b^2 = alpha` gives
//! `sigma^2 / (1 - alpha/(4 sigma^2))`, wider than `sigma^2` (1.43 times at `alpha = 1.2 sigma^2`);
//! `b^2 = d (2 - d/sigma^2)`, which is `alpha (1 - alpha/(4 sigma^2))`, gives `sigma^2` itself.
//! Either form needs `alpha < 4 sigma^2`: past it the distance grows at every step.
//!
//! A [`Predictor`] adds one more update at the end of each level but the last, which moves the
//! chain from `sigma_i` to `sigma_{i+1}` instead of leaving the next level's Langevin steps to
//! find it: the predictor-corrector sampler of Song et al. 2021 ("Score-Based Generative Modeling
//! through Stochastic Differential Equations"), whose corrector is the Langevin steps.
//!
//! Snapshots (`record_every`) keep the chains along the way; with `record_denoised` each also
//! keeps Tweedie's estimate of the clean data, `x + sigma_i^2 s(x, sigma_i)`: where the chain is
//! heading at that level (the book's chapter on images classifies it, level by level).
use crate::dynamics::{check_score, StepConvention};
use crate::error::invalid;
use crate::trajectory::{Snapshot, Trajectory};
use crate::{Particles, Result};
use rand::Rng;

/// Settings of annealed Langevin dynamics.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnealedLangevin {
    /// Noise levels, decreasing: `sigma_1 > ... > sigma_L`.
    pub sigmas: Vec<f64>,
    /// Base step size `eps`; the step at level `i` is `eps * sigma_i^2 / sigma_L^2`.
    pub eps: f64,
    /// `T`, the number of Langevin steps at each level (at the levels of `low_noise`, its own).
    pub steps_per_level: usize,
    /// Another number of steps at the levels below a noise level, if set.
    pub low_noise: Option<LowNoiseSteps>,
    /// A step `factor` times longer at the levels of a band of noise, if set.
    pub step_band: Option<StepBand>,
    /// Which update form `eps` refers to (see [`StepConvention`]).
    pub convention: StepConvention,
    /// Langevin noise of variance `d (2 - d/sigma_i^2)` for the drift coefficient `d`
    /// (`alpha_i (1 - alpha_i/(4 sigma_i^2))` in the paper's form) instead of the paper's
    /// `alpha_i`: a chain on a direction of pure noise then settles at `sigma_i^2`, not wider
    /// (see the module's note). Needs `alpha_i < 4 sigma_i^2` at every level.
    pub matched_noise: bool,
    /// Apply `x <- x + sigma_L^2 s(x, sigma_L)` after the last level.
    pub final_denoise: bool,
    /// A step from each level to the next after its Langevin steps, if set.
    pub predictor: Option<Predictor>,
    /// Keep a snapshot every this many steps (counted over all levels), if set.
    pub record_every: Option<usize>,
    /// With `record_every`: give each snapshot (but the final one) Tweedie's estimate of the
    /// clean data, `x + sigma_i^2 s(x, sigma_i)`, from the score the next update evaluates at that
    /// same `x` (so it costs no network evaluation): where the chain is heading at that level.
    pub record_denoised: bool,
}

/// `steps` Langevin steps, instead of `T`, at every level whose noise is below `below`
/// (`sigma_i < below`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowNoiseSteps {
    /// The noise level under which the levels take `steps`.
    pub below: f64,
    /// Langevin steps at each of those levels (at least 1).
    pub steps: usize,
}

/// The step at every level whose noise lies in `[low, high]` multiplied by `factor`:
/// `alpha_i = factor * eps * sigma_i^2 / sigma_L^2` there. The other levels, and the number of
/// steps everywhere, are as before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepBand {
    /// The lowest noise level of the band.
    pub low: f64,
    /// The highest noise level of the band.
    pub high: f64,
    /// What the step is multiplied by in the band (above 0).
    pub factor: f64,
}

impl StepBand {
    /// Whether level `sigma` is in the band (both ends included).
    pub fn contains(&self, sigma: f64) -> bool {
        self.low <= sigma && sigma <= self.high
    }

    /// Checks the band: finite positive ends, `low <= high`, a finite positive factor. The error
    /// names `step_band.low`, `step_band.high` or `step_band.factor`.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [("step_band.low", self.low), ("step_band.high", self.high)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(key, format!("expected a finite positive noise level, got {v}")));
            }
        }
        if self.low > self.high {
            return Err(invalid(
                "step_band.low",
                format!("expected at most the band's high end {}, got {}", self.high, self.low),
            ));
        }
        if !(self.factor.is_finite() && self.factor > 0.0) {
            return Err(invalid(
                "step_band.factor",
                format!("expected a finite positive factor, got {}", self.factor),
            ));
        }
        Ok(())
    }
}

/// The update that takes a chain from level `sigma_i` to `sigma_{i+1}` with one score evaluation,
/// `x <- x + (sigma_i^2 - sigma_{i+1}^2) s(x, sigma_i) + noise * z`. The drift is the same for
/// both; they differ in the noise.
///
/// Write `d = sigma_i^2 - sigma_{i+1}^2`. Perturbing the data to `sigma_i` is perturbing it to
/// `sigma_{i+1}` and adding `N(0, d)`, so `x_{i+1}` given `x_i` and the clean `x_0` is Gaussian
/// with mean `x_0 + (sigma_{i+1}^2 / sigma_i^2) (x_i - x_0)` and variance
/// `sigma_{i+1}^2 d / sigma_i^2`. Tweedie's `x_0 ~ x_i + sigma_i^2 s(x_i, sigma_i)` turns the mean
/// into `x_i + d s`: that is [`Predictor::Ancestral`]. [`Predictor::ReverseDiffusion`] is one
/// Euler-Maruyama step of the reverse-time variance-exploding SDE, `dx = -d[sigma^2] s + dw`, whose
/// noise over the step has variance `d`; the two agree as the levels get close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predictor {
    /// Noise `sqrt(sigma_i^2 - sigma_{i+1}^2)`: the reverse SDE's Euler-Maruyama step.
    ReverseDiffusion,
    /// Noise `sqrt(sigma_{i+1}^2 (sigma_i^2 - sigma_{i+1}^2) / sigma_i^2)`: the posterior step,
    /// exact when the data is a single point.
    Ancestral,
}

impl Predictor {
    /// Every predictor, by [`Predictor::name`].
    pub const ALL: [Predictor; 2] = [Predictor::ReverseDiffusion, Predictor::Ancestral];

    /// Its name on a command line: `reverse-diffusion` or `ancestral`.
    pub fn name(self) -> &'static str {
        match self {
            Predictor::ReverseDiffusion => "reverse-diffusion",
            Predictor::Ancestral => "ancestral",
        }
    }

    /// Parses a name; `none` is no predictor.
    pub fn parse(name: &str) -> Result<Option<Self>> {
        if name == "none" {
            return Ok(None);
        }
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    "predictor",
                    format!("expected `none`, `reverse-diffusion` or `ancestral`, got `{name}`"),
                )
            })
    }

    /// The (drift, noise) coefficients of `x + drift * s(x, sigma) + noise * z` for the step from
    /// `sigma` down to `next`.
    pub fn coefficients(self, sigma: f64, next: f64) -> (f64, f64) {
        let d = sigma * sigma - next * next; // the variance the data gains from next to sigma
        match self {
            Predictor::ReverseDiffusion => (d, d.sqrt()),
            Predictor::Ancestral => (d, next * (d.sqrt() / sigma)),
        }
    }
}

impl AnnealedLangevin {
    /// The paper's settings for given sigmas: `T = 100`, `eps = 2e-5`, the paper's convention,
    /// no final denoising, no snapshots.
    pub fn paper(sigmas: Vec<f64>) -> Self {
        Self {
            sigmas,
            eps: 2e-5,
            steps_per_level: 100,
            low_noise: None,
            step_band: None,
            convention: StepConvention::Paper,
            matched_noise: false,
            final_denoise: false,
            predictor: None,
            record_every: None,
            record_denoised: false,
        }
    }

    /// The step size at level `i` (0-based): `alpha_i = eps * sigma_i^2 / sigma_L^2`, times the
    /// band's factor at the levels of [`StepBand`].
    pub fn step_size(&self, level: usize) -> f64 {
        let last = self.sigmas[self.sigmas.len() - 1];
        let sigma = self.sigmas[level];
        let alpha = self.eps * (sigma / last).powi(2);
        match self.step_band {
            Some(band) if band.contains(sigma) => band.factor * alpha,
            _ => alpha,
        }
    }

    /// `T_i`, the Langevin steps at level `i` (0-based).
    pub fn steps_at(&self, level: usize) -> usize {
        match self.low_noise {
            Some(low) if self.sigmas[level] < low.below => low.steps,
            _ => self.steps_per_level,
        }
    }

    /// The updates over all levels, `sum_i T_i` and the predictor's `L - 1` steps if set (the
    /// score evaluations per chain, less the final denoising step's one).
    pub fn total_steps(&self) -> usize {
        let predictor_steps = if self.predictor.is_some() {
            self.sigmas.len().saturating_sub(1)
        } else {
            0
        };
        (0..self.sigmas.len()).map(|i| self.steps_at(i)).sum::<usize>() + predictor_steps
    }

    /// The (drift, noise) coefficients of the Langevin update at level `i` (0-based),
    /// `x + drift * s(x, sigma_i) + noise * z`: the convention's, or with `matched_noise` the
    /// noise that keeps a direction of pure noise at variance `sigma_i^2`.
    pub fn coefficients(&self, level: usize) -> (f64, f64) {
        let (drift, noise) = self.convention.coefficients(self.step_size(level));
        if !self.matched_noise {
            return (drift, noise);
        }
        let sigma2 = self.sigmas[level] * self.sigmas[level];
        // Fixed point of v <- (1 - drift/sigma^2)^2 v + b^2 at v = sigma^2.
        let matched = drift * (2.0 - drift / sigma2);
        (drift, matched.max(0.0).sqrt())
    }

    /// The step at level `i` (0-based) in units of the level's variance: `alpha_i / sigma_i^2` in
    /// the paper's form (twice the drift coefficient over `sigma_i^2` in either). Under 4 a
    /// Langevin step settles the directions where the data does not vary; from 4 on it pushes
    /// them further out at every step.
    pub fn step_over_variance(&self, level: usize) -> f64 {
        let (drift, _) = self.convention.coefficients(self.step_size(level));
        2.0 * drift / (self.sigmas[level] * self.sigmas[level])
    }

    /// With `matched_noise`: every step under `4 sigma_i^2` (in the paper's form), else there is
    /// no such noise. The error names the band's factor where only the band's levels are too
    /// long, and `eps` otherwise.
    fn check_matched_noise(&self) -> Result<()> {
        for (level, &sigma) in self.sigmas.iter().enumerate() {
            let ratio = self.step_over_variance(level);
            if ratio < 4.0 {
                continue;
            }
            let in_band = self
                .step_band
                .is_some_and(|b| b.contains(sigma) && ratio / b.factor < 4.0);
            return Err(invalid(
                if in_band { "step_band.factor" } else { "eps" },
                format!(
                    "with matched noise the step must stay under 4 sigma^2 (in the paper's form), \
                     but at sigma {sigma} it is {ratio:.3} sigma^2: the chains would diverge"
                ),
            ));
        }
        Ok(())
    }

    /// Checks the settings; every sampler calls this first.
    pub fn validate(&self) -> Result<()> {
        if self.sigmas.is_empty() {
            return Err(invalid("sigmas", "expected at least one noise level"));
        }
        if self.sigmas.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(invalid("sigmas", "expected finite positive noise levels"));
        }
        if self.sigmas.windows(2).any(|w| w[1] > w[0]) {
            return Err(invalid("sigmas", "expected noise levels in decreasing order"));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(
                "eps",
                format!("expected a finite positive step size, got {}", self.eps),
            ));
        }
        if self.record_every == Some(0) {
            return Err(invalid("record_every", "expected a positive interval"));
        }
        if let Some(band) = self.step_band {
            band.validate()?;
        }
        if self.matched_noise {
            self.check_matched_noise()?;
        }
        if let Some(low) = self.low_noise {
            if !(low.below.is_finite() && low.below > 0.0) {
                return Err(invalid(
                    "low_noise.below",
                    format!("expected a finite positive noise level, got {}", low.below),
                ));
            }
            if low.steps == 0 {
                return Err(invalid("low_noise.steps", "expected at least one step per level"));
            }
        }
        Ok(())
    }
}

/// A constraint applied during annealed sampling, e.g. inpainting: at the start of each level the
/// projection may draw what it needs (the observed pixels perturbed to that level's sigma), and
/// after every update it maps the particles back onto the constraint.
pub trait Projection<X> {
    /// Called once when level `level` (noise `sigma`) begins, before its first update.
    fn begin_level<R: Rng + ?Sized>(&mut self, level: usize, sigma: f64, rng: &mut R) -> Result<()>;
    /// Applied to the particles at the start of each level and after every update.
    fn project(&mut self, x: X) -> Result<X>;
}

/// No constraint: plain annealed Langevin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProjection;

impl<X> Projection<X> for NoProjection {
    fn begin_level<R: Rng + ?Sized>(&mut self, _: usize, _: f64, _: &mut R) -> Result<()> {
        Ok(())
    }
    fn project(&mut self, x: X) -> Result<X> {
        Ok(x)
    }
}

/// Annealed Langevin dynamics from `x0` with a noise-conditional score `score(x, level, sigma)`.
pub fn annealed_langevin<X, F, R>(x0: X, score: F, config: &AnnealedLangevin, rng: &mut R) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    F: FnMut(&X, usize, f64) -> Result<X>,
    R: Rng + ?Sized,
{
    annealed_langevin_projected(x0, score, config, &mut NoProjection, rng)
}

/// [`annealed_langevin`] with a [`Projection`] applied at each level start and after each update.
pub fn annealed_langevin_projected<X, F, P, R>(
    x0: X,
    mut score: F,
    config: &AnnealedLangevin,
    projection: &mut P,
    rng: &mut R,
) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    F: FnMut(&X, usize, f64) -> Result<X>,
    P: Projection<X>,
    R: Rng + ?Sized,
{
    annealed_langevin_projected_into(
        x0,
        |x, level, sigma, out| {
            *out = score(x, level, sigma)?;
            Ok(())
        },
        config,
        projection,
        rng,
    )
}

/// [`annealed_langevin`] with a score that writes into a buffer, `score(x, level, sigma, out)`:
/// with an array and a score that fills `out` in place (e.g. `GaussianMixture::score_into`), a
/// step allocates nothing.
pub fn annealed_langevin_into<X, F, R>(x0: X, score: F, config: &AnnealedLangevin, rng: &mut R) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    F: FnMut(&X, usize, f64, &mut X) -> Result<()>,
    R: Rng + ?Sized,
{
    annealed_langevin_projected_into(x0, score, config, &mut NoProjection, rng)
}

/// The sampler itself: [`annealed_langevin_into`] with a [`Projection`].
pub fn annealed_langevin_projected_into<X, F, P, R>(
    x0: X,
    mut score: F,
    config: &AnnealedLangevin,
    projection: &mut P,
    rng: &mut R,
) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    F: FnMut(&X, usize, f64, &mut X) -> Result<()>,
    P: Projection<X>,
    R: Rng + ?Sized,
{
    config.validate()?;
    let mut x = x0;
    let mut s = x.clone(); // the score buffer, reused at every step
    let mut snapshots = Vec::new();
    let mut global = 0usize;
    // A snapshot keeps `x` before its update, once the score at that `x` is known: Tweedie's
    // estimate then comes from the same evaluation when asked for.
    let record = |x: &X, s: &X, level: usize, step: usize, sigma: f64, snaps: &mut Vec<Snapshot<X>>| -> Result<()> {
        if config.record_every.is_some_and(|k| step.is_multiple_of(k)) {
            let denoised = if config.record_denoised {
                Some(x.add_scaled(s, sigma * sigma)?) // E[x_0 | x] = x + sigma^2 s(x, sigma)
            } else {
                None
            };
            snaps.push(Snapshot {
                level,
                step,
                sigma,
                x: x.clone(),
                denoised,
            });
        }
        Ok(())
    };
    for (level, &sigma) in config.sigmas.iter().enumerate() {
        // alpha_i = eps * sigma_i^2 / sigma_L^2 (x band factor): the paper's drift alpha_i/2 and
        // noise sqrt(alpha_i), or the matched noise sqrt(alpha_i (1 - alpha_i/(4 sigma_i^2))).
        let (drift, noise) = config.coefficients(level);
        projection.begin_level(level, sigma, rng)?;
        x = projection.project(x)?;
        for _ in 0..config.steps_at(level) {
            score(&x, level, sigma, &mut s)?;
            check_score(&x, &s)?;
            record(&x, &s, level, global, sigma, &mut snapshots)?;
            x.langevin_update(&s, drift, noise, rng)?; // x + alpha/2 s + sqrt(alpha) z (paper)
            x = projection.project(x)?;
            global += 1;
        }
        if let (Some(predictor), Some(&next)) = (config.predictor, config.sigmas.get(level + 1)) {
            score(&x, level, sigma, &mut s)?;
            check_score(&x, &s)?;
            record(&x, &s, level, global, sigma, &mut snapshots)?;
            let (drift, noise) = predictor.coefficients(sigma, next);
            x.langevin_update(&s, drift, noise, rng)?; // x + (sigma^2 - next^2) s + noise z
            x = projection.project(x)?;
            global += 1;
        }
    }
    let last = config.sigmas.len() - 1;
    let sigma_l = config.sigmas[last];
    if config.final_denoise {
        // Tweedie: E[x | x~] = x~ + sigma^2 grad log p_sigma(x~).
        score(&x, last, sigma_l, &mut s)?;
        check_score(&x, &s)?;
        x = x.add_scaled(&s, sigma_l * sigma_l)?;
        x = projection.project(x)?;
    }
    if config.record_every.is_some() {
        snapshots.push(Snapshot {
            level: last,
            step: global,
            sigma: sigma_l,
            x: x.clone(),
            denoised: None,
        });
    }
    Ok(Trajectory { samples: x, snapshots })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;

    fn gaussian_score(sigma0: f64) -> impl FnMut(&Array2<f64>, usize, f64) -> Result<Array2<f64>> {
        // Data N(0, sigma0^2): the perturbed score at sigma is -x / (sigma0^2 + sigma^2).
        move |x, _, s| Ok(x.mapv(|v| -v / (sigma0 * sigma0 + s * s)))
    }

    #[test]
    fn step_sizes_follow_sigma_squared() {
        let c = AnnealedLangevin::paper(vec![1.0, 0.1, 0.01]);
        assert!((c.step_size(2) - 2e-5).abs() < 1e-18);
        assert!((c.step_size(0) - 2e-5 * 1e4).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_samples_and_snapshots_counted() {
        let mut c = AnnealedLangevin::paper(vec![3.0, 1.0, 0.5]);
        c.eps = 0.05;
        c.steps_per_level = 10;
        c.record_every = Some(5);
        let x0 = Array2::<f64>::zeros((50, 2));
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let a = annealed_langevin(x0.clone(), gaussian_score(1.0), &c, &mut r1).unwrap();
        let b = annealed_langevin(x0, gaussian_score(1.0), &c, &mut r2).unwrap();
        assert_eq!(a.samples, b.samples);
        // 30 steps recorded every 5 -> 6 snapshots, plus the final one.
        assert_eq!(a.snapshots.len(), 7);
        assert_eq!(a.snapshots[2].level, 1);
    }

    #[test]
    fn low_noise_levels_take_their_own_steps() {
        // Levels 3, 1, 0.5, 0.25 with T = 2 and 5 steps below 0.6: 2 + 2 + 5 + 5 steps, which
        // the snapshots (one per step, and the final one) count level by level.
        let mut c = AnnealedLangevin::paper(vec![3.0, 1.0, 0.5, 0.25]);
        c.eps = 0.05;
        c.steps_per_level = 2;
        c.low_noise = Some(LowNoiseSteps { below: 0.6, steps: 5 });
        c.record_every = Some(1);
        assert_eq!((0..4).map(|i| c.steps_at(i)).collect::<Vec<_>>(), [2, 2, 5, 5]);
        assert_eq!(c.total_steps(), 14);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let out = annealed_langevin(Array2::<f64>::zeros((3, 2)), gaussian_score(1.0), &c, &mut rng).unwrap();
        let per_level: Vec<usize> = (0..4)
            .map(|l| out.snapshots[..14].iter().filter(|s| s.level == l).count())
            .collect();
        assert_eq!(per_level, [2, 2, 5, 5]);
        assert_eq!(out.snapshots.len(), 15);
        // A level exactly at `below` keeps T; none below it: the paper's sampler, draw for draw.
        c.low_noise = Some(LowNoiseSteps { below: 0.25, steps: 5 });
        assert_eq!(c.total_steps(), 8);
        let mut paper = c.clone();
        paper.low_noise = None;
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let x0 = Array2::<f64>::ones((3, 2));
        let a = annealed_langevin(x0.clone(), gaussian_score(1.0), &c, &mut r1).unwrap();
        let b = annealed_langevin(x0, gaussian_score(1.0), &paper, &mut r2).unwrap();
        assert_eq!(a.samples, b.samples);
    }

    #[test]
    fn ancestral_steps_are_exact_for_a_point_and_reverse_diffusion_is_not() {
        // Data at the single point 0: p_sigma = N(0, sigma^2), score -x / sigma^2. With no
        // Langevin steps, the ancestral predictor maps N(0, sigma_i^2) exactly to
        // N(0, sigma_{i+1}^2): x (next/sigma)^2 + next sqrt(1 - (next/sigma)^2) z. Reverse diffusion
        // maps the variance to next^4/sigma^2 + sigma^2 - next^2, here 1.58x too much per level
        // (ratio 0.5). 20,000 draws give the variance to a relative standard error of
        // sqrt(2/20000) = 1%; the bound is 5%.
        let sigmas = vec![8.0, 4.0, 2.0, 1.0, 0.5];
        let n = 20_000;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let x0 = Array2::from_shape_simple_fn((n, 1), || 8.0 * rng.sample::<f64, _>(rand_distr::StandardNormal));
        let point_score = |x: &Array2<f64>, _: usize, s: f64| Ok(x.mapv(|v| -v / (s * s)));
        let mut c = AnnealedLangevin::paper(sigmas);
        c.steps_per_level = 0;
        c.predictor = Some(Predictor::Ancestral);
        assert_eq!(c.total_steps(), 4, "a predictor step between each two levels");
        let var = |x: &Array2<f64>| x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let a = annealed_langevin(x0.clone(), point_score, &c, &mut rng).unwrap();
        assert!(
            (var(&a.samples) / 0.25 - 1.0).abs() < 0.05,
            "ancestral: {}",
            var(&a.samples)
        );
        c.predictor = Some(Predictor::ReverseDiffusion);
        let r = annealed_langevin(x0, point_score, &c, &mut rng).unwrap();
        // 1.5625^4 = 6: far outside the bound.
        assert!(var(&r.samples) / 0.25 > 3.0, "reverse diffusion: {}", var(&r.samples));
    }

    #[test]
    fn predictor_coefficients_and_names() {
        let (d, n) = Predictor::ReverseDiffusion.coefficients(2.0, 1.0);
        assert_eq!((d, n), (3.0, 3f64.sqrt()));
        let (d, n) = Predictor::Ancestral.coefficients(2.0, 1.0);
        assert_eq!(d, 3.0);
        assert!(
            (n * n - 0.75).abs() < 1e-15,
            "next^2 (sigma^2 - next^2) / sigma^2 = 3/4"
        );
        for p in Predictor::ALL {
            assert_eq!(Predictor::parse(p.name()).unwrap(), Some(p));
        }
        assert_eq!(Predictor::parse("none").unwrap(), None);
        assert!(Predictor::parse("euler").unwrap_err().to_string().contains("predictor"));
    }

    #[test]
    fn predictor_steps_are_recorded_and_keep_the_langevin_steps() {
        // Levels 3, 1, 0.5 with T = 2 and a predictor: 2 + 1 + 2 + 1 + 2 updates, the predictor's
        // recorded at the level it leaves.
        let mut c = AnnealedLangevin::paper(vec![3.0, 1.0, 0.5]);
        c.eps = 0.05;
        c.steps_per_level = 2;
        c.predictor = Some(Predictor::ReverseDiffusion);
        c.record_every = Some(1);
        assert_eq!(c.total_steps(), 8);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let out = annealed_langevin(Array2::<f64>::zeros((3, 2)), gaussian_score(1.0), &c, &mut rng).unwrap();
        let levels: Vec<usize> = out.snapshots.iter().map(|s| s.level).collect();
        assert_eq!(levels, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn snapshots_carry_tweedies_estimate_at_their_level() {
        // Data N(2, 0.5^2) per coordinate: at level sigma the perturbed score is
        // -(x - 2) / (0.25 + sigma^2), and Tweedie's estimate x + sigma^2 s is the posterior mean
        // 2 + 0.25 / (0.25 + sigma^2) (x - 2), exactly, of each snapshot's own x at its own sigma
        // (the levels differ by factors of 2 to 4, so an estimate taken with a neighbouring
        // level's sigma misses by far more than the 1e-12 allowed for rounding).
        let (mean, var) = (2.0, 0.25);
        let score = |x: &Array2<f64>, _: usize, s: f64| Ok(x.mapv(|v| -(v - mean) / (var + s * s)));
        let mut c = AnnealedLangevin::paper(vec![3.0, 1.0, 0.5]);
        c.eps = 0.05;
        c.steps_per_level = 2;
        c.predictor = Some(Predictor::Ancestral);
        c.record_every = Some(1);
        c.final_denoise = true;
        c.record_denoised = true;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let out = annealed_langevin(Array2::<f64>::zeros((4, 3)), score, &c, &mut rng).unwrap();
        let (last, steps) = out.snapshots.split_last().unwrap();
        assert_eq!(steps.len(), c.total_steps());
        for snap in steps {
            let estimate = snap.denoised.as_ref().expect("every step's snapshot has an estimate");
            let posterior_mean = snap
                .x
                .mapv(|v| mean + var / (var + snap.sigma * snap.sigma) * (v - mean));
            let worst = (estimate - &posterior_mean)
                .mapv(f64::abs)
                .fold(0.0_f64, |a, &b| a.max(b));
            assert!(
                worst < 1e-12,
                "step {} (sigma {}): off by {worst}",
                snap.step,
                snap.sigma
            );
        }
        // The final snapshot is the samples (denoised already): no second estimate.
        assert!(last.denoised.is_none());
        assert_eq!(last.x, out.samples);
        // Not asked for: no estimates, and the same chain draw for draw.
        c.record_denoised = false;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let plain = annealed_langevin(Array2::<f64>::zeros((4, 3)), score, &c, &mut rng).unwrap();
        assert!(plain.snapshots.iter().all(|s| s.denoised.is_none()));
        assert_eq!(plain.samples, out.samples);
    }

    #[test]
    fn a_step_band_multiplies_the_steps_of_its_levels_only() {
        // Levels 4, 2, 1, 0.5, 0.25 with a band [0.5, 2] x 3: levels 2, 1 and 0.5 (both ends
        // included) take 3 alpha_i, the others alpha_i.
        let mut c = AnnealedLangevin::paper(vec![4.0, 2.0, 1.0, 0.5, 0.25]);
        c.eps = 1e-3;
        let plain: Vec<f64> = (0..5).map(|i| c.step_size(i)).collect();
        c.step_band = Some(StepBand {
            low: 0.5,
            high: 2.0,
            factor: 3.0,
        });
        let banded: Vec<f64> = (0..5).map(|i| c.step_size(i)).collect();
        let ratios: Vec<f64> = banded.iter().zip(&plain).map(|(b, p)| b / p).collect();
        assert_eq!(ratios, [1.0, 3.0, 3.0, 3.0, 1.0]);
        assert_eq!(
            c.total_steps(),
            500,
            "the band changes the steps' length, not their number"
        );
        // The chain uses those steps. One level of data N(0, 1), one update from x = 1:
        // x + alpha/2 s + sqrt(alpha) z with s = -1 / (1 + sigma^2), whose mean over 40,000
        // chains is 1 - alpha / (2 (1 + sigma^2)) to a standard error of sqrt(alpha / 40,000).
        // With eps = 0.1 the band's factor 3 moves that mean by 0.05 at sigma 1, ten standard
        // errors beyond the 5 allowed; outside the band (sigma 4) the factor must not apply.
        for (sigma, factor) in [(1.0, 3.0), (4.0, 1.0)] {
            let mut one = AnnealedLangevin::paper(vec![sigma]);
            one.eps = 0.1;
            one.steps_per_level = 1;
            one.step_band = c.step_band;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
            let out = annealed_langevin(Array2::<f64>::ones((40_000, 1)), gaussian_score(1.0), &one, &mut rng).unwrap();
            let mean = out.samples.mean().unwrap();
            let alpha = factor * 0.1;
            let expected = 1.0 - alpha / (2.0 * (1.0 + sigma * sigma));
            let se = (alpha / 40_000.0).sqrt();
            assert!(
                (mean - expected).abs() < 5.0 * se,
                "sigma {sigma}: mean {mean}, expected {expected} (alpha {alpha})"
            );
        }
    }

    #[test]
    fn rejects_bad_step_bands() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (low, high, factor, key) in [
            (0.0, 1.0, 2.0, "step_band.low"),
            (0.5, f64::INFINITY, 2.0, "step_band.high"),
            (0.6, 0.5, 2.0, "step_band.low"),
            (0.2, 0.5, 0.0, "step_band.factor"),
            (0.2, 0.5, f64::NAN, "step_band.factor"),
        ] {
            let mut c = AnnealedLangevin::paper(vec![1.0, 0.1]);
            c.step_band = Some(StepBand { low, high, factor });
            let e = annealed_langevin(Array2::zeros((2, 2)), gaussian_score(1.0), &c, &mut rng).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn matched_noise_settles_at_the_levels_variance_where_the_papers_is_wider() {
        // Data at the single point 0: along every direction p_sigma = N(0, sigma^2). One level,
        // sigma = 0.5, alpha = 1.2 sigma^2 (eps = alpha with one level), 40 steps (the distance
        // shrinks by 1 - alpha/(2 sigma^2) = 0.4 per step: the start is forgotten). The paper's
        // noise settles at sigma^2 / (1 - 0.3) = 1.43 sigma^2, the matched noise at sigma^2, in
        // either convention. 20,000 draws give a variance to a relative standard error of
        // sqrt(2/20000) = 1%; the bound is 5%.
        let sigma: f64 = 0.5;
        let n = 20_000;
        let point_score = |x: &Array2<f64>, _: usize, s: f64| Ok(x.mapv(|v| -v / (s * s)));
        let var = |x: &Array2<f64>| x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 / (sigma * sigma);
        let mut c = AnnealedLangevin::paper(vec![sigma]);
        c.eps = 1.2 * sigma * sigma;
        c.steps_per_level = 40;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let x0 = Array2::from_shape_simple_fn((n, 1), || sigma * rng.sample::<f64, _>(rand_distr::StandardNormal));
        let paper = annealed_langevin(x0.clone(), point_score, &c, &mut rng).unwrap();
        assert!(
            (var(&paper.samples) / (1.0 / 0.7) - 1.0).abs() < 0.05,
            "paper: {}",
            var(&paper.samples)
        );
        c.matched_noise = true;
        let (drift, noise) = c.coefficients(0);
        assert!((drift - 0.6 * sigma * sigma).abs() < 1e-15);
        assert!(
            (noise * noise - 1.2 * sigma * sigma * 0.7).abs() < 1e-15,
            "alpha (1 - alpha/(4 sigma^2))"
        );
        for convention in [StepConvention::Paper, StepConvention::Reference] {
            c.convention = convention;
            // The reference form's step is half the paper's alpha: the same update.
            c.eps = if convention == StepConvention::Paper { 1.2 } else { 0.6 } * sigma * sigma;
            let matched = annealed_langevin(x0.clone(), point_score, &c, &mut rng).unwrap();
            assert!(
                (var(&matched.samples) - 1.0).abs() < 0.05,
                "{convention:?}: {}",
                var(&matched.samples)
            );
        }
    }

    #[test]
    fn matched_noise_refuses_a_step_of_four_sigma_squared() {
        // alpha_i / sigma_i^2 = eps / sigma_L^2 at every level: 4 is the edge.
        let mut c = AnnealedLangevin::paper(vec![1.0, 0.5, 0.1]);
        c.eps = 0.039;
        c.matched_noise = true;
        c.validate().unwrap();
        c.eps = 0.041;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`eps`") && err.contains("4.100 sigma^2"), "{err}");
        // The base step is fine, the band's three times it is not: the band's factor is named.
        c.eps = 0.02;
        c.step_band = Some(StepBand {
            low: 0.4,
            high: 0.6,
            factor: 3.0,
        });
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`step_band.factor`") && err.contains("sigma 0.5"), "{err}");
        // The paper's noise does not need it (on data that varies in every direction, as the
        // toy 2D sets do, such a step can still settle).
        c.matched_noise = false;
        c.validate().unwrap();
    }

    #[test]
    fn rejects_bad_low_noise_steps() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (below, steps, key) in [
            (0.5, 0, "low_noise.steps"),
            (f64::NAN, 3, "low_noise.below"),
            (-1.0, 3, "low_noise.below"),
        ] {
            let mut c = AnnealedLangevin::paper(vec![1.0, 0.1]);
            c.low_noise = Some(LowNoiseSteps { below, steps });
            let e = annealed_langevin(Array2::zeros((2, 2)), gaussian_score(1.0), &c, &mut rng).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn final_denoising_is_tweedie() {
        // For data exactly at 0 and x~ = x + sigma z, the score of p_sigma is -x/sigma^2, and the
        // denoising step maps every particle to the data point 0 exactly.
        let mut c = AnnealedLangevin::paper(vec![0.5]);
        c.steps_per_level = 20;
        c.eps = 0.01;
        c.final_denoise = true;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let x0 = Array2::from_elem((10, 2), 1.0);
        let out = annealed_langevin(x0, |x: &Array2<f64>, _, s| Ok(x.mapv(|v| -v / (s * s))), &c, &mut rng).unwrap();
        assert!(out.samples.iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn projection_holds_observed_coordinates() {
        struct FixFirst(f64);
        impl Projection<Array2<f64>> for FixFirst {
            fn begin_level<R: Rng + ?Sized>(&mut self, _: usize, sigma: f64, _: &mut R) -> Result<()> {
                self.0 = 7.0 + sigma;
                Ok(())
            }
            fn project(&mut self, mut x: Array2<f64>) -> Result<Array2<f64>> {
                x.column_mut(0).fill(self.0);
                Ok(x)
            }
        }
        let mut c = AnnealedLangevin::paper(vec![1.0, 0.1]);
        c.eps = 0.01;
        c.steps_per_level = 5;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let out = annealed_langevin_projected(
            Array2::zeros((4, 2)),
            gaussian_score(1.0),
            &c,
            &mut FixFirst(0.0),
            &mut rng,
        )
        .unwrap();
        assert!(out.samples.column(0).iter().all(|&v| (v - 7.1).abs() < 1e-12));
        assert!(out.samples.column(1).iter().any(|&v| v != 0.0));
    }

    #[test]
    fn rejects_increasing_sigmas_and_bad_eps() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let c = AnnealedLangevin::paper(vec![0.1, 1.0]);
        let e = annealed_langevin(Array2::zeros((2, 2)), gaussian_score(1.0), &c, &mut rng).unwrap_err();
        assert!(e.to_string().contains("sigmas"));
        let mut c = AnnealedLangevin::paper(vec![1.0]);
        c.eps = f64::NAN;
        assert!(annealed_langevin(Array2::zeros((2, 2)), gaussian_score(1.0), &c, &mut rng).is_err());
    }
}
