//! The manifold hypothesis (paper Sec. 3.1, Fig. 1, here in 2D): data on a curve of zero
//! thickness have no density in `R^2`, so `grad log p` is undefined and score matching has no
//! consistent target. Sliced and implicit score matching on such data drift or fluctuate; after
//! adding a little Gaussian noise (`x + 0.05 z`, whose density is positive everywhere) the same
//! objectives converge.
//!
//! A run whose loss is not finite at some step keeps going without that step's update
//! ([`NonFinite::Skip`]) and counts it (`non_finite_steps`), so the instability is recorded
//! instead of ending the command.
use super::{fmt_num, tail_mean, Context, Table};
use crate::train::{train_score, DataSampler, NonFinite, Objective, ProjectionKind, TrainConfig};
use anyhow::{Context as _, Result};
use candle_core::Device;
use gmm::datasets::curve;
use ndarray::Array2;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

/// Default training steps of each run.
pub const DEFAULT_TRAIN_STEPS: usize = 2000;
/// The noise added to the data in the "noisy" runs.
pub const NOISE: f64 = 0.05;
/// The stream of run `k` is `FIRST_STREAM + k`.
pub const FIRST_STREAM: u64 = 30;

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
    /// Steps whose loss was not finite (their update was skipped).
    pub non_finite_steps: usize,
    /// The full loss history.
    pub loss_history: Vec<f64>,
}

/// What the experiment found; serialised as `manifold.json`.
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

/// The settings of training run `run` (its own stream; non-finite losses are counted, not fatal).
pub fn run_config(ctx: &Context, steps: usize, run: u64) -> TrainConfig {
    TrainConfig {
        non_finite: NonFinite::Skip,
        ..ctx.train_config(steps, FIRST_STREAM + run)
    }
}

/// One training run with `objective` on `data`, summarised.
pub fn train_run(
    name: &str,
    objective: &Objective,
    noise: f64,
    data: &mut DataSampler<'_>,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<RunSummary> {
    let (_, report) = train_score(objective, data, cfg, device)
        .with_context(|| format!("training with {name} score matching, noise {noise}"))?;
    Ok(summarize(name, noise, report.loss_history))
}

/// Runs the experiment.
pub fn compute(ctx: &Context) -> Result<Report> {
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
            let cfg = run_config(ctx, steps, (2 * k + j) as u64);
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
            runs.push(train_run(name, objective, noise, &mut data, &cfg, &ctx.device)?);
        }
    }
    Ok(Report {
        seed: ctx.seed,
        steps,
        runs,
    })
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            &format!(
                "manifold: score matching on a curve (no density) vs. the curve + {NOISE} noise, {} steps",
                self.steps
            ),
            &[
                "objective",
                "data",
                "loss (last 20%)",
                "sd (last 20%)",
                "min",
                "non-finite steps",
            ],
        );
        for r in &self.runs {
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
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::tests::context;

    #[test]
    fn summary_counts_non_finite_steps() {
        let s = summarize("sliced", 0.0, vec![1.0, f64::NAN, 3.0, 5.0, 7.0]);
        assert_eq!(s.non_finite_steps, 1);
        assert_eq!((s.min_loss, s.max_loss), (1.0, 7.0));
        assert_eq!(s.tail_mean, 7.0);
    }

    #[test]
    fn a_run_whose_loss_is_not_finite_is_recorded_not_fatal() {
        // One batch far out on the curve (coordinates 1e30, finite in f32) makes the implicit
        // loss 1/2 ||s||^2 + tr(grad s) overflow to infinity at that step; the run must go on,
        // count that step and keep training on the next batches with finite parameters.
        let ctx = context(5);
        let cfg = run_config(&ctx, 6, 0);
        let mut calls = 0;
        let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| {
            calls += 1;
            let x = curve(n, r);
            if calls == 3 {
                x * 1e30
            } else {
                x
            }
        };
        let run = train_run("implicit", &Objective::Implicit, 0.0, &mut data, &cfg, &Device::Cpu).unwrap();
        assert_eq!(run.loss_history.len(), 6);
        assert!(!run.loss_history[2].is_finite(), "{:?}", run.loss_history);
        assert_eq!(run.non_finite_steps, 1, "{:?}", run.loss_history);
        assert!(run.loss_history[3..].iter().all(|v| v.is_finite()));
    }

    #[test]
    fn every_run_has_its_own_stream() {
        // Seed s, run 1 must not repeat seed s + 1, run 0 (as `seed + run` did).
        let (a, b) = (run_config(&context(7), 10, 1), run_config(&context(8), 10, 0));
        let (mut ra, mut rb) = (a.rng(), b.rng());
        assert_ne!(rand::Rng::random::<u64>(&mut ra), rand::Rng::random::<u64>(&mut rb));
    }
}
