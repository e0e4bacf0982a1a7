//! `smld`: score matching with Langevin dynamics, the method of Song & Ermon (2019),
//! "Generative Modeling by Estimating Gradients of the Data Distribution".
//!
//! This umbrella crate re-exports the workspace's levels, from the exact world up to images:
//!
//! | crate | level |
//! |---|---|
//! | [`gmm`] | Gaussian mixtures and toy data sets with exact densities, scores and divergences |
//! | [`langevin`] | noise schedules, Langevin and annealed Langevin dynamics |
//! | [`score_matching`] | the objectives: explicit, implicit, sliced, denoising, noise-conditional |
//! | [`workbench`] | what the applications share: seeded initialisation, Adam, devices, atomic files |
//! | [`quality`] | how good samples are: FID, Inception score, the MNIST classifier and Inception-v3 |
//! | [`toy2d`] | learned 2D scores and the paper's toy experiments |
//! | [`ncsn`] | the image model (RefineNet + CondInstanceNorm++), training, sampling |
pub use gmm;
pub use langevin;
pub use ncsn;
pub use quality;
pub use score_matching;
pub use toy2d;
pub use workbench;

#[cfg(doctest)]
mod book;
