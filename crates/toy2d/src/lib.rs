//! toy2d: learned 2D scores with every objective of the paper, the toy experiments and a
//! Langevin visualizer. `cargo run --release -p toy2d` makes every figure of the book's toy chapters.
pub mod model;
pub mod train;
