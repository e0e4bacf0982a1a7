//! The manifold hypothesis (paper Sec. 3.1, Fig. 1, here in 2D): data on a curve of zero
//! thickness have no density in `R^2`, so `grad log p` is undefined and score matching has no
//! consistent target. Sliced and implicit score matching on such data drift or fluctuate; after
//! adding a little Gaussian noise (`x + 0.05 z`, whose density is positive everywhere) the same
//! objectives converge.
//!
//! What the theory predicts is about the field, not the loss: across the curve the implicit
//! objective rewards steepness without limit on clean data (`J(s_c) = -c` for the field
//! `-c x_normal`), and has its minimum at slope `c = 1/sigma^2` with noise (`J = c^2 sigma^2 / 2 -
//! c`). So each run also records the learned score's **slope across the curve** every
//! [`SLOPE_EVERY`] steps: at [`SLOPE_POINTS`] points `x_k` on the curve with unit normals `n_k`,
//!
//! `slope = -(1/K) sum_k n_k^T J_s(x_k) n_k`,
//!
//! the rate at which the normal component of `s_theta` falls as one crosses the curve (`J_s` the
//! model's Jacobian, applied to `n_k` by one forward-mode pass, [`JvpScore`]). For the exact
//! score of the curve plus `N(0, sigma^2 I)` it is `1/sigma^2` up to small corrections from the
//! curvature (`y = 2 sin x` bends with radius 0.5 or more, ten times `sigma`).
//!
//! A run whose loss is not finite at some step keeps going without that step's update
//! ([`NonFinite::Skip`]) and counts it (`non_finite_steps`), so the instability is recorded
//! instead of ending the command.
use super::{fmt_num, tail_mean, Context, Table};
use crate::model::ScoreMlp;
use crate::train::{to_tensor, train_score_observed, DataSampler, NonFinite, Objective, ProjectionKind, TrainConfig};
use anyhow::{bail, Context as _, Result};
use candle_core::{DType, Device};
use gmm::datasets::curve;
use ndarray::Array2;
use rand_distr::{Distribution, StandardNormal};
use score_matching::JvpScore;
use serde::Serialize;

/// Default training steps of each run.
pub const DEFAULT_TRAIN_STEPS: usize = 6000;
/// Adam's peak learning rate (cosine decay to 0): three times the reference toy's 1e-3, so that
/// within [`DEFAULT_TRAIN_STEPS`] the noisy runs come close to their optimal slope `1/sigma^2`.
pub const LR: f64 = 3e-3;
/// The noise added to the data in the "noisy" runs.
pub const NOISE: f64 = 0.05;
/// The stream of run `k` is `FIRST_STREAM + k`.
pub const FIRST_STREAM: u64 = 30;
/// The slope across the curve is measured every this many steps.
pub const SLOPE_EVERY: usize = 20;
/// Points on the curve where it is measured (evenly spaced in `x_1` over `[-4, 4]`).
pub const SLOPE_POINTS: usize = 200;

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
    /// The slope of the learned score across the curve ([`normal_slope`]) after each step in
    /// the report's `slope_steps`.
    pub normal_slope: Vec<f64>,
    /// Its mean over the last 20% of the measurements.
    pub normal_slope_tail_mean: f64,
    /// Its last value.
    pub normal_slope_final: f64,
}

/// What the experiment found; serialised as `manifold.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Steps of each run.
    pub steps: usize,
    /// The slope the noisy runs should approach, `1/sigma^2` for `sigma` = [`NOISE`].
    pub slope_target: f64,
    /// The training steps (1-based: after that many updates) at which every run's
    /// `normal_slope` was measured.
    pub slope_steps: Vec<usize>,
    /// The four runs.
    pub runs: Vec<RunSummary>,
}

/// `n` points on the curve `y = 2 sin x` (the data of [`gmm::datasets::curve`]) at evenly spaced
/// `x` over `[-4, 4]`, and the unit normal at each: the tangent is `(1, 2 cos x)`, so the normal
/// is `(-2 cos x, 1) / sqrt(1 + 4 cos^2 x)`.
pub fn curve_points_and_normals(n: usize) -> (Array2<f64>, Array2<f64>) {
    let xs: Vec<f64> = (0..n).map(|k| -4.0 + 8.0 * (k as f64 + 0.5) / n as f64).collect();
    let points = Array2::from_shape_fn((n, 2), |(k, d)| if d == 0 { xs[k] } else { 2.0 * xs[k].sin() });
    let normals = Array2::from_shape_fn((n, 2), |(k, d)| {
        let c = 2.0 * xs[k].cos();
        let norm = (1.0 + c * c).sqrt();
        if d == 0 {
            -c / norm
        } else {
            1.0 / norm
        }
    });
    (points, normals)
}

/// The slope of a score field across the curve: `-(1/K) sum_k n_k^T J_s(x_k) n_k` over the
/// points `x_k` with unit normals `n_k` (rows of `points`, `normals`). `J_s(x_k) n_k` is the
/// derivative of `s` along `n_k`, one Jacobian-vector product per point; its component along
/// `n_k` is the derivative of the normal component. A field that pulls points back onto the
/// curve has a positive slope: `s(x + t n) . n ~ -slope t`.
pub fn normal_slope(
    model: &impl JvpScore,
    points: &Array2<f64>,
    normals: &Array2<f64>,
    dtype: DType,
    device: &Device,
) -> Result<f64> {
    if points.dim() != normals.dim() || points.nrows() == 0 {
        bail!(
            "normal slope: {:?} points and {:?} normals, expected the same non-empty shape",
            points.dim(),
            normals.dim()
        );
    }
    let x = to_tensor(points.view(), dtype, device)?;
    let v = to_tensor(normals.view(), dtype, device)?;
    let (_, jv) = model.score_and_jvp(&x, &v)?;
    let jv = jv.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    // n_k^T (J_s(x_k) n_k), averaged, sign flipped
    let total: f64 = jv
        .iter()
        .zip(normals.outer_iter())
        .map(|(j, n)| j[0] * n[0] + j[1] * n[1])
        .sum();
    Ok(-total / points.nrows() as f64)
}

fn summarize(objective: &str, noise: f64, loss: Vec<f64>, slope: Vec<f64>) -> RunSummary {
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
        normal_slope_tail_mean: tail_mean(&slope, (slope.len() / 5).max(1)),
        normal_slope_final: slope.last().copied().unwrap_or(f64::NAN),
        normal_slope: slope,
    }
}

/// The settings of training run `run` (its own stream; non-finite losses are counted, not fatal).
pub fn run_config(ctx: &Context, steps: usize, run: u64) -> TrainConfig {
    TrainConfig {
        non_finite: NonFinite::Skip,
        lr: LR,
        ..ctx.train_config(steps, FIRST_STREAM + run)
    }
}

/// The steps after which the slope is measured: every [`SLOPE_EVERY`] steps, and the first.
pub fn slope_steps(steps: usize) -> Vec<usize> {
    (1..=steps).filter(|&k| k == 1 || k % SLOPE_EVERY == 0).collect()
}

/// One training run with `objective` on `data`, summarised, with the slope across the curve
/// after each step of [`slope_steps`].
pub fn train_run(
    name: &str,
    objective: &Objective,
    noise: f64,
    data: &mut DataSampler<'_>,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<RunSummary> {
    let (points, normals) = curve_points_and_normals(SLOPE_POINTS);
    let at = slope_steps(cfg.steps);
    let mut slope = Vec::with_capacity(at.len());
    let observe = |step: usize, model: &ScoreMlp| -> Result<()> {
        if at.binary_search(&(step + 1)).is_ok() {
            slope.push(normal_slope(model, &points, &normals, DType::F32, device)?);
        }
        Ok(())
    };
    let (_, report) = train_score_observed(objective, data, cfg, device, observe)
        .with_context(|| format!("training with {name} score matching, noise {noise}"))?;
    Ok(summarize(name, noise, report.loss_history, slope))
}

/// About how many seconds of one core a run of [`DEFAULT_TRAIN_STEPS`] steps takes (see
/// [`crate::jobs`]): implicit score matching pushes two tangents through the network, sliced one.
pub fn run_cost(objective: &Objective) -> u64 {
    match objective {
        Objective::Implicit => 8,
        _ => 4,
    }
}

/// The total of [`run_cost`] over the experiment's four runs.
pub const COST: u64 = 2 * 8 + 2 * 4;

/// Runs the experiment (each training run in a slot of `ctx.jobs`).
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
    // The four runs are independent (own streams, own models): side by side, each in a slot.
    let parts = objectives
        .iter()
        .enumerate()
        .flat_map(|(k, objective)| {
            [0.0, NOISE]
                .into_iter()
                .enumerate()
                .map(move |(j, noise)| (k, j, objective, noise))
        })
        .map(|(k, j, objective, noise)| (run_cost(&objective.1), (k, j, objective, noise)))
        .collect();
    let runs = crate::jobs::map_parallel(&ctx.jobs, parts, |(k, j, (name, objective), noise)| {
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
        train_run(name, objective, noise, &mut data, &cfg, &ctx.device)
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    Ok(Report {
        seed: ctx.seed,
        steps,
        slope_target: 1.0 / (NOISE * NOISE),
        slope_steps: slope_steps(steps),
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
                "slope across (last 20%)",
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
                fmt_num(r.normal_slope_tail_mean),
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
        let s = summarize("sliced", 0.0, vec![1.0, f64::NAN, 3.0, 5.0, 7.0], vec![2.0, 4.0]);
        assert_eq!(s.non_finite_steps, 1);
        assert_eq!((s.min_loss, s.max_loss), (1.0, 7.0));
        assert_eq!(s.tail_mean, 7.0);
        assert_eq!((s.normal_slope_tail_mean, s.normal_slope_final), (4.0, 4.0));
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
    fn normals_are_unit_and_orthogonal_to_the_curve() {
        let (x, n) = curve_points_and_normals(50);
        for (p, v) in x.outer_iter().zip(n.outer_iter()) {
            assert!((p[1] - 2.0 * p[0].sin()).abs() < 1e-12);
            let tangent = (1.0, 2.0 * p[0].cos());
            assert!((v[0] * tangent.0 + v[1] * tangent.1).abs() < 1e-12);
            assert!((v[0].hypot(v[1]) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn normal_slope_is_the_derivative_of_the_normal_component() {
        // Against central differences of the model itself: -(s(x + h n) - s(x - h n)) . n / 2h.
        let mut rng = context(2).rng(0);
        let (model, _) = ScoreMlp::seeded(32, DType::F64, &Device::Cpu, &mut rng).unwrap();
        let (x, n) = curve_points_and_normals(40);
        let slope = normal_slope(&model, &x, &n, DType::F64, &Device::Cpu).unwrap();
        let h = 1e-5;
        let s = |y: &Array2<f64>| {
            let t = to_tensor(y.view(), DType::F64, &Device::Cpu).unwrap();
            model.forward(&t).unwrap().to_vec2::<f64>().unwrap()
        };
        let (plus, minus) = (s(&(&x + &(&n * h))), s(&(&x - &(&n * h))));
        let fd: f64 = (0..x.nrows())
            .map(|k| -((plus[k][0] - minus[k][0]) * n[[k, 0]] + (plus[k][1] - minus[k][1]) * n[[k, 1]]) / (2.0 * h))
            .sum::<f64>()
            / x.nrows() as f64;
        assert!(
            (slope - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "jvp {slope}, differences {fd}"
        );
        assert!(normal_slope(
            &model,
            &x,
            &n.slice(ndarray::s![..3, ..]).to_owned(),
            DType::F64,
            &Device::Cpu
        )
        .is_err());
    }

    #[test]
    fn the_slope_grows_on_the_bare_curve_and_approaches_one_over_sigma_squared_with_noise() {
        // A short run (3,000 steps of implicit score matching): on the bare curve the slope keeps
        // rising and passes 1/sigma^2 = 400; with noise it ends within a factor 2 of 400, and in
        // the second half of training it grows less than a fifth as much as on the bare curve.
        let ctx = context(0);
        let steps = 3000;
        let run = |j: u64, noise: f64| {
            let cfg = run_config(&ctx, steps, 2 + j);
            let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| {
                let mut x: Array2<f64> = curve(n, r);
                x.mapv_inplace(|v| {
                    let z: f64 = StandardNormal.sample(r);
                    v + noise * z
                });
                x
            };
            train_run("implicit", &Objective::Implicit, noise, &mut data, &cfg, &Device::Cpu).unwrap()
        };
        let (bare, noisy) = (run(0, 0.0), run(1, NOISE));
        let at = slope_steps(steps);
        assert_eq!((bare.normal_slope.len(), at.len()), (at.len(), 1 + steps / SLOPE_EVERY));
        let mid = at.len() / 2;
        let target = 1.0 / (NOISE * NOISE);
        let growth = |r: &RunSummary| r.normal_slope_final - r.normal_slope[mid];
        eprintln!(
            "slope: bare {} -> {}, noisy {} -> {}",
            bare.normal_slope[mid], bare.normal_slope_final, noisy.normal_slope[mid], noisy.normal_slope_final
        );
        assert!(bare.normal_slope_final > target, "bare {}", bare.normal_slope_final);
        assert!(
            (0.5 * target..2.0 * target).contains(&noisy.normal_slope_final),
            "noisy {}",
            noisy.normal_slope_final
        );
        assert!(
            growth(&noisy) < 0.2 * growth(&bare),
            "{} vs {}",
            growth(&noisy),
            growth(&bare)
        );
    }

    #[test]
    fn every_run_has_its_own_stream() {
        // Seed s, run 1 must not repeat seed s + 1, run 0 (as `seed + run` did).
        let (a, b) = (run_config(&context(7), 10, 1), run_config(&context(8), 10, 0));
        let (mut ra, mut rb) = (a.rng(), b.rng());
        assert_ne!(rand::Rng::random::<u64>(&mut ra), rand::Rng::random::<u64>(&mut rb));
    }
}
