//! NCSN on images: the RefineNet score network with CondInstanceNorm++, data, training,
//! sampling and inpainting (Song & Ermon 2019).
//!
//! The layers, each using only the ones above it:
//!
//! - [`model`]: the score network `CondRefineNetDilated`, [`model::build_model`], and
//!   [`model::ScoreNet`] (the network with its noise levels as a
//!   `langevin::NoiseConditionalScore`);
//! - [`config`]: a run's settings (paper defaults, TOML file, flags), [`data`]: CIFAR-10, MNIST
//!   IDX and image folders, and the batches drawn from them;
//! - [`measure`]: sets of images (or saved statistics) measured with a feature network of the
//!   `quality` crate, for the FID, the Inception score and class histograms;
//! - [`sampling`]: annealed Langevin sampling from any noise-conditional score on images,
//!   [`sampling::inpaint`], [`sampling::images`] (grids and GIFs);
//! - [`training`]: the [`Trainer`] and the training loop, with its [`training::checkpoint`]
//!   (the run state and exact resume), [`training::ema`], [`training::fid`] (the FID of samples
//!   every `fid_every` steps), [`training::log`] and [`training::plot`] (Adam, the seeded
//!   initialisation and atomic writes are the `workbench` crate's, shared with `toy2d`);
//! - [`load`]: a trained network from a run folder or a bare weights file, with its parameters;
//! - [`cli`]: the `ncsn` command line; [`progress`]: how a command reports progress;
//!   [`limits`]: what a command will need, checked against the machine's memory first;
//!   [`bench`](mod@bench): the speed of training and sampling steps; [`device_check`]: a device's
//!   numbers against the CPU's and PyTorch's.
//!
//! Errors: the model's layers return candle's errors (shapes, devices); everything else returns
//! [`Error`], whose variant says what went wrong: a user's setting ([`Error::Config`]), a file
//! read ([`Error::Io`], [`Error::Data`], [`Error::Checkpoint`]), an output that could not be made
//! ([`Error::Output`]), a diverged run ([`Error::NonFinite`]), a device ([`Error::Device`]), or a
//! caller's mistake ([`Error::Argument`]); the tensor library's and the sampler's own errors pass
//! through ([`Error::Candle`], [`Error::Langevin`]).
//!
//! # Examples
//!
//! Describe and build a network: a [`model::ModelConfig`] is all it takes (here a tiny one, in
//! `f64`), with weights drawn from a seed.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ncsn::model::{build_model, ModelConfig};
//!
//! let config = ModelConfig { ngf: 4, channels: 1, image_size: 8, num_classes: 4 };
//! let (params, net) = build_model(&config, DType::F64, &Device::Cpu, Some(7))?;
//! let x = Tensor::zeros((2, 1, 8, 8), DType::F64, &Device::Cpu)?;
//! let labels = Tensor::new(&[0u32, 3], &Device::Cpu)?; // noise-level indices
//! assert_eq!(net.forward(&x, &labels)?.dims(), [2, 1, 8, 8]);
//! assert_eq!(params.all_vars().len(), ncsn::model::reference_shapes(&config).len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Load weights and differentiate with respect to them: a [`LoadedModel`] holds its parameters.
//! A bare weights file may hold more than the network (a converted training checkpoint); the
//! other tensors are ignored and listed in [`LoadedModel::ignored`]. (A run folder's checkpoint
//! must hold nothing else: there an extra tensor means another model, and is refused.)
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ncsn::load::load_weights_file;
//! use ncsn::model::{build_model, ModelConfig};
//!
//! let config = ModelConfig { ngf: 4, channels: 1, image_size: 8, num_classes: 4 };
//! let (params, _) = build_model(&config, DType::F32, &Device::Cpu, Some(1))?;
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("weights.safetensors");
//! let mut tensors: std::collections::HashMap<String, Tensor> = params
//!     .data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
//! tensors.insert("optimizer.step".into(), Tensor::new(&[3f32], &Device::Cpu)?);
//! candle_core::safetensors::save(&tensors, &file)?;
//!
//! let sigmas = langevin::geometric_sigmas(1.0, 0.01, 4)?;
//! let loaded = load_weights_file(&file, &config, sigmas, DType::F32, &Device::Cpu)?;
//! assert_eq!(loaded.ignored, ["optimizer.step"]);
//! let x = Tensor::ones((1, 1, 8, 8), DType::F32, &Device::Cpu)?;
//! let labels = Tensor::new(&[2u32], &Device::Cpu)?;
//! let grads = loaded.model.forward(&x, &labels)?.sqr()?.sum_all()?.backward()?;
//! for var in loaded.params.all_vars() {
//!     assert!(grads.get(&var).is_some(), "every parameter has a gradient");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Train from given weights on given batches: [`Trainer::from_weights`] starts a run (a fresh
//! Adam) at any weights, and [`Trainer::train_step_on`] takes one step on a batch, its level
//! indices and its noise (the training loop's [`Trainer::train_step`] draws them and calls it).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ncsn::data::ImageSet;
//! use ncsn::model::build_model;
//! use ncsn::{Trainer, TrainConfig};
//!
//! let config = TrainConfig { ngf: 4, image_size: 8, num_levels: 4, batch_size: 2, ..TrainConfig::mnist() };
//! let (params, net) = build_model(&config.model_config(), DType::F32, &Device::Cpu, Some(3))?;
//! let images = ImageSet::new(vec![128; 4 * 64], 1, 8, 8).unwrap();
//! let empty = ImageSet::new(Vec::new(), 1, 8, 8).unwrap();
//! let mut trainer = Trainer::from_weights(config, params, net, images, empty, &Device::Cpu)?;
//!
//! let x = Tensor::full(0.5f32, (2, 1, 8, 8), &Device::Cpu)?;
//! let levels = Tensor::new(&[0u32, 3], &Device::Cpu)?;
//! let z = Tensor::ones((2, 1, 8, 8), DType::F32, &Device::Cpu)?;
//! let loss = trainer.train_step_on(&x, &levels, &z)?;
//! assert!(loss.is_finite());
//! assert_eq!(trainer.step(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sample: the network with its noise levels is a `langevin::NoiseConditionalScore`
//! ([`model::ScoreNet`]); [`sampling::sample`] runs annealed Langevin dynamics with any such
//! score on images (an exact one in `tests/sample_exact.rs`).
//!
//! ```
//! use candle_core::{DType, Device};
//! use ncsn::model::{build_model, ModelConfig, ScoreNet};
//! use ncsn::sampling::{sample, SampleConfig};
//!
//! let config = ModelConfig { ngf: 4, channels: 1, image_size: 8, num_classes: 4 };
//! let (_, net) = build_model(&config, DType::F32, &Device::Cpu, Some(5))?;
//! let sigmas = langevin::geometric_sigmas(1.0, 0.01, 4)?;
//! let score = ScoreNet::new(&net, &sigmas)?;
//! let settings = SampleConfig { n: 3, steps_per_level: 2, ..SampleConfig::default() };
//! let out = sample(&score, score.image_dims(), &settings, &Device::Cpu, ncsn::Progress::Quiet)?;
//! assert_eq!(out.samples.dims(), [3, 1, 8, 8]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod device_check;
mod error;
pub mod fsutil;
pub mod limits;
pub mod load;
pub mod measure;
pub mod model;
pub mod progress;
pub mod sampling;
pub mod training;
pub mod vars;

pub use config::{DatasetKind, Overrides, TrainConfig};
pub use error::{show_number, Error, Result};
pub use load::{load_checkpoint, LoadedModel};
pub use progress::Progress;
pub use training::{train_new, train_resume, RunOptions, RunSummary, Trainer};
