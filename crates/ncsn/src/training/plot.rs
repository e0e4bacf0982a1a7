//! The loss figure of a run (`loss.png`): left, the DSM loss on training and test batches
//! against the step (and below it, when the run measures it, the FID of samples); right, the
//! training loss at each noise level.
use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::training::log::{LogRow, Split};

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (1280, 520);

/// Draws the loss curves of `rows` (noise levels `sigmas`) and writes a PNG to `path` atomically.
pub fn plot_losses(rows: &[LogRow], sigmas: &[f64], title: &str, path: &Path) -> Result<()> {
    workbench::font::register();
    let (w, h) = SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    draw(&mut buf, rows, sigmas, title).map_err(|e| Error::output(path, format!("cannot draw the loss plot: {e}")))?;
    let img =
        image::RgbImage::from_raw(w, h, buf).ok_or_else(|| Error::output(path, "plot buffer has a wrong size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageOutputFormat::Png)
        .map_err(|e| Error::output(path, format!("cannot encode PNG: {e}")))?;
    Ok(write_atomic(path, &png)?)
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(buf: &mut [u8], rows: &[LogRow], sigmas: &[f64], title: &str) -> DrawResult {
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let fid: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.split == Split::Fid && r.loss.is_finite())
        .map(|r| (r.step as f64, r.loss))
        .collect();
    let (left, fid_area) = if fid.is_empty() {
        (left, None)
    } else {
        let (top, bottom) = left.split_vertically((SIZE.1 - 40) / 2 + 20);
        (top, Some(bottom))
    };
    // The per-level panel keeps a strip on its right for its legend (one entry per sigma).
    let (right, legend) = right.split_horizontally(SIZE.0 / 2 - 120);

    let series = |split: Split| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.split == split && r.loss.is_finite())
            .map(|r| (r.step as f64, r.loss))
            .collect()
    };
    let train = series(Split::Train);
    let test = series(Split::Test);
    let per_level: Vec<Vec<(f64, f64)>> = (0..sigmas.len())
        .map(|i| {
            rows.iter()
                .filter(|r| r.split == Split::Train)
                .filter_map(|r| r.per_level.get(i).copied().flatten().map(|v| (r.step as f64, v)))
                .filter(|(_, v)| v.is_finite())
                .collect()
        })
        .collect();

    let x_max = train
        .iter()
        .chain(&test)
        .chain(&fid)
        .map(|p| p.0)
        .fold(1.0f64, f64::max);
    // Linear axes from 0: the loss starts near 1/2 D (the noise itself) and falls a few-fold.
    let y_max = |pts: &mut dyn Iterator<Item = f64>| pts.fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let step_label = |x: &f64| format!("{x:.0}");

    // Left: train and test loss.
    let top = y_max(&mut train.iter().chain(&test).map(|p| p.1));
    let mut chart = ChartBuilder::on(&left)
        .caption("Denoising score matching loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("loss  ½ E‖σ s(x + σz, σ) + z‖²")
        .x_label_formatter(&step_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(LineSeries::new(train.iter().copied(), blue.stroke_width(2)))?
        .label("train (mean since previous row)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(test.iter().copied(), orange.stroke_width(2)))?
        .label("test (one batch)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
    chart.draw_series(test.iter().map(|&p| Circle::new(p, 3, orange.filled())))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;

    // Below: the FID of samples (lower is better).
    if let Some(area) = fid_area {
        let green = RGBColor(44, 160, 44);
        let top = y_max(&mut fid.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&area)
            .caption("FID of samples (MNIST classifier features)", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("FID")
            .x_label_formatter(&step_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        chart.draw_series(LineSeries::new(fid.iter().copied(), green.stroke_width(2)))?;
        chart.draw_series(fid.iter().map(|&p| Circle::new(p, 3, green.filled())))?;
    }

    // Right: training loss per noise level.
    let top = y_max(&mut per_level.iter().flatten().map(|p| p.1));
    let mut chart = ChartBuilder::on(&right)
        .caption("Training loss per noise level", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("loss at σ_i")
        .x_label_formatter(&step_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let n = sigmas.len().max(2) as f64;
    // From blue (largest sigma) to red (smallest).
    let color = |i: usize| {
        let t = i as f64 / (n - 1.0);
        RGBColor(
            (30.0 + 210.0 * t) as u8,
            (80.0 * (1.0 - t) + 40.0) as u8,
            (220.0 * (1.0 - t)) as u8,
        )
    };
    for (i, pts) in per_level.iter().enumerate() {
        chart.draw_series(LineSeries::new(pts.iter().copied(), color(i).stroke_width(2)))?;
    }
    legend.draw(&Text::new("noise level", (4, 60), ("sans-serif", 14)))?;
    for (i, sigma) in sigmas.iter().enumerate() {
        let y = 86 + 20 * i as i32;
        legend.draw(&PathElement::new(vec![(4, y), (26, y)], color(i).stroke_width(3)))?;
        legend.draw(&Text::new(format!("σ = {sigma:.3}"), (32, y - 8), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}
