//! `ncsn`: train the NCSN score network on images, sample and inpaint with it, measure its speed.
//!
//! ```text
//! cargo run --release -p ncsn -- train                         # the shipped MNIST digits
//! cargo run --release -p ncsn -- train --data data/cifar-10-batches-bin
//! cargo run --release -p ncsn -- train --config configs/cifar10.toml --device cuda
//! cargo run --release -p ncsn -- train --resume runs/cifar10
//! cargo run --release -p ncsn -- sample --checkpoint runs/mnist --n 64 --snapshots 100
//! cargo run --release -p ncsn -- inpaint --checkpoint runs/mnist --dataset data/mnist-5k-images-idx3-ubyte.gz
//! cargo run --release -p ncsn -- bench --ngf 128 --batch 16
//! ```
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ncsn::{train_new, train_resume, Overrides, Progress, RunOptions, TrainConfig};

#[derive(Parser)]
#[command(
    name = "ncsn",
    version,
    about = "Noise-conditional score networks (Song & Ermon 2019) on images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One value, parsed once at start-up: its size does not matter. Negative numbers are values
// (`--steps -1`), so that the error is the flag's own ("invalid value '-1' for '--steps'", or
// the validation's message naming the key) rather than "unexpected argument '-1'".
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train the score network with denoising score matching (defaults: the paper's CIFAR-10
    /// setup, or the reference's MNIST setup; with no --data, the 5,000 MNIST digits in data/)
    #[command(allow_negative_numbers = true)]
    Train(TrainArgs),
    /// Draw images with annealed Langevin dynamics from a trained model (or a converted
    /// reference checkpoint): a PNG grid, and with --snapshots K the chain every K steps and a GIF
    #[command(allow_negative_numbers = true)]
    Sample(ncsn::commands::SampleArgs),
    /// Fill in the unobserved pixels of images (the paper's inpainting): observed pixels are held
    /// at the data perturbed to each level's sigma, the rest follows annealed Langevin
    #[command(allow_negative_numbers = true)]
    Inpaint(ncsn::commands::InpaintArgs),
    /// Measure training images/s, sampling network evaluations/s, peak memory, and the forward
    /// time per kind of layer
    #[command(allow_negative_numbers = true)]
    Bench(ncsn::commands::BenchArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// TOML file of settings (the keys are the flags below with `_` for `-`); flags override it
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this folder (or of this checkpoint.json); only --steps, --snapshot-every,
    /// --log-every, --test-every may change
    #[arg(long)]
    resume: Option<PathBuf>,
    /// cpu, cuda or cuda:N (cuda needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run folder [default: runs/<name>]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

fn train(args: TrainArgs) -> ncsn::Result<()> {
    let device = workbench::parse_device(&args.device, "ncsn")?;
    let file = match &args.config {
        Some(path) => Overrides::from_toml_file(path)?,
        None => Overrides::default(),
    };
    let progress = if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    };
    let summary = match &args.resume {
        Some(_) if args.out.is_some() => {
            return Err(ncsn::Error::config(
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
        last(ncsn::log::Split::Train).map_or("-".into(), |l| format!("{l:.5}")),
        last(ncsn::log::Split::Test).map_or("-".into(), |l| format!("{l:.5}")),
        summary.checkpoint.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    workbench::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Sample(args) => ncsn::commands::run_sample(&args),
        Command::Inpaint(args) => ncsn::commands::run_inpaint(&args),
        Command::Bench(args) => ncsn::commands::run_bench_command(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
