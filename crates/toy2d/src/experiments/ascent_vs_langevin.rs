//! Chapter 4: gradient ascent on `log p` collapses onto the modes; Langevin dynamics, the same
//! update plus noise, spreads as `p`.
//!
//! On the paper's mixture `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)`, [`PARTICLES`] particles start
//! uniform in `[-8, 8]^2` and take [`STEPS`] steps with the exact score `s = grad log p` and the
//! same step `eps` ([`EPS`]), both with the drift `eps/2 s` of the paper's Langevin update:
//!
//! - gradient ascent: `x <- x + eps/2 s(x)`;
//! - Langevin dynamics: `x <- x + eps/2 s(x) + sqrt(eps) z`, `z ~ N(0, I)`.
//!
//! Near a mode `mu` the score is `-(x - mu)` (unit variance; the other component's
//! responsibility is negligible), so ascent contracts the distance to the mode by `1 - eps/2`
//! per step: after `STEPS` steps by `0.95^1000 ~ 5e-23`, a point mass on each mode (in `f64` a
//! particle stops moving about 1e-14 from its mode, where `eps/2 (x - mu)` falls below half the
//! spacing of the floating-point numbers near 5). Langevin's
//! stationary variance per coordinate for that Gaussian is `V = v / (1 - eps/(4v))` with `v = 1`
//! (Chapter 4, "What a finite step costs"): `1.0256`. Both send each particle to the mode on its
//! side, so both split the particles about evenly between the modes, not 0.2/0.8 (Chapter 5).
//!
//! Randomness: stream 80 of the seed (initial particles, then the key of Langevin's blocks).
use super::{fmt_num, uniform_square, Context, Table};
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use langevin::blocks::BLOCK;
use langevin::{in_blocks, langevin_into, StepConvention};
use ndarray::Array2;
use serde::Serialize;

/// Particles (as in `langevin-weights`).
pub const PARTICLES: usize = 1280;
/// The step `eps` of both samplers (paper convention: drift `eps/2 s`, noise `sqrt(eps) z`).
pub const EPS: f64 = 0.1;
/// Steps of both samplers.
pub const STEPS: usize = 1000;
/// The spread is recorded every this many steps.
pub const RECORD_EVERY: usize = 10;
/// The square the particles start in.
pub const START: (f64, f64) = (-8.0, 8.0);

/// One sampler's end state.
#[derive(Debug, Clone, Serialize)]
pub struct SamplerEnd {
    /// `gradient ascent` or `Langevin`.
    pub sampler: String,
    /// Fraction of particles in each mode, small mode `(-5,-5)` first.
    pub mode_weights: Vec<f64>,
    /// Mean over particles and coordinates of `(x_d - mu_d)^2`, `mu` the nearest mode: the
    /// variance per coordinate within a mode.
    pub within_mode_variance: f64,
    /// The largest distance of a particle from its nearest mode.
    pub max_distance_to_mode: f64,
}

/// What the experiment found; serialised as `ascent_vs_langevin.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Number of particles.
    pub particles: usize,
    /// The step `eps`.
    pub eps: f64,
    /// Steps of each sampler.
    pub steps: usize,
    /// `p`'s variance per coordinate within a mode.
    pub mode_variance: f64,
    /// Langevin's stationary variance for that Gaussian at this step, `v / (1 - eps / (4 v))`.
    pub langevin_stationary_variance: f64,
    /// The standard error of `within_mode_variance` for `particles` independent draws from the
    /// stationary Gaussian: `V sqrt(2 / (2 N))` (2N coordinates, each `(x - mu)^2` of variance `2V^2`).
    pub langevin_variance_standard_error: f64,
    /// `(1 - eps/2)^steps`: what ascent leaves of a particle's initial distance to its mode.
    pub ascent_contraction: f64,
    /// The particles' start: fraction on each side (by nearest mode, as `mode_weights`).
    pub start_mode_weights: Vec<f64>,
    /// Gradient ascent, then Langevin dynamics.
    pub samplers: Vec<SamplerEnd>,
    /// Not in the JSON: the starting particles.
    #[serde(skip)]
    pub start: Array2<f64>,
    /// Not in the JSON: ascent's and Langevin's final particles.
    #[serde(skip)]
    pub ends: [Array2<f64>; 2],
    /// Not in the JSON: the within-mode variance every `RECORD_EVERY` steps, ascent and Langevin.
    #[serde(skip)]
    pub spread_history: [Vec<(usize, f64)>; 2],
}

/// Mean squared distance per coordinate to the nearest mode, and the largest distance.
fn spread(p: &GaussianMixture, x: &Array2<f64>) -> (f64, f64) {
    let means = p.means();
    let (mut sum, mut max) = (0.0, 0.0f64);
    for r in x.outer_iter() {
        let d2 = means
            .outer_iter()
            .map(|m| (r[0] - m[0]).powi(2) + (r[1] - m[1]).powi(2))
            .fold(f64::INFINITY, f64::min);
        sum += d2;
        max = max.max(d2.sqrt());
    }
    (sum / (x.len().max(1)) as f64, max)
}

/// Gradient ascent `x <- x + eps/2 s(x)` for `STEPS` steps, with the spread every `RECORD_EVERY`.
fn ascend(p: &GaussianMixture, x0: &Array2<f64>) -> (Array2<f64>, Vec<(usize, f64)>) {
    let mut x = x0.clone();
    let mut s = Array2::zeros(x.raw_dim());
    let mut history = Vec::new();
    for t in 0..STEPS {
        if t.is_multiple_of(RECORD_EVERY) {
            history.push((t, spread(p, &x).0));
        }
        p.score_into(x.view(), s.view_mut());
        x.scaled_add(0.5 * EPS, &s); // x + eps/2 s(x)
    }
    history.push((STEPS, spread(p, &x).0));
    (x, history)
}

fn end(p: &GaussianMixture, sampler: &str, x: &Array2<f64>) -> Result<SamplerEnd> {
    let (within_mode_variance, max_distance_to_mode) = spread(p, x);
    Ok(SamplerEnd {
        sampler: sampler.into(),
        mode_weights: p
            .mode_weights(x.view())
            .with_context(|| format!("mode weights of {sampler}"))?,
        within_mode_variance,
        max_distance_to_mode,
    })
}

/// Runs the experiment.
pub fn compute(ctx: &Context) -> Result<Report> {
    let p = paper_mixture();
    let mut rng = ctx.rng(80);
    let start = uniform_square(PARTICLES, START, &mut rng);
    let (ascent, ascent_history) = ascend(&p, &start);
    // Langevin: the same start and step, in blocks of independent chains (one stream each).
    let traj = in_blocks(start.view(), BLOCK, 0, &mut rng, |xb, r| {
        let score = |x: &Array2<f64>, out: &mut Array2<f64>| {
            p.score_into(x.view(), out.view_mut());
            Ok(())
        };
        langevin_into(xb, score, EPS, STEPS, StepConvention::Paper, Some(RECORD_EVERY), r)
    })
    .context("Langevin dynamics, exact score")?;
    let langevin_history = traj
        .snapshots
        .iter()
        .map(|snap| (snap.step, spread(&p, &snap.x).0))
        .collect();
    let v = p.variances()[[0, 0]];
    let stationary = v / (1.0 - EPS / (4.0 * v));
    Ok(Report {
        seed: ctx.seed,
        particles: PARTICLES,
        eps: EPS,
        steps: STEPS,
        mode_variance: v,
        langevin_stationary_variance: stationary,
        langevin_variance_standard_error: stationary / (PARTICLES as f64).sqrt(),
        ascent_contraction: (1.0 - EPS / 2.0).powi(STEPS as i32),
        start_mode_weights: p.mode_weights(start.view()).context("mode weights of the start")?,
        samplers: vec![
            end(&p, "gradient ascent", &ascent)?,
            end(&p, "Langevin", &traj.samples)?,
        ],
        start,
        ends: [ascent, traj.samples],
        spread_history: [ascent_history, langevin_history],
    })
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            &format!(
                "ascent-vs-langevin: {} steps of eps = {} from the same start, exact score",
                self.steps, self.eps
            ),
            &[
                "sampler",
                "w(-5,-5)",
                "w(5,5)",
                "variance within a mode",
                "max dist. to mode",
            ],
        );
        for s in &self.samplers {
            table.row(vec![
                s.sampler.clone(),
                format!("{:.3}", s.mode_weights[0]),
                format!("{:.3}", s.mode_weights[1]),
                fmt_num(s.within_mode_variance),
                fmt_num(s.max_distance_to_mode),
            ]);
        }
        table.row(vec![
            "p (Langevin's stationary value)".into(),
            "0.2".into(),
            "0.8".into(),
            format!(
                "{} ({} ± {})",
                fmt_num(self.mode_variance),
                fmt_num(self.langevin_stationary_variance),
                fmt_num(self.langevin_variance_standard_error)
            ),
            String::new(),
        ]);
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascent_collapses_and_langevin_spreads_as_p() {
        let r = compute(&crate::experiments::tests::context(0)).unwrap();
        let [ascent, langevin] = &r.samplers[..] else { panic!() };
        // Ascent: every particle ends on a mode. A start at most 8 sqrt 2 + 5 sqrt 2 ~ 18.4 from
        // its mode is contracted by 0.95 per step once its responsibility is ~1 (and the score is
        // -(x - mu)), 0.95^1000 ~ 5e-23; rounding stops it ~1e-14 away (0.05 |x - mu| below half
        // an ulp of 5, 4.4e-16), so 1e-12 is 100 times that and 1e10 times below Langevin's spread.
        assert!(ascent.max_distance_to_mode < 1e-12, "{}", ascent.max_distance_to_mode);
        assert!(ascent.within_mode_variance < 1e-24);
        // Ascent keeps each particle on its starting side: the weights are the start's, about
        // one half each (the boundary x1 + x2 = -0.139 cuts the square in two near-halves).
        for (a, s) in ascent.mode_weights.iter().zip(&r.start_mode_weights) {
            assert!((a - s).abs() < 0.01, "{a} vs {s}");
        }
        // Langevin: the variance within a mode is the stationary V = 1.0256 within 5 standard
        // errors (V / sqrt N = 0.029 for N = 1,280); the chains forget their start after
        // ~2v/eps = 20 steps, so 1,000 steps add no bias worth counting. A sampler without noise
        // (0), or with noise sqrt(2 eps) (variance ~2), fails by far.
        let tol = 5.0 * r.langevin_variance_standard_error;
        assert!(
            (langevin.within_mode_variance - r.langevin_stationary_variance).abs() < tol,
            "{} vs {} ± {tol}",
            langevin.within_mode_variance,
            r.langevin_stationary_variance
        );
        // Neither gets the weights right: the small mode gets far more than 0.2 (Chapter 5).
        assert!(langevin.mode_weights[0] > 0.35 && ascent.mode_weights[0] > 0.35);
        // The recorded spread: ascent's falls monotonically, Langevin's levels off near V.
        let h = &r.spread_history[0];
        assert!(h.windows(2).all(|w| w[1].1 <= w[0].1));
        let last = r.spread_history[1].last().unwrap();
        assert_eq!(last.0, STEPS);
        assert_eq!(last.1, langevin.within_mode_variance);
    }
}
