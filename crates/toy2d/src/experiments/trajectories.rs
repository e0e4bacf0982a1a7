//! The Langevin visualizer: particles moving under annealed Langevin dynamics over the score field
//! of the current noise level, with exact scores of the perturbed mixture
//! `p_sigma = p * N(0, sigma^2 I)`.
//!
//! Same settings as Fig. 3 (`sigma` geometric 20 -> 1 over 10 levels, 100 steps per level,
//! `eps = 0.1` in the paper's convention). At large `sigma` the field points everything to one
//! broad bump whose mass is split 1:4; as `sigma` shrinks the bump splits into the two modes and
//! the particles go to the side they are on, in the right proportions.
use super::langevin_weights::{annealed_config, exact_score};
use super::score_field::arrow_vectors;
use super::{sampler_err, uniform_square, Context, Table};
use crate::plot::{self, density_color, draw_arrows, draw_heatmap, draw_points, plot_err, square_chart, Grid, FONT};
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use langevin::blocks::BLOCK;
use langevin::{annealed_langevin_into, in_blocks};
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

/// Particles shown (fewer than Fig. 3's 1,280 keeps each dot readable).
pub const PARTICLES: usize = 600;
/// A frame every this many Langevin steps.
pub const RECORD_EVERY: usize = 50;
/// The plotted square.
pub const BOUNDS: (f64, f64) = (-10.0, 10.0);

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

/// `trajectories.json`.
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
}

struct FieldOfLevel {
    shading: Array2<f64>,
    arrows: Array2<f64>,
}

/// What every frame draws under the particles: the field of each level.
struct Scene {
    shade: Grid,
    apts: Array2<f64>,
    fields: Vec<FieldOfLevel>,
}

impl Scene {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        snap: &langevin::Snapshot<Array2<f64>>,
        title: &str,
        size: u32,
    ) -> Result<()> {
        let f = &self.fields[snap.level];
        let mut chart = square_chart(area, title, BOUNDS, size)?;
        // 8 shading bands (flat colours keep the GIF small)
        draw_heatmap(&mut chart, &self.shade, &f.shading, (0.0, 1.0), |t| {
            density_color(0.6 * (t * 8.0).floor().min(7.0) / 7.0)
        })?;
        draw_arrows(
            &mut chart,
            self.apts.view(),
            f.arrows.view(),
            RGBColor(90, 90, 90).stroke_width(1),
        )?;
        draw_points(&mut chart, snap.x.view(), RGBColor(214, 39, 40).mix(0.8), 2, None)?;
        Ok(())
    }
}

/// Runs the experiment.
pub fn run(ctx: &Context) -> Result<Table> {
    let p = paper_mixture();
    let mut config = annealed_config()?;
    config.record_every = Some(RECORD_EVERY);
    let perturbed: Vec<GaussianMixture> = config
        .sigmas
        .iter()
        .map(|&s| p.perturbed(s))
        .collect::<Result<_, _>>()
        .context("perturbing the mixture")?;
    let mut rng = ctx.rng(50);
    let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
    // The sampler of `langevin-weights`, in its blocks, keeping the snapshots.
    let score = exact_score(&p, &perturbed);
    let traj = in_blocks(x0.view(), BLOCK, 0, &mut rng, |xb, r| {
        annealed_langevin_into(xb, |x, level, _, out| score(x, level, out), &config, r)
    })
    .map_err(sampler_err)?;

    // the field of each level: density shading and arrows
    let shade = Grid::square(BOUNDS.0, BOUNDS.1, 80);
    let agrid = Grid::square(BOUNDS.0, BOUNDS.1, 17);
    let apts = agrid.points();
    let fields: Vec<FieldOfLevel> = perturbed
        .iter()
        .map(|q| {
            let d = q.density(shade.points().view());
            let dmax = d.iter().cloned().fold(0.0, f64::max);
            let s = q.score(apts.view());
            let s_max = s.outer_iter().map(|r| r.dot(&r).sqrt()).fold(0.0, f64::max);
            FieldOfLevel {
                shading: shade.reshape(&d.iter().map(|v| (v / dmax).sqrt()).collect::<Vec<_>>()),
                arrows: arrow_vectors(&s, agrid.cell() * 0.9, s_max),
            }
        })
        .collect();
    let scene = Scene { shade, apts, fields };
    // the GIF: every snapshot, then the last one held for a second
    let snaps = &traj.snapshots;
    let hold = 6;
    let n_frames = snaps.len() + hold;
    let bar = ctx.bar(n_frames as u64, "rendering trajectories.gif");
    let total_levels = config.sigmas.len();
    plot::save_gif(&ctx.out, "trajectories.gif", (560, 600), 150, n_frames, |root, k| {
        bar.inc(1);
        let snap = &snaps[k.min(snaps.len() - 1)];
        let (head, body) = root.split_vertically(34);
        head.titled("Annealed Langevin dynamics, exact scores of p_σ", (FONT, 19))
            .map_err(plot_err)?;
        let title = format!(
            "level {}/{}, σ = {:.2}, step {}",
            snap.level + 1,
            total_levels,
            snap.sigma,
            snap.step
        );
        scene.draw(&body, snap, &title, 18)
    })?;
    bar.finish_and_clear();

    // one panel per level: the particles at the end of that level
    let mut ends: Vec<&langevin::Snapshot<Array2<f64>>> = Vec::new();
    for level in 0..total_levels {
        // the last snapshot of this level, or the final one for the last level
        let next_start = snaps.iter().position(|s| s.level > level);
        let end = match next_start {
            Some(i) => &snaps[i],
            None => &snaps[snaps.len() - 1],
        };
        ends.push(end);
    }
    plot::save_png(&ctx.out, "trajectories_levels.png", (1800, 820), |root| {
        let (head, body) = root.split_vertically(40);
        head.titled(
            "Annealed Langevin with exact scores of p_σ: particles after each level (shading: p_σ, arrows: ∇ log p_σ; particles outside the square not shown)",
            (FONT, 22),
        )
        .map_err(plot_err)?;
        for (level, area) in body.split_evenly((2, 5)).iter().enumerate() {
            let title = format!("level {}: σ = {:.2}", level + 1, config.sigmas[level]);
            let mut snap = ends[level].clone();
            snap.level = level;
            scene.draw(area, &snap, &title, 16)?;
        }
        Ok(())
    })?;

    let levels: Vec<LevelSummary> = (0..total_levels)
        .map(|level| {
            let x = &ends[level].x;
            Ok(LevelSummary {
                level,
                sigma: config.sigmas[level],
                step_size: config.step_size(level),
                mode_weights_at_end: p.mode_weights(x.view())?,
                mean_distance_to_nearest_mode: nearest_mode_distance(&p, x),
            })
        })
        .collect::<Result<_>>()?;
    let report = Report {
        seed: ctx.seed,
        particles: PARTICLES,
        steps_per_level: config.steps_per_level,
        eps: config.eps,
        frames: n_frames,
        record_every: RECORD_EVERY,
        levels,
    };
    ctx.out.write_json("trajectories.json", &report)?;

    let mut table = Table::new(
        "trajectories: annealed Langevin with exact scores, particles per mode after each level",
        &["level", "σ", "α", "w(-5,-5)", "w(5,5)", "mean dist. to mode"],
    );
    for l in &report.levels {
        table.row(vec![
            (l.level + 1).to_string(),
            format!("{:.3}", l.sigma),
            format!("{:.3}", l.step_size),
            format!("{:.3}", l.mode_weights_at_end[0]),
            format!("{:.3}", l.mode_weights_at_end[1]),
            format!("{:.3}", l.mean_distance_to_nearest_mode),
        ]);
    }
    table.files = vec![
        "trajectories.gif".into(),
        "trajectories_levels.png".into(),
        "trajectories.json".into(),
    ];
    Ok(table)
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
