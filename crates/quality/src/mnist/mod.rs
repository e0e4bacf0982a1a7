//! A small MNIST classifier whose weights ship with the crate: the feature space of the
//! project's MNIST FID and the class probabilities of its class histograms.
//!
//! Inception-v3 measures natural 299x299 colour images; on 28x28 digits its features say little.
//! The MNIST metric uses instead a LeNet-like network trained on the 4,500 training digits of the
//! shipped data (the NCSN model's own training set), whose 64-d penultimate layer is the space
//! in which the Fréchet distance compares real and generated digits:
//!
//! ```text
//! x (N, 1, 28, 28) in [0, 1]
//!  conv1 5x5, 1 -> 8, pad 2, ReLU   (N, 8, 28, 28)
//!  max-pool 2                        (N, 8, 14, 14)
//!  conv2 5x5, 8 -> 16, ReLU          (N, 16, 10, 10)
//!  max-pool 2                        (N, 16, 5, 5)
//!  flatten                           (N, 400)
//!  fc1 400 -> 64                     (N, 64)     the features
//!  ReLU, fc2 64 -> 10                (N, 10)     the logits
//! ```
//!
//! The features are `fc1`'s outputs before the ReLU: after it, some of the 64 units are 0 on
//! every real digit (a dead ReLU), and a unit constant on the reference set makes its covariance
//! singular. Before the ReLU every unit varies, and the values are closer to Gaussian, which is
//! what the Fréchet distance assumes.
//!
//! 29,738 parameters, 116 KiB in `f32`. The weights define the metric: retraining them (another
//! seed, another architecture) changes every MNIST FID, so they are committed
//! (`weights/mnist-classifier.safetensors`), embedded in the library ([`MnistClassifier::shipped`])
//! and tested against the held-out digits.
//!
//! - [`net`]: the network, loading and saving its weights, [`crate::FeatureNetwork`];
//! - [`train`](mod@train): reproducible training from a seed (Adam, cross-entropy, random shifts).
pub mod net;
pub mod train;

pub use net::{MnistClassifier, CLASSES, FEATURE_DIM, NAME, SHIPPED_WEIGHTS};
pub use train::{train, EpochReport, TrainClassifier, Trained};
