//! Image data: CIFAR-10 (binary version), MNIST (IDX) and folders of PNG/JPEG images, held in
//! memory as bytes, and the batches the training loop draws from them.
//!
//! - [`cifar10`]: the `cifar-10-batches-bin` folder (1 label byte + 3,072 pixel bytes a record);
//! - [`idx`]: MNIST's IDX files, gzip or plain;
//! - [`folder`]: any PNG/JPEG images, resized and cropped to the model's size;
//! - [`batches`]: shuffling every epoch, pixels to `[0, 1]`, dequantisation and flips.
pub mod batches;
pub mod cifar10;
pub mod folder;
pub mod idx;

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use batches::{Batcher, LoaderState};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which kind of data a run trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// CIFAR-10's binary version: a `cifar-10-batches-bin` folder (32x32 RGB).
    Cifar10,
    /// An MNIST IDX images file, gzip or plain (28x28 grayscale).
    Mnist,
    /// A folder of PNG/JPEG images of any size, resized and cropped to `image_size`.
    Images,
}

impl DatasetKind {
    /// The lowercase name used in configs and run folder names.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Images => "images",
        }
    }
}

/// Which images a run trains and tests on, and the shape and count they must have (the data
/// part of a run's configuration: `crate::config::TrainConfig::data_spec`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// Kind of data.
    pub dataset: DatasetKind,
    /// Training data; `None`: CIFAR-10's default folder, or the MNIST digits shipped in `data/`.
    pub data: Option<PathBuf>,
    /// Test data; `None`: CIFAR-10's `test_batch.bin`, otherwise a held-out fraction.
    pub test_data: Option<PathBuf>,
    /// Fraction of the training images held out when there is no test file.
    pub test_fraction: f64,
    /// Image channels.
    pub channels: usize,
    /// Image height = width.
    pub image_size: usize,
    /// Images per training batch: the training set must hold at least this many.
    pub batch_size: usize,
}

/// Images in memory as bytes, channel-major: image `i`, channel `c`, row `y`, column `x` is
/// `pixels[((i * channels + c) * height + y) * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pixels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
}

impl ImageSet {
    /// Wraps `pixels` (a whole number of `channels x height x width` images).
    pub fn new(pixels: Vec<u8>, channels: usize, height: usize, width: usize) -> Option<Self> {
        let per = channels * height * width;
        (per > 0 && pixels.len().is_multiple_of(per)).then_some(Self {
            pixels,
            channels,
            height,
            width,
        })
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.image_len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }
    /// Bytes per image, `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// `(channels, height, width)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }
    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }
    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet { pixels, ..*self }
    }
    /// The images as `(N, C, H, W)` values `byte / 255` in `[0, 1]`.
    pub fn to_tensor(&self, device: &candle_core::Device) -> Result<candle_core::Tensor> {
        let values: Vec<f32> = self.pixels.iter().map(|&b| f32::from(b) / 255.0).collect();
        let (c, h, w) = self.dims();
        Ok(candle_core::Tensor::from_vec(values, (self.len(), c, h, w), device)?)
    }
    /// Appends the images of `other` (same dimensions).
    pub fn append(&mut self, other: &ImageSet) -> bool {
        if other.dims() != self.dims() {
            return false;
        }
        self.pixels.extend_from_slice(&other.pixels);
        true
    }
}

/// Seed of the train/test hold-out split: fixed, so that every run (whatever its `seed`) is
/// tested on the same images.
const HOLDOUT_SEED: u64 = 0x5eed_7e57;

/// The indices `(train, test)` of the hold-out split of `n` items: a fixed random choice of
/// `ceil(fraction * n)` test items (none when `fraction` is 0, and always at least one training
/// item). It depends only on `n` and `fraction`, so that images and their labels (or any other
/// per-image data) split alike.
pub fn holdout_indices(n: usize, fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let n_test = ((fraction * n as f64).ceil() as usize).min(n.saturating_sub(1));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(HOLDOUT_SEED));
    let train = order.split_off(n_test); // order keeps the first n_test: the test items
    (train, order)
}

/// Splits `set` into (train, test) by [`holdout_indices`].
pub fn holdout(set: &ImageSet, fraction: f64) -> (ImageSet, ImageSet) {
    let (train, test) = holdout_indices(set.len(), fraction);
    (set.select(&train), set.select(&test))
}

/// Where the shipped 5,000 MNIST digits are expected, relative to the working directory.
pub const SHIPPED_MNIST: &str = "data/mnist-5k-images-idx3-ubyte.gz";
/// Where the CIFAR-10 folder is expected by default.
pub const DEFAULT_CIFAR10: &str = "data/cifar-10-batches-bin";

/// How to get CIFAR-10, for error messages.
pub const CIFAR10_HINT: &str = "To train on CIFAR-10, download the \"CIFAR-10 binary version\" \
(cifar-10-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, extract it with \
`tar xzf cifar-10-binary.tar.gz -C data/` so that data/cifar-10-batches-bin/data_batch_1.bin exists, \
and run `ncsn train --data data/cifar-10-batches-bin`";

/// The shipped MNIST digits: `data/...` in the working directory, else in the repository this
/// crate was built from. The error says where to put CIFAR-10 and how to get it.
pub fn shipped_mnist() -> Result<PathBuf> {
    find_shipped_mnist(&[
        PathBuf::from(SHIPPED_MNIST),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(SHIPPED_MNIST),
    ])
}

/// The first of `candidates` that is a file, or the error of [`shipped_mnist`].
pub fn find_shipped_mnist(candidates: &[PathBuf]) -> Result<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Error::data(
            SHIPPED_MNIST,
            format!(
                "no data was given and the MNIST digits that ship with the repository are not there. \
                 Pass --data (a cifar-10-batches-bin folder, an MNIST IDX file or a folder of images). {CIFAR10_HINT}"
            ),
        )
    })
}

/// Guesses the kind of data at `path`: a folder with `data_batch_1.bin` is CIFAR-10, another
/// folder holds images, a file is an MNIST IDX file.
pub fn detect_kind(path: &Path) -> Result<DatasetKind> {
    if path.is_dir() {
        if path.join("data_batch_1.bin").is_file() {
            Ok(DatasetKind::Cifar10)
        } else {
            Ok(DatasetKind::Images)
        }
    } else if path.is_file() {
        Ok(DatasetKind::Mnist)
    } else {
        Err(missing(path))
    }
}

/// The error for a data path that does not exist.
pub fn missing(path: &Path) -> Error {
    Error::data(
        path,
        format!(
            "does not exist; expected a cifar-10-batches-bin folder, an MNIST IDX file (.gz or plain) \
             or a folder of PNG/JPEG images. {CIFAR10_HINT}"
        ),
    )
}

/// Loads the training and test images of `config`, checking that their size is the model's.
pub fn load_train_test(config: &DataSpec) -> Result<(ImageSet, ImageSet)> {
    let size = config.image_size;
    let (train, test, source) = match config.dataset {
        DatasetKind::Cifar10 => {
            let dir = config.data.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CIFAR10));
            let train = cifar10::load_train(&dir)?;
            let test = match &config.test_data {
                Some(path) => cifar10::load_file(path)?,
                None => cifar10::load_file(&dir.join("test_batch.bin"))?,
            };
            (train, test, dir)
        }
        DatasetKind::Mnist => {
            let path = match &config.data {
                Some(path) => path.clone(),
                None => shipped_mnist()?,
            };
            let all = idx::load_images(&path)?;
            let (train, test) = match &config.test_data {
                Some(test) => (all, idx::load_images(test)?),
                None => holdout(&all, config.test_fraction),
            };
            (train, test, path)
        }
        DatasetKind::Images => {
            let dir = config
                .data
                .clone()
                .ok_or_else(|| Error::config("data", "dataset = \"images\" needs a folder of images (--data DIR)"))?;
            let all = folder::load_folder(&dir, size, config.channels)?;
            let (train, test) = match &config.test_data {
                Some(test) => (all, folder::load_folder(test, size, config.channels)?),
                None => holdout(&all, config.test_fraction),
            };
            (train, test, dir)
        }
    };
    for set in [&train, &test] {
        let (c, h, w) = set.dims();
        if set.is_empty() {
            continue;
        }
        if (c, h, w) != (config.channels, size, size) {
            return Err(Error::data(
                &source,
                format!(
                    "images are {h}x{w} with {c} channel(s), but the model expects {size}x{size} with {} \
                     (set image_size = {h} and channels = {c})",
                    config.channels
                ),
            ));
        }
    }
    if train.len() < config.batch_size {
        return Err(Error::config(
            "batch_size",
            format!(
                "expected at most the number of training images ({} in {}), got {}",
                train.len(),
                source.display(),
                config.batch_size
            ),
        ));
    }
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_a_fixed_partition() {
        let set = ImageSet::new((0..100u8).collect(), 1, 1, 1).unwrap();
        let (train, test) = holdout(&set, 0.1);
        assert_eq!((train.len(), test.len()), (90, 10));
        let mut all: Vec<u8> = (0..train.len()).map(|i| train.image(i)[0]).collect();
        all.extend((0..test.len()).map(|i| test.image(i)[0]));
        all.sort();
        assert_eq!(all, (0..100u8).collect::<Vec<_>>(), "every image in exactly one part");
        assert_eq!(
            holdout(&set, 0.1),
            (train, test),
            "the split does not depend on anything else"
        );
        assert_eq!(holdout(&set, 0.0).1.len(), 0);
        // The indices are the split: image i of the test part is item test[i].
        let (train_idx, test_idx) = holdout_indices(100, 0.1);
        let (train, test) = holdout(&set, 0.1);
        assert_eq!(
            test_idx.iter().map(|&i| i as u8).collect::<Vec<_>>(),
            (0..10).map(|i| test.image(i)[0]).collect::<Vec<_>>()
        );
        assert_eq!(
            train_idx.iter().map(|&i| i as u8).collect::<Vec<_>>(),
            (0..90).map(|i| train.image(i)[0]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn without_shipped_mnist_the_error_says_how_to_get_cifar10() {
        let err = find_shipped_mnist(&[PathBuf::from("/nonexistent/mnist.gz")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(SHIPPED_MNIST) && err.contains("cifar-10-binary.tar.gz"),
            "{err}"
        );
        assert!(err.contains("data/cifar-10-batches-bin"), "{err}");
        assert!(shipped_mnist().is_ok(), "the repository ships the digits");
    }

    #[test]
    fn missing_data_path_names_it_and_how_to_get_cifar() {
        let err = detect_kind(Path::new("/nonexistent/cifar-10-batches-bin"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/cifar-10-batches-bin") && err.contains("cs.toronto.edu"),
            "{err}"
        );
    }
}
