//! How a long command reports its progress (a user-interface choice the command line makes; the
//! training loop, the sampler and inpainting only receive it), and the progress bars they draw.
use indicatif::ProgressBar;

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

/// The bar of a run of `total` steps (training steps, or Langevin steps of a sampler), hidden
/// unless `progress` is [`Progress::Bar`]; the style is the workbench's.
pub fn bar(progress: Progress, total: u64) -> ProgressBar {
    match progress {
        Progress::Bar => workbench::progress::run_bar(total, 0),
        _ => ProgressBar::hidden(),
    }
}
