//! toy2d: learned 2D scores with every objective of the paper, the toy experiments and a
//! Langevin visualizer. `cargo run --release -p toy2d` makes every figure of the book's toy chapters.
//!
//! - [`model`], [`train`]: the score networks and their training loops; [`optim`]: Adam in one
//!   pass per parameter.
//! - [`metrics`]: two-sample distances (kernel MMD, sliced Wasserstein) between samples and data.
//! - [`plot`]: plotters figures (heat maps, contours, arrow fields, scatter, GIF frames).
//! - [`experiments`]: the paper's toy experiments, each writing figures and a JSON of its numbers.
//! - [`jobs`]: independent experiments side by side on the available cores.
//! - [`cli`]: the `toy2d` command line.
//! - [`output`]: the output folder and atomic writes; [`alloc`]: the C allocator's settings.
pub mod cli;
pub mod experiments;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod output;
pub mod plot;
pub mod train;
