//! `ncsn train`: a new run, or the continuation of one (`--resume`).
use std::path::PathBuf;

use clap::Args;

use crate::config::{Overrides, TrainConfig};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::training::{log::Split, train_new, train_resume, RunOptions};

/// `ncsn train`.
#[derive(Args)]
pub struct TrainArgs {
    /// TOML file of settings (the keys are the flags below with `_` for `-`); flags override it
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this folder (or of this checkpoint.json); only --steps, --snapshot-every, --keep-every,
    /// --log-every, --test-every, the sampler (--sample-*) and --fid-every, --fid-samples may change
    #[arg(long)]
    resume: Option<PathBuf>,
    /// cpu, cuda or cuda:N (cuda needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run folder [default: runs/NAME, NAME the config's name]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// `ncsn train`: trains, then prints a summary line.
pub fn run_train(args: TrainArgs) -> Result<()> {
    let device = workbench::parse_device(&args.device, "ncsn")?;
    let file = match &args.config {
        Some(path) => Overrides::from_toml_file(path)?,
        None => Overrides::default(),
    };
    let progress = Progress::for_stderr();
    let summary = match &args.resume {
        Some(_) if args.out.is_some() => {
            return Err(Error::config(
                "out",
                "--out cannot be combined with --resume: a resumed run continues in its own folder",
            ))
        }
        Some(path) => train_resume(path, &file, &args.overrides, &device, progress)?,
        None => {
            let config = TrainConfig::resolve(&file, &args.overrides)?;
            let out_dir = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
            train_new(config, &device, &RunOptions { out_dir, progress })?
        }
    };
    let last = |split| summary.rows.iter().rev().find(|r| r.split == split).map(|r| r.loss);
    eprintln!(
        "done: steps {} -> {} in {:.1} s; last train loss {}, last test loss {}; checkpoint {}",
        summary.start_step,
        summary.end_step,
        summary.seconds,
        last(Split::Train).map_or("-".into(), |l| format!("{l:.5}")),
        last(Split::Test).map_or("-".into(), |l| format!("{l:.5}")),
        summary.checkpoint.display()
    );
    Ok(())
}
