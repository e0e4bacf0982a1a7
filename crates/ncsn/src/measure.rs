//! Measuring sets of images: read them from whatever a user has (a `samples.safetensors` of
//! `ncsn sample`, an MNIST IDX file, a CIFAR-10 folder, a folder of PNG/JPEG images, or
//! statistics saved before), run them through a feature network of the `quality` crate in
//! batches, and keep what the Fréchet distance, the Inception score and the class histogram need.
//!
//! - [`Metric`]: which network (the MNIST classifier that ships with `quality`, or Inception-v3
//!   from a user-supplied weights file);
//! - [`read_source`]: a path to images or statistics, with the part of a data set ([`Part`]);
//! - [`measure`]: images to a [`Measurement`] (feature statistics and logits);
//! - [`quantize`]: sampler output to the 8-bit images a PNG would hold (what gets measured).
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use quality::classes::CONFIDENT_THRESHOLD as CONFIDENT;
use quality::features::{FeatureAccumulator, FeatureStats};
use quality::inception::InceptionV3;
use quality::mnist::MnistClassifier;
use quality::FeatureNetwork;

use crate::data::{self, DatasetKind, ImageSet};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Images per network batch when measuring (Inception at 299x299 needs ~60 MB per image of
/// activations; the MNIST classifier next to nothing).
pub const DEFAULT_BATCH: usize = 50;

/// Which network's features measure the images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// The small MNIST classifier whose weights ship with the `quality` crate (64-d features,
    /// 10 classes): the MNIST FID of this project. Needs 28x28 grayscale images.
    Mnist,
    /// Inception-v3 as pytorch-fid uses it (2048-d pool features, 1008 logits), from a
    /// safetensors file converted by `scripts/convert_inception_weights.py`: the FID and
    /// Inception score of the literature.
    Inception(PathBuf),
}

impl Metric {
    /// Opens the network on `device`.
    pub fn open(&self, device: &Device) -> Result<Box<dyn FeatureNetwork>> {
        Ok(match self {
            Metric::Mnist => Box::new(MnistClassifier::shipped(device)?),
            Metric::Inception(path) => Box::new(InceptionV3::load(path, device)?),
        })
    }

    /// A short name for messages and JSON: `mnist` or `inception`.
    pub fn short_name(&self) -> &'static str {
        match self {
            Metric::Mnist => "mnist",
            Metric::Inception(_) => "inception",
        }
    }
}

/// Which images of a data set: all, or one side of the split `ncsn train` makes (CIFAR-10's
/// training batches and `test_batch.bin`; for an MNIST IDX file or an image folder, the
/// fixed hold-out of [`data::holdout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Every image (for CIFAR-10: the 50,000 training images and the 10,000 test images).
    All,
    /// The images `ncsn train` trains on (CIFAR-10: the 50,000 of `data_batch_1..5.bin`, the
    /// reference of the paper's FID).
    Train,
    /// The images `ncsn train` holds out (CIFAR-10: `test_batch.bin`).
    Test,
}

/// What a path given to `ncsn fid` holds.
#[derive(Debug, Clone)]
pub enum Source {
    /// Images, as bytes.
    Images(ImageSet),
    /// Feature statistics saved before (`ncsn fid --save-stats`).
    Stats(FeatureStats),
}

/// Reads images or statistics from `path`:
///
/// - a `.safetensors` file: feature statistics if it holds `mu` and `sigma`, otherwise images
///   as `ncsn sample` writes them (the tensor `samples`, or the only 4-D tensor of the file:
///   `(N, C, H, W)`, values in `[0, 1]`; see [`quantize`]);
/// - a folder with `data_batch_1.bin`: CIFAR-10's binary version;
/// - another folder: every PNG/JPEG image under it, all of one size;
/// - another file: an MNIST IDX images file, gzip or plain.
///
/// `part` selects the training or held-out images of a data set (`test_fraction` is the
/// hold-out of an IDX file or a folder, 0.1 in `ncsn train`'s defaults); images from a
/// samples file or statistics have no parts and must be read with [`Part::All`].
pub fn read_source(path: &Path, part: Part, test_fraction: f64) -> Result<Source> {
    let is_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_safetensors && path.is_file() {
        if part != Part::All {
            return Err(Error::data(
                path,
                "is a safetensors file (samples or statistics), which has no training/test parts; \
                 leave the part at `all`",
            ));
        }
        if FeatureStats::is_stats_file(path) {
            return Ok(Source::Stats(FeatureStats::load(path)?));
        }
        return Ok(Source::Images(read_samples(path)?));
    }
    let set = match data::detect_kind(path)? {
        DatasetKind::Cifar10 => {
            let test = || data::cifar10::load_file(&path.join("test_batch.bin"));
            match part {
                Part::Train => data::cifar10::load_train(path)?,
                Part::Test => test()?,
                Part::All => {
                    let mut all = data::cifar10::load_train(path)?;
                    all.append(&test()?);
                    all
                }
            }
        }
        kind => {
            let all = match kind {
                DatasetKind::Mnist => data::idx::load_images(path)?,
                _ => read_folder(path)?,
            };
            let (train, test) = data::holdout(&all, test_fraction);
            match part {
                Part::All => all,
                Part::Train => train,
                Part::Test => test,
            }
        }
    };
    if set.is_empty() {
        return Err(Error::data(path, format!("holds no images in the {part:?} part")));
    }
    Ok(Source::Images(set))
}

/// The images of a `samples.safetensors` file: the tensor `samples`, or the only 4-D tensor.
fn read_samples(path: &Path) -> Result<ImageSet> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::data(path, format!("cannot be read as a safetensors file: {e}")))?;
    let tensor = match tensors.get("samples") {
        Some(t) => t,
        None => {
            let four_d: Vec<_> = tensors.iter().filter(|(_, t)| t.rank() == 4).collect();
            match four_d[..] {
                [(_, t)] => t,
                _ => {
                    let mut names: Vec<_> = tensors.keys().cloned().collect();
                    names.sort();
                    return Err(Error::data(
                        path,
                        format!(
                            "holds no tensor `samples` and {} 4-D tensors (of {names:?}); expected images \
                             (N, C, H, W) as `ncsn sample` writes them, or statistics (`mu`, `sigma`)",
                            four_d.len()
                        ),
                    ));
                }
            }
        }
    };
    quantize(tensor).map_err(|e| match e {
        Error::Argument(message) => Error::data(path, message),
        other => other,
    })
}

/// Sampler output `(N, C, H, W)` to the bytes a PNG of it would hold: clamped to `[0, 1]`,
/// times 255, rounded. What is measured is then exactly what a reader sees. NaN or infinite
/// values are an error (a diverged chain is not an image).
pub fn quantize(samples: &Tensor) -> Result<ImageSet> {
    let dims = samples.dims().to_vec();
    let [n, c, h, w] = dims[..] else {
        return Err(Error::Argument(format!(
            "images must be a 4-D tensor (N, C, H, W); got shape {dims:?}"
        )));
    };
    let values = samples.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(Error::Argument(format!(
            "{bad} of {} values are NaN or infinite: the chains diverged (the sampler's eps too large, or the \
             model trained too little); such samples cannot be measured",
            values.len()
        )));
    }
    // x in [0, 1] -> round(255 x), as an 8-bit PNG stores it.
    let pixels = values
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    ImageSet::new(pixels, c, h, w)
        .filter(|_| n > 0)
        .ok_or_else(|| Error::Argument(format!("no images: shape {dims:?}")))
}

/// Every PNG/JPEG image under `dir` at its own size (no resizing: the metric's network
/// decides what it accepts), grayscale images as 1 channel, others as RGB; all must share one
/// size and channel count, and the error names the first that does not.
fn read_folder(dir: &Path) -> Result<ImageSet> {
    let files = data::folder::image_files(dir)?;
    let mut set: Option<ImageSet> = None;
    for path in &files {
        let img = image::open(path).map_err(|e| Error::data(path, format!("cannot be decoded as an image: {e}")))?;
        let gray = matches!(
            img.color(),
            image::ColorType::L8 | image::ColorType::L16 | image::ColorType::La8 | image::ColorType::La16
        );
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (channels, hwc) = if gray {
            (1, img.to_luma8().into_raw())
        } else {
            (3, img.to_rgb8().into_raw())
        };
        let chw = data::folder::channel_major(&hwc, channels);
        let one = ImageSet::new(chw, channels, h, w).ok_or_else(|| Error::data(path, "is an empty image"))?;
        match &mut set {
            None => set = Some(one),
            Some(all) => {
                if !all.append(&one) {
                    let (c0, h0, w0) = all.dims();
                    return Err(Error::data(
                        path,
                        format!(
                            "is {channels}x{h}x{w} (channels x height x width), but the images before it in {} are \
                             {c0}x{h0}x{w0}; a set of images to measure must share one size",
                            dir.display()
                        ),
                    ));
                }
            }
        }
    }
    set.ok_or_else(|| Error::data(dir, "holds no .png, .jpg or .jpeg images; expected a folder of images"))
}

/// What measuring a set of images keeps: the statistics of its features (for the Fréchet
/// distance) and its logits, row-major `count x classes` (for the Inception score and the class
/// histogram).
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Mean and covariance of the features, with the count and the network's name.
    pub stats: FeatureStats,
    /// The logits of every image.
    pub logits: Vec<f32>,
    /// Number of classes (the logits' row length).
    pub classes: usize,
}

/// Runs `images` through `net` in batches of `batch_size` on `device`, showing progress as
/// `what` (e.g. the file name).
pub fn measure(
    images: &ImageSet,
    net: &dyn FeatureNetwork,
    batch_size: usize,
    device: &Device,
    progress: Progress,
    what: &str,
) -> Result<Measurement> {
    if batch_size == 0 {
        return Err(Error::config(
            "batch_size",
            "expected at least 1 image per batch, got 0",
        ));
    }
    net.check_dims(images.dims())?;
    let n = images.len();
    let bar = crate::progress::bar(progress, n as u64);
    bar.set_message(what.to_string());
    if progress == Progress::Lines {
        eprintln!("measuring {n} images of {what} with {}", net.name());
    }
    let mut acc = FeatureAccumulator::new(net.feature_dim(), net.name()).named(what);
    let mut logits = Vec::new();
    let mut classes = 0;
    for start in (0..n).step_by(batch_size) {
        let indices: Vec<usize> = (start..(start + batch_size).min(n)).collect();
        let x = images.select(&indices).to_tensor(device)?;
        let (features, batch_logits) = net.features_and_logits(&x)?;
        acc.add(&features)?;
        classes = batch_logits.dim(1)?;
        logits.extend(batch_logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        bar.inc(indices.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Measurement {
        stats: acc.finish()?,
        logits,
        classes,
    })
}

/// What one measured set looks like, beyond its statistics: for the MNIST metric the class
/// histogram and the classifier's confidence (are the samples digits, and of every class?);
/// for Inception the Inception score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SetSummary {
    /// Where the images came from.
    pub source: String,
    /// Number of images.
    pub count: usize,
    /// Share of the images whose top class is each class (MNIST metric).
    pub class_shares: Option<Vec<f64>>,
    /// Mean of the top-class probability (MNIST metric).
    pub mean_top_probability: Option<f64>,
    /// Share of images whose top-class probability is at least `quality::classes::CONFIDENT_THRESHOLD` (MNIST metric).
    pub confident_share: Option<f64>,
    /// Inception score, mean and standard deviation over the splits (Inception metric, with at
    /// least as many images as splits).
    pub inception_score: Option<(f64, f64)>,
}

impl SetSummary {
    /// Summarises `m` for `metric`; `splits` is the Inception score's.
    pub fn new(source: impl Into<String>, m: &Measurement, metric: &Metric, splits: usize) -> Result<Self> {
        let count = m.stats.count;
        let mut summary = SetSummary {
            source: source.into(),
            count,
            class_shares: None,
            mean_top_probability: None,
            confident_share: None,
            inception_score: None,
        };
        if m.logits.is_empty() {
            return Ok(summary);
        }
        match metric {
            Metric::Mnist => {
                let classes = quality::classes::ClassSummary::from_logits(&m.logits, m.classes)?;
                summary.class_shares = Some(classes.shares());
                summary.mean_top_probability = Some(classes.mean_top_probability);
                summary.confident_share = Some(classes.confident_share(CONFIDENT));
            }
            Metric::Inception(_) if count >= splits => {
                summary.inception_score =
                    Some(quality::inception_score::inception_score(&m.logits, m.classes, splits)?);
            }
            Metric::Inception(_) => {}
        }
        Ok(summary)
    }
}

impl std::fmt::Display for SetSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} images", self.source, self.count)?;
        if let Some((mean, sd)) = self.inception_score {
            write!(f, "; Inception score {mean:.3} ± {sd:.3}")?;
        }
        if let (Some(top), Some(confident)) = (self.mean_top_probability, self.confident_share) {
            write!(
                f,
                "; mean top-class probability {top:.3}, {:.1}% with p >= {CONFIDENT}",
                100.0 * confident
            )?;
        }
        if let Some(shares) = &self.class_shares {
            let cells: Vec<String> = shares
                .iter()
                .enumerate()
                .map(|(k, s)| format!("{k}:{:.1}%", 100.0 * s))
                .collect();
            write!(f, "\n  classes {}", cells.join(" "))?;
        }
        Ok(())
    }
}

/// The feature statistics of the images a run trains on (its `data`, the training part of
/// its hold-out split): the reference of `ncsn sample --fid` and of `fid_every`.
pub fn training_reference(
    config: &crate::TrainConfig,
    net: &dyn FeatureNetwork,
    device: &Device,
    progress: Progress,
) -> Result<FeatureStats> {
    let path = match (&config.data, config.dataset) {
        (Some(path), _) => path.clone(),
        (None, DatasetKind::Mnist) => data::shipped_mnist()?,
        (None, DatasetKind::Cifar10) => PathBuf::from(data::DEFAULT_CIFAR10),
        (None, DatasetKind::Images) => {
            return Err(Error::config("data", "dataset = \"images\" needs a folder of images"))
        }
    };
    let Source::Images(images) = read_source(&path, Part::Train, config.test_fraction)? else {
        return Err(Error::data(
            &path,
            "holds statistics; expected the run's training images",
        ));
    };
    Ok(measure(
        &images,
        net,
        DEFAULT_BATCH,
        device,
        progress,
        &path.display().to_string(),
    )?
    .stats)
}
