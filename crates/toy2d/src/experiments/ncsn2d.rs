//! NCSN in 2D: noise-conditional denoising score matching on every toy data set, sampled with
//! annealed Langevin dynamics and compared with fresh data.
//!
//! For each data set: `sigma_1` = the largest distance between two of 500 training points
//! (NCSNv2, technique 1), `sigma_L` = 0.1, `L = 10` geometric levels; the loss is
//! `(1/L) sum_i sigma_i^2 l(theta; sigma_i)`. The network is [`Conditioning::EmbeddingOverSigma`],
//! `s(x, sigma_i) = f(x, i) / sigma_i`: a level embedding (the direction of the score changes with
//! sigma) and NCSNv2's output scaling (so `f` predicts `-z`, a target of unit size at every level).
//! Why both, and why 256 hidden units and 6,000 steps for the thin moons and spiral:
//! `examples/ncsn2d_sweep.rs` measures the relative score error per level of each choice, and
//! `score_errors` in `ncsn2d.json` records it for the settings used here.
//!
//! Sampling: 1,000 particles uniform over the plotted square, `T = 100` steps per level with
//! `alpha_i = eps sigma_i^2 / sigma_L^2`, `eps = 0.2 sigma_L^2` (the paper's CIFAR-10 ratio
//! `2e-5 / 0.01^2`), and a final denoising step `x + sigma_L^2 s(x, sigma_L)`.
//!
//! Metrics against 1,000 fresh data points: the kernel MMD (RBF, median-heuristic bandwidth), the
//! sliced Wasserstein distance, and for the mixtures the mode weights. The same distances between
//! two fresh data sets give the floor that finite samples allow. Both MMDs move from one draw of
//! 1,000 points to the next, so they are also computed over [`MMD_DRAWS`] independent draws (the
//! first is the one above; the others sample 1,000 more particles and fresh points each, from
//! stream `FIRST_DRAW_STREAM + t` of data set `t`), with one bandwidth for all draws, and
//! reported as mean and standard deviation.
use super::{fmt_num, tail_mean, uniform_square, Context, Table, Ticking};
use crate::metrics::{median_bandwidth, mmd_rbf, sliced_wasserstein};
use crate::model::{score_array, Conditioning, ScoreModel};
use crate::train::{train_ncsn, TrainConfig};
use anyhow::{Context as _, Result};
use gmm::datasets::Toy;
use langevin::{geometric_sigmas, ncsnv2, AnnealedLangevin, NoProjection};
use ndarray::Array2;
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
/// Independent draws of samples and fresh data over which the MMDs are averaged.
pub const MMD_DRAWS: usize = 5;
/// The extra draws of data set `t` come from stream `FIRST_DRAW_STREAM + t`.
pub const FIRST_DRAW_STREAM: u64 = 1100;
/// About how many seconds of one core one data set takes (see [`crate::jobs`]): about half in
/// training, half in sampling the 5,000 particles of the MMD's draws.
pub const COST_PER_TOY: u64 = 24;

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
    /// The RBF bandwidth (median heuristic on data vs data), for every draw.
    pub mmd_bandwidth: f64,
    /// `mmd` over `mmd_draws` ([`MMD_DRAWS`]) independent draws of samples and fresh data (the first is `mmd`).
    pub mmd_per_draw: Vec<f64>,
    /// Their mean.
    pub mmd_mean: f64,
    /// Their standard deviation (divisor `n - 1`).
    pub mmd_sd: f64,
    /// `mmd_data_vs_data` over the same draws (the first is `mmd_data_vs_data`).
    pub mmd_data_vs_data_per_draw: Vec<f64>,
    /// Their mean.
    pub mmd_data_vs_data_mean: f64,
    /// Their standard deviation.
    pub mmd_data_vs_data_sd: f64,
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
    /// Not in the JSON: the annealed Langevin samples.
    #[serde(skip)]
    pub sample_points: Array2<f64>,
    /// Not in the JSON: fresh data they are compared with.
    #[serde(skip)]
    pub fresh_points: Array2<f64>,
}

/// What the experiment found; serialised as `ncsn2d.json`.
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
    /// Independent draws of samples and fresh data for the MMDs (at least 1).
    pub mmd_draws: usize,
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
            mmd_draws: MMD_DRAWS,
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

/// The training run of data set number `t` (its own stream).
pub fn train_config(ctx: &Context, settings: &Settings, t: usize) -> TrainConfig {
    TrainConfig {
        batch_size: settings.batch_size,
        lr: settings.lr,
        hidden: settings.hidden,
        ..ctx.train_config(settings.steps, 70 + t as u64)
    }
}

/// One data set (number `t` of the experiment, which picks its streams): train, measure the
/// score error per level, sample, compare with fresh data.
pub fn run_toy(toy: Toy, t: usize, settings: &Settings, ctx: &Context) -> Result<ToyResult> {
    let mut rng = ctx.rng(40 + t as u64);
    let sigmas = sigmas_for(&toy.sample(500, &mut rng), settings.sigma_last, settings.levels)?;
    let cfg = train_config(ctx, settings, t);
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
    let x = langevin::sample_annealed(
        x0,
        &Ticking::new(model.sampling_scores()?, &bar),
        &config,
        &mut NoProjection,
        &mut rng,
    )
    .with_context(|| format!("annealed Langevin on `{}`", toy.name()))?
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
    // the MMDs over independent draws: the one above, then `mmd_draws - 1` more from their own
    // stream (the particles of one Langevin run are independent, so one run of
    // `(mmd_draws - 1) * SAMPLES` particles, cut into sets of SAMPLES, gives the extra draws)
    let mut mmd_per_draw = vec![mmd_rbf(x.view(), fresh.view(), h)?];
    let mut floor_per_draw = vec![mmd_rbf(fresh2.view(), fresh.view(), h)?];
    let extra = settings.mmd_draws.saturating_sub(1);
    if extra > 0 {
        let mut rng = ctx.rng(FIRST_DRAW_STREAM + t as u64);
        let x0 = uniform_square(extra * SAMPLES, toy.bounds(), &mut rng);
        let xs = langevin::sample_annealed(x0, &model.sampling_scores()?, &config, &mut NoProjection, &mut rng)
            .with_context(|| format!("annealed Langevin on `{}`, extra draws for the MMD", toy.name()))?
            .samples;
        if xs.iter().any(|v| !v.is_finite()) {
            anyhow::bail!("annealed Langevin on `{}` produced non-finite samples", toy.name());
        }
        for k in 0..extra {
            let xk = xs.slice(ndarray::s![k * SAMPLES..(k + 1) * SAMPLES, ..]);
            let (f1, f2) = (toy.sample(SAMPLES, &mut rng), toy.sample(SAMPLES, &mut rng));
            mmd_per_draw.push(mmd_rbf(xk, f1.view(), h)?);
            floor_per_draw.push(mmd_rbf(f2.view(), f1.view(), h)?);
        }
    }
    let (mmd_mean, mmd_sd) = mean_sd(&mmd_per_draw);
    let (floor_mean, floor_sd) = mean_sd(&floor_per_draw);
    let result = ToyResult {
        data: toy.name().into(),
        eps: config.eps,
        train_steps: settings.steps,
        final_loss: tail_mean(&train.loss_history, (train.loss_history.len() / 10).max(1)),
        score_errors,
        mmd: mmd_per_draw[0],
        mmd_data_vs_data: floor_per_draw[0],
        mmd_bandwidth: h,
        mmd_mean,
        mmd_sd,
        mmd_per_draw,
        mmd_data_vs_data_mean: floor_mean,
        mmd_data_vs_data_sd: floor_sd,
        mmd_data_vs_data_per_draw: floor_per_draw,
        sliced_wasserstein: sliced_wasserstein(x.view(), fresh.view(), DIRECTIONS)?,
        sliced_wasserstein_data_vs_data: sliced_wasserstein(fresh2.view(), fresh.view(), DIRECTIONS)?,
        mode_weights,
        true_weights,
        max_weight_error,
        loss_history: train.loss_history,
        sigmas,
        sample_points: x,
        fresh_points: fresh,
    };
    Ok(result)
}

/// The mean and the standard deviation (divisor `n - 1`; 0 for one value) of `v`.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Runs the experiment.
pub fn compute(ctx: &Context) -> Result<Report> {
    let settings = Settings {
        steps: ctx.train_steps(DEFAULT_TRAIN_STEPS),
        ..Settings::default()
    };
    // The data sets are independent (own streams, own models): side by side, each in a slot.
    let parts = TOYS.into_iter().enumerate().map(|part| (COST_PER_TOY, part)).collect();
    let results = crate::jobs::map_parallel(&ctx.jobs, parts, |(t, toy)| run_toy(toy, t, &settings, ctx))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(Report {
        seed: ctx.seed,
        samples: SAMPLES,
        steps_per_level: settings.steps_per_level,
        results,
    })
}

impl Report {
    /// Training steps per data set.
    pub fn train_steps(&self) -> usize {
        self.results.first().map_or(0, |r| r.train_steps)
    }

    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            &format!(
                "ncsn2d: noise-conditional DSM ({} steps) + annealed Langevin, vs. {SAMPLES} fresh points",
                self.train_steps()
            ),
            &[
                "data",
                "σ_1 → σ_L",
                "final loss",
                "MMD",
                "MMD floor",
                &format!("MMD, {MMD_DRAWS} draws"),
                &format!("floor, {MMD_DRAWS} draws"),
                "SW",
                "SW floor",
                "mode weights (true)",
            ],
        );
        for r in &self.results {
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
                format!("{:.3} ± {:.3}", r.mmd_mean, r.mmd_sd),
                format!("{:.3} ± {:.3}", r.mmd_data_vs_data_mean, r.mmd_data_vs_data_sd),
                fmt_num(r.sliced_wasserstein),
                fmt_num(r.sliced_wasserstein_data_vs_data),
                weights,
            ]);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::tests::context;
    use rand::Rng;

    #[test]
    fn every_data_set_trains_on_its_own_stream() {
        // Seed s, data set 1 must not repeat seed s + 1, data set 0 (as `seed + t` did).
        let settings = Settings::default();
        let a = train_config(&context(3), &settings, 1);
        let b = train_config(&context(4), &settings, 0);
        assert_ne!(a.rng().random::<u64>(), b.rng().random::<u64>());
        // and the settings reach the run
        assert_eq!((a.hidden, a.steps), (HIDDEN, DEFAULT_TRAIN_STEPS));
    }

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[7.0]), (7.0, 0.0));
    }

    #[test]
    fn the_mmds_come_from_independent_draws() {
        // A short run on the mixture: five draws, the first equal to the single-draw fields,
        // the draws all different (own points), the floor's spread small against its mean.
        let ctx = context(0);
        let settings = Settings {
            steps: 200,
            hidden: 32,
            steps_per_level: 5,
            ..Settings::default()
        };
        let r = run_toy(Toy::Mixture, 0, &settings, &ctx).unwrap();
        assert_eq!(
            (r.mmd_per_draw.len(), r.mmd_data_vs_data_per_draw.len()),
            (MMD_DRAWS, MMD_DRAWS)
        );
        assert_eq!(
            (r.mmd_per_draw[0], r.mmd_data_vs_data_per_draw[0]),
            (r.mmd, r.mmd_data_vs_data)
        );
        for v in [&r.mmd_per_draw, &r.mmd_data_vs_data_per_draw] {
            for i in 1..v.len() {
                assert!(v[..i].iter().all(|w| w != &v[i]), "{v:?}");
            }
        }
        assert_eq!(mean_sd(&r.mmd_per_draw), (r.mmd_mean, r.mmd_sd));
        assert!(
            r.mmd_data_vs_data_sd < r.mmd_data_vs_data_mean,
            "{:?}",
            r.mmd_data_vs_data_per_draw
        );
    }
}
