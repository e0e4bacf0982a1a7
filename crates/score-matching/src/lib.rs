//! Score-matching objectives on candle tensors, written once for the 2D toys and the image model.
//!
//! - [`anneal_dsm`]: noise-conditional denoising score matching over `L` levels with
//!   `lambda(sigma) = sigma^2` (the NCSN objective, paper eq. 6).
pub mod anneal_dsm;

pub use anneal_dsm::{anneal_dsm_loss, anneal_dsm_per_example, draw_levels, sigmas_tensor};
