//! The workbench: what both applications (`toy2d`, `ncsn`) need around their models, written
//! once. Nothing here knows about scores, data sets or figures' contents.
//!
//! - [`init`]: a `VarBuilder` whose every new variable is drawn from a seeded ChaCha generator,
//!   so that layers initialise themselves reproducibly (candle's CPU generator cannot be seeded).
//! - [`adam`]: Adam as PyTorch computes it, with its state open for checkpoints; a
//!   `candle_nn::Optimizer`.
//! - [`vars`]: named parameters in a fixed order, and setting them from stored tensors.
//! - [`files`]: atomic writes (temporary file, fsync, rename, fsync of the folder) and the
//!   clean-up of the temporaries an interrupted write leaves.
//! - [`device`]: `--device cpu|cuda[:N]`.
//! - [`progress`]: the progress bars' two styles.
//! - [`font`]: the font every figure uses, embedded.
//! - [`alloc`]: keeping freed memory in the C allocator (many same-sized tensors per step).
pub mod adam;
pub mod alloc;
pub mod device;
mod error;
pub mod files;
pub mod font;
pub mod init;
pub mod progress;
pub mod vars;

pub use adam::{Adam, AdamConfig};
pub use device::parse_device;
pub use error::{Error, Result};
pub use files::{write_atomic, write_atomic_with};
pub use init::SeededVarMap;
