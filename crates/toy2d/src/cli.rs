//! The `toy2d` command line: one subcommand per experiment, `all` (the default) runs every one.
use crate::experiments::{Context, Experiment, Report, Table};
use crate::jobs::Slots;
use crate::output::OutDir;
use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

/// Toy experiments of "Generative Modeling by Estimating Gradients of the Data Distribution"
/// (Song & Ermon 2019): every figure of the book's toy chapters.
///
/// With no subcommand, runs them all into book/src/figures/.
#[derive(Debug, Parser)]
#[command(name = "toy2d", version)]
pub struct Cli {
    /// Seed of every random draw (data, initial particles, Langevin noise, network initialisation).
    #[arg(long, global = true, default_value_t = 0)]
    pub seed: u64,
    /// Output folder for figures and JSON [default: book/src/figures of the workspace].
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Training steps of every learned model (default: each experiment's own, e.g. 10,000 for score-field).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub steps: Option<u64>,
    /// Device the networks run on: `cpu`, `cuda` or `cuda:N` (a build with the `cuda` feature).
    #[arg(long, global = true, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
    /// Hide progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// CPU threads of candle's matrix products (sets RAYON_NUM_THREADS). The networks here are so
    /// small that a second thread costs more in synchronisation than it saves.
    #[arg(long, global = true, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,
    /// Experiments (and ncsn2d's data sets) computed at once [default: the number of cores]. The
    /// files are the same whatever the number; `--jobs 1` runs them one after the other.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// The experiment to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The experiments.
#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// The exact score field of the 0.2/0.8 mixture over its density, and its cut along the diagonal (Chapter 1).
    Scores,
    /// Gradient ascent on log p collapses onto the modes, Langevin dynamics spreads as p (Chapter 4).
    AscentVsLangevin,
    /// Exact vs. learned (sliced score matching) score over the 0.2/0.8 mixture and its squared error (Fig. 2).
    ScoreField,
    /// Mode weights of Langevin vs. annealed Langevin, exact and learned scores (Fig. 3).
    LangevinWeights,
    /// Score matching on data on a curve: unstable without noise, converges with a little noise (Fig. 1).
    Manifold,
    /// Noise-conditional DSM + annealed Langevin on mixture, ring, moons and spiral, with MMD/SW metrics.
    Ncsn2d,
    /// Animated GIF and per-level panels of particles under annealed Langevin over the score field.
    Trajectories,
    /// Every experiment above (the default).
    All,
}

/// The default output folder: `book/src/figures` of the workspace this crate lives in.
pub fn default_out() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../book/src/figures")
}

impl Command {
    /// The experiments this command runs.
    pub fn experiments(self) -> Vec<Experiment> {
        match self {
            Command::Scores => vec![Experiment::Scores],
            Command::AscentVsLangevin => vec![Experiment::AscentVsLangevin],
            Command::ScoreField => vec![Experiment::ScoreField],
            Command::LangevinWeights => vec![Experiment::LangevinWeights],
            Command::Manifold => vec![Experiment::Manifold],
            Command::Ncsn2d => vec![Experiment::Ncsn2d],
            Command::Trajectories => vec![Experiment::Trajectories],
            Command::All => Experiment::ALL.to_vec(),
        }
    }
}

/// Runs the parsed command line, printing each experiment's table.
pub fn run(cli: Cli) -> Result<()> {
    // candle's CPU matmul asks this variable for its thread count on every call (see `--threads`).
    // Set before any work starts, while this is the only thread.
    std::env::set_var("RAYON_NUM_THREADS", cli.threads.to_string());
    workbench::alloc::keep_freed_memory();
    let device = workbench::parse_device(&cli.device, "toy2d")?;
    let out = OutDir::create(cli.out.clone().unwrap_or_else(default_out))?;
    let steps = match cli.steps {
        Some(s) => Some(usize::try_from(s).context("--steps: expected a number of steps that fits in memory")?),
        None => None,
    };
    let jobs = match cli.jobs {
        Some(n) => Slots::new(usize::try_from(n).context("--jobs: too large")?),
        None => Slots::all_cores(),
    };
    let ctx = Context {
        out,
        seed: cli.seed,
        steps,
        device,
        progress: !cli.quiet,
        jobs: Arc::new(jobs),
    };
    let command = cli.command.unwrap_or(Command::All);
    println!("toy2d: writing to {} (seed {})", ctx.out.root().display(), ctx.seed);
    let experiments = command.experiments();
    // Every experiment on its own thread; each computes inside a slot of `ctx.jobs`. The tables
    // are printed in the order of the list, each as soon as it and those before it are done.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|scope| -> Result<()> {
        let start = std::time::Instant::now();
        // Started longest first, so that the longest parts are the first to queue for a slot.
        let mut order: Vec<usize> = (0..experiments.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(experiments[i].cost()));
        for i in order {
            let (ctx, done_tx, experiment) = (&ctx, done_tx.clone(), experiments[i]);
            scope.spawn(move || {
                let table = run_experiment(experiment, ctx);
                // The receiver lives until every experiment has reported.
                let _ = done_tx.send((i, table, start.elapsed().as_secs_f64()));
            });
        }
        drop(done_tx);
        let mut finished: Vec<Option<(Result<Table>, f64)>> = experiments.iter().map(|_| None).collect();
        let mut next = 0;
        let mut first_error = None;
        for (i, table, secs) in done_rx {
            finished[i] = Some((table, secs));
            while let Some(Some((table, secs))) = finished.get_mut(next).map(Option::take) {
                let name = experiments[next].name();
                match table {
                    Ok(table) => crate::jobs::progress().suspend(|| {
                        print!("{table}");
                        println!("  ({name}: done {secs:.1} s after the start)");
                    }),
                    Err(e) => {
                        first_error.get_or_insert_with(|| e.context(format!("experiment `{name}` failed")));
                    }
                }
                next += 1;
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// One experiment: its report computed, written (JSON, CSV) and drawn into `ctx.out`, inside a
/// slot of `ctx.jobs` (`ncsn2d` computes each data set in a slot of its own, `manifold` each
/// training run, then they write and draw outside). Returns the table to print, with the files written.
pub fn run_experiment(experiment: Experiment, ctx: &Context) -> Result<Table> {
    let run = || -> Result<Table> {
        let report = experiment.compute(ctx)?;
        let mut files = crate::figures::draw(&report, ctx)?;
        files.extend(write_numbers(&report, ctx)?);
        let mut table = report.table();
        table.files = files;
        Ok(table)
    };
    match experiment {
        Experiment::Ncsn2d | Experiment::Manifold => run(),
        _ => ctx.jobs.run(experiment.cost(), run),
    }
}

/// Writes the numbers of `report` (its JSON, and `score_field_loss.csv`); returns the file names.
pub fn write_numbers(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    fn json<T: serde::Serialize>(ctx: &Context, name: &str, report: &T) -> Result<Vec<String>> {
        ctx.out.write_json(name, report)?;
        Ok(vec![name.to_string()])
    }
    match report {
        Report::ScoreField(r) => {
            let rows: Vec<Vec<f64>> = r
                .loss_history
                .iter()
                .enumerate()
                .map(|(i, l)| vec![i as f64, *l])
                .collect();
            ctx.out.write_csv("score_field_loss.csv", "step,loss", &rows)?;
            let mut files = vec!["score_field_loss.csv".to_string()];
            files.extend(json(ctx, "score_field.json", r)?);
            Ok(files)
        }
        Report::Scores(r) => json(ctx, "scores.json", r),
        Report::AscentVsLangevin(r) => json(ctx, "ascent_vs_langevin.json", r),
        Report::LangevinWeights(r) => json(ctx, "langevin_weights.json", r),
        Report::Manifold(r) => json(ctx, "manifold.json", r),
        Report::Ncsn2d(r) => json(ctx, "ncsn2d.json", r),
        Report::Trajectories(r) => json(ctx, "trajectories.json", r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_means_all_and_options_go_anywhere() {
        let cli = Cli::try_parse_from(["toy2d"]).unwrap();
        assert_eq!(cli.command, None);
        let cli = Cli::try_parse_from(["toy2d", "manifold", "--seed", "3", "--steps", "5"]).unwrap();
        assert_eq!(
            (cli.command, cli.seed, cli.steps),
            (Some(Command::Manifold), 3, Some(5))
        );
        assert!(Cli::try_parse_from(["toy2d", "--steps", "0"]).is_err());
    }

    #[test]
    fn a_wrong_device_is_a_clear_error_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cli = Cli::try_parse_from(["toy2d", "--device", "tpu", "--out", out.to_str().unwrap()]).unwrap();
        let e = run(cli).unwrap_err().to_string();
        assert!(e.contains("expected `cpu`, `cuda` or `cuda:N`"), "{e}");
        if !cfg!(feature = "cuda") {
            let cli = Cli::try_parse_from(["toy2d", "--device", "cuda", "--out", out.to_str().unwrap()]).unwrap();
            let e = run(cli).unwrap_err().to_string();
            assert!(e.contains("--features cuda") && e.contains("-p toy2d"), "{e}");
        }
        assert!(!out.exists(), "nothing written before the device is known");
    }
}
