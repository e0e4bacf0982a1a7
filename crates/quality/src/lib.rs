#![doc = include_str!("../README.md")]
pub mod classes;
mod error;
pub mod features;
pub mod frechet;
pub mod inception;
pub mod inception_score;
pub mod mnist;

pub use classes::ClassSummary;
pub use error::{Error, Result};
pub use features::{FeatureAccumulator, FeatureStats};
pub use frechet::frechet_distance;
pub use inception::InceptionV3;
pub use inception_score::inception_score;
pub use mnist::MnistClassifier;

use candle_core::Tensor;

/// A network whose activations measure images: the features the Fréchet distance compares and
/// the class probabilities the Inception score and the class histograms use.
pub trait FeatureNetwork {
    /// The network's name, stored with feature statistics so that statistics of different
    /// networks are never compared.
    fn name(&self) -> &str;
    /// Length of a feature vector.
    fn feature_dim(&self) -> usize;
    /// Checks that images of `(channels, height, width)` can be measured, with an error that says
    /// what the network expects.
    fn check_dims(&self, dims: (usize, usize, usize)) -> Result<()>;
    /// Features `(N, feature_dim)` and logits `(N, classes)` of a batch `(N, C, H, W)` of images
    /// with values in `[0, 1]`.
    fn features_and_logits(&self, images: &Tensor) -> Result<(Tensor, Tensor)>;
}
