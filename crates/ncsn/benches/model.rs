//! Speed of the score network on this machine: `cargo bench -p ncsn --bench model`.
//!
//! Environment variables (defaults: the paper's CIFAR-10 setting): `NCSN_BENCH_NGF` (128),
//! `NCSN_BENCH_BATCH` (128), `NCSN_BENCH_STEPS` (2 timed training steps and forward passes),
//! `NCSN_BENCH_CHANNELS` (3), `NCSN_BENCH_SIZE` (32), `NCSN_BENCH_WARMUP` (1 untimed pass of each).
use ncsn::model::bench::{run_bench, BenchOptions};

fn env_usize(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}: expected a positive integer, got {v:?}")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this without it: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let mut opts = BenchOptions::cifar10();
    opts.config.ngf = env_usize("NCSN_BENCH_NGF", opts.config.ngf)?;
    opts.config.channels = env_usize("NCSN_BENCH_CHANNELS", opts.config.channels)?;
    opts.config.image_size = env_usize("NCSN_BENCH_SIZE", opts.config.image_size)?;
    opts.batch = env_usize("NCSN_BENCH_BATCH", opts.batch)?;
    opts.train_steps = env_usize("NCSN_BENCH_STEPS", opts.train_steps)?;
    opts.sample_evals = opts.train_steps;
    opts.warmup = env_usize("NCSN_BENCH_WARMUP", opts.warmup)?;
    let report = run_bench(&opts, &candle_core::Device::Cpu)?;
    println!("{report}");
    Ok(())
}
