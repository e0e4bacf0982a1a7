//! toy2d: learned 2D scores with every objective of the paper, the toy experiments and a
//! Langevin visualizer. `cargo run --release -p toy2d` makes every figure of the book's toy chapters.
//!
//! - [`model`], [`train`]: the score networks and their training loops.
//! - [`metrics`]: two-sample distances (kernel MMD, sliced Wasserstein) between samples and data.
//! - [`plot`]: plotters figures (heat maps, contours, arrow fields, scatter, GIF frames).
//! - [`experiments`]: the paper's toy experiments, each writing figures and a JSON of its numbers.
//! - [`cli`]: the `toy2d` command line.
//! - [`output`]: the output folder and atomic writes.
pub mod cli;
pub mod experiments;
pub mod metrics;
pub mod model;
pub mod output;
pub mod plot;
pub mod train;
