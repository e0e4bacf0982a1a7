//! NCSN in 2D: noise-conditional denoising score matching on every toy data set, sampled with
//! annealed Langevin dynamics and compared with fresh data.
//!
//! For each data set: `sigma_1` = the largest distance between two of 500 training points
//! (NCSNv2, technique 1), `sigma_L` = 0.1, `L = 10` geometric levels; the loss is
//! `(1/L) sum_i sigma_i^2 l(theta; sigma_i)`. The network is [`Conditioning::EmbeddingOverSigma`],
//! `s(x, sigma_i) = f(x, i) / sigma_i`: a level embedding (the direction of the score changes with
//! sigma) and NCSNv2's output scaling (so `f` predicts `-z`, a target of unit size at every level).
//! Measured with `examples/ncsn2d_sweep.rs` (relative score error per level, 3,000 steps): the
//! unscaled embedding leaves errors of 0.5-0.95 at the small levels of ring, moons and spiral (its
//! output must span 1/sigma_1 to 1/sigma_L, and the sigma^2-weighted loss barely sees the small
//! levels); `f(x) / sigma` with an unconditional `f` has an error floor of 0.1-0.2 even at the
//! large levels and about 1 at the small ones. With both and 128 hidden units, 3,000 steps learn
//! the mixture and the ring at every level, but the thin moons and spiral keep errors of 0.4-0.9
//! below sigma ~ 0.6 (blurred samples); 256 hidden units and 6,000 steps (the defaults) bring them
//! to 0.3-0.4 at sigma_L and resolve both shapes, in about 20 s of CPU per data set.
//!
//! Sampling: 1,000 particles uniform over the plotted square, `T = 100` steps per level with
//! `alpha_i = eps sigma_i^2 / sigma_L^2`, `eps = 0.2 sigma_L^2` (the paper's CIFAR-10 ratio
//! `2e-5 / 0.01^2`), and a final denoising step `x + sigma_L^2 s(x, sigma_L)`.
//!
//! Metrics against 1,000 fresh data points: the kernel MMD (RBF, median-heuristic bandwidth), the
//! sliced Wasserstein distance, and for the mixtures the mode weights. The same distances between
//! two fresh data sets give the floor that finite samples allow.
use super::langevin_weights::{scatter_panel, tail_mean};
use super::{fmt_num, moving_average, sampler_err, uniform_square, Context, Table};
use crate::metrics::{median_bandwidth, mmd_rbf, sliced_wasserstein};
use crate::model::{score_array, Conditioning, ScoreModel};
use crate::plot::{self, plot_err, FONT, PALETTE};
use crate::train::{train_ncsn, TrainConfig};
use anyhow::{Context as _, Result};
use gmm::datasets::Toy;
use langevin::{annealed_langevin, geometric_sigmas, ncsnv2, AnnealedLangevin};
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

/// Default training steps per data set.
pub const DEFAULT_TRAIN_STEPS: usize = 6000;
/// Hidden units of the MLP (2 -> 256 -> 256 -> 2).
pub const HIDDEN: usize = 256;
/// How the network is told the noise level.
pub const CONDITIONING: Conditioning = Conditioning::EmbeddingOverSigma;
/// Particles sampled per data set (and fresh data points compared against).
pub const SAMPLES: usize = 1000;
/// The data sets of the experiment.
pub const TOYS: [Toy; 4] = [Toy::Mixture, Toy::Ring, Toy::Moons, Toy::Spiral];
/// The smallest noise level, for every data set.
pub const SIGMA_LAST: f64 = 0.1;
/// Directions of the sliced Wasserstein distance.
pub const DIRECTIONS: usize = 64;
/// The number of noise levels `L`.
pub const LEVELS: usize = 10;
/// `eps / sigma_L^2` of annealed Langevin (the paper's CIFAR-10 ratio `2e-5 / 0.01^2`).
pub const EPS_RATIO: f64 = 0.2;
/// Langevin steps per level `T`.
pub const STEPS_PER_LEVEL: usize = 100;
/// Noisy points per level at which the score error is measured.
pub const ERROR_POINTS: usize = 1000;
/// About how many seconds of one core one data set takes (see [`crate::jobs`]).
pub const COST_PER_TOY: u64 = 12;

/// One data set in `ncsn2d.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ToyResult {
    /// Data set name.
    pub data: String,
    /// The noise levels.
    pub sigmas: Vec<f64>,
    /// `eps` of annealed Langevin (paper convention).
    pub eps: f64,
    /// Training steps.
    pub train_steps: usize,
    /// Mean DSM loss over the last 10% of steps.
    pub final_loss: f64,
    /// Relative score error at every level (see [`level_errors`]), largest sigma first.
    pub score_errors: Vec<f64>,
    /// MMD between samples and fresh data.
    pub mmd: f64,
    /// MMD between two fresh data sets (the floor).
    pub mmd_data_vs_data: f64,
    /// The RBF bandwidth (median heuristic on data vs data).
    pub mmd_bandwidth: f64,
    /// Sliced Wasserstein distance between samples and fresh data.
    pub sliced_wasserstein: f64,
    /// Sliced Wasserstein distance between two fresh data sets.
    pub sliced_wasserstein_data_vs_data: f64,
    /// Mode weights of the samples (mixtures only).
    pub mode_weights: Option<Vec<f64>>,
    /// The true weights (mixtures only).
    pub true_weights: Option<Vec<f64>>,
    /// `max_k |w_k - w_k^true|` (mixtures only).
    pub max_weight_error: Option<f64>,
    /// The training loss at every step.
    pub loss_history: Vec<f64>,
}

/// `ncsn2d.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Particles sampled per data set.
    pub samples: usize,
    /// Langevin steps per level.
    pub steps_per_level: usize,
    /// One entry per data set.
    pub results: Vec<ToyResult>,
}

/// The noise levels for a data set: `sigma_1` from the data (NCSNv2 technique 1), geometric down
/// to `last` in `levels` levels.
pub fn sigmas_for(train_points: &Array2<f64>, last: f64, levels: usize) -> Result<Vec<f64>> {
    let pts: Vec<Vec<f64>> = train_points.outer_iter().map(|r| r.to_vec()).collect();
    let first = ncsnv2::sigma_1(&pts);
    Ok(geometric_sigmas(first.max(2.0 * last), last, levels)?)
}

/// The knobs of one NCSN run on one data set (the defaults are the experiment's).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the network is told the noise level.
    pub conditioning: Conditioning,
    /// Training steps.
    pub steps: usize,
    /// Hidden units of the MLP.
    pub hidden: usize,
    /// Adam's peak learning rate (cosine decay to 0).
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// The smallest noise level `sigma_L`.
    pub sigma_last: f64,
    /// The number of levels `L`.
    pub levels: usize,
    /// `eps / sigma_L^2` of annealed Langevin.
    pub eps_ratio: f64,
    /// Langevin steps per level `T`.
    pub steps_per_level: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            conditioning: CONDITIONING,
            steps: DEFAULT_TRAIN_STEPS,
            hidden: HIDDEN,
            lr: 1e-3,
            batch_size: 128,
            sigma_last: SIGMA_LAST,
            levels: LEVELS,
            eps_ratio: EPS_RATIO,
            steps_per_level: STEPS_PER_LEVEL,
        }
    }
}

/// The relative error of a noise-conditional model at every level,
/// `E ||s_theta(x~, sigma_i) - grad log p_sigma_i(x~)||^2 / E ||grad log p_sigma_i(x~)||^2` over
/// `x~ = x + sigma_i z`, `x` fresh data. The reference `p_sigma` is the exact perturbed mixture
/// for the mixtures, and for the other data sets the perturbed empirical distribution of
/// `reference_points` fresh points (`gmm::empirical`, which is `p_sigma` up to sampling error).
pub fn level_errors(
    model: &dyn ScoreModel,
    toy: Toy,
    sigmas: &[f64],
    n: usize,
    reference_points: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &candle_core::Device,
) -> Result<Vec<f64>> {
    let reference = toy.sample(reference_points, rng);
    let mut errors = Vec::with_capacity(sigmas.len());
    for (i, &sigma) in sigmas.iter().enumerate() {
        let p_sigma = match toy.exact() {
            Some(p) => p.perturbed(sigma)?,
            None => gmm::empirical(reference.view(), sigma)?,
        };
        let x = toy.sample(n, rng);
        let z: Array2<f64> = Array2::from_shape_simple_fn((n, 2), || StandardNormal.sample(rng));
        let x_noisy = &x + &(z * sigma); // x~ = x + sigma z
        let exact = p_sigma.score(x_noisy.view());
        let learned = score_array(model, x_noisy.view(), Some(i), device)?;
        let num: f64 = (&learned - &exact).iter().map(|v| v * v).sum();
        let den: f64 = exact.iter().map(|v| v * v).sum();
        errors.push(num / den);
    }
    Ok(errors)
}

/// One data set: train, measure the score error per level, sample, compare with fresh data.
/// Returns the result, the samples and a fresh data set.
pub fn run_toy(
    toy: Toy,
    t: usize,
    settings: &Settings,
    ctx: &Context,
) -> Result<(ToyResult, Array2<f64>, Array2<f64>)> {
    let mut rng = ctx.rng(40 + t as u64);
    let sigmas = sigmas_for(&toy.sample(500, &mut rng), settings.sigma_last, settings.levels)?;
    let cfg = TrainConfig {
        steps: settings.steps,
        batch_size: settings.batch_size,
        lr: settings.lr,
        seed: ctx.seed.wrapping_add(t as u64),
        hidden: settings.hidden,
        progress: ctx.progress,
    };
    let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| toy.sample(n, r);
    let (model, train) = train_ncsn(&mut data, &sigmas, settings.conditioning, &cfg, &ctx.device)
        .with_context(|| format!("training the NCSN on `{}`", toy.name()))?;
    let score_errors = level_errors(
        &model,
        toy,
        &sigmas,
        ERROR_POINTS,
        2000,
        &mut ctx.rng(60 + t as u64),
        &ctx.device,
    )
    .with_context(|| format!("score errors of the NCSN on `{}`", toy.name()))?;

    let sigma_l = sigmas[sigmas.len() - 1];
    let mut config = AnnealedLangevin::paper(sigmas.clone());
    config.eps = settings.eps_ratio * sigma_l * sigma_l;
    config.steps_per_level = settings.steps_per_level;
    config.final_denoise = true;
    let x0 = uniform_square(SAMPLES, toy.bounds(), &mut rng);
    let bar = ctx.bar(
        (sigmas.len() * config.steps_per_level + 1) as u64,
        &format!("sampling {}", toy.name()),
    );
    let x = annealed_langevin(
        x0,
        |x, level, _| {
            bar.inc(1);
            Ok(score_array(&model, x.view(), Some(level), &ctx.device)?)
        },
        &config,
        &mut rng,
    )
    .map_err(sampler_err)?
    .samples;
    bar.finish_and_clear();
    if x.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("annealed Langevin on `{}` produced non-finite samples", toy.name());
    }

    let fresh = toy.sample(SAMPLES, &mut rng);
    let fresh2 = toy.sample(SAMPLES, &mut rng);
    let h = median_bandwidth(fresh.view(), fresh2.view())?;
    let (mode_weights, true_weights, max_weight_error) = match toy.exact() {
        Some(p) => {
            let w = p.mode_weights(x.view())?;
            let tw = p.weights().to_vec();
            let e = w.iter().zip(&tw).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            (Some(w), Some(tw), Some(e))
        }
        None => (None, None, None),
    };
    let result = ToyResult {
        data: toy.name().into(),
        eps: config.eps,
        train_steps: settings.steps,
        final_loss: tail_mean(&train.loss_history, (train.loss_history.len() / 10).max(1)),
        score_errors,
        mmd: mmd_rbf(x.view(), fresh.view(), h)?,
        mmd_data_vs_data: mmd_rbf(fresh2.view(), fresh.view(), h)?,
        mmd_bandwidth: h,
        sliced_wasserstein: sliced_wasserstein(x.view(), fresh.view(), DIRECTIONS)?,
        sliced_wasserstein_data_vs_data: sliced_wasserstein(fresh2.view(), fresh.view(), DIRECTIONS)?,
        mode_weights,
        true_weights,
        max_weight_error,
        loss_history: train.loss_history,
        sigmas,
    };
    Ok((result, x, fresh))
}

/// Runs the experiment.
pub fn run(ctx: &Context) -> Result<Table> {
    let settings = Settings {
        steps: ctx.train_steps(DEFAULT_TRAIN_STEPS),
        ..Settings::default()
    };
    let steps = settings.steps;
    let mut results = Vec::new();
    let mut samples = Vec::new();
    let mut datas = Vec::new();
    // The data sets are independent (own streams, own models): side by side, each in a slot.
    let parts = TOYS.into_iter().enumerate().map(|part| (COST_PER_TOY, part)).collect();
    for out in crate::jobs::map_parallel(&ctx.jobs, parts, |(t, toy)| run_toy(toy, t, &settings, ctx)) {
        let (result, x, fresh) = out?;
        results.push(result);
        samples.push(x);
        datas.push(fresh);
    }
    let report = Report {
        seed: ctx.seed,
        samples: SAMPLES,
        steps_per_level: settings.steps_per_level,
        results,
    };

    plot::save_png(&ctx.out, "ncsn2d_grid.png", (1600, 860), |root| {
        let (head, body) = root.split_vertically(40);
        head.titled(
            &format!("NCSN on toy data: data (top) vs. annealed Langevin samples of a DSM-trained s_θ(x, σ) = f_θ(x, σ)/σ ({steps} steps, bottom)"),
            (FONT, 20),
        )
        .map_err(plot_err)?;
        let cells = body.split_evenly((2, TOYS.len()));
        for (t, toy) in TOYS.into_iter().enumerate() {
            let r = &report.results[t];
            scatter_panel(
                &cells[t],
                &format!("{} data", toy.name()),
                toy.bounds(),
                &datas[t],
                PALETTE[0],
                None,
            )?;
            let title = format!(
                "samples: MMD {} (floor {})",
                fmt_num(r.mmd),
                fmt_num(r.mmd_data_vs_data)
            );
            scatter_panel(
                &cells[TOYS.len() + t],
                &title,
                toy.bounds(),
                &samples[t],
                PALETTE[1],
                None,
            )?;
        }
        Ok(())
    })?;
    plot::save_png(&ctx.out, "ncsn2d_loss.png", (1000, 600), |root| {
        loss_figure(root, &report)
    })?;
    plot::save_svg(&ctx.out, "ncsn2d_loss.svg", (1000, 600), |root| {
        loss_figure(root, &report)
    })?;
    ctx.out.write_json("ncsn2d.json", &report)?;

    let mut table = Table::new(
        &format!("ncsn2d: noise-conditional DSM ({steps} steps) + annealed Langevin, vs. {SAMPLES} fresh points"),
        &[
            "data",
            "σ_1 → σ_L",
            "final loss",
            "MMD",
            "MMD floor",
            "SW",
            "SW floor",
            "mode weights (true)",
        ],
    );
    for r in &report.results {
        let weights = match (&r.mode_weights, &r.true_weights) {
            (Some(w), Some(t)) if w.len() <= 2 => format!(
                "{} ({})",
                w.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join("/"),
                t.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join("/")
            ),
            (Some(_), Some(_)) => format!("max error {:.3}", r.max_weight_error.unwrap_or(f64::NAN)),
            _ => "-".into(),
        };
        table.row(vec![
            r.data.clone(),
            format!("{:.2} → {:.2}", r.sigmas[0], r.sigmas[r.sigmas.len() - 1]),
            fmt_num(r.final_loss),
            fmt_num(r.mmd),
            fmt_num(r.mmd_data_vs_data),
            fmt_num(r.sliced_wasserstein),
            fmt_num(r.sliced_wasserstein_data_vs_data),
            weights,
        ]);
    }
    table.files = vec![
        "ncsn2d_grid.png".into(),
        "ncsn2d_loss.png".into(),
        "ncsn2d_loss.svg".into(),
        "ncsn2d.json".into(),
    ];
    Ok(table)
}

fn loss_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let curves: Vec<(String, Vec<f64>)> = report
        .results
        .iter()
        .map(|r| (r.data.clone(), moving_average(&r.loss_history, 50)))
        .collect();
    // a linear axis from 0 to a bit above the curves after their first 50 steps (the first steps,
    // with losses up to ~100, are clamped to the top edge)
    let settled = curves
        .iter()
        .flat_map(|c| c.1.iter().skip(50).cloned())
        .filter(|v| v.is_finite());
    let top = 1.25 * settled.fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let n = curves.iter().map(|c| c.1.len()).max().unwrap_or(1).max(2);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Noise-conditional DSM loss (1/L) Σ σᵢ² ℓ(θ; σᵢ), moving average of 50 steps",
            (FONT, 20),
        )
        .margin(12)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("loss")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    for (k, (name, c)) in curves.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                c.iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| (i as f64, v.min(top))),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}
