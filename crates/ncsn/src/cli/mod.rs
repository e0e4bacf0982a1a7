//! The command line of the `ncsn` binary: one module per kind of subcommand, each parsing its
//! flags and writing its files; the work itself is done by the library (training, sampling,
//! inpainting, [`crate::bench`]).
//!
//! - [`train`]: `ncsn train` (a new run, or `--resume`);
//! - [`chains`]: `ncsn sample` and `ncsn inpaint`;
//! - [`bench`](mod@bench): `ncsn bench`;
//! - [`check_device`]: `ncsn check-device`;
//! - [`fid`]: `ncsn fid`.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod chains;
pub mod check_device;
pub mod fid;
pub mod train;

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
    Train(train::TrainArgs),
    /// Draw images with annealed Langevin dynamics from a trained model (or a converted
    /// reference checkpoint): a PNG grid, and with --snapshots K the chain every K steps and a GIF
    #[command(allow_negative_numbers = true)]
    Sample(chains::SampleArgs),
    /// Fill in the unobserved pixels of images (the paper's inpainting): observed pixels are held
    /// at the data perturbed to each level's sigma, the rest follows annealed Langevin
    #[command(allow_negative_numbers = true)]
    Inpaint(chains::InpaintArgs),
    /// Measure training images/s, sampling network evaluations/s, peak memory, and the forward
    /// time per kind of layer
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
    /// Check a device (a GPU) against the CPU and PyTorch on the committed reference fixture:
    /// forward pass, DSM loss and gradients, each with its tolerance; non-zero exit on a failure
    CheckDevice(check_device::CheckDeviceArgs),
    /// Measure sample quality: the FID between two sets of images (samples, MNIST, CIFAR-10, an
    /// image folder, or saved statistics) with the MNIST classifier (--mnist) or Inception-v3
    /// (--inception FILE), and each set's class histogram or Inception score
    Fid(fid::FidArgs),
}

/// Parses the command line and runs the subcommand; an error is printed on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run_train(args),
        Command::Sample(args) => chains::run_sample(&args),
        Command::Inpaint(args) => chains::run_inpaint(&args),
        Command::Bench(args) => bench::run_bench_command(&args),
        Command::CheckDevice(args) => check_device::run_check_device(&args),
        Command::Fid(args) => fid::run_fid(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
