//! CIFAR-10's binary version (the `cifar-10-batches-bin` folder).
//!
//! Each of `data_batch_1.bin` ... `data_batch_5.bin` (training) and `test_batch.bin` holds
//! 10,000 records of 3,073 bytes: one label byte (0-9), then the 32x32 image channel-major
//! (1,024 red bytes, 1,024 green, 1,024 blue, each row by row). Labels are not needed for
//! unconditional training and are skipped.
use std::path::Path;

use super::ImageSet;
use crate::error::{Error, Result};

/// Side of a CIFAR-10 image.
pub const SIZE: usize = 32;
/// Bytes of one record: 1 label + 3 x 32 x 32 pixels.
pub const RECORD_LEN: usize = 1 + 3 * SIZE * SIZE;
/// Records in each of the official files.
pub const RECORDS_PER_FILE: usize = 10_000;
/// The five training files.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// Reads one batch file: any whole, non-zero number of records (the official files hold
/// 10,000; the tests use a few).
pub fn load_file(path: &Path) -> Result<ImageSet> {
    if path.is_dir() {
        crate::fsutil::require_kind(path, false, "a CIFAR-10 batch file of 3,073-byte records")?;
    }
    if !path.is_file() {
        return Err(Error::data(
            path,
            format!(
                "missing CIFAR-10 batch file (expected {RECORDS_PER_FILE} records of {RECORD_LEN} bytes). {}",
                super::CIFAR10_HINT
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() || bytes.len() % RECORD_LEN != 0 {
        return Err(Error::data(
            path,
            format!(
                "has {} bytes, which is not a whole number of CIFAR-10 records: expected a multiple of \
                 {RECORD_LEN} (1 label byte + 3,072 pixel bytes; {} bytes for the official 10,000 records)",
                bytes.len(),
                RECORDS_PER_FILE * RECORD_LEN
            ),
        ));
    }
    let mut pixels = Vec::with_capacity(bytes.len() / RECORD_LEN * (RECORD_LEN - 1));
    for (i, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        if record[0] > 9 {
            return Err(Error::data(
                path,
                format!(
                    "record {i} has label byte {}, expected 0-9: not a CIFAR-10 batch file",
                    record[0]
                ),
            ));
        }
        pixels.extend_from_slice(&record[1..]);
    }
    ImageSet::new(pixels, 3, SIZE, SIZE).ok_or_else(|| Error::data(path, "no images"))
}

/// Reads the five training files of the folder `dir`.
pub fn load_train(dir: &Path) -> Result<ImageSet> {
    if !dir.exists() {
        return Err(super::missing(dir));
    }
    crate::fsutil::require_kind(
        dir,
        true,
        "a cifar-10-batches-bin folder (dataset = \"cifar10\"; data_batch_1.bin ... test_batch.bin)",
    )?;
    let mut all = load_file(&dir.join(TRAIN_FILES[0]))?;
    for name in &TRAIN_FILES[1..] {
        all.append(&load_file(&dir.join(name))?);
    }
    Ok(all)
}
