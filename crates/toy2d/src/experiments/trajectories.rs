//! The Langevin visualizer: particles moving under annealed Langevin dynamics over the score field
//! of the current noise level, with exact scores of the perturbed mixture
//! `p_sigma = p * N(0, sigma^2 I)`.
//!
//! Same settings as Fig. 3 (`sigma` geometric 20 -> 1 over 10 levels, 100 steps per level,
//! `eps = 0.1` in the paper's convention). At large `sigma` the field points everything to one
//! broad bump whose mass is split 1:4; as `sigma` shrinks the bump splits into the two modes and
//! the particles go to the side they are on, in the right proportions.
use super::langevin_weights::{annealed_config, annealed_exact};
use super::{uniform_square, Context, Table};
use crate::scores::PerturbedMixture;
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use indicatif::ProgressBar;
use langevin::Snapshot;
use ndarray::Array2;
use serde::Serialize;

/// Particles shown (fewer than Fig. 3's 1,280 keeps each dot readable).
pub const PARTICLES: usize = 600;
/// A frame every this many Langevin steps.
pub const RECORD_EVERY: usize = 50;
/// The square of the GIF.
pub const BOUNDS: (f64, f64) = (-10.0, 10.0);
/// The levels (0-based) drawn in `trajectories_levels.png`: sigma 20, 10.3, 5.3, 2.7, 1.4, 1.
pub const PANEL_LEVELS: [usize; 6] = [0, 2, 4, 6, 8, 9];

/// The window of the panel of a level of noise `sigma`: `[-(8 + 3 sigma), 8 + 3 sigma]^2`. At the
/// end of a level the particles spread like `p_sigma`, whose components have standard deviation
/// `sqrt(1 + sigma^2) <= 1 + sigma` around modes at distance `5 sqrt 2 < 8` from the origin: the
/// window holds each component out to about three of its standard deviations, at every level.
pub fn panel_bounds(sigma: f64) -> (f64, f64) {
    let half = 8.0 + 3.0 * sigma;
    (-half, half)
}
/// The GIF holds its last frame for this many more frames.
pub const HOLD_FRAMES: usize = 6;

/// One level in `trajectories.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LevelSummary {
    /// 0-based level.
    pub level: usize,
    /// Its sigma.
    pub sigma: f64,
    /// Its step size `alpha_i`.
    pub step_size: f64,
    /// Fraction of particles in each mode of `p` at the end of the level.
    pub mode_weights_at_end: Vec<f64>,
    /// Mean distance of a particle from its nearest mode at the end of the level.
    pub mean_distance_to_nearest_mode: f64,
}

/// What the experiment found; serialised as `trajectories.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Number of particles.
    pub particles: usize,
    /// Steps per level.
    pub steps_per_level: usize,
    /// `eps` (paper convention).
    pub eps: f64,
    /// Frames of the GIF and the interval between them in steps.
    pub frames: usize,
    /// Steps between frames.
    pub record_every: usize,
    /// Per-level numbers.
    pub levels: Vec<LevelSummary>,
    /// Not in the JSON: the exact scores the particles moved under.
    #[serde(skip)]
    pub exact: PerturbedMixture,
    /// Not in the JSON: the particles every `record_every` steps, and at the end.
    #[serde(skip)]
    pub snapshots: Vec<Snapshot<Array2<f64>>>,
    /// Not in the JSON: the particles at the end of each level (index: level).
    #[serde(skip)]
    pub level_ends: Vec<Snapshot<Array2<f64>>>,
}

/// Runs the experiment.
pub fn compute(ctx: &Context) -> Result<Report> {
    let mut config = annealed_config()?;
    config.record_every = Some(RECORD_EVERY);
    let exact = PerturbedMixture::new(paper_mixture(), &config.sigmas).context("perturbing the mixture")?;
    let p = exact.mixture();
    let mut rng = ctx.rng(50);
    let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
    // The sampler of `langevin-weights`, in its blocks, keeping the snapshots.
    let traj = annealed_exact(&x0, &exact, &config, 0, &mut rng, &ProgressBar::hidden())
        .context("annealed Langevin, exact scores")?;
    let snapshots = traj.snapshots;

    // the particles at the end of each level: the first snapshot of the next level, or the
    // final one for the last level
    let total_levels = config.sigmas.len();
    let level_ends: Vec<Snapshot<Array2<f64>>> = (0..total_levels)
        .map(|level| {
            let end = match snapshots.iter().position(|s| s.level > level) {
                Some(i) => &snapshots[i],
                None => &snapshots[snapshots.len() - 1],
            };
            Snapshot { level, ..end.clone() }
        })
        .collect();
    let levels: Vec<LevelSummary> = level_ends
        .iter()
        .map(|end| {
            Ok(LevelSummary {
                level: end.level,
                sigma: config.sigmas[end.level],
                step_size: config.step_size(end.level),
                mode_weights_at_end: p
                    .mode_weights(end.x.view())
                    .with_context(|| format!("mode weights at the end of level {}", end.level))?,
                mean_distance_to_nearest_mode: nearest_mode_distance(p, &end.x),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Report {
        seed: ctx.seed,
        particles: PARTICLES,
        steps_per_level: config.steps_per_level,
        eps: config.eps,
        frames: snapshots.len() + HOLD_FRAMES,
        record_every: RECORD_EVERY,
        levels,
        exact,
        snapshots,
        level_ends,
    })
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            "trajectories: annealed Langevin with exact scores, particles per mode after each level",
            &["level", "σ", "α", "w(-5,-5)", "w(5,5)", "mean dist. to mode"],
        );
        for l in &self.levels {
            table.row(vec![
                (l.level + 1).to_string(),
                format!("{:.3}", l.sigma),
                format!("{:.3}", l.step_size),
                format!("{:.3}", l.mode_weights_at_end[0]),
                format!("{:.3}", l.mode_weights_at_end[1]),
                format!("{:.3}", l.mean_distance_to_nearest_mode),
            ]);
        }
        table
    }
}

fn nearest_mode_distance(p: &GaussianMixture, x: &Array2<f64>) -> f64 {
    let means = p.means();
    let total: f64 = x
        .outer_iter()
        .map(|r| {
            means
                .outer_iter()
                .map(|m| ((r[0] - m[0]).powi(2) + (r[1] - m[1]).powi(2)).sqrt())
                .fold(f64::INFINITY, f64::min)
        })
        .sum();
    total / x.nrows().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::tests::context;

    #[test]
    fn each_panel_window_holds_nearly_all_particles_of_its_level() {
        // The reason the windows grow with sigma: a fixed [-10, 10]^2 loses most particles at the
        // first levels, a window of half-width 8 + 3 sigma keeps >= 98% at every drawn level.
        let report = compute(&context(0)).unwrap();
        assert_eq!(report.level_ends.len(), 10);
        let inside = |x: &Array2<f64>, (lo, hi): (f64, f64)| {
            x.outer_iter()
                .filter(|r| r.iter().all(|v| (lo..=hi).contains(v)))
                .count() as f64
                / x.nrows() as f64
        };
        for &level in &PANEL_LEVELS {
            let end = &report.level_ends[level];
            let frac = inside(&end.x, panel_bounds(report.levels[level].sigma));
            assert!(frac >= 0.98, "level {}: {frac} inside", level + 1);
        }
        // the fixed square of the GIF would show fewer than half of them after the first level
        assert!(inside(&report.level_ends[0].x, BOUNDS) < 0.5);
    }
}
