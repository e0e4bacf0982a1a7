//! MNIST's IDX format, gzip-compressed or plain.
//!
//! An images file starts with the magic number `0x00000803` (two zero bytes, type `0x08` =
//! unsigned bytes, 3 dimensions), then three big-endian `u32`s: count, rows, columns; then
//! `count * rows * columns` pixel bytes. A labels file starts with the magic number
//! `0x00000801` (1 dimension), then one big-endian `u32`, the count, then `count` label bytes;
//! unconditional training does not need them, the MNIST classifier of the `quality` crate does.
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
    parse_images(&read_maybe_gzip(path)?).map_err(|message| Error::data(path, message))
}

/// Reads an IDX labels file (gzip detected from its first two bytes, `1f 8b`): one byte per
/// image, in the order of the images file (MNIST's digits 0 to 9).
pub fn load_labels(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        return Err(Error::data(
            path,
            "does not exist; expected an MNIST IDX labels file, gzip or plain (e.g. train-labels-idx1-ubyte.gz)",
        ));
    }
    crate::fsutil::require_kind(path, false, "an MNIST IDX labels file, gzip or plain")?;
    parse_labels(&read_maybe_gzip(path)?).map_err(|message| Error::data(path, message))
}

/// The bytes of `path`, decompressed if they are gzip (first two bytes `1f 8b`).
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| Error::data(path, format!("is not a valid gzip file: {e}")))?;
    Ok(out)
}

/// The `i`-th big-endian 32-bit word of an IDX file's header, if the bytes reach it.
fn header_word(bytes: &[u8], i: usize) -> Option<u32> {
    let b = bytes.get(4 * i..4 * i + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Checks an IDX file's magic number against the kind expected (`LABELS_MAGIC` or
/// `IMAGES_MAGIC`), saying so when the file is of the other kind.
fn check_magic(magic: u32, want: u32) -> std::result::Result<(), String> {
    let (kind, other, other_magic, example) = if want == LABELS_MAGIC {
        ("labels", "images", IMAGES_MAGIC, "train-labels-idx1-ubyte")
    } else {
        ("images", "labels", LABELS_MAGIC, "train-images-idx3-ubyte")
    };
    if magic == other_magic {
        return Err(format!(
            "is an IDX {other} file (magic 0x{magic:08x}); expected {article} {kind} file (magic 0x{want:08x}), \
             e.g. {example}.gz",
            article = if kind == "images" { "an" } else { "a" }
        ));
    }
    if magic != want {
        return Err(format!(
            "has magic number 0x{magic:08x}; expected 0x{want:08x} (an IDX {kind} file, like MNIST's {example})"
        ));
    }
    Ok(())
}

/// Parses the bytes of an IDX labels file (already decompressed): 8 header bytes (magic, count)
/// and `count` labels.
pub fn parse_labels(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let (Some(magic), Some(count)) = (header_word(bytes, 0), header_word(bytes, 1)) else {
        return Err("is too short for an IDX labels header (expected at least 8 bytes)".into());
    };
    check_magic(magic, LABELS_MAGIC)?;
    let count = count as usize;
    if count.checked_add(8) != Some(bytes.len()) || count == 0 {
        return Err(format!(
            "header says {count} labels ({} bytes with the header), but the data has {} bytes",
            count.saturating_add(8),
            bytes.len()
        ));
    }
    Ok(bytes[8..].to_vec())
}

/// Parses the bytes of an IDX images file (already decompressed).
pub fn parse_images(bytes: &[u8]) -> std::result::Result<ImageSet, String> {
    let magic = header_word(bytes, 0).ok_or("is too short for an IDX header (expected at least 16 bytes)")?;
    check_magic(magic, IMAGES_MAGIC)?;
    let word = |i| header_word(bytes, i);
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An IDX labels file's bytes: magic, count, labels.
    fn labels_file(magic: u32, count: u32, labels: &[u8]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        b.extend(count.to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn labels_load_gzip_or_plain() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = labels_file(LABELS_MAGIC, 4, &[3, 1, 4, 1]);
        let (plain, gz) = (dir.path().join("l"), dir.path().join("l.gz"));
        std::fs::write(&plain, &bytes).unwrap();
        std::fs::write(&gz, gzip(&bytes)).unwrap();
        assert_eq!(load_labels(&plain).unwrap(), [3, 1, 4, 1]);
        assert_eq!(load_labels(&gz).unwrap(), [3, 1, 4, 1]);
    }

    #[test]
    fn bad_labels_files_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.idx");
        let err = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            let e = load_labels(&path).unwrap_err().to_string();
            assert!(e.contains("labels.idx"), "{e}");
            e
        };
        // An images file given as labels.
        let e = err(&labels_file(IMAGES_MAGIC, 1, &[0; 12]));
        assert!(e.contains("images file") && e.contains("0x00000801"), "{e}");
        let e = err(&labels_file(0x1234, 1, &[0]));
        assert!(e.contains("0x00001234"), "{e}");
        let e = err(&labels_file(LABELS_MAGIC, 5, &[0, 1]));
        assert!(e.contains("5 labels") && e.contains("10 bytes"), "{e}");
        assert!(err(&[0, 0, 8]).contains("too short"));
        let e = err(&[0x1f, 0x8b, 0, 0]);
        assert!(e.contains("gzip"), "{e}");
        let missing = dir.path().join("missing-labels.gz");
        let e = load_labels(&missing).unwrap_err().to_string();
        assert!(e.contains("missing-labels.gz") && e.contains("does not exist"), "{e}");
        let e = load_labels(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
    }

    #[test]
    fn shipped_labels_are_500_of_each_digit_sorted() {
        let images = super::super::shipped_mnist().unwrap();
        let path = images.with_file_name("mnist-5k-labels-idx1-ubyte.gz");
        let labels = load_labels(&path).unwrap();
        assert_eq!(labels.len(), 5000);
        for (i, &l) in labels.iter().enumerate() {
            assert_eq!(usize::from(l), i / 500, "label {i}");
        }
    }

    #[test]
    fn each_parser_names_the_other_kind_of_file() {
        // The header of a labels file (magic 0x801, 2 labels) given to the images parser, and an
        // images header (magic 0x803, 1 image of 1x1) given to the labels parser.
        let labels = labels_file(LABELS_MAGIC, 2, &[3, 4]);
        let mut images = IMAGES_MAGIC.to_be_bytes().to_vec();
        for w in [1u32, 1, 1] {
            images.extend(w.to_be_bytes());
        }
        images.push(9);
        assert_eq!(
            parse_images(&labels).err().as_deref(),
            Some(
                "is an IDX labels file (magic 0x00000801); expected an images file (magic 0x00000803), \
                 e.g. train-images-idx3-ubyte.gz"
            )
        );
        assert_eq!(
            parse_labels(&images).err().as_deref(),
            Some(
                "is an IDX images file (magic 0x00000803); expected a labels file (magic 0x00000801), \
                 e.g. train-labels-idx1-ubyte.gz"
            )
        );
        // And both accept their own kind.
        assert_eq!(parse_labels(&labels).unwrap(), vec![3, 4]);
        assert!(parse_images(&images).is_ok());
    }
}
