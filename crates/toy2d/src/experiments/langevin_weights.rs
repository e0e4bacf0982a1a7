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
//!
//! One seed's fractions move by about one standard error (0.011 to 0.014 for 1,280 particles), so
//! the exact-score samplers are also repeated [`REPEATS`] times, each repetition from its own
//! stream (new starting points, i.i.d. samples and Langevin noise), and `exact_over_seeds`
//! records the mean and standard deviation of the small mode's weight over them.
use super::{fmt_num, tail_mean, uniform_square, Context, Table, Ticking};
use crate::model::{score_array, Conditioning};
use crate::scores::PerturbedMixture;
use crate::train::train_ncsn;
use anyhow::{Context as _, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use indicatif::ProgressBar;
use langevin::blocks::BLOCK;
use langevin::{
    annealed_langevin_into, geometric_sigmas, in_blocks, langevin_into, AnnealedLangevin, NoProjection, StepConvention,
    Trajectory,
};
use ndarray::Array2;
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
/// Repetitions of the exact-score samplers (`exact_over_seeds`).
pub const REPEATS: usize = 30;
/// Repetition `k` draws from stream `FIRST_REPEAT_STREAM + k`.
pub const FIRST_REPEAT_STREAM: u64 = 1000;
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

/// One sampler over [`REPEATS`] seeds: the weight of the small mode `(-5,-5)` in each.
#[derive(Debug, Clone, Serialize)]
pub struct OverSeeds {
    /// Sampler name (as in `exact`).
    pub sampler: String,
    /// Mean of the small mode's weight over the repetitions.
    pub mean: f64,
    /// Its standard deviation over the repetitions (divisor `n - 1`).
    pub sd: f64,
    /// The smallest and largest of them.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The weight in each repetition, in order.
    pub per_seed: Vec<f64>,
}

impl OverSeeds {
    /// The statistics of `per_seed` (at least two values).
    pub fn new(sampler: &str, per_seed: Vec<f64>) -> Self {
        let n = per_seed.len() as f64;
        let mean = per_seed.iter().sum::<f64>() / n;
        let var = per_seed.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Self {
            sampler: sampler.into(),
            mean,
            sd: var.sqrt(),
            min: per_seed.iter().cloned().fold(f64::INFINITY, f64::min),
            max: per_seed.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            per_seed,
        }
    }
}

/// The particles of one side of the figure: i.i.d. samples, plain and annealed Langevin.
#[derive(Debug, Clone)]
pub struct ParticleSets {
    /// Exact samples of `p`.
    pub iid: Array2<f64>,
    /// After plain Langevin.
    pub plain: Array2<f64>,
    /// After annealed Langevin.
    pub annealed: Array2<f64>,
}

/// What the experiment found; serialised as `langevin_weights.json` (the particle sets only feed
/// the figures).
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
    /// Repetitions of the exact-score part ([`REPEATS`]).
    pub repeats: usize,
    /// The exact-score samplers (i.i.d., Langevin, annealed) over the repetitions, each from its
    /// own stream `FIRST_REPEAT_STREAM + k`: the small mode's weight, its mean and sd.
    pub exact_over_seeds: Vec<OverSeeds>,
    /// The learned noise-conditional model: Langevin at `sigma_L`, annealed Langevin.
    pub learned: Vec<SamplerResult>,
    /// Training steps of the learned model and its final loss (mean of the last 10%).
    pub learned_train_steps: usize,
    /// Mean DSM loss over the last 10% of training.
    pub learned_final_loss: f64,
    /// The particles with the exact scores.
    #[serde(skip)]
    pub exact_particles: ParticleSets,
    /// The particles with the learned score.
    #[serde(skip)]
    pub learned_particles: ParticleSets,
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

impl ParticleSets {
    /// The sampler results of the three sets, named as in the JSON.
    fn results(&self, p: &GaussianMixture, plain: &str, annealed: &str) -> Result<Vec<SamplerResult>> {
        Ok(vec![
            result(p, "exact samples", &self.iid)?,
            result(p, plain, &self.plain)?,
            result(p, annealed, &self.annealed)?,
        ])
    }
}

/// The annealed-Langevin settings of the figure.
pub fn annealed_config() -> Result<AnnealedLangevin> {
    let sigmas = geometric_sigmas(20.0, 1.0, 10)?;
    let mut config = AnnealedLangevin::paper(sigmas);
    config.eps = ANNEALED_EPS;
    config.steps_per_level = STEPS_PER_LEVEL;
    Ok(config)
}

/// Annealed Langevin (`config`) from `x0` with the exact scores of `exact`, in blocks of
/// [`BLOCK`] particles on `threads` cores (0: every core) ([`langevin::in_blocks`]; each block
/// its own stream drawn from `rng`, so the samples do not depend on the thread count). The scores
/// are written in place ([`PerturbedMixture::score_into`]): this is what
/// `cargo bench -p toy2d --bench langevin` measures. `bar` ticks once per block and step.
pub fn annealed_exact(
    x0: &Array2<f64>,
    exact: &PerturbedMixture,
    config: &AnnealedLangevin,
    threads: usize,
    rng: &mut ChaCha8Rng,
    bar: &ProgressBar,
) -> langevin::Result<Trajectory<Array2<f64>>> {
    let tick = !bar.is_hidden(); // (a hidden bar's `inc` still reads the clock)
    in_blocks(x0.view(), BLOCK, threads, rng, |xb, r| {
        let level_score = |x: &Array2<f64>, level: usize, _: f64, out: &mut Array2<f64>| {
            if tick {
                bar.inc(1);
            }
            exact.score_into(x, level, out);
            Ok(())
        };
        annealed_langevin_into(xb, level_score, config, r)
    })
}

/// Plain Langevin (`PLAIN_EPS`, `PLAIN_STEPS`, paper convention) from `x0` with
/// `score(x, out)` writing the score of `x` into `out`. With `block = Some(b)`, in blocks of `b`
/// particles on every core as [`annealed_exact`]; with `None`, one chain on `rng` itself
/// (a network is cheapest on the whole batch at once). `bar` ticks once per block and step.
pub fn sample_plain(
    x0: &Array2<f64>,
    score: &(impl Fn(&Array2<f64>, &mut Array2<f64>) -> langevin::Result<()> + Sync),
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
            score(x, out)
        };
        langevin_into(xb, plain_score, PLAIN_EPS, PLAIN_STEPS, StepConvention::Paper, None, r)
    };
    Ok(match block {
        Some(block) => in_blocks(x0.view(), block, 0, rng, chain)?.samples,
        None => chain(x0.clone(), rng)?.samples,
    })
}

/// The exact-score part of the figure from stream `stream`: starting points uniform in
/// `[-8, 8]^2`, i.i.d. samples of `p`, plain Langevin with `grad log p`, annealed Langevin with
/// `grad log p_sigma_i`, both in blocks on every core.
pub fn exact_sets(
    ctx: &Context,
    exact: &PerturbedMixture,
    config: &AnnealedLangevin,
    stream: u64,
) -> Result<ParticleSets> {
    let p = exact.mixture();
    let steps_total = (PLAIN_STEPS + config.sigmas.len() * STEPS_PER_LEVEL) as u64;
    let mut rng = ctx.rng(stream);
    let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
    let iid = p.sample(PARTICLES, &mut rng);
    let bar = if stream == 20 {
        ctx.bar(
            steps_total * x0.nrows().div_ceil(BLOCK) as u64,
            "Langevin, exact scores",
        )
    } else {
        ProgressBar::hidden()
    };
    let plain_score = |x: &Array2<f64>, out: &mut Array2<f64>| {
        p.score_into(x.view(), out.view_mut());
        Ok(())
    };
    let plain = sample_plain(&x0, &plain_score, Some(BLOCK), &mut rng, &bar).context("plain Langevin, exact score")?;
    let annealed = annealed_exact(&x0, exact, config, 0, &mut rng, &bar)
        .context("annealed Langevin, exact scores")?
        .samples;
    bar.finish_and_clear();
    Ok(ParticleSets { iid, plain, annealed })
}

/// The exact-score samplers repeated `repeats` times (repetition `k` on stream
/// `FIRST_REPEAT_STREAM + k`): the small mode's weight over the seeds, for i.i.d. samples, plain
/// and annealed Langevin.
pub fn exact_over_seeds(
    ctx: &Context,
    exact: &PerturbedMixture,
    config: &AnnealedLangevin,
    repeats: usize,
) -> Result<Vec<OverSeeds>> {
    let p = exact.mixture();
    let mut w: [Vec<f64>; 3] = Default::default();
    let bar = ctx.bar(repeats as u64, "Langevin, exact scores, repetitions");
    for k in 0..repeats {
        let sets = exact_sets(ctx, exact, config, FIRST_REPEAT_STREAM + k as u64)?;
        for (j, x) in [&sets.iid, &sets.plain, &sets.annealed].into_iter().enumerate() {
            w[j].push(
                p.mode_weights(x.view())
                    .with_context(|| format!("mode weights, repetition {k}"))?[0],
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let [iid, plain, annealed] = w;
    Ok(vec![
        OverSeeds::new("exact samples", iid),
        OverSeeds::new("Langevin (exact score)", plain),
        OverSeeds::new("annealed Langevin (exact scores)", annealed),
    ])
}

/// Runs the experiment.
pub fn compute(ctx: &Context) -> Result<Report> {
    let config = annealed_config()?;
    let sigmas = config.sigmas.clone();
    let exact = PerturbedMixture::new(paper_mixture(), &sigmas).context("perturbing the mixture")?;
    let p = exact.mixture();
    let steps_total = (PLAIN_STEPS + sigmas.len() * STEPS_PER_LEVEL) as u64;

    // --- exact scores: grad log p for plain Langevin, grad log p_sigma_i for annealed ---
    let exact_particles = exact_sets(ctx, &exact, &config, 20)?;
    // the same, repeated over seeds
    let over_seeds = exact_over_seeds(ctx, &exact, &config, REPEATS)?;
    // the learned side starts from the same points (stream 20's first draw)
    let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut ctx.rng(20));

    // --- a learned noise-conditional score ---
    let steps = ctx.train_steps(DEFAULT_TRAIN_STEPS);
    let cfg = ctx.train_config(steps, 0);
    let mut data = |n: usize, r: &mut rand_chacha::ChaCha8Rng| p.sample(n, r);
    let (model, report) = train_ncsn(&mut data, &sigmas, Conditioning::EmbeddingOverSigma, &cfg, &ctx.device)
        .context("training the NCSN")?;
    // One chain on one generator, plain then annealed: the network is cheapest on the whole
    // batch at once. Plain Langevin uses the smallest level, s_theta(x, sigma_L).
    let mut rng = ctx.rng(21);
    let bar = ctx.bar(steps_total, "Langevin, learned scores");
    let last = sigmas.len() - 1;
    let plain_score = |x: &Array2<f64>, out: &mut Array2<f64>| -> langevin::Result<()> {
        *out = score_array(&model, x.view(), Some(last), &ctx.device)?;
        Ok(())
    };
    let plain = sample_plain(&x0, &plain_score, None, &mut rng, &bar).context("plain Langevin, learned score")?;
    let annealed = langevin::sample_annealed(
        x0.clone(),
        &Ticking::new(model.sampling_scores()?, &bar),
        &config,
        &mut NoProjection,
        &mut rng,
    )
    .context("annealed Langevin, learned scores")?
    .samples;
    bar.finish_and_clear();
    let learned_particles = ParticleSets {
        iid: exact_particles.iid.clone(),
        plain,
        annealed,
    };

    Ok(Report {
        seed: ctx.seed,
        particles: PARTICLES,
        true_weights: p.weights().to_vec(),
        step_sizes: (0..sigmas.len()).map(|i| config.step_size(i)).collect(),
        sigmas,
        plain_eps: PLAIN_EPS,
        plain_steps: PLAIN_STEPS,
        steps_per_level: STEPS_PER_LEVEL,
        exact: exact_particles.results(p, "Langevin (exact score)", "annealed Langevin (exact scores)")?,
        repeats: REPEATS,
        exact_over_seeds: over_seeds,
        learned: learned_particles.results(p, "Langevin (learned s(x, σ_L))", "annealed Langevin (learned)")?,
        learned_train_steps: steps,
        learned_final_loss: tail_mean(&report.loss_history, (report.loss_history.len() / 10).max(1)),
        exact_particles,
        learned_particles,
    })
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        let mut table = Table::new(
            "langevin-weights: mode weights on 1/5 N((-5,-5), I) + 4/5 N((5,5), I)",
            &["scores", "sampler", "w(-5,-5)", "w(5,5)", "|w - 0.2|"],
        );
        // (the learned side's first row repeats the exact samples)
        for (kind, results) in [("exact", &self.exact[..]), ("learned", &self.learned[1..])] {
            for r in results {
                table.row(vec![
                    kind.into(),
                    r.sampler.clone(),
                    format!("{:.3}", r.mode_weights[0]),
                    format!("{:.3}", r.mode_weights[1]),
                    format!("{:.3}", r.weight_error),
                ]);
            }
        }
        for o in &self.exact_over_seeds {
            table.row(vec![
                format!("exact, {} seeds", self.repeats),
                o.sampler.clone(),
                format!("{:.3} ± {:.3}", o.mean, o.sd),
                format!("{:.3}", 1.0 - o.mean),
                format!("{:.3}", (o.mean - self.true_weights[0]).abs()),
            ]);
        }
        table.row(vec![
            "".into(),
            format!("learned model final DSM loss {}", fmt_num(self.learned_final_loss)),
        ]);
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::tests::context;

    #[test]
    fn over_seeds_statistics() {
        let o = OverSeeds::new("x", vec![0.1, 0.2, 0.3]);
        assert!((o.mean - 0.2).abs() < 1e-12);
        assert!((o.sd - 0.1).abs() < 1e-12, "sample sd, divisor n - 1: {}", o.sd);
        assert_eq!((o.min, o.max), (0.1, 0.3));
    }

    #[test]
    fn repetitions_differ_and_annealing_is_close_to_the_true_weight_on_average() {
        // Four repetitions of the exact-score samplers: each its own stream (different values),
        // plain Langevin near the starting split 0.49, annealed Langevin near 0.2.
        let ctx = context(0);
        let config = annealed_config().unwrap();
        let exact = PerturbedMixture::new(paper_mixture(), &config.sigmas).unwrap();
        let o = exact_over_seeds(&ctx, &exact, &config, 4).unwrap();
        assert_eq!(o.len(), 3);
        for s in &o {
            assert_eq!(s.per_seed.len(), 4);
            assert!(s.sd > 0.0, "{}: every repetition the same", s.sampler);
        }
        assert!((o[0].mean - 0.2).abs() < 0.03, "i.i.d. {}", o[0].mean);
        assert!((o[1].mean - 0.49).abs() < 0.05, "plain {}", o[1].mean);
        assert!((o[2].mean - 0.2).abs() < 0.05, "annealed {}", o[2].mean);
    }
}
