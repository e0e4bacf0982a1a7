//! What can go wrong when measuring samples: each error names the file, tensor or setting.
use std::path::PathBuf;

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A weights or statistics file that is not what it should be.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Images or features of a shape the computation cannot take.
    #[error("{0}")]
    Shape(String),
    /// Too few samples for a non-singular covariance.
    #[error(
        "{what}: {count} sample(s) of {dim}-dimensional features give a singular covariance; \
         at least {} are needed (the field uses 50,000 for FID)", dim + 1
    )]
    TooFewSamples {
        /// Which set.
        what: String,
        /// How many samples it has.
        count: usize,
        /// Feature dimension.
        dim: usize,
    },
    /// NaN or infinite values where numbers were expected.
    #[error("{what} holds {count} non-finite value(s) (NaN or infinity)")]
    NonFinite {
        /// Which images, features or statistics.
        what: String,
        /// How many values are not finite.
        count: usize,
    },
    /// Two sets of statistics that cannot be compared (other network, other dimension).
    #[error("{0}")]
    Mismatch(String),
    /// An error of the shared plumbing (loading named tensors).
    #[error(transparent)]
    Workbench(#[from] workbench::Error),
    /// An error of a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
    /// A file that is not what it should be.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
