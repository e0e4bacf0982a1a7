//! `ncsn bench`: the training step and the sampling step as `ncsn train` and `ncsn sample` run
//! them, timed ([`crate::bench`]).
use std::path::PathBuf;

use clap::Args;

use crate::bench::{run_bench, BenchOptions};
use crate::config::{Overrides, TrainConfig};
use crate::error::{Error, Result};

/// `ncsn bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Time the training step of this run config (TOML, as `ncsn train --config`); the flags
    /// below override it. Default: the paper's CIFAR-10 run
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Network width (the paper's CIFAR-10 model: 128)
    #[arg(long)]
    pub ngf: Option<usize>,
    /// Image channels (CIFAR-10: 3)
    #[arg(long)]
    pub channels: Option<usize>,
    /// Image height = width (CIFAR-10: 32)
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Noise levels L (the paper: 10)
    #[arg(long)]
    pub num_levels: Option<usize>,
    /// Images per batch (the paper: 128)
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed training steps (0: skip training)
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Timed sampling steps on a batch (0: skip sampling)
    #[arg(long, default_value_t = 2)]
    pub evals: usize,
    /// Untimed passes before each measurement
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Seed of the weights and inputs (default: the config's)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one line of JSON instead of the table (for scripts/bench_torch.py)
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl BenchArgs {
    /// The training run to time: the config file (or CIFAR-10's defaults), then the flags.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let file = match &self.config {
            Some(path) => Overrides::from_toml_file(path)?,
            // The CIFAR-10 run's settings without its fixed image shape: an image-folder run
            // (the bench trains on stand-in images of any shape; the folder is never read).
            None => Overrides {
                dataset: Some(crate::config::DatasetKind::Images),
                data: Some(PathBuf::from(".")),
                ..Default::default()
            },
        };
        let flags = Overrides {
            ngf: self.ngf,
            channels: self.channels,
            image_size: self.image_size,
            num_levels: self.num_levels,
            batch_size: self.batch,
            seed: self.seed,
            ..Default::default()
        };
        TrainConfig::resolve(&file, &flags)
    }

    /// Checks the counts and what a training step of this size needs
    /// ([`crate::limits::training_needs`], as `train` checks it); the network itself was checked
    /// when the config was resolved, as `train` checks it.
    pub fn validate(&self, config: &TrainConfig) -> Result<()> {
        if self.steps == 0 && self.evals == 0 {
            return Err(Error::config(
                "steps",
                "`--steps` and `--evals` are both 0: nothing to measure (0 skips one of the two)",
            ));
        }
        crate::limits::check(
            "ncsn bench",
            &crate::limits::training_needs(&config.model_config(), config.batch_size, "batch", config.ema),
        )
    }
}

/// Peak resident memory of this process in bytes (`VmHWM` of `/proc/self/status`; Linux only).
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `ncsn bench`: the training step and the sampling step as `ncsn train` and `ncsn sample` run
/// them, the per-layer profile and the peak memory.
pub fn run_bench_command(args: &BenchArgs) -> Result<()> {
    let device = workbench::parse_device(&args.device, "ncsn")?;
    let train = args.train_config()?;
    args.validate(&train)?;
    let options = BenchOptions {
        train,
        train_steps: args.steps,
        sample_evals: args.evals,
        warmup: args.warmup,
    };
    let report = run_bench(&options, &device)?;
    let peak = peak_resident_bytes();
    if args.json {
        println!("{}", report.to_json(peak));
        return Ok(());
    }
    print!("{report}");
    match peak {
        Some(b) => println!(
            "peak resident memory (VmHWM): {:.0} MiB{}",
            b as f64 / (1024.0 * 1024.0),
            if device.is_cpu() {
                ""
            } else {
                " of host memory; GPU memory is not reported by candle (watch nvidia-smi)"
            }
        ),
        None => println!("peak resident memory: not available on this system (no /proc/self/status)"),
    }
    Ok(())
}
