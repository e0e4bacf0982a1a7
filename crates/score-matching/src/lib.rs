//! Score-matching objectives on candle tensors, written once for the 2D toys and the image model.
//!
//! Each objective estimates the Fisher divergence `1/2 E_p ||s_theta(x) - grad_x log p(x)||^2`
//! up to a constant, in a different way:
//!
//! | module | objective | needs |
//! |---|---|---|
//! | [`explicit`] | `1/2 E||s - grad log p||^2` | the true score (an oracle, for teaching) |
//! | [`implicit`] | `E[1/2 ||s||^2 + tr J_s]` | `D` Jacobian-vector products |
//! | [`sliced`] | `E[v^T J_s v + 1/2 (v^T s)^2]` | one JVP per random projection `v` |
//! | [`denoising`] | `1/2 E||s(x~) + (x~ - x)/sigma^2||^2` | no derivative; learns the score of `p_sigma` |
//! | [`anneal_dsm`] | `(1/L) sum_i sigma_i^2 l(theta; sigma_i)` | the NCSN objective (paper eq. 6) |
//!
//! [`levels`] chooses which noise level each example of [`anneal_dsm`] gets: uniformly (the
//! paper's), or more often where the noise is about the size of the data's spread.
//!
//! The crate does not know the network: losses take a closure `x -> s(x)` or a model implementing
//! [`JvpScore`]. Every random draw (noise `z`, projections `v`) comes from the caller's seeded RNG.
pub mod anneal_dsm;
pub mod denoising;
pub mod explicit;
pub mod implicit;
pub mod jvp;
pub mod levels;
pub mod sliced;

pub use anneal_dsm::{anneal_dsm_loss, anneal_dsm_per_example, draw_levels, sigmas_tensor};
pub use denoising::{dsm_loss, dsm_per_example};
pub use explicit::{esm_loss, esm_per_example};
pub use implicit::{ism_loss, ism_per_example};
pub use jvp::{score_and_divergence, JvpScore};
pub use levels::LevelDistribution;
pub use sliced::{draw_projections, ssm_loss, ssm_per_example, ProjectionKind};
