//! The paper's toy experiments. Each one computes a report (the numbers its JSON holds, plus
//! what its figures draw); [`crate::figures`] draws the figures from the report and the command
//! line ([`crate::cli`]) writes the JSON and prints the report's [`Table`].
//!
//! | experiment | what it shows | files |
//! |---|---|---|
//! | [`scores`] | the exact score field of the 0.2/0.8 mixture, and its cut along the diagonal (Chapter 1) | `scores.{png,json}` |
//! | [`ascent_vs_langevin`] | gradient ascent collapses onto the modes, Langevin dynamics spreads as `p` (Chapter 4) | `ascent_vs_langevin.{png,json}` |
//! | [`score_field`] | a learned score is good near the modes, bad where data are rare (Fig. 2) | `score_field.{png,json}`, `score_error.png`, `score_field_loss.csv` |
//! | [`langevin_weights`] | Langevin gets mixture weights wrong, annealed Langevin gets them right (Fig. 3) | `langevin_weights*.png`, `langevin_weights.json` |
//! | [`manifold`] | score matching on data with no density fails; a little noise fixes it (Fig. 1) | `manifold_loss.{png,svg}`, `manifold.json` |
//! | [`ncsn2d`] | noise-conditional DSM + annealed Langevin on every toy data set | `ncsn2d_grid.png`, `ncsn2d_loss.{png,svg}`, `ncsn2d.json` |
//! | [`trajectories`] | particles moving under annealed Langevin over each level's score field | `trajectories.gif`, `trajectories_levels.png`, `trajectories.json` |
//!
//! Every random draw of an experiment comes from `ctx.rng(stream)` (or a training run's
//! [`TrainConfig`] with its own stream): one key, the command's `--seed`, and a stream per part.
//! The streams in use:
//!
//! | stream | part |
//! |---|---|
//! | 0 | training in `score-field` and `langevin-weights` |
//! | 10 | `score-field`: Monte Carlo error under p |
//! | 20, 21 | `langevin-weights`: exact, learned sampling |
//! | 1000 + k | `langevin-weights`: repetition k of the exact-score samplers |
//! | 30 + run | `manifold`: training run 0..4 |
//! | 40 + toy, 60 + toy, 70 + toy | `ncsn2d`: data and sampling, score errors, training of data set 0..4 |
//! | 1100 + toy | `ncsn2d`: the extra draws of samples and data for the MMDs' spread |
//! | 50 | `trajectories` |
//! | 80 | `ascent-vs-langevin` (`scores` draws nothing at random) |
pub mod ascent_vs_langevin;
pub mod langevin_weights;
pub mod manifold;
pub mod ncsn2d;
pub mod score_field;
pub mod scores;
pub mod trajectories;

use crate::jobs::Slots;
use crate::output::OutDir;
use crate::train::TrainConfig;
use candle_core::Device;
use indicatif::ProgressBar;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::sync::Arc;

/// What every experiment gets from the command line.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where figures and JSON files go.
    pub out: OutDir,
    /// The seed of every random draw.
    pub seed: u64,
    /// Training steps of every learned model, overriding each experiment's default.
    pub steps: Option<usize>,
    /// The device the networks run on.
    pub device: Device,
    /// Show progress bars.
    pub progress: bool,
    /// How many experiment parts compute at once ([`crate::jobs`]).
    pub jobs: Arc<Slots>,
}

impl Context {
    /// A generator for one part of one experiment: the seed picks the key and `stream` the ChaCha
    /// stream, so that each experiment draws the same numbers whichever order they run in.
    pub fn rng(&self, stream: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        rng
    }

    /// The training steps: `--steps` if given, else the experiment's default.
    pub fn train_steps(&self, default: usize) -> usize {
        self.steps.unwrap_or(default)
    }

    /// A training run of `steps` steps drawing from stream `stream` of the seed (the reference
    /// toy's other settings, [`TrainConfig::default`]).
    pub fn train_config(&self, steps: usize, stream: u64) -> TrainConfig {
        TrainConfig {
            steps,
            seed: self.seed,
            stream,
            progress: self.progress,
            ..TrainConfig::default()
        }
    }

    /// A progress bar of `len` ticks (hidden without `--progress` or when stderr is no terminal).
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = crate::jobs::bar(len);
        bar.set_style(workbench::progress::task_style());
        bar.set_message(message.to_string());
        bar
    }
}

/// The experiments, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Experiment {
    /// [`scores`].
    Scores,
    /// [`ascent_vs_langevin`].
    AscentVsLangevin,
    /// [`score_field`].
    ScoreField,
    /// [`langevin_weights`].
    LangevinWeights,
    /// [`manifold`].
    Manifold,
    /// [`ncsn2d`].
    Ncsn2d,
    /// [`trajectories`].
    Trajectories,
}

impl Experiment {
    /// All experiments, in the order of the book.
    pub const ALL: [Experiment; 7] = [
        Experiment::Scores,
        Experiment::AscentVsLangevin,
        Experiment::ScoreField,
        Experiment::LangevinWeights,
        Experiment::Manifold,
        Experiment::Ncsn2d,
        Experiment::Trajectories,
    ];

    /// The subcommand name.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Scores => "scores",
            Experiment::AscentVsLangevin => "ascent-vs-langevin",
            Experiment::ScoreField => "score-field",
            Experiment::LangevinWeights => "langevin-weights",
            Experiment::Manifold => "manifold",
            Experiment::Ncsn2d => "ncsn2d",
            Experiment::Trajectories => "trajectories",
        }
    }

    /// About how many seconds of one core the experiment takes (a 2-core x86 box): parts that
    /// wait for a slot of `ctx.jobs` start longest-first.
    pub fn cost(self) -> u64 {
        match self {
            Experiment::Scores => 1,
            Experiment::AscentVsLangevin => 1,
            Experiment::ScoreField => 8,
            Experiment::LangevinWeights => 7,
            Experiment::Manifold => manifold::COST,
            Experiment::Ncsn2d => ncsn2d::COST_PER_TOY * TOYS_IN_NCSN2D,
            Experiment::Trajectories => 1,
        }
    }

    /// Computes the experiment's report (`ncsn2d`: each data set inside its own slot of
    /// `ctx.jobs`, `manifold` each training run; the others run in the caller's slot).
    pub fn compute(self, ctx: &Context) -> anyhow::Result<Report> {
        Ok(match self {
            Experiment::Scores => Report::Scores(scores::compute(ctx)?),
            Experiment::AscentVsLangevin => Report::AscentVsLangevin(ascent_vs_langevin::compute(ctx)?),
            Experiment::ScoreField => Report::ScoreField(score_field::compute(ctx)?),
            Experiment::LangevinWeights => Report::LangevinWeights(langevin_weights::compute(ctx)?),
            Experiment::Manifold => Report::Manifold(manifold::compute(ctx)?),
            Experiment::Ncsn2d => Report::Ncsn2d(ncsn2d::compute(ctx)?),
            Experiment::Trajectories => Report::Trajectories(trajectories::compute(ctx)?),
        })
    }
}

/// The report of one experiment.
#[derive(Debug, Clone)]
pub enum Report {
    /// [`scores::Report`].
    Scores(scores::Report),
    /// [`ascent_vs_langevin::Report`].
    AscentVsLangevin(ascent_vs_langevin::Report),
    /// [`score_field::Report`].
    ScoreField(score_field::Report),
    /// [`langevin_weights::Report`].
    LangevinWeights(langevin_weights::Report),
    /// [`manifold::Report`].
    Manifold(manifold::Report),
    /// [`ncsn2d::Report`].
    Ncsn2d(ncsn2d::Report),
    /// [`trajectories::Report`].
    Trajectories(trajectories::Report),
}

impl Report {
    /// The table the command line prints.
    pub fn table(&self) -> Table {
        match self {
            Report::Scores(r) => r.table(),
            Report::AscentVsLangevin(r) => r.table(),
            Report::ScoreField(r) => r.table(),
            Report::LangevinWeights(r) => r.table(),
            Report::Manifold(r) => r.table(),
            Report::Ncsn2d(r) => r.table(),
            Report::Trajectories(r) => r.table(),
        }
    }
}

/// A noise-conditional score that ticks a progress bar at every evaluation.
pub struct Ticking<'a, S> {
    score: S,
    bar: &'a ProgressBar,
    /// A hidden bar's `inc` still reads the clock: skip it.
    tick: bool,
}

impl<'a, S> Ticking<'a, S> {
    /// `score`, ticking `bar`.
    pub fn new(score: S, bar: &'a ProgressBar) -> Self {
        Self {
            score,
            bar,
            tick: !bar.is_hidden(),
        }
    }
}

impl<X, S: langevin::NoiseConditionalScore<X>> langevin::NoiseConditionalScore<X> for Ticking<'_, S> {
    fn sigmas(&self) -> &[f64] {
        self.score.sigmas()
    }

    fn score(&self, x: &X, level: usize) -> langevin::Result<X> {
        if self.tick {
            self.bar.inc(1);
        }
        self.score.score(x, level)
    }
}

const TOYS_IN_NCSN2D: u64 = ncsn2d::TOYS.len() as u64;

/// A small text table for the terminal.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Printed above the table.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, one `Vec` per row.
    pub rows: Vec<Vec<String>>,
    /// Files written for the experiment (filled in by [`crate::cli::run_experiment`]).
    pub files: Vec<String>,
}

impl Table {
    /// An empty table with a title and column names.
    pub fn new(title: &str, header: &[&str]) -> Self {
        Self {
            title: title.to_string(),
            header: header.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.header.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut width = vec![0usize; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in row.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        writeln!(f, "\n== {} ==", self.title)?;
        let line = |f: &mut fmt::Formatter<'_>, row: &[String]| -> fmt::Result {
            let cells: Vec<String> = (0..cols)
                .map(|i| {
                    let c = row.get(i).map(String::as_str).unwrap_or("");
                    format!("{c:<w$}", w = width[i])
                })
                .collect();
            writeln!(f, "  {}", cells.join("  ").trim_end())
        };
        line(f, &self.header)?;
        writeln!(
            f,
            "  {}",
            width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
        )?;
        for row in &self.rows {
            line(f, row)?;
        }
        if !self.files.is_empty() {
            writeln!(f, "  wrote: {}", self.files.join(", "))?;
        }
        Ok(())
    }
}

/// `n` points uniform in `[lo, hi]^2`.
pub fn uniform_square<R: Rng + ?Sized>(n: usize, (lo, hi): (f64, f64), rng: &mut R) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, 2), || rng.random_range(lo..hi))
}

/// `sum_i ||a_i - b_i||^2` per row.
pub fn row_sq_dist(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Vec<f64> {
    a.outer_iter()
        .zip(b.outer_iter())
        .map(|(p, q)| p.iter().zip(q.iter()).map(|(u, v)| (u - v) * (u - v)).sum())
        .collect()
}

/// Moving average over a window of `w` (shorter at the start), to read noisy loss curves.
pub fn moving_average(x: &[f64], w: usize) -> Vec<f64> {
    let w = w.max(1);
    let mut out = Vec::with_capacity(x.len());
    let mut sum = 0.0;
    for i in 0..x.len() {
        sum += x[i];
        if i >= w {
            sum -= x[i - w];
        }
        out.push(sum / (i + 1).min(w) as f64);
    }
    out
}

/// Formats a number for tables: 4 significant digits, scientific when very small or large.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Mean of the last `n` entries (NaN for an empty slice).
pub fn tail_mean(x: &[f64], n: usize) -> f64 {
    let n = n.min(x.len()).max(1);
    if x.is_empty() {
        return f64::NAN;
    }
    x[x.len() - n..].iter().sum::<f64>() / n as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn moving_average_of_a_ramp() {
        let m = moving_average(&[1.0, 2.0, 3.0, 4.0], 2);
        assert_eq!(m, vec![1.0, 1.5, 2.5, 3.5]);
    }

    /// A context of seed `seed` for tests that write nothing (the system's temporary folder).
    pub(crate) fn context(seed: u64) -> Context {
        Context {
            out: OutDir::create(std::env::temp_dir()).unwrap(),
            seed,
            steps: None,
            device: Device::Cpu,
            progress: false,
            jobs: Arc::new(Slots::new(1)),
        }
    }

    #[test]
    fn streams_differ_and_repeat() {
        let ctx = context(1);
        let (a, b, c): (u64, u64, u64) = (ctx.rng(1).random(), ctx.rng(1).random(), ctx.rng(2).random());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new("T", &["a", "long name"]);
        t.row(vec!["xyz".into(), "1".into()]);
        let s = t.to_string();
        assert!(s.contains("a    long name"), "{s}");
        assert!(s.contains("xyz  1"), "{s}");
    }
}
