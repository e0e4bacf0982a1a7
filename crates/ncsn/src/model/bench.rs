//! Speed of the score network: training images/s, sampling evaluations/s, and where a pass spends
//! its time.
//!
//! ```no_run
//! use ncsn::model::bench::{run_bench, BenchOptions};
//! let report = run_bench(&BenchOptions::cifar10(), &candle_core::Device::Cpu)?;
//! println!("{report}");
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! `cargo bench -p ncsn --bench model` runs it (options from environment variables, see
//! `benches/model.rs`).
use std::fmt;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::profile::{start_profile, take_profile, LayerKind};
use super::{seeded_init, CondRefineNetDilated, ModelConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The network (the paper's CIFAR-10 model by default).
    pub config: ModelConfig,
    /// Images per batch (128 in the paper).
    pub batch: usize,
    /// Timed training steps (forward, loss, backward, Adam step), after `warmup` untimed ones.
    pub train_steps: usize,
    /// Timed sampling evaluations (one forward pass on a batch each), after `warmup` untimed ones.
    pub sample_evals: usize,
    /// Untimed passes before each measurement.
    pub warmup: usize,
    /// Seed of the weights, images, noise and levels.
    pub seed: u64,
}

impl BenchOptions {
    /// The paper's setting: CIFAR-10 model, batch 128, 2 timed steps of each kind.
    pub fn cifar10() -> Self {
        Self {
            config: ModelConfig::cifar10(),
            batch: 128,
            train_steps: 2,
            sample_evals: 2,
            warmup: 1,
            seed: 0,
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

/// The figures [`run_bench`] measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was run.
    pub options: BenchOptions,
    /// The device, in words.
    pub device: String,
    /// Trainable scalars of the network.
    pub parameters: usize,
    /// Mean seconds of one training step (forward + loss + backward + Adam).
    pub train_step_s: f64,
    /// Fastest timed training step, seconds (less disturbed by other work on the machine).
    pub train_step_best_s: f64,
    /// `batch / train_step_s`.
    pub train_images_per_s: f64,
    /// Mean seconds of one forward pass on a batch (one sampling step of annealed Langevin).
    pub sample_forward_s: f64,
    /// Fastest timed forward pass, seconds.
    pub sample_forward_best_s: f64,
    /// Network evaluations per second, counting each image of a batch: `batch / sample_forward_s`.
    pub sample_evals_per_s: f64,
    /// One profiled training step: forward (with loss), backward, Adam update, in seconds.
    pub profiled_forward_s: f64,
    /// See `profiled_forward_s`.
    pub profiled_backward_s: f64,
    /// See `profiled_forward_s`.
    pub profiled_optimizer_s: f64,
    /// Forward time per module kind in that step.
    pub forward_by_kind: Vec<KindTime>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "CondRefineNetDilated ngf={} channels={} {}x{} L={} ({} parameters), batch {}, {}",
            o.config.ngf,
            o.config.channels,
            o.config.image_size,
            o.config.image_size,
            o.config.num_classes,
            self.parameters,
            o.batch,
            self.device
        )?;
        writeln!(
            f,
            "training: {:.3} s/step (best {:.3}), {:.2} images/s (forward + loss + backward + Adam, mean of {})",
            self.train_step_s, self.train_step_best_s, self.train_images_per_s, o.train_steps
        )?;
        writeln!(
            f,
            "sampling: {:.3} s/forward (best {:.3}), {:.2} network evaluations/s (images; mean of {})",
            self.sample_forward_s, self.sample_forward_best_s, self.sample_evals_per_s, o.sample_evals
        )?;
        writeln!(
            f,
            "one training step: forward {:.3} s, backward {:.3} s, Adam {:.3} s",
            self.profiled_forward_s, self.profiled_backward_s, self.profiled_optimizer_s
        )?;
        writeln!(f, "forward by module kind:")?;
        for k in &self.forward_by_kind {
            let share = 100.0 * k.seconds / self.profiled_forward_s.max(1e-12);
            writeln!(
                f,
                "  {:<7} {:>8.4} s {:>5.1}%  ({} calls)",
                k.kind.name(),
                k.seconds,
                share,
                k.calls
            )?;
        }
        Ok(())
    }
}

/// Mean and minimum of `n` timed calls of `f`, in seconds.
fn time_calls(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    Ok((mean, times.iter().copied().fold(f64::INFINITY, f64::min)))
}

/// Builds the network with seeded weights and measures training and sampling speed on `device`.
pub fn run_bench(opts: &BenchOptions, device: &Device) -> Result<BenchReport> {
    if opts.batch == 0 {
        candle_core::bail!("bench option `batch`: expected at least 1, got 0")
    }
    let cfg = &opts.config;
    let varmap = VarMap::new();
    let model = CondRefineNetDilated::new(cfg, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    seeded_init(&varmap, opts.seed)?;
    // Adam as in the paper (lr 1e-3, no weight decay): AdamW with weight_decay 0 is Adam.
    let params = ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut adam = AdamW::new(varmap.all_vars(), params)?;

    let sigmas =
        langevin::geometric_sigmas(1.0, 0.01, cfg.num_classes).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let sigmas = score_matching::sigmas_tensor(&sigmas, device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let shape = [opts.batch, cfg.channels, cfg.image_size, cfg.image_size];
    let pixels: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random::<f32>()).collect();
    let x = Tensor::from_vec(pixels, &shape[..], device)?; // stand-in images, uniform in [0, 1)

    // One training step, split into its phases.
    let mut train_step = |rng: &mut ChaCha8Rng| -> Result<[Duration; 3]> {
        let noise = langevin::randn_tensor(rng, &shape, DType::F32, device)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let levels = score_matching::draw_levels(rng, opts.batch, cfg.num_classes, device)?;
        let t0 = Instant::now();
        let loss = score_matching::anneal_dsm_loss(|xt, l| model.forward(xt, l), &x, &noise, &levels, &sigmas)?;
        loss.to_scalar::<f32>()?; // waits for the device
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        adam.step(&grads)?;
        device.synchronize()?;
        Ok([t1 - t0, t2 - t1, t2.elapsed()])
    };

    for _ in 0..opts.warmup {
        train_step(&mut rng)?;
    }
    let (train_step_s, train_step_best_s) = time_calls(opts.train_steps, || train_step(&mut rng).map(|_| ()))?;

    start_profile();
    let phases = train_step(&mut rng);
    let profile = take_profile().unwrap_or_default();
    let [fwd, bwd, opt] = phases?;

    let levels = score_matching::draw_levels(&mut rng, opts.batch, cfg.num_classes, device)?;
    let sample = || -> Result<()> {
        model.forward(&x, &levels)?.sum_all()?.to_scalar::<f32>()?; // waits for the device
        Ok(())
    };
    for _ in 0..opts.warmup {
        sample()?;
    }
    let (sample_forward_s, sample_forward_best_s) = time_calls(opts.sample_evals, sample)?;

    Ok(BenchReport {
        options: opts.clone(),
        device: if device.is_cpu() {
            format!("CPU, {} threads", candle_core::utils::get_num_threads())
        } else {
            format!("{device:?}")
        },
        parameters: cfg.num_parameters(),
        train_step_s,
        train_step_best_s,
        train_images_per_s: opts.batch as f64 / train_step_s,
        sample_forward_s,
        sample_forward_best_s,
        sample_evals_per_s: opts.batch as f64 / sample_forward_s,
        profiled_forward_s: fwd.as_secs_f64(),
        profiled_backward_s: bwd.as_secs_f64(),
        profiled_optimizer_s: opt.as_secs_f64(),
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
