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

/// A `langevin` error inside code that speaks candle's `Result` (a loss, a network's forward pass):
/// a candle error comes back unwrapped, any other as its message. With it `?` converts directly,
/// e.g. `let z = langevin::randn_tensor(rng, shape, dtype, device)?;` in a function returning
/// `candle_core::Result`.
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            other => candle_core::Error::Msg(other.to_string()),
        }
    }
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidParameter {
        field,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_candle_keeping_candle_errors_and_messages() {
        // A candle error comes back as itself, not wrapped in a message.
        let shape = candle_core::Error::UnexpectedNumberOfDims {
            expected: 2,
            got: 3,
            shape: candle_core::Shape::from((1, 2, 3)),
        };
        let back: candle_core::Error = Error::Candle(shape).into();
        assert!(matches!(
            back,
            candle_core::Error::UnexpectedNumberOfDims {
                expected: 2,
                got: 3,
                ..
            }
        ));
        // Any other error keeps its message, which names the field.
        let back: candle_core::Error = invalid("eps", "expected a finite positive step size").into();
        assert_eq!(back.to_string(), "invalid `eps`: expected a finite positive step size");
    }
}
