#![doc = include_str!("../README.md")]
pub mod adam;
pub mod alloc;
pub mod device;
mod error;
pub mod fastmath;
pub mod files;
pub mod font;
pub mod init;
pub mod pool;
pub mod progress;
pub mod storage;
pub mod subnormal;
pub mod vars;

pub use adam::{Adam, AdamConfig};
pub use device::parse_device;
pub use error::{Error, Result};
pub use files::{write_atomic, write_atomic_with};
pub use init::SeededVarMap;
