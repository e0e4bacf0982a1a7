//! The `sample` and `inpaint` subcommands of the `ncsn` binary: flags, and the files they write.
//! The work itself is in [`crate::sampling`] and [`crate::sampling::inpaint`], with the network
//! as a noise-conditional score ([`crate::model::ScoreNet`]).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Args;
use image::RgbImage;
use langevin::{LowNoiseSteps, Predictor, Snapshot, StepBand, StepConvention};

use crate::error::{Error, Result};
use crate::fsutil::{prepare_output_dir, write_safetensors};
use crate::load::{is_weights_file, load_model, LoadedModel};
use crate::measure::{measure, quantize, read_source, Metric, Part, SetSummary, Source, DEFAULT_BATCH};
use crate::model::ModelConfig;
use crate::progress::Progress;
use crate::sampling::images::{grid, save_gif, save_png, to_rgb_images, Figure};
use crate::sampling::inpaint::{self, MaskKind};
use crate::sampling::{count_non_finite, decisions, sample, SampleConfig};

/// Chains shown in the animated GIF (a 4 x 4 grid keeps the file small).
pub const GIF_IMAGES: usize = 16;
/// Chains shown per row of the `chain.png` overview.
pub const CHAIN_COLUMNS: usize = 8;

/// Which model to use.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Run folder of `ncsn train` (or its checkpoint.json, or a checkpoint-STEP.json kept by
    /// keep_every); or a bare .safetensors file of weights (e.g. a converted reference
    /// checkpoint), which needs --model-config
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The model of a bare .safetensors file: cifar10 (ngf 128, 3x32x32), mnist (ngf 64, 1x28x28),
    /// or a TOML file with the keys of `train --config` (ngf, channels, image_size, sigma_begin,
    /// sigma_end, num_levels)
    #[arg(long)]
    pub model_config: Option<String>,
    /// Use the last weights even when the run kept an EMA (the EMA weights are the default)
    #[arg(long)]
    pub no_ema: bool,
    /// cpu, cuda or cuda:N (cuda needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// How the chains run and what is written.
#[derive(Debug, Clone, Args)]
pub struct ChainArgs {
    /// Seed of the starting noise and of every Langevin draw
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Chains per network batch (results depend on the seed and on this)
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Base step size eps: the step at level i is eps * sigma_i^2 / sigma_L^2 [default: the run's
    /// sample_eps; 2e-5, the paper's, for a weights file]
    #[arg(long)]
    pub eps: Option<f64>,
    /// Langevin steps per noise level (T) [default: the run's sample_steps_per_level; 100, the
    /// paper's, for a weights file]
    #[arg(long)]
    pub steps_per_level: Option<usize>,
    /// Langevin steps at each level whose noise is below --low-noise-below, instead of T (both
    /// flags together) [default: the run's sample_low_noise_steps; none for a weights file]
    #[arg(long, value_name = "N", requires = "low_noise_below")]
    pub low_noise_steps: Option<usize>,
    /// The noise level below which the levels take --low-noise-steps [default: the run's
    /// sample_low_noise_below]
    #[arg(long, value_name = "SIGMA", requires = "low_noise_steps")]
    pub low_noise_below: Option<f64>,
    /// A step FACTOR times longer at every level whose noise lies between LOW and HIGH (both
    /// included): `0.2,0.5,3`; `none` for no band [default: the run's sample_band_low,
    /// sample_band_high and sample_band_factor; none for a weights file]
    #[arg(long, value_name = "LOW,HIGH,FACTOR", value_parser = parse_step_band)]
    pub step_band: Option<Band>,
    /// Langevin noise of variance alpha_i (1 - alpha_i/(4 sigma_i^2)) instead of the paper's
    /// alpha_i: a chain on a direction of pure noise settles at the level's variance sigma_i^2,
    /// where the paper's noise leaves it 1/(1 - alpha_i/(4 sigma_i^2)) times wider. Needs every
    /// step (band included) under 4 sigma_i^2
    #[arg(long)]
    pub matched_noise: bool,
    /// Update form that eps refers to: `paper` (x + eps_i/2 s + sqrt(eps_i) z) or `reference`
    /// (the reference code's x + eps_i s + sqrt(2 eps_i) z)
    #[arg(long, default_value = "paper")]
    pub step_convention: String,
    /// End with the denoising step x <- x + sigma_L^2 s(x, sigma_L) (also on when the run's
    /// sample_denoise is true)
    #[arg(long)]
    pub denoise: bool,
    /// A step from each noise level to the next after its Langevin steps, one network evaluation
    /// each: `reverse-diffusion` (x + (sigma_i^2 - sigma_(i+1)^2) s + sqrt(sigma_i^2 - sigma_(i+1)^2) z,
    /// the reverse SDE's Euler-Maruyama step), `ancestral` (the same drift, noise
    /// sigma_(i+1)/sigma_i times that) or `none`
    #[arg(long, default_value = "none")]
    pub predictor: String,
    /// Keep the chains every K steps: a grid per snapshot, an overview and an animated GIF
    #[arg(long, value_name = "K")]
    pub snapshots: Option<usize>,
    /// With --snapshots: also keep Tweedie's estimate of the clean images at each snapshot, x +
    /// sigma_i^2 s(x, sigma_i), where the chains are heading at that level (no extra network
    /// evaluation): denoised/, denoised.png and denoised.gif; with `sample --fid` on MNIST,
    /// fid.json's `decisions` and decisions.png say at each snapshot how many estimates the
    /// classifier already puts in their chain's final class
    #[arg(long, requires = "snapshots")]
    pub denoised: bool,
    /// Pixels per image pixel in the pictures
    #[arg(long, default_value_t = 2)]
    pub scale: u32,
    /// Output folder [default: RUN/samples or ./samples; RUN/inpainting or ./inpainting, RUN the run folder]
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What `--step-band` gave: a band, or `none` (no band, even where the run has one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band(pub Option<StepBand>);

/// Parses `--step-band`: `none`, or `LOW,HIGH,FACTOR` (its values are checked with the rest of
/// the sampler's settings, so that the message names the part that is wrong).
fn parse_step_band(text: &str) -> std::result::Result<Band, String> {
    if text == "none" {
        return Ok(Band(None));
    }
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [low, high, factor] = parts[..] else {
        return Err(format!(
            "expected `none` or three numbers LOW,HIGH,FACTOR such as 0.2,0.5,3, got `{text}`"
        ));
    };
    let number = |name: &str, v: &str| {
        v.parse::<f64>()
            .map_err(|_| format!("expected a number for {name} in LOW,HIGH,FACTOR, got `{v}`"))
    };
    Ok(Band(Some(StepBand {
        low: number("LOW", low)?,
        high: number("HIGH", high)?,
        factor: number("FACTOR", factor)?,
    })))
}

impl ChainArgs {
    /// The sampler's settings for `n` chains: the flags, else the run's sampler settings (`run`,
    /// the configuration of a run folder), else the paper's.
    fn config(&self, n: usize, run: Option<&crate::TrainConfig>) -> Result<SampleConfig> {
        let paper = SampleConfig::default();
        if self.scale == 0 {
            return Err(Error::config(
                "scale",
                "expected at least 1 pixel per image pixel, got 0",
            ));
        }
        let convention = StepConvention::parse(&self.step_convention).map_err(|_| {
            Error::config(
                "step_convention",
                format!("expected `paper` or `reference`, got `{}`", self.step_convention),
            )
        })?;
        let config = SampleConfig {
            n,
            batch_size: self.batch_size,
            seed: self.seed,
            eps: self.eps.or(run.map(|r| r.sample_eps)).unwrap_or(paper.eps),
            steps_per_level: self
                .steps_per_level
                .or(run.map(|r| r.sample_steps_per_level))
                .unwrap_or(paper.steps_per_level),
            low_noise: match (self.low_noise_steps, self.low_noise_below, run) {
                (Some(steps), Some(below), _) => Some(LowNoiseSteps { below, steps }),
                (_, _, Some(run)) => run.sample_low_noise()?,
                _ => None,
            },
            step_band: match (self.step_band, run) {
                (Some(Band(band)), _) => band,
                (None, Some(run)) => run.sample_step_band()?,
                (None, None) => None,
            },
            convention,
            matched_noise: self.matched_noise,
            denoise: self.denoise || run.is_some_and(|r| r.sample_denoise),
            // The error names the flag and the choices: "invalid `predictor`: expected ...".
            predictor: Predictor::parse(&self.predictor)?,
            snapshot_every: self.snapshots,
            denoised_snapshots: self.denoised,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `ncsn sample`.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of images
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Measure the samples: their FID against the run's training images (or --fid-reference) and
    /// their class histogram (MNIST classifier, 28x28 grayscale models) or Inception score
    /// (--inception); written to fid.json
    #[arg(long)]
    pub fid: bool,
    /// The reference of --fid: images in any form `ncsn fid` reads, or statistics saved by `ncsn
    /// fid --save-stats` [default: the run's training images]
    #[arg(long, value_name = "PATH", requires = "fid")]
    pub fid_reference: Option<PathBuf>,
    /// Measure --fid with Inception-v3 (weights converted by scripts/convert_inception_weights.py)
    /// instead of the MNIST classifier
    #[arg(long, value_name = "FILE", requires = "fid")]
    pub inception: Option<PathBuf>,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// `ncsn inpaint`.
#[derive(Debug, Clone, Args)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A PNG/JPEG image to complete (resized and centre-cropped to the model's size, like the
    /// training loader); repeat the flag for several
    #[arg(long, conflicts_with = "dataset")]
    pub image: Vec<PathBuf>,
    /// Take --n images from data as `train --data` takes it (CIFAR-10 folder: its test batch;
    /// MNIST IDX file or image folder: the images train holds out for testing, then the others)
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Images to take from --dataset
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Which pixels are observed: left-half, center (all but the centre square), or a PNG of the
    /// model's size where white (>= 128) = observed and black = filled in
    #[arg(long, default_value = "left-half")]
    pub mask: String,
    /// Completions per image
    #[arg(long, default_value_t = 4)]
    pub per_image: usize,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Loads the model and says which weights are used.
fn load(args: &ModelArgs) -> Result<(LoadedModel, Device)> {
    let device = workbench::parse_device(&args.device, "ncsn")?;
    let loaded = load_model(&args.checkpoint, args.model_config.as_deref(), &device)?;
    if let Some(first) = loaded.ignored.first() {
        eprintln!(
            "note: {} holds {} tensor(s) that are not parameters of the network (first: `{first}`); they are ignored",
            args.checkpoint.display(),
            loaded.ignored.len()
        );
    }
    Ok((loaded, device))
}

/// The default output folder: `<run folder>/<name>` for a run, `<run folder>/<name>-<step>` for
/// a kept `checkpoint-<step>.json`, `./<name>` for a weights file.
fn out_dir(args: &ModelArgs, chain: &ChainArgs, name: &str) -> PathBuf {
    if let Some(out) = &chain.out {
        return out.clone();
    }
    let path = &args.checkpoint;
    if is_weights_file(path) {
        return PathBuf::from(name);
    }
    if path.is_dir() {
        return path.join(name);
    }
    let run = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let kept = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("checkpoint-"));
    match kept {
        Some(step) => run.join(format!("{name}-{step}")),
        None => run.join(name),
    }
}

fn save_tensors(tensors: &[(&str, &Tensor)], path: &Path) -> Result<()> {
    // Host copies: the tensors may live on a GPU.
    let map = tensors
        .iter()
        .map(|(k, t)| Ok(((*k).to_string(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<HashMap<String, Tensor>>>()?;
    write_safetensors(path, &map)
}

/// Checks, before any sampling, what the chains and pictures of `config` will need
/// ([`crate::limits`]); `figure` is the main picture (rows, columns of tiles).
fn check_sizes(
    model: &ModelConfig,
    config: &SampleConfig,
    scale: u32,
    figure: (usize, usize),
    command: &str,
) -> Result<()> {
    let figure_need =
        |rows, columns, what| crate::limits::figure_need(rows, columns, model.image_size, scale, what, "n");
    let most_steps = config.low_noise.map_or(0, |low| low.steps).max(config.steps_per_level);
    let total = model.num_classes.saturating_mul(most_steps);
    let snapshots = config.snapshot_every.map_or(0, |k| total / k + 2);
    // Tweedie's estimates (`--denoised`) are a second copy of every snapshot.
    let snapshots = if config.denoised_snapshots {
        2 * snapshots
    } else {
        snapshots
    };
    let mut needs = crate::limits::sampling_needs(model, config.n, config.batch_size, snapshots);
    let (rows, columns) = figure;
    needs.push(figure_need(rows, columns, "the picture"));
    if snapshots > 0 {
        // Every snapshot's grid of all chains, and the GIF's frames of GIF_IMAGES chains, kept until written.
        let side = (config.n as f64).sqrt().ceil() as usize;
        needs.push(figure_need(side, side, "a snapshot grid"));
        let mut frames = figure_need(4, 4, "the GIF's frames");
        frames.bytes = frames.bytes.saturating_mul(snapshots as u128);
        needs.push(frames);
    }
    crate::limits::check(command, &needs)
}

/// The chains' final values against the data's range `[0, 1]`: a warning when some are not
/// finite or far outside (beyond [`SENSIBLE_RANGE`]), which means the chains did not settle on
/// data (too large an `--eps`, or a model trained too little).
fn warn_out_of_range(samples: &Tensor, what: &str) -> Result<()> {
    let (lo, hi) = SENSIBLE_RANGE;
    let n = samples.dim(0)?;
    let bad = count_non_finite(samples)?;
    let values = samples.to_dtype(candle_core::DType::F32)?.flatten_from(1)?;
    let outside = values
        .lt(lo)?
        .maximum(&values.gt(hi)?)?
        .to_dtype(candle_core::DType::F32)?
        .max(1)?
        .sum_all()?
        .to_scalar::<f32>()? as usize;
    if bad > 0 {
        eprintln!(
            "warning: {bad} of {n} {what} hold non-finite values: the chains diverged. A too large --eps (the step \
             at level i is eps sigma_i^2 / sigma_L^2) is the usual cause"
        );
    } else if outside > 0 {
        let largest = values.abs()?.max_all()?.to_scalar::<f32>()?;
        eprintln!(
            "warning: {outside} of {n} {what} hold values outside [{lo}, {hi}] (largest magnitude {largest:e}), far \
             from the data's [0, 1]: the chains did not settle on data. A too large --eps, or a model trained too \
             little, are the usual causes"
        );
    }
    Ok(())
}

/// Values of a finished chain beyond this range count as far from the data (which lie in
/// `[0, 1]`): a whole data range below or above it.
pub const SENSIBLE_RANGE: (f32, f32) = (-1.0, 2.0);

fn describe(loaded: &LoadedModel, weights: &str, args: &ModelArgs) -> String {
    let m = loaded.model.config();
    let step = if loaded.step > 0 {
        format!(" after {} training steps", loaded.step)
    } else {
        String::new()
    };
    format!(
        "{} ({weights}{step}; ngf {}, {}x{}x{}, L = {})",
        args.checkpoint.display(),
        m.ngf,
        m.channels,
        m.image_size,
        m.image_size,
        m.num_classes
    )
}

/// Says on stderr where a step is 4 sigma_i^2 or longer (the paper's noise takes it; the chains
/// do not settle there on the directions where the data does not vary).
fn warn_unstable_step(config: &SampleConfig, sigmas: &[f64], command: &str) {
    if let Some((sigma, ratio)) = config.unstable_step(sigmas) {
        eprintln!(
            "{command}: warning: the step at sigma {sigma:.4} is {ratio:.2} sigma^2, at or past 4 sigma^2, where a \
             Langevin step overshoots the level's centre by as much as it started from it or more: lower \
             --eps or the --step-band factor"
        );
    }
}

/// `ncsn sample`: writes `samples.png` and `samples.safetensors` (the unclamped tensor
/// `samples`), and with `--snapshots K` the folder `snapshots/`, `chain.png` and `chain.gif`.
pub fn run_sample(args: &SampleArgs) -> Result<()> {
    let (loaded, device) = load(&args.model)?;
    let config = args.chain.config(args.n, loaded.run.as_ref())?;
    // The metric and its reference first: a wrong flag should not cost a sampling run.
    let fid = if args.fid {
        Some(FidSetup::new(args, &loaded, &device)?)
    } else {
        None
    };
    config.validate_for(&loaded.sigmas)?;
    let (net, weights) = loaded.score_net(args.model.no_ema)?;
    let side = (config.n as f64).sqrt().ceil() as usize;
    check_sizes(
        loaded.config(),
        &config,
        args.chain.scale,
        (config.n.div_ceil(side.max(1)), side),
        "ncsn sample",
    )?;
    let out = out_dir(&args.model, &args.chain, "samples");
    prepare_output_dir(&out, "out")?;
    eprintln!(
        "ncsn sample: {} images from {}, {} levels, {}, {} ({} form){}",
        config.n,
        describe(&loaded, weights, &args.model),
        loaded.sigmas.len(),
        config.steps_text(),
        config.eps_text(),
        args.chain.step_convention,
        if config.denoise { ", final denoising" } else { "" }
    );
    warn_unstable_step(&config, &loaded.sigmas, "ncsn sample");
    let started = Instant::now();
    let trajectory = sample(&net, net.image_dims(), &config, &device, Progress::for_stderr())?;
    let seconds = started.elapsed().as_secs_f64();
    let samples = &trajectory.samples;
    save_png(&grid(samples, args.chain.scale)?, &out.join("samples.png"))?;
    save_tensors(&[("samples", samples)], &out.join("samples.safetensors"))?;
    write_all_snapshots(&trajectory.snapshots, &loaded.sigmas, &config, args.chain.scale, &out)?;
    warn_out_of_range(samples, "chains")?;
    eprintln!(
        "wrote {} ({} network evaluations per chain in {seconds:.1} s)",
        out.join("samples.png").display(),
        config.evaluations(&loaded.sigmas)
    );
    if let Some(fid) = fid {
        // What drew the samples, so that fid.json alone says what it measured.
        let sampler = serde_json::json!({
            "checkpoint": args.model.checkpoint.display().to_string(),
            "training_step": loaded.step,
            "weights": weights,
            "levels": loaded.sigmas.len(),
            "sigma_first": loaded.sigmas.first(),
            "sigma_last": loaded.sigmas.last(),
            "eps": config.eps,
            "steps_per_level": config.steps_per_level,
            "low_noise_steps": config.low_noise.map(|low| low.steps),
            "low_noise_below": config.low_noise.map(|low| low.below),
            "step_band": config.step_band.map(|b| serde_json::json!({"low": b.low, "high": b.high, "factor": b.factor})),
            "step_convention": args.chain.step_convention.to_string(),
            "matched_noise": config.matched_noise,
            "denoise": config.denoise,
            "predictor": config.predictor.map(|p| p.name()),
            "seed": config.seed,
            "batch_size": config.batch_size,
            "seconds": seconds,
        });
        fid.report(samples, &trajectory.snapshots, &device, sampler, &out)?;
    }
    Ok(())
}

/// What `ncsn sample --fid` measures with, and against what: prepared before sampling.
struct FidSetup {
    metric: Metric,
    net: Box<dyn quality::FeatureNetwork>,
    reference: quality::features::FeatureStats,
    reference_source: String,
}

impl FidSetup {
    fn new(args: &SampleArgs, loaded: &LoadedModel, device: &Device) -> Result<Self> {
        let m = loaded.config();
        let metric = match &args.inception {
            Some(path) => Metric::Inception(path.clone()),
            None if (m.channels, m.image_size) == (1, 28) => Metric::Mnist,
            None => {
                return Err(Error::config(
                    "inception",
                    format!(
                        "--fid on {}x{}x{} images needs Inception-v3: give --inception FILE (the MNIST classifier \
                         measures 28x28 grayscale digits only)",
                        m.channels, m.image_size, m.image_size
                    ),
                ))
            }
        };
        let net = metric.open(device)?;
        net.check_dims((m.channels, m.image_size, m.image_size))?;
        if args.n <= net.feature_dim() {
            return Err(Error::config(
                "n",
                format!(
                    "--fid needs more samples than the {} features of {} (a covariance of fewer is singular): \
                     expected --n {} or more, got {}",
                    net.feature_dim(),
                    net.name(),
                    net.feature_dim() + 1,
                    args.n
                ),
            ));
        }
        let (reference, reference_source) = match &args.fid_reference {
            Some(path) => {
                let stats = match read_source(path, Part::All, 0.0)? {
                    Source::Stats(stats) => stats,
                    Source::Images(images) => {
                        measure(
                            &images,
                            net.as_ref(),
                            DEFAULT_BATCH,
                            device,
                            Progress::for_stderr(),
                            &path.display().to_string(),
                        )?
                        .stats
                    }
                };
                (stats, path.display().to_string())
            }
            None => {
                let run =
                    match &loaded.run {
                        Some(run) => run.clone(),
                        None if metric == Metric::Mnist => crate::TrainConfig::mnist(),
                        None => return Err(Error::config(
                            "fid_reference",
                            "a bare weights file does not say which images it was trained on: give --fid-reference \
                             (images, or statistics saved by `ncsn fid --save-stats`)",
                        )),
                    };
                let stats = crate::measure::training_reference(&run, net.as_ref(), device, Progress::for_stderr())?;
                (stats, "the run's training images".to_string())
            }
        };
        Ok(Self {
            metric,
            net,
            reference,
            reference_source,
        })
    }

    /// Measures `samples`, prints the FID and the summary, and writes them to `out/fid.json`
    /// with `sampler`, the settings that drew them; with the MNIST classifier and snapshots that
    /// hold Tweedie's estimates, also where the chains decided their class (`decisions` in the
    /// JSON, and `out/decisions.png`).
    fn report(
        &self,
        samples: &Tensor,
        snapshots: &[Snapshot<Tensor>],
        device: &Device,
        sampler: serde_json::Value,
        out: &Path,
    ) -> Result<()> {
        let path = &out.join("fid.json");
        let images = quantize(samples)?;
        let m = measure(
            &images,
            self.net.as_ref(),
            DEFAULT_BATCH,
            device,
            Progress::for_stderr(),
            "samples",
        )?;
        let fid = quality::frechet::frechet_distance(&m.stats, &self.reference)?;
        let summary = SetSummary::new("samples", &m, &self.metric, quality::inception_score::DEFAULT_SPLITS)?;
        println!("{summary}");
        println!(
            "FID {fid:.4} ({} features; {} samples against {} images of {})",
            self.metric.short_name(),
            m.stats.count,
            self.reference.count,
            self.reference_source
        );
        let has_estimates = snapshots.iter().any(|s| s.denoised.is_some());
        let decided = match (&self.metric, has_estimates) {
            (Metric::Mnist, true) => {
                let last = quality::classes::ClassSummary::from_logits(&m.logits, m.classes)?;
                let rows = decisions::decisions(snapshots, &last, self.net.as_ref(), &self.reference, device)?;
                Some((rows, last))
            }
            (Metric::Inception(_), true) => {
                eprintln!(
                    "note: --denoised with --inception: no `decisions` (they need the MNIST classifier's classes)"
                );
                None
            }
            _ => None,
        };
        let mut json = serde_json::json!({
            "metric": self.metric.short_name(),
            "network": self.net.name(),
            "fid": fid,
            "samples": summary,
            "reference": { "source": self.reference_source, "count": self.reference.count },
            "sampler": sampler,
        });
        if let Some((rows, _)) = &decided {
            json["decisions"] = serde_json::to_value(rows).map_err(|e| Error::output(path, e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::output(path, e.to_string()))?;
        crate::fsutil::write_atomic(path, format!("{text}\n").as_bytes())?;
        eprintln!("wrote {}", path.display());
        if let Some((rows, last)) = decided {
            let figure = out.join("decisions.png");
            let title = format!("Where the chains decide their class: {} chains", last.count());
            let sure = last.confident_share(quality::classes::CONFIDENT_THRESHOLD);
            decisions::plot(&rows, sure, &title, &figure)?;
            eprintln!("wrote {}", figure.display());
        }
        Ok(())
    }
}

/// A snapshot's caption: its step and noise level.
fn snapshot_label(s: &Snapshot<Tensor>, sigmas: &[f64], config: &SampleConfig) -> String {
    let total = config.annealed(sigmas).total_steps();
    if s.step >= total {
        format!("end{}", if config.denoise { " (denoised)" } else { "" })
    } else {
        format!("step {}, σ{} = {:.4}", s.step, subscript(s.level + 1), s.sigma)
    }
}

/// `12` as `₁₂`, for sigma's index.
fn subscript(i: usize) -> String {
    i.to_string()
        .chars()
        .map(|c| char::from_u32('₀' as u32 + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
        .collect()
}

/// What the pictures of the snapshots show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// The chains themselves: `snapshots/`, `chain.png`, `chain.gif`.
    Chains,
    /// Tweedie's estimates from them (`--denoised`): `denoised/`, `denoised.png`,
    /// `denoised.gif`; the last row is the samples.
    Estimates,
}

impl Shown {
    /// The folder of the per-snapshot grids, and the stem of the overview and the GIF.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Shown::Chains => ("snapshots", "chain"),
            Shown::Estimates => ("denoised", "denoised"),
        }
    }

    fn images(self, s: &Snapshot<Tensor>) -> &Tensor {
        match self {
            Shown::Chains => &s.x,
            // The final snapshot has no estimate of its own: it is the samples.
            Shown::Estimates => s.denoised.as_ref().unwrap_or(&s.x),
        }
    }
}

/// The pictures of the chains' snapshots, and of their estimates when they hold them.
fn write_all_snapshots(
    snapshots: &[Snapshot<Tensor>],
    sigmas: &[f64],
    config: &SampleConfig,
    scale: u32,
    out: &Path,
) -> Result<()> {
    if snapshots.is_empty() {
        return Ok(());
    }
    write_snapshots(snapshots, Shown::Chains, sigmas, config, scale, out)?;
    if snapshots.iter().any(|s| s.denoised.is_some()) {
        write_snapshots(snapshots, Shown::Estimates, sigmas, config, scale, out)?;
    }
    Ok(())
}

/// `snapshots/step-<k>.png` (every chain), `chain.png` (rows = snapshots, the first
/// [`CHAIN_COLUMNS`] chains) and `chain.gif` (the first [`GIF_IMAGES`] chains); the same of the
/// estimates, named by [`Shown::names`], for [`Shown::Estimates`].
fn write_snapshots(
    snapshots: &[Snapshot<Tensor>],
    shown: Shown,
    sigmas: &[f64],
    config: &SampleConfig,
    scale: u32,
    out: &Path,
) -> Result<()> {
    let (folder, stem) = shown.names();
    let dir = out.join(folder);
    let what = match shown {
        Shown::Chains => "Annealed Langevin",
        Shown::Estimates => "Tweedie's estimate x + σ² s(x, σ) along annealed Langevin",
    };
    let mut overview = Figure {
        title: format!(
            "{what}: {} levels, {}, rows every {} steps",
            sigmas.len(),
            config.steps_text(),
            config.snapshot_every.unwrap_or(0)
        ),
        ..Figure::default()
    };
    let mut frames = Vec::with_capacity(snapshots.len());
    let total = config.annealed(sigmas).total_steps();
    for s in snapshots {
        let label = snapshot_label(s, sigmas, config);
        let x = shown.images(s);
        save_png(&grid(x, scale)?, &dir.join(format!("step-{:06}.png", s.step)))?;
        let n = x.dim(0)?;
        let first = to_rgb_images(&x.narrow(0, 0, n.min(CHAIN_COLUMNS))?, scale)?;
        overview.row_labels.push(label.clone());
        overview.rows.push(first);
        let tiles = to_rgb_images(&x.narrow(0, 0, n.min(GIF_IMAGES))?, scale)?;
        let columns = (tiles.len() as f64).sqrt().ceil() as usize;
        let frame = Figure {
            title: if s.step >= total {
                label
            } else {
                format!("step {}/{total}, σ{} = {:.4}", s.step, subscript(s.level + 1), s.sigma)
            },
            rows: tiles.chunks(columns).map(<[RgbImage]>::to_vec).collect(),
            ..Figure::default()
        };
        frames.push(frame.render()?);
    }
    save_png(&overview.render()?, &out.join(format!("{stem}.png")))?;
    // Frames of one size: the title may widen a frame, so pad all to the largest.
    let (w, h) = frames
        .iter()
        .fold((0, 0), |(w, h), f| (w.max(f.width()), h.max(f.height())));
    let frames: Vec<RgbImage> = frames
        .into_iter()
        .map(|f| {
            let mut canvas = RgbImage::from_pixel(w, h, crate::sampling::images::BACKGROUND);
            image::imageops::replace(&mut canvas, &f, 0, 0);
            canvas
        })
        .collect();
    save_gif(&frames, 250, 2000, &out.join(format!("{stem}.gif")))
}

/// `ncsn inpaint`: writes `inpainting.png` (rows = images; columns = masked input, the
/// completions, the original) and `inpainting.safetensors` (`observed`, `mask`, `completions`).
pub fn run_inpaint(args: &InpaintArgs) -> Result<()> {
    if args.image.is_empty() && args.dataset.is_none() {
        return Err(Error::config(
            "image",
            "nothing to inpaint: give --image FILE (repeatable) or --dataset PATH",
        ));
    }
    // --n counts images of --dataset only.
    let n = if args.dataset.is_some() { args.n } else { 1 };
    for (key, value) in [("per_image", args.per_image), ("n", n)] {
        if value == 0 {
            return Err(Error::config(key, "expected at least 1, got 0"));
        }
    }
    let (loaded, device) = load(&args.model)?;
    let (net, weights) = loaded.score_net(args.model.no_ema)?;
    let ModelConfig {
        channels, image_size, ..
    } = *loaded.config();
    let mask_kind = MaskKind::parse(&args.mask);
    let mask = mask_kind.build(image_size, &device)?;
    let observed = match &args.dataset {
        Some(path) => {
            {
                // The images a run held out for testing, with its own fraction when it has one.
                let test_fraction = loaded
                    .run
                    .as_ref()
                    .map_or(crate::TrainConfig::mnist().test_fraction, |c| c.test_fraction);
                inpaint::load_dataset_images(path, args.n, channels, image_size, test_fraction, &device)?
            }
        }
        None => inpaint::load_image_files(&args.image, channels, image_size, &device)?,
    };
    let n_images = observed.dim(0)?;
    let config = args
        .chain
        .config(n_images.saturating_mul(args.per_image), loaded.run.as_ref())?;
    config.validate_for(&loaded.sigmas)?;
    check_sizes(
        loaded.config(),
        &config,
        args.chain.scale,
        (n_images, args.per_image + 2),
        "ncsn inpaint",
    )?;
    let out = out_dir(&args.model, &args.chain, "inpainting");
    prepare_output_dir(&out, "out")?;
    eprintln!(
        "ncsn inpaint: {n_images} image(s) x {} completions, mask {}, from {}",
        args.per_image,
        args.mask,
        describe(&loaded, weights, &args.model)
    );
    warn_unstable_step(&config, &loaded.sigmas, "ncsn inpaint");
    let started = Instant::now();
    let trajectory = inpaint::inpaint(
        &net,
        net.image_dims(),
        &observed,
        &mask,
        args.per_image,
        &config,
        &device,
        Progress::for_stderr(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let completions = &trajectory.samples;
    warn_out_of_range(completions, "completions")?;
    let figure = inpaint::figure(
        &observed,
        &mask,
        completions,
        args.per_image,
        args.chain.scale,
        format!("Inpainting ({}), {}", args.mask, config.steps_text()),
    )?;
    save_png(&figure.render()?, &out.join("inpainting.png"))?;
    save_tensors(
        &[("observed", &observed), ("mask", &mask), ("completions", completions)],
        &out.join("inpainting.safetensors"),
    )?;
    write_all_snapshots(&trajectory.snapshots, &loaded.sigmas, &config, args.chain.scale, &out)?;
    eprintln!("wrote {} in {seconds:.1} s", out.join("inpainting.png").display());
    Ok(())
}
