/// Errors of the samplers and schedules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schedule or sampler parameter is out of its valid range.
    #[error("invalid `{field}`: {message}")]
    InvalidParameter {
        /// The parameter's name.
        field: &'static str,
        /// What was expected.
        message: String,
    },
    /// The score function returned an array of another shape than the particles.
    #[error("score shape {got:?} does not match particle shape {expected:?}")]
    ScoreShape {
        /// Shape of the particles.
        expected: Vec<usize>,
        /// Shape returned by the score.
        got: Vec<usize>,
    },
    /// An error raised by candle (tensor backend or a network's forward pass).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error raised by a user-supplied score or projection.
    #[error("{0}")]
    Other(String),
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidParameter {
        field,
        message: message.into(),
    }
}
