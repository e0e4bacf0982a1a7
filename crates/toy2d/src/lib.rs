//! toy2d: learned 2D scores with every objective of the paper, the toy experiments and a
//! Langevin visualizer. `cargo run --release -p toy2d` makes every figure of the book's toy chapters.
//!
//! - [`model`], [`train`]: the score networks and their training loops; [`linear`], [`softplus`],
//!   [`modulate`]: their layer, activation and level conditioning, fused and vectorised on the
//!   CPU; [`folded`]: the network at one noise level in cache-sized blocks, for the samplers;
//!   [`dsm_step`], [`jvp_step`]: training steps written out for the CPU (denoising score
//!   matching of the noise-conditional network, sliced and implicit of the plain one); [`plain`]:
//!   the products and sums on plain buffers that they and [`folded`] share.
//! - [`metrics`]: two-sample distances (kernel MMD, sliced Wasserstein) between samples and data.
//! - [`scores`]: the exact noise-conditional score of a perturbed mixture (what the networks learn).
//! - [`experiments`]: the paper's toy experiments, each computing a report of its numbers.
//! - [`figures`]: each experiment's figures, drawn from its report; [`plot`]: the drawing pieces
//!   they share (heat maps, contours, arrow fields, scatter, GIF frames).
//! - [`jobs`]: independent experiments side by side on the available cores.
//! - [`cli`]: the `toy2d` command line: runs experiments, writes their JSON and draws their figures.
//! - [`output`]: the output folder and atomic writes.
pub mod cli;
pub mod dsm_step;
pub mod experiments;
pub mod figures;
pub mod folded;
pub mod jobs;
pub mod jvp_step;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod modulate;
pub mod output;
pub mod plain;
pub mod plot;
pub mod scores;
pub mod softplus;
pub mod train;
