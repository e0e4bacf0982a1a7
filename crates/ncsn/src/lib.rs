//! NCSN on images: the RefineNet score network with CondInstanceNorm++, data, training,
//! sampling and inpainting (Song & Ermon 2019).
//!
//! - [`model`]: the score network `CondRefineNetDilated`;
//! - [`config`]: a run's settings (paper defaults, TOML file, flags);
//! - [`data`]: CIFAR-10, MNIST IDX and image folders, and the batches drawn from them;
//! - [`optim`], [`ema`]: Adam with open state, and the EMA of the weights;
//! - [`train`]: the training loop; [`checkpoint`]: saving, resuming and [`load_checkpoint`]
//!   for sampling; [`log`], [`plot`]: the loss CSV and its figure;
//! - [`limits`]: what a command will need, checked against the machine's memory first;
//! - [`sample`], [`inpaint`]: annealed Langevin sampling and inpainting; [`load`]: a run folder
//!   or a converted reference checkpoint; [`images`]: sample grids and GIFs.
pub mod bench;
pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod data;
pub mod ema;
mod error;
pub mod fsutil;
pub mod images;
pub mod inpaint;
pub mod limits;
pub mod load;
pub mod log;
pub mod model;
pub mod plot;
pub mod sample;
pub mod train;
pub mod vars;

pub use checkpoint::{load_checkpoint, LoadedModel};
pub use config::{DatasetKind, Overrides, TrainConfig};
pub use error::{show_number, Error, Result};
pub use train::{train_new, train_resume, Progress, RunOptions, RunSummary, Trainer};
