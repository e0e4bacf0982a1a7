//! Paper Fig. 2: a score learned by score matching is accurate where data are plentiful and
//! inaccurate in low-density regions.
//!
//! The reference toy: an MLP `s_theta` (2 -> 128 -> 128 -> 2, softplus) trained by sliced score
//! matching (variance-reduced, Gaussian projections) with Adam, learning rate `1e-3`, 10,000 steps,
//! batch 128, on samples of `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)`. The objective is an
//! expectation under `p`, `E_p ||s_theta - grad log p||^2` up to a constant, so nothing constrains
//! `s_theta` where `p` is tiny. We report the squared error averaged under `p` (Monte Carlo,
//! 10,000 samples) and averaged uniformly over the square `[-8, 8]^2` (a 200 x 200 grid).
use super::{fmt_num, row_sq_dist, tail_mean, Context, Table};
use crate::model::score_array;
use crate::plot::Grid;
use crate::train::{train_score, Objective, ProjectionKind};
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use ndarray::Array2;
use serde::Serialize;

/// Default training steps (the reference's 10,000).
pub const DEFAULT_TRAIN_STEPS: usize = 10_000;
/// The square of the figures and of the uniform average.
pub const BOUNDS: (f64, f64) = (-8.0, 8.0);
/// Cells per side of the grid the error is averaged over (and drawn on).
pub const ERROR_GRID: usize = 200;
/// Arrows per side of the score-field figure.
pub const ARROW_GRID: usize = 21;
/// Monte Carlo samples of the error under `p`.
pub const MC_SAMPLES: usize = 10_000;

/// What the experiment found; serialised as `score_field.json` (the fields marked "not in the
/// JSON" feed the figures and `score_field_loss.csv`).
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
    /// Not in the JSON: the training loss at every step.
    #[serde(skip)]
    pub loss_history: Vec<f64>,
    /// Not in the JSON: `||s_theta - grad log p||^2` at the points of the `ERROR_GRID` grid.
    #[serde(skip)]
    pub error_on_grid: Vec<f64>,
    /// Not in the JSON: `s_theta` at the points of the `ARROW_GRID` grid.
    #[serde(skip)]
    pub learned_arrows: Array2<f64>,
}

/// Runs the experiment.
pub fn compute(ctx: &Context) -> Result<Report> {
    let p = paper_mixture();
    let steps = ctx.train_steps(DEFAULT_TRAIN_STEPS);
    let cfg = ctx.train_config(steps, 0);
    let objective = Objective::Sliced {
        projection: ProjectionKind::Gaussian,
        variance_reduced: true,
    };
    let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| p.sample(n, r);
    let (model, train) = train_score(&objective, &mut data, &cfg, &ctx.device).context("training the score MLP")?;
    let final_loss = tail_mean(&train.loss_history, (train.loss_history.len() / 10).max(1));

    // error under p: Monte Carlo with fresh samples
    let mut rng = ctx.rng(10);
    let xs = p.sample(MC_SAMPLES, &mut rng);
    let err_p = mean(&row_sq_dist(
        score_array(&model, xs.view(), None, &ctx.device)?.view(),
        p.score(xs.view()).view(),
    ));

    // error over the square: a fine grid
    let fine = Grid::square(BOUNDS.0, BOUNDS.1, ERROR_GRID);
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
    let arrows = Grid::square(BOUNDS.0, BOUNDS.1, ARROW_GRID).points();
    Ok(Report {
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
        mc_samples: MC_SAMPLES,
        grid: fine.n,
        loss_history: train.loss_history,
        error_on_grid: err,
        learned_arrows: score_array(&model, arrows.view(), None, &ctx.device)?,
    })
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            &format!(
                "score-field: sliced score matching, {} steps, on the 0.2/0.8 mixture",
                self.steps
            ),
            &["region", "mean ||s_θ - ∇log p||²"],
        );
        table.row(vec!["weighted by p (E_p)".into(), fmt_num(self.error_weighted_by_p)]);
        table.row(vec!["uniform over [-8,8]²".into(), fmt_num(self.error_uniform_square)]);
        table.row(vec![
            format!(
                "p ≥ 1e-3 ({:.0}% of the square)",
                100.0 * self.fraction_of_square_p_above_1e_3
            ),
            fmt_num(self.error_where_p_above_1e_3),
        ]);
        table.row(vec!["p < 1e-3".into(), fmt_num(self.error_where_p_below_1e_3)]);
        table.row(vec!["final training loss".into(), fmt_num(self.final_loss)]);
        table
    }
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().sum::<f64>() / x.len() as f64
}
