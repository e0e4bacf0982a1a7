//! Inpainting with annealed Langevin dynamics (the image inpainting experiment of Song & Ermon
//! 2019; its appendix states the algorithm): fill in the unobserved pixels of an image with a
//! score network trained on whole images, without retraining.
//!
//! ```text
//! m: mask, 1 = observed;  x_obs: the image;  x ~ U[0, 1]
//! for i = 1..=L:
//!     y_i = x_obs + sigma_i z,  z ~ N(0, I)          # observation perturbed to level i, once per level
//!     x <- m * y_i + (1 - m) * x
//!     for t = 1..=T:
//!         x <- x + alpha_i/2 s(x, i) + sqrt(alpha_i) z'
//!         x <- m * y_i + (1 - m) * x                  # the observed pixels stay at y_i
//! ```
//!
//! The observed pixels carry the same amount of noise as the rest of the chain at each level, so
//! the network always sees an image of the noise level it is conditioned on. At the end they
//! equal `x_obs + sigma_L z` (as in the reference implementation), not `x_obs` itself: with
//! `sigma_L = 0.01` that is within a few hundredths. [`InpaintProjection`] is this constraint as
//! a `langevin::Projection`; the chain is `langevin::sample_annealed`, with any
//! `langevin::NoiseConditionalScore` on images (the network: [`crate::model::ScoreNet`]).
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use langevin::{NoiseConditionalScore, Projection, Trajectory};
use rand::Rng;

use crate::config::DatasetKind;
use crate::data::{self, ImageSet};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sampling::images::{to_rgb_images, Figure};
use crate::sampling::{run_chains, SampleConfig};

/// Which pixels are observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskKind {
    /// The left half of every row is observed (the reference's inpainting), the right half is filled in.
    LeftHalf,
    /// Everything but the centre square (half the side) is observed.
    Center,
    /// A PNG of the model's image size: white (>= 128 in grayscale) = observed, black = filled in.
    File(PathBuf),
}

impl MaskKind {
    /// `left-half`, `center`, or else the path of a mask PNG.
    pub fn parse(text: &str) -> Self {
        match text {
            "left-half" => MaskKind::LeftHalf,
            "center" | "centre" => MaskKind::Center,
            path => MaskKind::File(PathBuf::from(path)),
        }
    }

    /// The mask `m` as an `f32` tensor `[1, 1, size, size]`, 1 = observed, 0 = to fill in.
    pub fn build(&self, size: usize, device: &Device) -> Result<Tensor> {
        let values: Vec<f32> = match self {
            MaskKind::LeftHalf => (0..size * size)
                .map(|k| f32::from(u8::from(k % size < size / 2)))
                .collect(),
            MaskKind::Center => {
                let hole = size / 4..size - size / 4;
                (0..size * size)
                    .map(|k| f32::from(u8::from(!(hole.contains(&(k / size)) && hole.contains(&(k % size))))))
                    .collect()
            }
            MaskKind::File(path) => {
                crate::fsutil::require_kind(path, false, "`left-half`, `center` or a mask PNG file")?;
                let img = image::open(path)
                    .map_err(|e| Error::data(path, format!("mask cannot be decoded as an image: {e}")))?
                    .to_luma8();
                if img.dimensions() != (size as u32, size as u32) {
                    return Err(Error::data(
                        path,
                        format!(
                            "mask is {}x{} pixels, but the model's images are {size}x{size}: expected a {size}x{size} \
                             PNG (white = observed, black = to fill in)",
                            img.width(),
                            img.height()
                        ),
                    ));
                }
                let values: Vec<f32> = img.pixels().map(|p| f32::from(u8::from(p.0[0] >= 128))).collect();
                if values.iter().all(|&v| v == 1.0) {
                    return Err(Error::data(
                        path,
                        "mask is white everywhere: every pixel is observed and there is nothing to fill in \
                         (black pixels are filled in)",
                    ));
                }
                values
            }
        };
        Ok(Tensor::from_vec(values, (1, 1, size, size), device)?)
    }
}

/// The inpainting constraint on a batch of chains: the observed pixels are replaced by the
/// observation perturbed to the current level, `y_i = x_obs + sigma_i z`, drawn once per level.
#[derive(Debug, Clone)]
pub struct InpaintProjection {
    observed: Tensor,
    mask: Tensor,
    perturbed: Option<Tensor>,
}

impl InpaintProjection {
    /// `observed`: `[B, C, H, W]`, the image each chain completes; `mask`: `[1, 1, H, W]` (or
    /// any shape broadcasting to it), 1 = observed.
    pub fn new(observed: Tensor, mask: &Tensor) -> Result<Self> {
        let mask = mask.broadcast_as(observed.shape())?.ne(0f32)?; // u8: 1 = observed
        Ok(Self {
            observed,
            mask,
            perturbed: None,
        })
    }

    /// The perturbed observation `y_i` of the current level (`None` before the first level).
    pub fn perturbed(&self) -> Option<&Tensor> {
        self.perturbed.as_ref()
    }
}

impl Projection<Tensor> for InpaintProjection {
    fn begin_level<R: Rng + ?Sized>(&mut self, _level: usize, sigma: f64, rng: &mut R) -> langevin::Result<()> {
        let z = langevin::randn_tensor(rng, self.observed.dims(), self.observed.dtype(), self.observed.device())?;
        self.perturbed = Some((&self.observed + (z * sigma)?)?); // y_i = x_obs + sigma_i z
        Ok(())
    }

    fn project(&mut self, x: Tensor) -> langevin::Result<Tensor> {
        match &self.perturbed {
            // x <- m * y_i + (1 - m) * x, as a selection (exact, whatever x holds)
            Some(y) => Ok(self.mask.where_cond(y, &x)?),
            None => Err(langevin::Error::Other(
                "inpainting: project() called before begin_level()".into(),
            )),
        }
    }
}

/// Completes each image of `observed` (`[N, C, H, W]` in `[0, 1]`) `per_image` times: chains
/// `j * per_image .. (j + 1) * per_image` complete image `j`. `config.n` is replaced by
/// `N * per_image`. Returns the completions `[N * per_image, C, H, W]` (not clamped) and the
/// snapshots if asked for. `image_dims` is `[C, H, W]` of the images `score` takes.
#[allow(clippy::too_many_arguments)]
pub fn inpaint<S: NoiseConditionalScore<Tensor> + ?Sized>(
    score: &S,
    image_dims: [usize; 3],
    observed: &Tensor,
    mask: &Tensor,
    per_image: usize,
    config: &SampleConfig,
    device: &Device,
    progress: Progress,
) -> Result<Trajectory<Tensor>> {
    let (n, c, h, w) = observed.dims4()?;
    let [mc, mh, mw] = image_dims;
    if [c, h, w] != image_dims {
        return Err(Error::config(
            "image",
            format!("images are {c}x{h}x{w} (channels x height x width) but the model expects {mc}x{mh}x{mw}"),
        ));
    }
    if per_image == 0 {
        return Err(Error::config("per_image", "expected at least 1, got 0"));
    }
    // Chain k completes image k / per_image.
    let index: Vec<u32> = (0..n * per_image).map(|k| (k / per_image) as u32).collect();
    let index = Tensor::from_vec(index, n * per_image, device)?;
    let repeated = observed
        .to_device(device)?
        .to_dtype(DType::F32)?
        .index_select(&index, 0)?;
    let mask = mask.to_device(device)?;
    let config = SampleConfig {
        n: n * per_image,
        ..config.clone()
    };
    run_chains(score, image_dims, &config, device, progress, |range| {
        InpaintProjection::new(repeated.narrow(0, range.start, range.len())?, &mask)
    })
}

/// `[N, C, size, size]` images in `[0, 1]` from image files (PNG/JPEG, resized and cropped as
/// the training loader does).
pub fn load_image_files(paths: &[PathBuf], channels: usize, size: usize, device: &Device) -> Result<Tensor> {
    let mut pixels = Vec::with_capacity(paths.len() * channels * size * size);
    for path in paths {
        pixels.extend(data::folder::load_file(path, size, channels)?);
    }
    let set = ImageSet::new(pixels, channels, size, size)
        .ok_or_else(|| Error::config("image", "expected at least one --image file"))?;
    set.to_tensor(device)
}

/// The first `n` images of a data set as `train` takes it (CIFAR-10 folder: its test batch;
/// MNIST IDX file or image folder: the images `train` holds out for testing, which are taken
/// first, then the others), checked against the model's shape.
pub fn load_dataset_images(
    path: &Path,
    n: usize,
    channels: usize,
    size: usize,
    test_fraction: f64,
    device: &Device,
) -> Result<Tensor> {
    let set = match data::detect_kind(path)? {
        DatasetKind::Cifar10 => {
            let test = path.join("test_batch.bin");
            if test.is_file() {
                data::cifar10::load_file(&test)?
            } else {
                data::cifar10::load_train(path)?
            }
        }
        kind => {
            let all = match kind {
                DatasetKind::Mnist => data::idx::load_images(path)?,
                _ => data::folder::load_folder(path, size, channels)?,
            };
            let (train, mut test) = data::holdout(&all, test_fraction);
            test.append(&train);
            test
        }
    };
    let (c, h, w) = set.dims();
    if (c, h, w) != (channels, size, size) {
        return Err(Error::data(
            path,
            format!(
                "images are {c}x{h}x{w} (channels x height x width), but the model expects {channels}x{size}x{size}"
            ),
        ));
    }
    if n > set.len() {
        return Err(Error::data(
            path,
            format!("holds {} images, fewer than the {n} asked for (--n)", set.len()),
        ));
    }
    set.select(&(0..n).collect::<Vec<_>>()).to_tensor(device)
}

/// The observed part of each image, the unobserved pixels shown mid-grey (for display).
pub fn masked_display(observed: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let gray = observed.ones_like()?.affine(0.5, 0.0)?;
    Ok(mask
        .broadcast_as(observed.shape())?
        .ne(0f32)?
        .where_cond(observed, &gray)?)
}

/// The inpainting figure: one row per image, columns "masked input", the completions, "original".
pub fn figure(
    observed: &Tensor,
    mask: &Tensor,
    completions: &Tensor,
    per_image: usize,
    scale: u32,
    title: String,
) -> Result<Figure> {
    let n = observed.dim(0)?;
    if completions.dim(0)? != n * per_image {
        return Err(Error::Argument(format!(
            "inpainting figure: expected {} completions ({n} images x {per_image}), got {}",
            n * per_image,
            completions.dim(0)?
        )));
    }
    let masked = to_rgb_images(&masked_display(observed, mask)?, scale)?;
    let originals = to_rgb_images(observed, scale)?;
    let done = to_rgb_images(completions, scale)?;
    let rows: Vec<Vec<RgbImage>> = masked
        .into_iter()
        .zip(originals)
        .enumerate()
        .map(|(j, (m, o))| {
            let mut row = vec![m];
            row.extend(done[j * per_image..(j + 1) * per_image].iter().cloned());
            row.push(o);
            row
        })
        .collect();
    let mut column_titles = vec!["input".to_string()];
    column_titles.extend((1..=per_image).map(|k| format!("#{k}")));
    column_titles.push("original".into());
    Ok(Figure {
        title,
        column_titles,
        row_labels: Vec::new(),
        rows,
    })
}
