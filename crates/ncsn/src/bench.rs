//! Speed of the score network as `ncsn train` and `ncsn sample` run it: the seconds of one
//! training step ([`Trainer::train_step`]: batch, levels and noise drawn, forward, loss,
//! backward, Adam, EMA), the seconds of one sampling step (one annealed Langevin update of a
//! batch, `langevin::annealed_langevin` with the network as [`ScoreNet`]), where a forward pass
//! spends its time, and the peak memory.
//!
//! ```no_run
//! use ncsn::bench::{run_bench, BenchOptions};
//! let report = run_bench(&BenchOptions::cifar10(16), &candle_core::Device::Cpu)?;
//! println!("{report}");
//! # Ok::<(), ncsn::Error>(())
//! ```
//!
//! `ncsn bench` runs it; `scripts/bench_torch.py` runs it side by side with PyTorch.
use std::fmt;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::TrainConfig;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::model::profile::{start_profile, take_profile, LayerKind};
use crate::model::{frozen_model, ScoreNet};
use crate::sampling::{uniform_noise, SampleConfig};
use crate::training::{StepPhases, Trainer};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The training run whose step is timed: the network, batch size, noise levels, Adam and EMA
    /// settings and the seed (its data fields are not read: stand-in images are used).
    pub train: TrainConfig,
    /// Timed training steps, after `warmup` untimed ones (0: none).
    pub train_steps: usize,
    /// Timed sampling steps on a batch of `train.batch_size` chains, after `warmup` untimed
    /// ones (0: none).
    pub sample_evals: usize,
    /// Untimed passes before each measurement.
    pub warmup: usize,
}

impl BenchOptions {
    /// The paper's CIFAR-10 run (ngf 128, L = 10, Adam lr 1e-3) at the given batch size, 2
    /// timed steps of each kind after one warm-up.
    pub fn cifar10(batch: usize) -> Self {
        Self {
            train: TrainConfig {
                batch_size: batch,
                ..TrainConfig::cifar10()
            },
            train_steps: 2,
            sample_evals: 2,
            warmup: 1,
        }
    }
}

/// Time and number of calls of one kind of module in one profiled forward pass.
#[derive(Debug, Clone)]
pub struct KindTime {
    /// Module kind.
    pub kind: LayerKind,
    /// Seconds spent in it.
    pub seconds: f64,
    /// Number of calls.
    pub calls: usize,
}

/// Summary of timed repetitions, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Number of timed repetitions (0: not measured).
    pub count: usize,
    /// Median.
    pub median: f64,
    /// Mean.
    pub mean: f64,
    /// Fastest (least disturbed by other work on the machine).
    pub best: f64,
}

impl Timing {
    fn of(mut seconds: Vec<f64>) -> Self {
        if seconds.is_empty() {
            return Self::default();
        }
        seconds.sort_by(f64::total_cmp);
        Self {
            count: seconds.len(),
            median: seconds[seconds.len() / 2],
            mean: seconds.iter().sum::<f64>() / seconds.len() as f64,
            best: seconds[0],
        }
    }
}

/// The figures [`run_bench`] measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was run.
    pub options: BenchOptions,
    /// The device, in words.
    pub device: String,
    /// Trainable scalars of the network.
    pub parameters: usize,
    /// One training step.
    pub train_step: Timing,
    /// One sampling step of a batch (one network evaluation per chain).
    pub sample_step: Timing,
    /// The phases of one profiled training step.
    pub phases: StepPhases,
    /// Forward time per module kind in that step.
    pub forward_by_kind: Vec<KindTime>,
}

impl BenchReport {
    /// Training images per second (`batch / median step`).
    pub fn train_images_per_s(&self) -> f64 {
        self.options.train.batch_size as f64 / self.train_step.median
    }

    /// Network evaluations per second while sampling, counting each chain (`batch / median`).
    pub fn sample_evals_per_s(&self) -> f64 {
        self.options.train.batch_size as f64 / self.sample_step.median
    }

    /// The report as one line of JSON (what `ncsn bench --json` prints), with `peak` the peak
    /// resident memory of the process in bytes, if known.
    pub fn to_json(&self, peak: Option<u64>) -> String {
        let c = &self.options.train;
        let kinds: Vec<serde_json::Value> = self
            .forward_by_kind
            .iter()
            .map(|k| serde_json::json!({"kind": k.kind.name(), "seconds": k.seconds, "calls": k.calls}))
            .collect();
        serde_json::json!({
            "ngf": c.ngf, "channels": c.channels, "image_size": c.image_size, "num_levels": c.num_levels,
            "batch": c.batch_size, "device": self.device, "parameters": self.parameters,
            "train_steps": self.train_step.count,
            "train_step_median_s": self.train_step.median, "train_step_best_s": self.train_step.best,
            "sample_steps": self.sample_step.count,
            "sample_forward_median_s": self.sample_step.median, "sample_forward_best_s": self.sample_step.best,
            "phase_data_s": self.phases.data.as_secs_f64(), "phase_forward_s": self.phases.forward.as_secs_f64(),
            "phase_backward_s": self.phases.backward.as_secs_f64(), "phase_update_s": self.phases.update.as_secs_f64(),
            "forward_by_kind": kinds,
            "peak_resident_bytes": peak,
        })
        .to_string()
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.options.train;
        writeln!(
            f,
            "CondRefineNetDilated ngf={} channels={} {}x{} L={} ({} parameters), batch {}, {}",
            c.ngf, c.channels, c.image_size, c.image_size, c.num_levels, self.parameters, c.batch_size, self.device
        )?;
        if self.train_step.count > 0 {
            writeln!(
                f,
                "training: {:.3} s/step (median of {}; best {:.3}), {:.2} images/s (the step of `ncsn train`: data, forward, loss, backward, Adam{})",
                self.train_step.median,
                self.train_step.count,
                self.train_step.best,
                self.train_images_per_s(),
                if c.ema { ", EMA" } else { "" }
            )?;
            let p = &self.phases;
            writeln!(
                f,
                "one training step: data {:.3} s, forward + loss {:.3} s, backward {:.3} s, update {:.3} s",
                p.data.as_secs_f64(),
                p.forward.as_secs_f64(),
                p.backward.as_secs_f64(),
                p.update.as_secs_f64()
            )?;
            writeln!(f, "forward by module kind:")?;
            for k in &self.forward_by_kind {
                let share = 100.0 * k.seconds / p.forward.as_secs_f64().max(1e-12);
                writeln!(
                    f,
                    "  {:<7} {:>8.4} s {:>5.1}%  ({} calls)",
                    k.kind.name(),
                    k.seconds,
                    share,
                    k.calls
                )?;
            }
        }
        if self.sample_step.count > 0 {
            writeln!(
                f,
                "sampling: {:.3} s/step (median of {}; best {:.3}), {:.2} network evaluations/s (one Langevin update of {} chains)",
                self.sample_step.median,
                self.sample_step.count,
                self.sample_step.best,
                self.sample_evals_per_s(),
                c.batch_size
            )?;
        }
        Ok(())
    }
}

/// Stand-in training images: `n` images of uniform random bytes in the shape `config` trains on.
fn stand_in_images(config: &TrainConfig, n: usize) -> Result<ImageSet> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (c, s) = (config.channels, config.image_size);
    let pixels: Vec<u8> = (0..n * c * s * s).map(|_| rng.random::<u8>()).collect();
    ImageSet::new(pixels, c, s, s).ok_or_else(|| Error::config("image_size", "the stand-in images have no pixels"))
}

/// Builds a trainer with seeded weights on stand-in images and measures its training and
/// sampling steps on `device`.
pub fn run_bench(opts: &BenchOptions, device: &Device) -> Result<BenchReport> {
    let config = &opts.train;
    let batch = config.batch_size;
    // Two batches of images, so the timed steps include an epoch's reshuffle as training does.
    let images = stand_in_images(config, 2 * batch.max(1))?;
    let empty = images.select(&[]);
    let mut trainer = Trainer::with_data(config.clone(), images, empty, device)?;

    // Training: warm-up, timed steps, then one profiled step.
    let mut train_times = Vec::with_capacity(opts.train_steps);
    let mut phases = StepPhases::default();
    let mut profile = Default::default();
    if opts.train_steps > 0 {
        for _ in 0..opts.warmup {
            trainer.train_step()?;
        }
        for _ in 0..opts.train_steps {
            let start = Instant::now();
            trainer.train_step()?;
            train_times.push(start.elapsed().as_secs_f64());
        }
        start_profile();
        let step = trainer.train_step();
        profile = take_profile().unwrap_or_default();
        step?;
        phases = trainer.last_step_phases();
    }

    // Sampling: `n` annealed Langevin updates at the first noise level, the code path of
    // `ncsn sample` (one network evaluation per chain and step).
    let mut sample_times = Vec::with_capacity(opts.sample_evals);
    if opts.sample_evals > 0 {
        let m = trainer.model().config().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let x0 = uniform_noise(&mut rng, [batch, m.channels, m.image_size, m.image_size], device)?;
        let sigma = [trainer.sigmas()[0]];
        // as `ncsn sample` runs it: the weights as constants, no graph recorded
        let frozen = frozen_model(&m, trainer.varmap(), DType::F32, device)?;
        let net = ScoreNet::new(&frozen, trainer.sigmas())?.over_sigma(trainer.config().score_over_sigma);
        let run = |steps: usize, rng: &mut ChaCha8Rng| -> Result<()> {
            let chain = SampleConfig {
                steps_per_level: steps,
                ..SampleConfig::default()
            }
            .annealed(&sigma);
            let out = langevin::annealed_langevin(
                x0.clone(),
                |x: &Tensor, level, _sigma| langevin::NoiseConditionalScore::score(&net, x, level),
                &chain,
                rng,
            )?;
            out.samples.sum_all()?.to_scalar::<f32>()?; // waits for the device
            Ok(())
        };
        if opts.warmup > 0 {
            run(opts.warmup, &mut rng)?;
        }
        for _ in 0..opts.sample_evals {
            let start = Instant::now();
            run(1, &mut rng)?;
            sample_times.push(start.elapsed().as_secs_f64());
        }
    }

    Ok(BenchReport {
        options: opts.clone(),
        device: if device.is_cpu() {
            format!("CPU, {} threads", candle_core::utils::get_num_threads())
        } else {
            format!("{device:?}")
        },
        parameters: config.model_config().num_parameters(),
        train_step: Timing::of(train_times),
        sample_step: Timing::of(sample_times),
        phases,
        forward_by_kind: LayerKind::ALL
            .iter()
            .map(|&kind| {
                let (t, calls) = profile.get(&kind).copied().unwrap_or_default();
                KindTime {
                    kind,
                    seconds: t.as_secs_f64(),
                    calls,
                }
            })
            .collect(),
    })
}
