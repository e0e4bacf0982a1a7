//! The crate's error type. Every variant that comes from user input names the file or the
//! config key it is about and what was expected, so that a bad run stops with a message a
//! user can act on instead of a panic.
use std::path::PathBuf;

/// Errors of data loading, configuration, checkpoints and training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A data file exists but is not what its format promises.
    #[error("{}: {message}", path.display())]
    Data {
        /// The offending file or folder.
        path: PathBuf,
        /// What was found and what was expected.
        message: String,
    },
    /// An output (a figure) could not be made; the inputs were fine.
    #[error("{}: {message}", path.display())]
    Output {
        /// The file being written.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A configuration value (from a TOML file or a command-line flag) is invalid.
    #[error("invalid config value `{key}`: {message}")]
    Config {
        /// The key, as spelled in the TOML file (the flag is `--` + key with `-` for `_`).
        key: String,
        /// What was expected.
        message: String,
    },
    /// A checkpoint cannot be used (missing, corrupt, or made with another configuration).
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file or run folder.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Training produced a non-finite number (loss, weights or optimizer state); the message says
    /// which value and the settings that can cause it.
    #[error("{0}")]
    NonFinite(String),
    /// A library function was given arguments that do not fit together (a network of another
    /// shape than its configuration, a figure's images of another count): a caller's mistake,
    /// not a user's setting.
    #[error("{0}")]
    Argument(String),
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// An error of the tensor library (shapes, devices, the model's forward pass).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error of the noise schedule.
    #[error(transparent)]
    Langevin(#[from] langevin::Error),
    /// A stored tensor that does not fit (from the shared plumbing, where no file is known).
    #[error(transparent)]
    Workbench(workbench::Error),
    /// Measuring images went wrong (a feature network's file, images it cannot take, too few
    /// samples for a covariance, statistics of another network).
    #[error(transparent)]
    Quality(quality::Error),
}

impl From<quality::Error> for Error {
    fn from(e: quality::Error) -> Self {
        match e {
            quality::Error::Io { path, source } => Error::Io { path, source },
            quality::Error::Candle(e) => Error::Candle(e),
            quality::Error::Workbench(e) => e.into(),
            other => Error::Quality(other),
        }
    }
}

impl From<workbench::Error> for Error {
    fn from(e: workbench::Error) -> Self {
        match e {
            workbench::Error::Io { path, source } => Error::Io { path, source },
            workbench::Error::Device(message) => Error::Device(message),
            workbench::Error::Candle(e) => Error::Candle(e),
            other => Error::Workbench(other),
        }
    }
}

/// A number for a message: plain when it reads well (`0.001`, `-0.1`, `1000`), in exponent form
/// when plain digits would run long (`1e-50`, `1e30`).
pub fn show_number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// An [`Error::Data`] for `path`.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }
    /// An [`Error::Output`] for `path`.
    pub fn output(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Output {
            path: path.into(),
            message: message.into(),
        }
    }
    /// An [`Error::Config`] for `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
    /// An [`Error::Checkpoint`] for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
