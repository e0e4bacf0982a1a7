//! The workbench's errors: each names the file, the tensor or the device it is about.
use std::path::PathBuf;

/// What can go wrong in the shared plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A device name that is not `cpu`, `cuda` or `cuda:N`, or a device that cannot be opened.
    #[error("{0}")]
    Device(String),
    /// A stored tensor that a parameter (or optimizer state) needs is absent.
    #[error("has no tensor `{name}`")]
    MissingTensor {
        /// The tensor's full name.
        name: String,
    },
    /// A stored tensor has another shape than the parameter it should fill.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    TensorShape {
        /// The tensor's full name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The stored shape.
        got: Vec<usize>,
    },
    /// A stored tensor holds NaN or infinite values.
    #[error("tensor `{name}` holds {count} non-finite value(s) (NaN or infinity) of {total}")]
    NonFinite {
        /// The tensor's full name.
        name: String,
        /// How many values are not finite.
        count: usize,
        /// How many values the tensor has.
        total: usize,
    },
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
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
