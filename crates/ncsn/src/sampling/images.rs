//! Pictures of image tensors: grids of samples (PNG), labelled figures (rows of tiles with
//! captions), and the sampling chain as an animated GIF.
//!
//! The sampler works on unbounded values: Langevin noise pushes pixels outside `[0, 1]`. Pixels
//! are clamped to `[0, 1]` here, for display only (`byte = round(255 * clamp(x, 0, 1))`); the
//! tensors themselves are never clamped.
use std::path::Path;

use candle_core::{DType, Tensor};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, Rgb, RgbImage};
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, write_atomic_with};

/// Pixels between tiles, and around a grid.
pub const PAD: u32 = 2;
/// Colour of the gaps between tiles.
pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
/// Height of a caption line in labelled figures, pixels.
const LINE: u32 = 18;
/// Font size of captions, pixels.
const FONT_SIZE: u32 = 13;

/// The images of a batch `[B, C, H, W]` (C = 1 or 3, any range) as RGB pictures, each pixel
/// repeated `scale` times in both directions (nearest neighbour, so pixels stay visible).
pub fn to_rgb_images(batch: &Tensor, scale: u32) -> Result<Vec<RgbImage>> {
    let (b, c, h, w) = batch.dims4()?;
    if c != 1 && c != 3 {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "images: expected 1 or 3 channels, got {c}"
        ))));
    }
    let scale = scale.max(1);
    // Display only: clamp to [0, 1], then to bytes.
    let values = batch
        .to_dtype(DType::F32)?
        .clamp(0f32, 1f32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let byte = |v: f32| (v * 255.0).round() as u8;
    let mut out = Vec::with_capacity(b);
    for i in 0..b {
        let image = &values[i * c * h * w..(i + 1) * c * h * w];
        let pixel = |y: usize, x: usize| -> Rgb<u8> {
            // Channel-major [C, H, W]: channel k of pixel (y, x) is at (k * H + y) * W + x.
            let at = |k: usize| byte(image[(k * h + y) * w + x]);
            if c == 1 {
                Rgb([at(0); 3])
            } else {
                Rgb([at(0), at(1), at(2)])
            }
        };
        out.push(RgbImage::from_fn(w as u32 * scale, h as u32 * scale, |x, y| {
            pixel((y / scale) as usize, (x / scale) as usize)
        }));
    }
    Ok(out)
}

/// Tiles equally sized `images` row by row, `columns` to a row, with [`PAD`] pixels between and
/// around them.
pub fn tile(images: &[RgbImage], columns: usize) -> RgbImage {
    let Some(first) = images.first() else {
        return RgbImage::from_pixel(1, 1, BACKGROUND);
    };
    let (w, h) = first.dimensions();
    let columns = columns.clamp(1, images.len());
    let rows = images.len().div_ceil(columns);
    let mut grid = RgbImage::from_pixel(
        PAD + columns as u32 * (w + PAD),
        PAD + rows as u32 * (h + PAD),
        BACKGROUND,
    );
    for (k, img) in images.iter().enumerate() {
        let (row, col) = ((k / columns) as u32, (k % columns) as u32);
        image::imageops::replace(
            &mut grid,
            img,
            i64::from(PAD + col * (w + PAD)),
            i64::from(PAD + row * (h + PAD)),
        );
    }
    grid
}

/// A batch `[B, C, H, W]` as one grid picture: `ceil(sqrt(B))` columns.
pub fn grid(batch: &Tensor, scale: u32) -> Result<RgbImage> {
    let images = to_rgb_images(batch, scale)?;
    let columns = (images.len() as f64).sqrt().ceil() as usize;
    Ok(tile(&images, columns))
}

/// A figure of tiles in rows, with an optional title, a caption over each column and a label
/// left of each row (all optional: empty strings draw nothing).
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// One line above everything.
    pub title: String,
    /// Captions over the columns (may be shorter than a row).
    pub column_titles: Vec<String>,
    /// Labels left of the rows (may be empty).
    pub row_labels: Vec<String>,
    /// The tiles, row by row; all tiles have the same size.
    pub rows: Vec<Vec<RgbImage>>,
}

impl Figure {
    /// Draws the figure.
    pub fn render(&self) -> Result<RgbImage> {
        workbench::font::register();
        let (tw, th) = self
            .rows
            .iter()
            .flatten()
            .next()
            .map(RgbImage::dimensions)
            .unwrap_or((1, 1));
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0).max(1) as u32;
        let font = ("sans-serif", FONT_SIZE).into_font();
        let text_width = |s: &str| font.box_size(s).map(|(w, _)| w).unwrap_or(8 * s.len() as u32);
        let label_w = self.row_labels.iter().map(|s| text_width(s)).max().map_or(0, |w| w + 8);
        let title_h = if self.title.is_empty() { 0 } else { LINE + 4 };
        let header_h = if self.column_titles.iter().all(String::is_empty) {
            0
        } else {
            LINE
        };
        let grid_w = PAD + columns * (tw + PAD);
        let width = (label_w + grid_w).max(text_width(&self.title) + 2 * PAD);
        let height = title_h + header_h + PAD + self.rows.len() as u32 * (th + PAD);
        let mut canvas = RgbImage::from_pixel(width, height, BACKGROUND);
        let x0 = label_w;
        let y0 = title_h + header_h;
        for (r, row) in self.rows.iter().enumerate() {
            for (c, img) in row.iter().enumerate() {
                let x = x0 + PAD + c as u32 * (tw + PAD);
                let y = y0 + PAD + r as u32 * (th + PAD);
                image::imageops::replace(&mut canvas, img, i64::from(x), i64::from(y));
            }
        }
        // Text: plotters draws into the same RGB buffer.
        let (w, h) = canvas.dimensions();
        let mut buf = canvas.into_raw();
        {
            let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            let style = ("sans-serif", FONT_SIZE).into_font().color(&BLACK);
            let draw = |s: &str, x: u32, y: u32| -> Result<()> {
                if s.is_empty() {
                    return Ok(());
                }
                area.draw(&Text::new(s.to_string(), (x as i32, y as i32), style.clone()))
                    .map_err(|e| Error::Candle(candle_core::Error::Msg(format!("drawing text: {e}"))))
            };
            draw(&self.title, PAD + 2, 4)?;
            for (c, t) in self.column_titles.iter().enumerate() {
                // Centred over its column (left-aligned when wider than the tile).
                let x = x0 + PAD + c as u32 * (tw + PAD);
                let x = x + tw.saturating_sub(text_width(t)) / 2;
                draw(t, x, title_h + 2)?;
            }
            for (r, t) in self.row_labels.iter().enumerate() {
                let y = y0 + PAD + r as u32 * (th + PAD) + th / 2;
                draw(t, 4, y.saturating_sub(FONT_SIZE / 2 + 1))?;
            }
            area.present()
                .map_err(|e| Error::Candle(candle_core::Error::Msg(format!("drawing text: {e}"))))?;
        }
        RgbImage::from_raw(w, h, buf)
            .ok_or_else(|| Error::Candle(candle_core::Error::Msg("figure buffer has a wrong size".into())))
    }
}

/// What a plotters drawing function returns.
pub type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A chart of `size` pixels: `draw` paints it into an RGB buffer of that size (plotters'
/// `BitMapBackend::with_buffer`), and the picture is written as a PNG to `path` atomically;
/// `what` names the chart in the error when drawing fails.
pub fn save_chart(size: (u32, u32), path: &Path, what: &str, draw: impl FnOnce(&mut [u8]) -> DrawResult) -> Result<()> {
    workbench::font::register();
    let (w, h) = size;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    draw(&mut buf).map_err(|e| Error::output(path, format!("cannot draw {what}: {e}")))?;
    let img = RgbImage::from_raw(w, h, buf).ok_or_else(|| Error::output(path, "plot buffer has a wrong size"))?;
    save_png(&img, path)
}

/// Writes `img` as a PNG to `path` atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageOutputFormat::Png)
        .map_err(|e| Error::data(path, format!("cannot encode PNG: {e}")))?;
    Ok(write_atomic(path, &png)?)
}

/// Writes `frames` (same size) as an animated GIF that loops, `delay_ms` per frame and
/// `last_ms` on the last one, to `path` atomically.
pub fn save_gif(frames: &[RgbImage], delay_ms: u32, last_ms: u32, path: &Path) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let encode = |e: image::ImageError| Error::data(path, format!("cannot encode GIF: {e}"));
        // Speed 10: the encoder's palette quantisation (NeuQuant) at its usual trade-off.
        let mut gif = GifEncoder::new_with_speed(std::io::BufWriter::new(file), 10);
        gif.set_repeat(Repeat::Infinite).map_err(encode)?;
        for (k, f) in frames.iter().enumerate() {
            let ms = if k + 1 == frames.len() { last_ms } else { delay_ms };
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            gif.encode_frame(Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(ms, 1)))
                .map_err(encode)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pixels_are_clamped_for_display_and_laid_out_channel_major() {
        // One 1x2 RGB image: pixel 0 = (-0.5, 0.5, 2.0) -> (0, 128, 255); pixel 1 = (1, 0, 0.2).
        let t = Tensor::from_vec(vec![-0.5f32, 1.0, 0.5, 0.0, 2.0, 0.2], (1, 3, 1, 2), &Device::Cpu).unwrap();
        let imgs = to_rgb_images(&t, 2).unwrap();
        assert_eq!(imgs[0].dimensions(), (4, 2));
        assert_eq!(imgs[0].get_pixel(0, 0), &Rgb([0, 128, 255]));
        assert_eq!(imgs[0].get_pixel(1, 1), &Rgb([0, 128, 255]), "scaled by repetition");
        assert_eq!(imgs[0].get_pixel(2, 0), &Rgb([255, 0, 51]));
    }

    #[test]
    fn tile_places_images_row_by_row() {
        let a = RgbImage::from_pixel(3, 2, Rgb([1, 1, 1]));
        let b = RgbImage::from_pixel(3, 2, Rgb([2, 2, 2]));
        let c = RgbImage::from_pixel(3, 2, Rgb([3, 3, 3]));
        let g = tile(&[a, b, c], 2);
        assert_eq!(g.dimensions(), (PAD + 2 * (3 + PAD), PAD + 2 * (2 + PAD)));
        assert_eq!(g.get_pixel(PAD, PAD), &Rgb([1, 1, 1]));
        assert_eq!(g.get_pixel(PAD + 3 + PAD, PAD), &Rgb([2, 2, 2]));
        assert_eq!(g.get_pixel(PAD, PAD + 2 + PAD), &Rgb([3, 3, 3]));
        assert_eq!(g.get_pixel(0, 0), &BACKGROUND);
    }

    #[test]
    fn figure_draws_text_and_tiles() {
        let tile_img = RgbImage::from_pixel(20, 20, Rgb([0, 0, 0]));
        let fig = Figure {
            title: "title".into(),
            column_titles: vec!["a".into(), "b".into()],
            row_labels: vec!["row one".into()],
            rows: vec![vec![tile_img.clone(), tile_img]],
        };
        let img = fig.render().unwrap();
        // Some non-white pixel in the title line (text was drawn).
        let title_ink = (0..img.width()).any(|x| (0..LINE).any(|y| img.get_pixel(x, y) != &BACKGROUND));
        assert!(title_ink, "the title is drawn");
        assert!(img.width() > 2 * 20, "room for the row label");
    }
}
