//! Sampling images with annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).
//!
//! ```text
//! x_0 ~ U[0, 1]^(C x H x W)                                   # uniform noise, as the paper
//! for i = 1..=L:   alpha_i = eps * sigma_i^2 / sigma_L^2
//!     for t = 1..=T:  x <- x + alpha_i/2 * s_theta(x, i) + sqrt(alpha_i) z      (paper form)
//! optional:  x <- x + sigma_L^2 s_theta(x, L)                 # final denoising (Tweedie)
//! ```
//!
//! With a predictor (`--predictor`, [`langevin::Predictor`]) each level but the last ends with
//! one more update that moves the chains to the next level, and the Langevin steps become the
//! corrector of a predictor-corrector sampler.
//!
//! The chain itself is `langevin::sample_annealed`, the same code that samples the 2D toys; it
//! takes any `langevin::NoiseConditionalScore` on image tensors (the network is one,
//! [`crate::model::ScoreNet`]), and this module runs the chains in batches, each batch from its own stream of a ChaCha8 generator seeded
//! with `seed`, so a run is reproducible for a given seed and batch size.
use std::ops::Range;

pub mod decisions;
pub mod images;
pub mod inpaint;

use std::cell::Cell;

use candle_core::{DType, Device, Tensor};
use indicatif::ProgressBar;
use langevin::{
    sample_annealed, AnnealedLangevin, LowNoiseSteps, NoiseConditionalScore, Predictor, Projection, Snapshot, StepBand,
    StepConvention, Trajectory,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Settings of a sampling run (the paper's by default: T = 100, eps = 2e-5, its step form).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    /// Number of chains (images).
    pub n: usize,
    /// Chains run together in one batch of the network.
    pub batch_size: usize,
    /// Seed of the starting noise and of every Langevin draw.
    pub seed: u64,
    /// Base step size `eps`: `alpha_i = eps * sigma_i^2 / sigma_L^2`.
    pub eps: f64,
    /// `T`, Langevin steps per noise level.
    pub steps_per_level: usize,
    /// Another number of steps at the levels below a noise level (`--low-noise-steps`,
    /// `--low-noise-below`), if set.
    pub low_noise: Option<LowNoiseSteps>,
    /// A step `factor` times longer at the levels of a band of noise (`--step-band`), if set.
    pub step_band: Option<StepBand>,
    /// Which update form `eps` refers to.
    pub convention: StepConvention,
    /// Langevin noise that keeps a direction of pure noise at each level's variance
    /// (`--matched-noise`; `langevin::AnnealedLangevin::matched_noise`).
    pub matched_noise: bool,
    /// Apply the final denoising step `x <- x + sigma_L^2 s(x, sigma_L)`.
    pub denoise: bool,
    /// A step from each noise level to the next after its Langevin steps (`--predictor`), if set.
    pub predictor: Option<Predictor>,
    /// Keep the chains every this many steps (counted over all levels), and at the end.
    pub snapshot_every: Option<usize>,
    /// With `snapshot_every`: give each snapshot but the last Tweedie's estimate of the clean
    /// images, `x + sigma_i^2 s(x, sigma_i)` (`--denoised`; no extra network evaluation).
    pub denoised_snapshots: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            n: 64,
            batch_size: 64,
            seed: 0,
            eps: 2e-5,
            steps_per_level: 100,
            low_noise: None,
            step_band: None,
            convention: StepConvention::Paper,
            matched_noise: false,
            denoise: false,
            predictor: None,
            snapshot_every: None,
            denoised_snapshots: false,
        }
    }
}

impl SampleConfig {
    /// The annealed Langevin settings for noise levels `sigmas`.
    pub fn annealed(&self, sigmas: &[f64]) -> AnnealedLangevin {
        AnnealedLangevin {
            sigmas: sigmas.to_vec(),
            eps: self.eps,
            steps_per_level: self.steps_per_level,
            low_noise: self.low_noise,
            step_band: self.step_band,
            convention: self.convention,
            matched_noise: self.matched_noise,
            final_denoise: self.denoise,
            predictor: self.predictor,
            record_every: self.snapshot_every,
            record_denoised: self.denoised_snapshots,
        }
    }

    /// `T` in words, with the low noise levels' steps where they differ and the predictor: `3
    /// steps per level`, `1 step per level (3 below sigma 0.3)`, `2 steps per level + ancestral`.
    pub fn steps_text(&self) -> String {
        let t = self.steps_per_level;
        let text = format!("{t} step{} per level", if t == 1 { "" } else { "s" });
        let text = match self.low_noise {
            Some(low) => format!("{text} ({} below sigma {})", low.steps, low.below),
            None => text,
        };
        match self.predictor {
            Some(p) => format!("{text} + {}", p.name()),
            None => text,
        }
    }

    /// `eps` in words, with the band's factor where it is set and the matched noise: `eps 0.00012`,
    /// `eps 0.00012 (x3 at sigma 0.2 to 0.5)`, `eps 0.00012, matched noise`.
    pub fn eps_text(&self) -> String {
        let text = match self.step_band {
            Some(b) => format!("eps {} (x{} at sigma {} to {})", self.eps, b.factor, b.low, b.high),
            None => format!("eps {}", self.eps),
        };
        if self.matched_noise {
            format!("{text}, matched noise")
        } else {
            text
        }
    }

    /// The first level of `sigmas` whose Langevin step is `4 sigma_i^2` or longer (in the paper's
    /// form), as `(sigma_i, alpha_i / sigma_i^2)`: there a chain on a direction where the data
    /// does not vary is pushed further from the level's centre at every step (the book's chapter
    /// on images, "Noise matched to the level"). `None` when every step is shorter.
    pub fn unstable_step(&self, sigmas: &[f64]) -> Option<(f64, f64)> {
        let annealed = self.annealed(sigmas);
        (0..sigmas.len())
            .map(|level| (sigmas[level], annealed.step_over_variance(level)))
            .find(|&(_, ratio)| ratio >= 4.0)
    }

    /// Network evaluations per chain at noise levels `sigmas`: every Langevin step, every
    /// predictor step and the final denoising step.
    pub fn evaluations(&self, sigmas: &[f64]) -> usize {
        self.annealed(sigmas).total_steps() + usize::from(self.denoise)
    }

    /// Checks the counts; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("n", self.n),
            ("batch_size", self.batch_size),
            ("steps_per_level", self.steps_per_level),
        ] {
            if v == 0 {
                return Err(Error::config(key, "expected at least 1, got 0"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::config(
                "eps",
                format!("expected a finite positive step size, got {}", self.eps),
            ));
        }
        if self.snapshot_every == Some(0) {
            return Err(Error::config("snapshots", "expected a positive number of steps, got 0"));
        }
        if self.denoised_snapshots && self.snapshot_every.is_none() {
            return Err(Error::config(
                "denoised",
                "the estimates are kept at the snapshots: give --snapshots K too",
            ));
        }
        if let Some(low) = self.low_noise {
            if low.steps == 0 {
                return Err(Error::config("low_noise_steps", "expected at least 1, got 0"));
            }
            if !(low.below.is_finite() && low.below > 0.0) {
                return Err(Error::config(
                    "low_noise_below",
                    format!("expected a finite positive noise level, got {}", low.below),
                ));
            }
        }
        if let Some(band) = self.step_band {
            // langevin names the part: `step_band.low`, `step_band.high` or `step_band.factor`.
            band.validate().map_err(named)?;
        }
        Ok(())
    }

    /// [`SampleConfig::validate`], and the settings against the noise levels `sigmas` (the
    /// matched noise needs every step under `4 sigma_i^2`): what a command checks before it
    /// writes anything. The error names the setting.
    pub fn validate_for(&self, sigmas: &[f64]) -> Result<()> {
        self.validate()?;
        self.annealed(sigmas).validate().map_err(named)
    }
}

/// A sampler setting's error from `langevin` as this crate's configuration error, which names
/// the setting (`eps`, `step_band.factor`, ...).
fn named(e: langevin::Error) -> Error {
    match e {
        langevin::Error::InvalidParameter { field, message } => Error::config(field, message),
        other => other.into(),
    }
}

/// `n` images of uniform noise `U[0, 1)` of shape `[n, c, h, w]`, drawn from `rng`.
pub fn uniform_noise<R: Rng + ?Sized>(rng: &mut R, shape: [usize; 4], device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random::<f32>()).collect();
    Ok(Tensor::from_vec(values, &shape[..], device)?)
}

/// Annealed Langevin from uniform noise: `config.n` images `[n, C, H, W]` (`image_dims` =
/// `[C, H, W]`, not clamped), and the snapshots of every chain when `config.snapshot_every` is
/// set. `score` is the network ([`crate::model::ScoreNet`]) or any other noise-conditional
/// score on images, such as an exact one in the tests.
pub fn sample<S: NoiseConditionalScore<Tensor> + ?Sized>(
    score: &S,
    image_dims: [usize; 3],
    config: &SampleConfig,
    device: &Device,
    progress: Progress,
) -> Result<Trajectory<Tensor>> {
    run_chains(score, image_dims, config, device, progress, |_| {
        Ok(langevin::NoProjection)
    })
}

/// Runs `config.n` chains in batches of `config.batch_size`; `projection(range)` gives the
/// constraint of the chains `range` (e.g. inpainting's observed pixels of those chains).
/// Batch `b` starts from uniform noise and draws from stream `b` of `ChaCha8(seed)`; the chain
/// is `langevin::sample_annealed` at the score's noise levels.
pub fn run_chains<S: NoiseConditionalScore<Tensor> + ?Sized, P: Projection<Tensor>>(
    score: &S,
    image_dims: [usize; 3],
    config: &SampleConfig,
    device: &Device,
    progress: Progress,
    mut projection: impl FnMut(Range<usize>) -> Result<P>,
) -> Result<Trajectory<Tensor>> {
    config.validate()?;
    let sigmas = score.sigmas();
    let annealed = config.annealed(sigmas);
    annealed.validate()?;
    let [channels, height, width] = image_dims;
    let batches: Vec<Range<usize>> = (0..config.n)
        .step_by(config.batch_size)
        .map(|start| start..(start + config.batch_size).min(config.n))
        .collect();
    let steps = (sigmas.len() * config.steps_per_level + usize::from(config.denoise)) as u64;
    let bar = crate::progress::bar(progress, steps * batches.len() as u64);
    let mut samples = Vec::with_capacity(batches.len());
    let mut snapshots: Vec<Vec<Snapshot<Tensor>>> = Vec::new();
    for (b, range) in batches.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(b as u64);
        let x0 = uniform_noise(&mut rng, [range.len(), channels, height, width], device)?;
        let mut proj = projection(range.clone())?;
        let counted = Counted {
            score,
            bar: &bar,
            progress,
            batch: (b, batches.len()),
            last_level: Cell::new(usize::MAX),
        };
        let trajectory = sample_annealed(x0, &counted, &annealed, &mut proj, &mut rng)?;
        samples.push(trajectory.samples);
        snapshots.push(trajectory.snapshots);
    }
    bar.finish_and_clear();
    Ok(Trajectory {
        samples: Tensor::cat(&samples, 0)?,
        snapshots: merge_snapshots(snapshots)?,
    })
}

/// A score that advances the progress bar at every evaluation and reports each new level.
struct Counted<'a, S: ?Sized> {
    score: &'a S,
    bar: &'a ProgressBar,
    progress: Progress,
    /// This batch's index and the number of batches.
    batch: (usize, usize),
    last_level: Cell<usize>,
}

impl<S: NoiseConditionalScore<Tensor> + ?Sized> NoiseConditionalScore<Tensor> for Counted<'_, S> {
    fn sigmas(&self) -> &[f64] {
        self.score.sigmas()
    }

    fn score(&self, x: &Tensor, level: usize) -> langevin::Result<Tensor> {
        self.bar.inc(1);
        if level != self.last_level.replace(level) {
            let (b, batches) = self.batch;
            let levels = self.sigmas().len();
            let sigma = self.sigmas()[level];
            self.bar.set_message(format!(
                "batch {}/{batches}, level {}/{levels} (sigma {sigma:.4})",
                b + 1,
                level + 1,
            ));
            if self.progress == Progress::Lines {
                eprintln!(
                    "batch {}/{batches}: level {}/{levels}, sigma {sigma:.4}",
                    b + 1,
                    level + 1
                );
            }
        }
        self.score.score(x, level)
    }
}

/// The snapshots of all batches, joined along the batch dimension (every batch records at the
/// same steps, with or without an estimate).
fn merge_snapshots(per_batch: Vec<Vec<Snapshot<Tensor>>>) -> Result<Vec<Snapshot<Tensor>>> {
    let Some(first) = per_batch.first() else {
        return Ok(Vec::new());
    };
    (0..first.len())
        .map(|k| {
            let xs: Vec<&Tensor> = per_batch.iter().map(|snaps| &snaps[k].x).collect();
            let estimates: Option<Vec<&Tensor>> = per_batch.iter().map(|snaps| snaps[k].denoised.as_ref()).collect();
            Ok(Snapshot {
                level: first[k].level,
                step: first[k].step,
                sigma: first[k].sigma,
                x: Tensor::cat(&xs, 0)?,
                denoised: estimates.map(|e| Tensor::cat(&e, 0)).transpose()?,
            })
        })
        .collect()
}

/// Number of images of a batch `[B, ...]` with a non-finite value (a diverged chain).
pub fn count_non_finite(batch: &Tensor) -> Result<usize> {
    let b = batch.dim(0)?;
    // A sum of absolute values is finite exactly when every term is (NaN and inf propagate).
    let sums = batch
        .to_dtype(DType::F32)?
        .flatten_from(1)?
        .abs()?
        .sum(1)?
        .to_vec1::<f32>()?;
    Ok((0..b).filter(|&i| !sums[i].is_finite()).count())
}
