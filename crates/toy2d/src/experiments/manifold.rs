//! The manifold hypothesis (paper Sec. 3.1, Fig. 1, here in 2D): data on a curve of zero
//! thickness have no density in `R^2`, so `grad log p` is undefined and score matching has no
//! consistent target. Sliced and implicit score matching on such data drift or fluctuate; after
//! adding a little Gaussian noise (`x + 0.05 z`, whose density is positive everywhere) the same
//! objectives converge.
use super::langevin_weights::tail_mean;
use super::{fmt_num, moving_average, Context, Table};
use crate::plot::{self, plot_err, FONT, PALETTE};
use crate::train::{train_score, Objective, ProjectionKind, TrainConfig};
use anyhow::{Context as _, Result};
use gmm::datasets::curve;
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

/// Default training steps of each run.
pub const DEFAULT_TRAIN_STEPS: usize = 2000;
/// The noise added to the data in the "noisy" runs.
pub const NOISE: f64 = 0.05;

/// One training run in `manifold.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// `sliced` or `implicit`.
    pub objective: String,
    /// Standard deviation of the noise added to the data (0 for the clean curve).
    pub noise: f64,
    /// Mean loss over the last 20% of steps.
    pub tail_mean: f64,
    /// Standard deviation of the loss over the last 20% of steps.
    pub tail_std: f64,
    /// Smallest and largest finite loss.
    pub min_loss: f64,
    /// Largest finite loss.
    pub max_loss: f64,
    /// Steps whose loss was not finite.
    pub non_finite_steps: usize,
    /// The full loss history.
    pub loss_history: Vec<f64>,
}

/// `manifold.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Steps of each run.
    pub steps: usize,
    /// The four runs.
    pub runs: Vec<RunSummary>,
}

fn summarize(objective: &str, noise: f64, loss: Vec<f64>) -> RunSummary {
    let finite: Vec<f64> = loss.iter().cloned().filter(|v| v.is_finite()).collect();
    let tail_n = (loss.len() / 5).max(1);
    let tail: Vec<f64> = loss[loss.len().saturating_sub(tail_n)..]
        .iter()
        .cloned()
        .filter(|v| v.is_finite())
        .collect();
    let m = tail_mean(&tail, tail.len());
    let var = tail.iter().map(|v| (v - m).powi(2)).sum::<f64>() / tail.len().max(1) as f64;
    RunSummary {
        objective: objective.into(),
        noise,
        tail_mean: m,
        tail_std: var.sqrt(),
        min_loss: finite.iter().cloned().fold(f64::INFINITY, f64::min),
        max_loss: finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        non_finite_steps: loss.len() - finite.len(),
        loss_history: loss,
    }
}

/// Runs the experiment.
pub fn run(ctx: &Context) -> Result<Table> {
    let steps = ctx.train_steps(DEFAULT_TRAIN_STEPS);
    let objectives = [
        (
            "sliced",
            Objective::Sliced {
                projection: ProjectionKind::Gaussian,
                variance_reduced: false,
            },
        ),
        ("implicit", Objective::Implicit),
    ];
    let mut runs = Vec::new();
    for (k, (name, objective)) in objectives.iter().enumerate() {
        for (j, noise) in [0.0, NOISE].into_iter().enumerate() {
            let cfg = TrainConfig {
                steps,
                batch_size: 128,
                lr: 1e-3,
                seed: ctx.seed.wrapping_add((2 * k + j) as u64),
                hidden: 128,
                progress: ctx.progress,
            };
            // points on the curve y = 2 sin x, plus N(0, noise^2 I) in the noisy runs
            let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| {
                let mut x: Array2<f64> = curve(n, r);
                if noise > 0.0 {
                    x.mapv_inplace(|v| {
                        let z: f64 = StandardNormal.sample(r);
                        v + noise * z
                    });
                }
                x
            };
            let (_, report) = train_score(objective, &mut data, &cfg, &ctx.device)
                .with_context(|| format!("training with {name} score matching, noise {noise}"))?;
            runs.push(summarize(name, noise, report.loss_history));
        }
    }
    let report = Report {
        seed: ctx.seed,
        steps,
        runs,
    };
    let mut files = Vec::new();
    plot::save_png(&ctx.out, "manifold_loss.png", (1400, 600), |root| {
        loss_figure(root, &report)
    })?;
    plot::save_svg(&ctx.out, "manifold_loss.svg", (1400, 600), |root| {
        loss_figure(root, &report)
    })?;
    files.push("manifold_loss.png".into());
    files.push("manifold_loss.svg".into());
    ctx.out.write_json("manifold.json", &report)?;
    files.push("manifold.json".into());

    let mut table = Table::new(
        &format!("manifold: score matching on a curve (no density) vs. the curve + {NOISE} noise, {steps} steps"),
        &[
            "objective",
            "data",
            "loss (last 20%)",
            "sd (last 20%)",
            "min",
            "non-finite steps",
        ],
    );
    for r in &report.runs {
        table.row(vec![
            r.objective.clone(),
            if r.noise > 0.0 {
                format!("curve + {} z", r.noise)
            } else {
                "curve".into()
            },
            fmt_num(r.tail_mean),
            fmt_num(r.tail_std),
            fmt_num(r.min_loss),
            r.non_finite_steps.to_string(),
        ]);
    }
    table.files = files;
    Ok(table)
}

/// A symmetric log scale for losses that go negative: linear on `[-1, 1]`,
/// `sign(y) (1 + log10 |y|)` outside, so that `t = -2, -3, -4` mean `y = -10, -100, -1000`.
fn symlog(y: f64) -> f64 {
    if y.abs() < 1.0 {
        y
    } else {
        y.signum() * (1.0 + y.abs().log10())
    }
}

fn symlog_inv(t: f64) -> f64 {
    if t.abs() < 1.0 {
        t
    } else {
        t.signum() * 10f64.powf(t.abs() - 1.0)
    }
}

/// Tick labels only at whole numbers of the symlog scale (0, ±1, ±10, ±100, ...).
fn symlog_label(t: &f64) -> String {
    if (t - t.round()).abs() < 1e-9 {
        format!("{}", symlog_inv(t.round()).round())
    } else {
        String::new()
    }
}

fn loss_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let (head, body) = root.split_vertically(44);
    head.titled(
        "Score matching on data on a curve: without noise the loss does not settle; with x + 0.05 z it converges",
        (FONT, 20),
    )
    .map_err(plot_err)?;
    let panels = body.split_evenly((1, 2));
    for (k, name) in ["sliced", "implicit"].iter().enumerate() {
        let runs: Vec<&RunSummary> = report.runs.iter().filter(|r| r.objective == *name).collect();
        let all: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.loss_history.iter().cloned())
            .filter(|v| v.is_finite())
            .map(symlog)
            .collect();
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (-1.0, 1.0)
        };
        let pad = 0.05 * (hi - lo);
        let n = runs.iter().map(|r| r.loss_history.len()).max().unwrap_or(1).max(2);
        let mut chart = ChartBuilder::on(&panels[k])
            .caption(format!("{name} score matching"), (FONT, 20))
            .margin(10)
            .margin_right(20)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..n as f64, (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("loss (symmetric log scale)")
            .y_labels((4.0 * (hi - lo + 2.0 * pad)).ceil() as usize + 1)
            .y_label_formatter(&symlog_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(plot_err)?;
        for r in &runs {
            let color = if r.noise > 0.0 { PALETTE[0] } else { PALETTE[1] };
            let raw: Vec<(f64, f64)> = r
                .loss_history
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| (i as f64, symlog(*v)))
                .collect();
            chart
                .draw_series(LineSeries::new(raw, color.mix(0.25).stroke_width(1)))
                .map_err(plot_err)?;
            let finite: Vec<f64> = r
                .loss_history
                .iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .collect();
            let smooth = moving_average(&finite, 50);
            let label = if r.noise > 0.0 {
                format!("curve + {} z (moving average of 50)", r.noise)
            } else {
                "curve, no noise (moving average of 50)".to_string()
            };
            chart
                .draw_series(LineSeries::new(
                    smooth.iter().enumerate().map(|(i, v)| (i as f64, symlog(*v))),
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlog_round_trips_and_keeps_sign() {
        assert_eq!(symlog(-100.0), -3.0);
        assert_eq!(symlog_label(&-3.0), "-100");
        assert_eq!(symlog_label(&-2.5), "");
        for y in [-1234.5, -1.0, 0.0, 0.3, 99.0] {
            assert!((symlog_inv(symlog(y)) - y).abs() < 1e-9 * (1.0 + y.abs()));
        }
        assert!(symlog(-5.0) < 0.0 && symlog(5.0) > 0.0);
    }

    #[test]
    fn summary_counts_non_finite_steps() {
        let s = summarize("sliced", 0.0, vec![1.0, f64::NAN, 3.0, 5.0, 7.0]);
        assert_eq!(s.non_finite_steps, 1);
        assert_eq!((s.min_loss, s.max_loss), (1.0, 7.0));
        assert_eq!(s.tail_mean, 7.0);
    }
}
