//! MNIST's IDX format, gzip-compressed or plain.
//!
//! An images file starts with the magic number `0x00000803` (two zero bytes, type `0x08` =
//! unsigned bytes, 3 dimensions), then three big-endian `u32`s: count, rows, columns; then
//! `count * rows * columns` pixel bytes. (Labels files have magic `0x00000801` and are not
//! needed for unconditional training.)
use std::io::Read;
use std::path::Path;

use super::ImageSet;
use crate::error::{Error, Result};

/// Magic number of an IDX file of unsigned-byte 3-D data (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX labels file.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an IDX images file (gzip detected from its first two bytes, `1f 8b`).
pub fn load_images(path: &Path) -> Result<ImageSet> {
    if !path.exists() {
        return Err(super::missing(path));
    }
    crate::fsutil::require_kind(
        path,
        false,
        "an MNIST IDX images file, gzip or plain (dataset = \"mnist\")",
    )?;
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("is not a valid gzip file: {e}")))?;
        out
    } else {
        raw
    };
    parse_images(&bytes).map_err(|message| Error::data(path, message))
}

/// Parses the bytes of an IDX images file (already decompressed).
pub fn parse_images(bytes: &[u8]) -> std::result::Result<ImageSet, String> {
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic = word(0).ok_or("is too short for an IDX header (expected at least 16 bytes)")?;
    if magic == LABELS_MAGIC {
        return Err(format!(
            "is an IDX labels file (magic 0x{magic:08x}); expected an images file (magic 0x{IMAGES_MAGIC:08x}), \
             e.g. train-images-idx3-ubyte.gz"
        ));
    }
    if magic != IMAGES_MAGIC {
        return Err(format!(
            "has magic number 0x{magic:08x}; expected 0x{IMAGES_MAGIC:08x} (an IDX images file, like MNIST's \
             train-images-idx3-ubyte)"
        ));
    }
    let (Some(count), Some(rows), Some(cols)) = (word(1), word(2), word(3)) else {
        return Err("is too short for an IDX header (expected 16 bytes)".into());
    };
    let (count, rows, cols) = (count as usize, rows as usize, cols as usize);
    let expected = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .and_then(|n| n.checked_add(16));
    if expected != Some(bytes.len()) || count == 0 || rows == 0 || cols == 0 {
        return Err(format!(
            "header says {count} images of {rows}x{cols} pixels ({} bytes with the header), but the data \
             has {} bytes",
            expected.map_or("too many".to_string(), |n| n.to_string()),
            bytes.len()
        ));
    }
    ImageSet::new(bytes[16..].to_vec(), 1, rows, cols).ok_or_else(|| "no images".to_string())
}
