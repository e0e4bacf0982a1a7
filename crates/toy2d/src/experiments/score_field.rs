//! Paper Fig. 2: a score learned by score matching is accurate where data are plentiful and
//! inaccurate in low-density regions.
//!
//! The reference toy: an MLP `s_theta` (2 -> 128 -> 128 -> 2, softplus) trained by sliced score
//! matching (variance-reduced, Gaussian projections) with Adam, learning rate `1e-3`, 10,000 steps,
//! batch 128, on samples of `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)`. The objective is an
//! expectation under `p`, `E_p ||s_theta - grad log p||^2` up to a constant, so nothing constrains
//! `s_theta` where `p` is tiny. We report the squared error averaged under `p` (Monte Carlo,
//! 10,000 samples) and averaged uniformly over the square `[-8, 8]^2` (a 200 x 200 grid).
use super::{fmt_num, row_sq_dist, Context, Table};
use crate::experiments::langevin_weights::tail_mean;
use crate::model::score_array;
use crate::plot::{
    self, density_color, draw_arrows, draw_colorbar, draw_contours, draw_heatmap, plot_err, square_chart, viridis,
    Grid, FONT,
};
use crate::train::{train_score, Objective, ProjectionKind, TrainConfig};
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use ndarray::{Array2, Axis};
use plotters::prelude::*;
use serde::Serialize;

/// Default training steps (the reference's 10,000).
pub const DEFAULT_TRAIN_STEPS: usize = 10_000;
/// The square of the figures and of the uniform average.
pub const BOUNDS: (f64, f64) = (-8.0, 8.0);

/// `score_field.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// The objective, in words.
    pub objective: String,
    /// Training steps, batch size, learning rate, hidden width.
    pub steps: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Hidden width of the MLP.
    pub hidden: usize,
    /// Mean sliced-score-matching loss over the last 10% of steps.
    pub final_loss: f64,
    /// `E_{x ~ p} ||s_theta(x) - grad log p(x)||^2` (Monte Carlo, `mc_samples` samples).
    pub error_weighted_by_p: f64,
    /// Mean of `||s_theta - grad log p||^2` over a uniform grid of `[-8, 8]^2`.
    pub error_uniform_square: f64,
    /// `error_uniform_square / error_weighted_by_p`.
    pub ratio_uniform_to_weighted: f64,
    /// Mean error on grid points where `p >= 1e-3` (near the modes) and where `p < 1e-3`.
    pub error_where_p_above_1e_3: f64,
    /// Mean error on grid points where `p < 1e-3`.
    pub error_where_p_below_1e_3: f64,
    /// Fraction of the square where `p >= 1e-3`.
    pub fraction_of_square_p_above_1e_3: f64,
    /// Monte Carlo sample size of the weighted error.
    pub mc_samples: usize,
    /// Grid cells per side of the uniform average.
    pub grid: usize,
}

/// Runs the experiment.
pub fn run(ctx: &Context) -> Result<Table> {
    let p = paper_mixture();
    let steps = ctx.train_steps(DEFAULT_TRAIN_STEPS);
    let cfg = TrainConfig {
        steps,
        batch_size: 128,
        lr: 1e-3,
        seed: ctx.seed,
        hidden: 128,
        progress: ctx.progress,
    };
    let objective = Objective::Sliced {
        projection: ProjectionKind::Gaussian,
        variance_reduced: true,
    };
    let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| p.sample(n, r);
    let (model, train) = train_score(&objective, &mut data, &cfg, &ctx.device).context("training the score MLP")?;
    let final_loss = tail_mean(&train.loss_history, (train.loss_history.len() / 10).max(1));

    // error under p: Monte Carlo with fresh samples
    let mc = 10_000;
    let mut rng = ctx.rng(10);
    let xs = p.sample(mc, &mut rng);
    let err_p = mean(&row_sq_dist(
        score_array(&model, xs.view(), None, &ctx.device)?.view(),
        p.score(xs.view()).view(),
    ));

    // error over the square: a fine grid
    let fine = Grid::square(BOUNDS.0, BOUNDS.1, 200);
    let pts = fine.points();
    let exact = p.score(pts.view());
    let learned = score_array(&model, pts.view(), None, &ctx.device)?;
    let err = row_sq_dist(learned.view(), exact.view());
    let dens = p.density(pts.view());
    let err_sq = mean(&err);
    let (mut hi, mut lo) = (Vec::new(), Vec::new());
    for (e, d) in err.iter().zip(dens.iter()) {
        if *d >= 1e-3 {
            hi.push(*e)
        } else {
            lo.push(*e)
        }
    }
    let report = Report {
        seed: ctx.seed,
        objective: "sliced score matching, variance-reduced, Gaussian projections".into(),
        steps,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        hidden: cfg.hidden,
        final_loss,
        error_weighted_by_p: err_p,
        error_uniform_square: err_sq,
        ratio_uniform_to_weighted: err_sq / err_p,
        error_where_p_above_1e_3: mean(&hi),
        error_where_p_below_1e_3: mean(&lo),
        fraction_of_square_p_above_1e_3: hi.len() as f64 / err.len() as f64,
        mc_samples: mc,
        grid: fine.n,
    };

    let mut files = vec![
        field_figure(ctx, &p, &model, steps)?,
        error_figure(ctx, &fine, &err, dens.as_slice().unwrap_or(&dens.to_vec()), &report)?,
    ];
    let rows: Vec<Vec<f64>> = train
        .loss_history
        .iter()
        .enumerate()
        .map(|(i, l)| vec![i as f64, *l])
        .collect();
    ctx.out.write_csv("score_field_loss.csv", "step,loss", &rows)?;
    ctx.out.write_json("score_field.json", &report)?;
    files.push("score_field_loss.csv".into());
    files.push("score_field.json".into());

    let mut table = Table::new(
        &format!("score-field: sliced score matching, {steps} steps, on the 0.2/0.8 mixture"),
        &["region", "mean ||s_θ - ∇log p||²"],
    );
    table.row(vec!["weighted by p (E_p)".into(), fmt_num(report.error_weighted_by_p)]);
    table.row(vec![
        "uniform over [-8,8]²".into(),
        fmt_num(report.error_uniform_square),
    ]);
    table.row(vec![
        format!(
            "p ≥ 1e-3 ({:.0}% of the square)",
            100.0 * report.fraction_of_square_p_above_1e_3
        ),
        fmt_num(report.error_where_p_above_1e_3),
    ]);
    table.row(vec!["p < 1e-3".into(), fmt_num(report.error_where_p_below_1e_3)]);
    table.row(vec!["final training loss".into(), fmt_num(final_loss)]);
    table.files = files;
    Ok(table)
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// Arrow vectors for a field `s`: direction of `s`, length `cell * log(1 + |s|) / log(1 + s_max)`,
/// so that both the tiny scores near a mode and the large ones far away stay visible.
pub fn arrow_vectors(s: &Array2<f64>, cell: f64, s_max: f64) -> Array2<f64> {
    let mut v = s.clone();
    for mut row in v.axis_iter_mut(Axis(0)) {
        let norm = (row[0] * row[0] + row[1] * row[1]).sqrt();
        if norm > 0.0 && norm.is_finite() {
            let len = cell * (1.0 + norm).ln() / (1.0 + s_max).ln();
            row[0] *= len / norm;
            row[1] *= len / norm;
        }
    }
    v
}

fn field_figure(
    ctx: &Context,
    p: &gmm::GaussianMixture,
    model: &dyn crate::model::ScoreModel,
    steps: usize,
) -> Result<String> {
    let shade = Grid::square(BOUNDS.0, BOUNDS.1, 160);
    let dens = p.density(shade.points().view());
    let dmax = dens.iter().cloned().fold(0.0, f64::max);
    // shading by sqrt(p / p_max), so the small mode is visible next to the large one
    let shading = shade.reshape(&dens.iter().map(|d| (d / dmax).sqrt()).collect::<Vec<_>>());
    let logp = shade.reshape(&dens.iter().map(|d| d.max(1e-300).log10()).collect::<Vec<_>>());
    let arrows = Grid::square(BOUNDS.0, BOUNDS.1, 21);
    let apts = arrows.points();
    let exact = p.score(apts.view());
    let learned = score_array(model, apts.view(), None, &ctx.device)?;
    let s_max = exact.outer_iter().map(|r| r.dot(&r).sqrt()).fold(0.0, f64::max);
    let name = "score_field.png";
    plot::save_png(&ctx.out, name, (1400, 760), |root| {
        let (body, foot) = root.split_vertically(720);
        let panels = body.split_evenly((1, 2));
        let titles = [
            "Data scores ∇ₓ log p(x)".to_string(),
            format!("Estimated scores s_θ(x) (sliced SM, {steps} steps)"),
        ];
        for (k, area) in panels.iter().enumerate() {
            let mut chart = square_chart(area, &titles[k], BOUNDS, 22)?;
            draw_heatmap(&mut chart, &shade, &shading, (0.0, 1.0), |t| density_color(0.85 * t))?;
            draw_contours(
                &mut chart,
                &shade,
                &logp,
                &[-2.0, -3.0, -4.0],
                RGBColor(120, 120, 120).stroke_width(1),
            )?;
            let field = if k == 0 { &exact } else { &learned };
            let v = arrow_vectors(field, arrows.cell() * 0.95, s_max);
            draw_arrows(&mut chart, apts.view(), v.view(), BLACK.stroke_width(1))?;
        }
        foot.draw_text(
            "Shading: density p (darker = higher). Grey contours: p = 10⁻², 10⁻³, 10⁻⁴. Arrow length ∝ log(1 + |s|), same scale in both panels.",
            &(FONT, 17).into_font().color(&BLACK),
            (30, 8),
        )
        .map_err(plot_err)?;
        Ok(())
    })?;
    Ok(name.into())
}

fn error_figure(ctx: &Context, grid: &Grid, err: &[f64], dens: &[f64], report: &Report) -> Result<String> {
    let log_err: Vec<f64> = err.iter().map(|e| e.max(1e-6).log10()).collect();
    let (vmin, vmax) = (
        log_err.iter().cloned().fold(f64::INFINITY, f64::min).max(-4.0),
        log_err.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let values = grid.reshape(&log_err);
    let logp = grid.reshape(&dens.iter().map(|d| d.max(1e-300).log10()).collect::<Vec<_>>());
    let name = "score_error.png";
    plot::save_png(&ctx.out, name, (900, 800), |root| {
        let (main, bar) = root.split_horizontally(790);
        let title = format!(
            "Squared error ‖s_θ(x) − ∇ₓ log p(x)‖²: E_p = {}, mean over square = {}",
            fmt_num(report.error_weighted_by_p),
            fmt_num(report.error_uniform_square)
        );
        let mut chart = square_chart(&main, &title, BOUNDS, 17)?;
        draw_heatmap(&mut chart, grid, &values, (vmin, vmax), viridis)?;
        draw_contours(&mut chart, grid, &logp, &[-2.0, -3.0, -4.0], WHITE.stroke_width(2))?;
        chart
            .draw_series(std::iter::once(Text::new(
                "white contours: p = 10⁻², 10⁻³, 10⁻⁴",
                (BOUNDS.0 + 0.3, BOUNDS.1 - 0.4),
                (FONT, 16).into_font().color(&WHITE),
            )))
            .map_err(plot_err)?;
        draw_colorbar(&bar, (vmin, vmax), "log₁₀ squared error")?;
        Ok(())
    })?;
    Ok(name.into())
}
