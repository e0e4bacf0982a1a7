//! How a long command reports its progress (a user-interface choice the command line makes; the
//! training loop, the sampler and inpainting only receive it), and the progress bars they draw.
use indicatif::{ProgressBar, ProgressStyle};

/// How a run reports its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif progress bar (for a terminal).
    Bar,
    /// One line per milestone on stderr (for logs and pipes).
    Lines,
    /// Nothing (tests, library use).
    Quiet,
}

impl Progress {
    /// A bar on a terminal, lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }
}

/// The bar of a training run of `total` steps (hidden unless `progress` is [`Progress::Bar`]).
pub fn training_bar(progress: Progress, total: u64) -> ProgressBar {
    match progress {
        Progress::Bar => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        _ => ProgressBar::hidden(),
    }
}

/// The bar of a sampling run of `total` Langevin steps (hidden unless [`Progress::Bar`]).
pub fn sampling_bar(progress: Progress, total: u64) -> ProgressBar {
    match progress {
        Progress::Bar => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} steps, eta {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        _ => ProgressBar::hidden(),
    }
}
