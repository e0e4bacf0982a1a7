//! A folder of PNG/JPEG images, so that users can train on their own data.
//!
//! Every `.png`, `.jpg` and `.jpeg` file under the folder (recursively, in sorted order) is
//! decoded, resized so that its shorter side is `size` and cropped to the centre square
//! (`image`'s `resize_to_fill`), and converted to RGB or grayscale. Other files are ignored.
use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::ImageSet;
use crate::error::{Error, Result};

/// The image files under `dir`, sorted.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Err(super::missing(dir));
    }
    crate::fsutil::require_kind(dir, true, "a folder of PNG/JPEG images (dataset = \"images\")")?;
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let path = entry.map_err(|e| Error::io(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_image(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_image(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    ["png", "jpg", "jpeg"].iter().any(|x| ext.eq_ignore_ascii_case(x))
}

/// Loads every image under `dir` as `channels x size x size` (channels 1 or 3).
pub fn load_folder(dir: &Path, size: usize, channels: usize) -> Result<ImageSet> {
    let files = image_files(dir)?;
    if files.is_empty() {
        return Err(Error::data(
            dir,
            "holds no .png, .jpg or .jpeg images; expected a folder of images",
        ));
    }
    let need = crate::limits::Need {
        key: "image_size",
        what: format!(
            "{} images of {channels}x{size}x{size} bytes from {}",
            files.len(),
            dir.display()
        ),
        bytes: crate::limits::product(&[files.len() as u128, channels as u128, size as u128, size as u128]),
    };
    crate::limits::check("loading the images", &[need])?;
    let mut pixels = Vec::with_capacity(files.len() * channels * size * size);
    for path in &files {
        pixels.extend(load_file(path, size, channels)?);
    }
    ImageSet::new(pixels, channels, size, size).ok_or_else(|| Error::data(dir, "no images"))
}

/// Loads one image file as `channels x size x size` bytes, channel-major (resized so that its
/// shorter side is `size`, centre-cropped, converted to grayscale or RGB).
pub fn load_file(path: &Path, size: usize, channels: usize) -> Result<Vec<u8>> {
    crate::fsutil::require_kind(path, false, "a PNG or JPEG image file")?;
    let img = image::open(path).map_err(|e| Error::data(path, format!("cannot be decoded as an image: {e}")))?;
    let img = img.resize_to_fill(size as u32, size as u32, FilterType::Triangle);
    let hwc = match channels {
        1 => img.to_luma8().into_raw(),
        _ => img.to_rgb8().into_raw(),
    };
    Ok(channel_major(&hwc, channels))
}

/// Interleaved `height x width x channels` bytes (as image files decode) to the channel-major
/// `channels x height x width` layout of [`ImageSet`].
pub fn channel_major(hwc: &[u8], channels: usize) -> Vec<u8> {
    (0..channels)
        .flat_map(|c| hwc.iter().skip(c).step_by(channels).copied())
        .collect()
}
