/// Why a mixture could not be built. Every message names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GmmError {
    /// The mixture weights are not a probability vector.
    #[error("invalid `weights`: {0}")]
    Weights(String),
    /// Two arrays disagree in shape.
    #[error("invalid shape of `{field}`: expected {expected}, got {got}")]
    Shape {
        /// The field whose shape is wrong (`means`, `variances`, `x`).
        field: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was given.
        got: String,
    },
    /// A variance is not finite and positive.
    #[error(
        "invalid `variances`: component {component}, dimension {dim} has variance {value}; expected a finite value > 0"
    )]
    Variance {
        /// Component index.
        component: usize,
        /// Coordinate index.
        dim: usize,
        /// The bad value.
        value: f64,
    },
    /// A mean is not finite.
    #[error("invalid `means`: component {component} has a non-finite coordinate {value}")]
    Mean {
        /// Component index.
        component: usize,
        /// The bad value.
        value: f64,
    },
    /// A noise level is not finite and non-negative.
    #[error("invalid `sigma`: expected a finite value >= 0, got {0}")]
    Sigma(f64),
    /// Samples that belong to no component (a non-finite coordinate, or one so large that its
    /// distance to every mode overflows): a diverged chain.
    #[error(
        "invalid `samples`: {count} of {total} are not finite numbers or too far out to belong to any component (a diverged chain?); expected finite points"
    )]
    NonFinite {
        /// How many samples belong to no component.
        count: usize,
        /// How many samples there are.
        total: usize,
    },
}
