//! Paper Fig. 3: Langevin dynamics with the exact score gets the weights of a mixture wrong;
//! annealed Langevin dynamics recovers them.
//!
//! On `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)`, 1,280 particles start uniform in `[-8, 8]^2`.
//! The score `grad log p` near each mode hardly depends on the weights (the other component's
//! responsibility is ~0 there), so a particle that starts on one side stays there: plain Langevin
//! (`eps = 0.1`, 1,000 steps) leaves about half of the mass in each mode. Annealed Langevin
//! (`sigma` geometric from 20 to 1 over 10 levels, 100 steps each, `alpha_i = eps sigma_i^2 /
//! sigma_L^2`, `eps = 0.1`) starts where `p_sigma` is one broad bump and the weights are felt.
//! The second half repeats both with a noise-conditional network trained by DSM.
use super::{fmt_num, sampler_err, uniform_square, Context, Table};
use crate::model::{score_array, Conditioning};
use crate::plot::{self, draw_contours, draw_points, plot_err, square_chart, Grid, FONT, PALETTE};
use crate::train::{train_ncsn, TrainConfig};
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use indicatif::ProgressBar;
use langevin::blocks::BLOCK;
use langevin::{
    annealed_langevin_into, geometric_sigmas, in_blocks, langevin_into, AnnealedLangevin, StepConvention, Trajectory,
};
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Particles, as in the paper.
pub const PARTICLES: usize = 1280;
/// Plain Langevin: step `eps` and number of steps.
pub const PLAIN_EPS: f64 = 0.1;
/// Plain Langevin steps.
pub const PLAIN_STEPS: usize = 1000;
/// Annealed: base step (paper convention), steps per level.
pub const ANNEALED_EPS: f64 = 0.1;
/// Steps per noise level.
pub const STEPS_PER_LEVEL: usize = 100;
/// Default training steps of the learned noise-conditional model.
pub const DEFAULT_TRAIN_STEPS: usize = 3000;

/// The numbers of one sampler run.
#[derive(Debug, Clone, Serialize)]
pub struct SamplerResult {
    /// Sampler name.
    pub sampler: String,
    /// Fraction of particles in each mode (most responsible component), `[(-5,-5), (5,5)]`.
    pub mode_weights: Vec<f64>,
    /// `|w_0 - 0.2|`.
    pub weight_error: f64,
}

/// `langevin_weights.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Number of particles.
    pub particles: usize,
    /// The true weights.
    pub true_weights: Vec<f64>,
    /// Noise levels of the annealed sampler.
    pub sigmas: Vec<f64>,
    /// Step sizes `alpha_i = eps sigma_i^2 / sigma_L^2` (paper convention).
    pub step_sizes: Vec<f64>,
    /// `eps` of plain Langevin, its number of steps.
    pub plain_eps: f64,
    /// Steps of plain Langevin.
    pub plain_steps: usize,
    /// Steps per level of annealed Langevin.
    pub steps_per_level: usize,
    /// Exact scores: iid samples, Langevin, annealed Langevin.
    pub exact: Vec<SamplerResult>,
    /// The learned noise-conditional model: Langevin at `sigma_L`, annealed Langevin.
    pub learned: Vec<SamplerResult>,
    /// Training steps of the learned model and its final loss (mean of the last 10%).
    pub learned_train_steps: usize,
    /// Mean DSM loss over the last 10% of training.
    pub learned_final_loss: f64,
}

fn result(p: &GaussianMixture, sampler: &str, x: &Array2<f64>) -> Result<SamplerResult> {
    let w = p
        .mode_weights(x.view())
        .with_context(|| format!("mode weights of `{sampler}`"))?;
    Ok(SamplerResult {
        sampler: sampler.to_string(),
        weight_error: (w[0] - p.weights()[0]).abs(),
        mode_weights: w,
    })
}

/// The annealed-Langevin settings of the figure.
pub fn annealed_config() -> Result<AnnealedLangevin> {
    let sigmas = geometric_sigmas(20.0, 1.0, 10)?;
    let mut config = AnnealedLangevin::paper(sigmas);
    config.eps = ANNEALED_EPS;
    config.steps_per_level = STEPS_PER_LEVEL;
    Ok(config)
}

/// A score for the samplers below: `score(x, level, out)` writes the score of the particles `x` at
/// noise level `level` into `out` (plain Langevin asks for [`PLAIN_LEVEL`]).
pub trait LevelScore: Fn(&Array2<f64>, usize, &mut Array2<f64>) -> langevin::Result<()> + Sync {}
impl<F: Fn(&Array2<f64>, usize, &mut Array2<f64>) -> langevin::Result<()> + Sync> LevelScore for F {}

/// The level plain Langevin asks its [`LevelScore`] for (the exact score uses the unperturbed
/// `p`, the learned one its smallest level).
pub const PLAIN_LEVEL: usize = usize::MAX;

/// The exact scores as a [`LevelScore`]: `grad log p` for [`PLAIN_LEVEL`], else
/// `grad log p_sigma_level` of `perturbed[level]`, computed in place ([`GaussianMixture::score_into`]).
pub fn exact_score<'a>(p: &'a GaussianMixture, perturbed: &'a [GaussianMixture]) -> impl LevelScore + 'a {
    move |x: &Array2<f64>, level: usize, out: &mut Array2<f64>| {
        let q = if level == PLAIN_LEVEL { p } else { &perturbed[level] };
        q.score_into(x.view(), out.view_mut());
        Ok(())
    }
}

/// Annealed Langevin (`config`) from `x0` with `score`. With `block = Some(b)`, in blocks of `b`
/// particles on every core ([`langevin::in_blocks`]; each block its own stream drawn from `rng`,
/// so the samples do not depend on the thread count): the exact scores, and what
/// `cargo bench -p toy2d --bench langevin` measures. With `None`, one chain on `rng` itself (the
/// learned network is cheapest on the whole batch at once). `bar` ticks once per block and step.
pub fn sample_annealed(
    x0: &Array2<f64>,
    score: &impl LevelScore,
    config: &AnnealedLangevin,
    block: Option<usize>,
    rng: &mut ChaCha8Rng,
    bar: &ProgressBar,
) -> langevin::Result<Array2<f64>> {
    let tick = !bar.is_hidden(); // (a hidden bar's `inc` still reads the clock)
    let chain = |xb: Array2<f64>, r: &mut ChaCha8Rng| {
        let level_score = |x: &Array2<f64>, level: usize, _: f64, out: &mut Array2<f64>| {
            if tick {
                bar.inc(1);
            }
            score(x, level, out)
        };
        annealed_langevin_into(xb, level_score, config, r)
    };
    run_chains(x0, block, rng, chain)
}

/// `chain` on blocks of `x0` ([`in_blocks`]) or, without a block size, on all of it with `rng`.
fn run_chains(
    x0: &Array2<f64>,
    block: Option<usize>,
    rng: &mut ChaCha8Rng,
    chain: impl Fn(Array2<f64>, &mut ChaCha8Rng) -> langevin::Result<Trajectory<Array2<f64>>> + Sync,
) -> langevin::Result<Array2<f64>> {
    Ok(match block {
        Some(block) => in_blocks(x0.view(), block, 0, rng, chain)?.samples,
        None => chain(x0.clone(), rng)?.samples,
    })
}

/// Plain Langevin (`PLAIN_EPS`, `PLAIN_STEPS`, paper convention) from `x0` with
/// `score(x, PLAIN_LEVEL, out)`, in blocks as [`sample_annealed`].
pub fn sample_plain(
    x0: &Array2<f64>,
    score: &impl LevelScore,
    block: Option<usize>,
    rng: &mut ChaCha8Rng,
    bar: &ProgressBar,
) -> langevin::Result<Array2<f64>> {
    let tick = !bar.is_hidden();
    let chain = |xb: Array2<f64>, r: &mut ChaCha8Rng| {
        let plain_score = |x: &Array2<f64>, out: &mut Array2<f64>| {
            if tick {
                bar.inc(1);
            }
            score(x, PLAIN_LEVEL, out)
        };
        langevin_into(xb, plain_score, PLAIN_EPS, PLAIN_STEPS, StepConvention::Paper, None, r)
    };
    run_chains(x0, block, rng, chain)
}

/// Plain then annealed Langevin from `x0` with `score`, drawing from `rng` in that order, under
/// one progress bar. Returns the final particles of each.
fn plain_and_annealed(
    ctx: &Context,
    label: &str,
    x0: &Array2<f64>,
    score: &impl LevelScore,
    config: &AnnealedLangevin,
    block: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Result<(Array2<f64>, Array2<f64>)> {
    let blocks = block.map_or(1, |b| x0.nrows().div_ceil(b));
    let bar = ctx.bar(
        ((PLAIN_STEPS + config.sigmas.len() * config.steps_per_level) * blocks) as u64,
        label,
    );
    let plain = sample_plain(x0, score, block, rng, &bar).map_err(sampler_err)?;
    let annealed = sample_annealed(x0, score, config, block, rng, &bar).map_err(sampler_err)?;
    bar.finish_and_clear();
    Ok((plain, annealed))
}

/// Runs the experiment.
pub fn run(ctx: &Context) -> Result<Table> {
    let p = paper_mixture();
    let config = annealed_config()?;
    let sigmas = config.sigmas.clone();
    let perturbed: Vec<GaussianMixture> = sigmas
        .iter()
        .map(|&s| p.perturbed(s))
        .collect::<Result<_, _>>()
        .context("perturbing the mixture")?;

    // --- exact scores ---
    let mut rng = ctx.rng(20);
    let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
    let iid = p.sample(PARTICLES, &mut rng);
    let (plain, annealed) = plain_and_annealed(
        ctx,
        "Langevin, exact scores",
        &x0,
        &exact_score(&p, &perturbed),
        &config,
        Some(BLOCK),
        &mut rng,
    )?;
    let exact = vec![
        result(&p, "exact samples", &iid)?,
        result(&p, "Langevin (exact score)", &plain)?,
        result(&p, "annealed Langevin (exact scores)", &annealed)?,
    ];

    // --- a learned noise-conditional score ---
    let steps = ctx.train_steps(DEFAULT_TRAIN_STEPS);
    let cfg = TrainConfig {
        steps,
        batch_size: 128,
        lr: 1e-3,
        seed: ctx.seed,
        hidden: 128,
        progress: ctx.progress,
    };
    let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| p.sample(n, r);
    let (model, report) = train_ncsn(&mut data, &sigmas, Conditioning::EmbeddingOverSigma, &cfg, &ctx.device)
        .context("training the NCSN")?;
    let last = sigmas.len() - 1;
    let mut rng = ctx.rng(21);
    let learned_score = |x: &Array2<f64>, level: usize, out: &mut Array2<f64>| -> langevin::Result<()> {
        let level = if level == PLAIN_LEVEL { last } else { level };
        *out = score_array(&model, x.view(), Some(level), &ctx.device)?;
        Ok(())
    };
    // One chain on `rng`: the network is cheapest on the whole batch at once.
    let (plain_l, annealed_l) = plain_and_annealed(
        ctx,
        "Langevin, learned scores",
        &x0,
        &learned_score,
        &config,
        None,
        &mut rng,
    )?;
    let learned = vec![
        result(&p, "exact samples", &iid)?,
        result(&p, "Langevin (learned s(x, σ_L))", &plain_l)?,
        result(&p, "annealed Langevin (learned)", &annealed_l)?,
    ];
    let tail = report.loss_history.len() / 10;
    let final_loss = tail_mean(&report.loss_history, tail.max(1));

    // --- figures ---
    let titles = [
        "(a) exact samples",
        "(b) Langevin dynamics",
        "(c) annealed Langevin dynamics",
    ];
    let mut files = Vec::new();
    let sets_exact = [&iid, &plain, &annealed];
    files.push(scatter_figure(
        ctx,
        "langevin_weights.png",
        &p,
        &titles,
        &sets_exact,
        &exact,
        "Exact scores ∇ₓ log p (a: i.i.d. samples of p)",
    )?);
    let sets_learned = [&iid, &plain_l, &annealed_l];
    files.push(scatter_figure(
        ctx,
        "langevin_weights_learned.png",
        &p,
        &titles,
        &sets_learned,
        &learned,
        &format!("Learned noise-conditional score s_θ(x, σ) (DSM, {steps} steps); (b) uses σ_L = 1"),
    )?);
    files.push(bars_figure(ctx, &exact, &learned)?);

    let step_sizes = (0..sigmas.len()).map(|i| config.step_size(i)).collect();
    let report = Report {
        seed: ctx.seed,
        particles: PARTICLES,
        true_weights: p.weights().to_vec(),
        sigmas,
        step_sizes,
        plain_eps: PLAIN_EPS,
        plain_steps: PLAIN_STEPS,
        steps_per_level: STEPS_PER_LEVEL,
        exact: exact.clone(),
        learned: learned.clone(),
        learned_train_steps: steps,
        learned_final_loss: final_loss,
    };
    ctx.out.write_json("langevin_weights.json", &report)?;
    files.push("langevin_weights.json".into());

    let mut table = Table::new(
        "langevin-weights: mode weights on 1/5 N((-5,-5), I) + 4/5 N((5,5), I)",
        &["scores", "sampler", "w(-5,-5)", "w(5,5)", "|w - 0.2|"],
    );
    for (kind, results) in [("exact", &exact), ("learned", &learned)] {
        for r in results.iter().skip(if kind == "learned" { 1 } else { 0 }) {
            table.row(vec![
                kind.into(),
                r.sampler.clone(),
                format!("{:.3}", r.mode_weights[0]),
                format!("{:.3}", r.mode_weights[1]),
                format!("{:.3}", r.weight_error),
            ]);
        }
    }
    table.row(vec![
        "".into(),
        format!("learned model final DSM loss {}", fmt_num(final_loss)),
    ]);
    table.files = files;
    Ok(table)
}

/// Mean of the last `n` entries.
pub fn tail_mean(x: &[f64], n: usize) -> f64 {
    let n = n.min(x.len()).max(1);
    if x.is_empty() {
        return f64::NAN;
    }
    x[x.len() - n..].iter().sum::<f64>() / n as f64
}

/// Density contours of `p` to draw under scatter plots: the grid, the values, the levels.
pub fn density_contours(p: &GaussianMixture, bounds: (f64, f64)) -> (Grid, Array2<f64>) {
    let grid = Grid::square(bounds.0, bounds.1, 120);
    let logp = p.log_density(grid.points().view());
    (grid, grid.reshape(logp.as_slice().unwrap_or(&logp.to_vec())))
}

/// One scatter panel with faint density contours.
pub fn scatter_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    bounds: (f64, f64),
    points: &Array2<f64>,
    color: RGBColor,
    contours: Option<&(Grid, Array2<f64>)>,
) -> Result<()> {
    let mut chart = square_chart(area, title, bounds, 18)?;
    if let Some((grid, logp)) = contours {
        let top = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        // log-density levels 1, 3 and 6 nats below the peak
        let levels: Vec<f64> = [1.0, 3.0, 6.0].iter().map(|d| top - d).collect();
        draw_contours(&mut chart, grid, logp, &levels, RGBColor(150, 150, 150).stroke_width(1))?;
    }
    draw_points(&mut chart, points.view(), color.mix(0.45), 2, None)?;
    Ok(())
}

fn scatter_figure(
    ctx: &Context,
    name: &str,
    p: &GaussianMixture,
    titles: &[&str; 3],
    sets: &[&Array2<f64>; 3],
    results: &[SamplerResult],
    heading: &str,
) -> Result<String> {
    let contours = density_contours(p, (-8.0, 8.0));
    plot::save_png(&ctx.out, name, (1500, 560), |root| {
        let (top, body) = root.split_vertically(40);
        top.titled(heading, (FONT, 22)).map_err(plot_err)?;
        let panels = body.split_evenly((1, 3));
        for (k, area) in panels.iter().enumerate() {
            let w = &results[k].mode_weights;
            let title = format!("{}: weights {:.2} / {:.2}", titles[k], w[0], w[1]);
            scatter_panel(area, &title, (-8.0, 8.0), sets[k], PALETTE[k], Some(&contours))?;
        }
        Ok(())
    })?;
    Ok(name.to_string())
}

fn bars_figure(ctx: &Context, exact: &[SamplerResult], learned: &[SamplerResult]) -> Result<String> {
    // exact samples, Langevin exact, annealed exact, Langevin learned, annealed learned
    let bars: Vec<(&str, &SamplerResult)> = vec![
        ("exact samples", &exact[0]),
        ("Langevin", &exact[1]),
        ("annealed", &exact[2]),
        ("Langevin (learned)", &learned[1]),
        ("annealed (learned)", &learned[2]),
    ];
    let name = "langevin_weights_bars.png";
    plot::save_png(&ctx.out, name, (1000, 560), |root| {
        let n = bars.len();
        let mut chart = ChartBuilder::on(root)
            .caption("Mode weights after sampling (true: 0.2 / 0.8)", (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n as f64, 0.0..1.0)
            .map_err(plot_err)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
        let fmt = move |v: &f64| {
            let i = v.floor() as usize;
            if (v - i as f64 - 0.5).abs() < 1e-6 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(2 * n + 1)
            .x_label_formatter(&fmt)
            .y_desc("fraction of particles")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_err)?;
        let (c0, c1) = (PALETTE[0], PALETTE[1]);
        let w0: Vec<(usize, f64)> = bars.iter().enumerate().map(|(i, b)| (i, b.1.mode_weights[0])).collect();
        chart
            .draw_series(
                w0.iter()
                    .map(|&(i, w)| Rectangle::new([(i as f64 + 0.2, 0.0), (i as f64 + 0.8, w)], c0.filled())),
            )
            .map_err(plot_err)?
            .label("mode at (-5, -5)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c0.filled()));
        chart
            .draw_series(
                w0.iter()
                    .map(|&(i, w)| Rectangle::new([(i as f64 + 0.2, w), (i as f64 + 0.8, 1.0)], c1.mix(0.75).filled())),
            )
            .map_err(plot_err)?
            .label("mode at (5, 5)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c1.mix(0.75).filled()));
        chart
            .draw_series(w0.iter().map(|&(i, w)| {
                // the weight, written inside the bottom bar
                let style = TextStyle::from((FONT, 17).into_font())
                    .color(&WHITE)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                Text::new(format!("{w:.2}"), (i as f64 + 0.5, w / 2.0), style)
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.2), (n as f64, 0.2)],
                BLACK.stroke_width(2),
            )))
            .map_err(plot_err)?
            .label("true weight 0.2")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 15))
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })?;
    Ok(name.to_string())
}
