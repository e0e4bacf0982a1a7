//! The loss figure of a run (`loss.png`): left, the DSM loss on training and test batches
//! against the step (and below it, when the run measures samples, their FID and what the MNIST
//! classifier says of them: the share it is sure of, and the smallest and largest class shares);
//! right, the training loss at each noise level.
use std::path::Path;

use plotters::prelude::*;

use crate::error::Result;
use crate::sampling::images::{save_chart, DrawResult};
use crate::training::log::{LogRow, Split};

/// Figure size in pixels.
pub const SIZE: (u32, u32) = (1280, 520);

/// Noise levels named in the per-level legend, at most (the rows that fit under its title).
const LEGEND_ROWS: usize = 20;

/// Draws the loss curves of `rows` (noise levels `sigmas`) and writes a PNG to `path` atomically.
pub fn plot_losses(rows: &[LogRow], sigmas: &[f64], title: &str, path: &Path) -> Result<()> {
    save_chart(SIZE, path, "the loss plot", |buf| draw(buf, rows, sigmas, title))
}

fn draw(buf: &mut [u8], rows: &[LogRow], sigmas: &[f64], title: &str) -> DrawResult {
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    // One logged quantity against the step.
    let series = |split: Split| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.split == split && r.loss.is_finite())
            .map(|r| (r.step as f64, r.loss))
            .collect()
    };
    let fid = series(Split::Fid);
    let sure = series(Split::Sure);
    let classes = class_extremes(rows);
    let (left, fid_area, class_area) = if fid.is_empty() {
        (left, None, None)
    } else {
        let (top, bottom) = left.split_vertically((SIZE.1 - 40) / 2 + 20);
        if sure.is_empty() && classes.is_empty() {
            (top, Some(bottom), None)
        } else {
            let (fid_area, class_area) = bottom.split_horizontally(SIZE.0 / 4);
            (top, Some(fid_area), Some(class_area))
        }
    };
    // The per-level panel keeps a strip on its right for its legend (one entry per sigma).
    let (right, legend) = right.split_horizontally(SIZE.0 / 2 - 120);

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

    // Beside it: the classifier's verdict on the same samples. The dashed lines are the class
    // band of the book's MNIST bounds (every class between 4% and 16% of the samples).
    if let Some(area) = class_area {
        let purple = RGBColor(148, 103, 189);
        let red = RGBColor(214, 39, 40);
        let brown = RGBColor(140, 86, 75);
        let mut chart = ChartBuilder::on(&area)
            .caption("Classifier on the samples", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("share of samples")
            .x_label_formatter(&step_label)
            .x_labels(4)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        for band in [0.04, 0.16] {
            chart.draw_series(DashedLineSeries::new(
                [(0.0, band), (x_max, band)],
                5,
                4,
                RGBColor(128, 128, 128).stroke_width(1),
            ))?;
        }
        chart
            .draw_series(LineSeries::new(sure.iter().copied(), purple.stroke_width(2)))?
            .label("sure (p ≥ 0.9)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], purple.stroke_width(2)));
        let largest: Vec<(f64, f64)> = classes.iter().map(|c| (c.step, c.largest)).collect();
        let smallest: Vec<(f64, f64)> = classes.iter().map(|c| (c.step, c.smallest)).collect();
        chart
            .draw_series(LineSeries::new(largest.iter().copied(), red.stroke_width(2)))?
            .label("largest class (its digit above)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(smallest.iter().copied(), brown.stroke_width(2)))?
            .label("smallest class")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], brown.stroke_width(2)));
        chart.draw_series(classes.iter().map(|c| {
            Text::new(
                c.largest_class.to_string(),
                (c.step, c.largest + 0.09),
                ("sans-serif", 13),
            )
        }))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
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
    // At most LEGEND_ROWS entries fit the figure's height: with more levels, every k-th level and
    // the last one (the colours between them are in order).
    let every = sigmas.len().div_ceil(LEGEND_ROWS).max(1);
    let shown = sigmas
        .iter()
        .enumerate()
        .filter(|&(i, _)| i % every == 0 || i + 1 == sigmas.len());
    for (row, (i, sigma)) in shown.enumerate() {
        let y = 86 + 20 * row as i32;
        legend.draw(&PathElement::new(vec![(4, y), (26, y)], color(i).stroke_width(3)))?;
        legend.draw(&Text::new(format!("σ = {sigma:.3}"), (32, y - 8), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}

/// The smallest and largest class shares of one evaluation of samples.
#[derive(Debug, Clone, PartialEq)]
struct ClassExtremes {
    step: f64,
    smallest: f64,
    largest: f64,
    largest_class: usize,
}

/// The `class_<k>` rows of each logged step, reduced to their extremes, in step order.
fn class_extremes(rows: &[LogRow]) -> Vec<ClassExtremes> {
    let mut out: Vec<ClassExtremes> = Vec::new();
    for r in rows.iter().filter(|r| r.loss.is_finite()) {
        let Split::Class(k) = r.split else { continue };
        let step = r.step as f64;
        match out.last_mut() {
            Some(c) if c.step == step => {
                c.smallest = c.smallest.min(r.loss);
                if r.loss > c.largest {
                    (c.largest, c.largest_class) = (r.loss, k);
                }
            }
            _ => out.push(ClassExtremes {
                step,
                smallest: r.loss,
                largest: r.loss,
                largest_class: k,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, split: Split, loss: f64) -> LogRow {
        LogRow {
            step,
            split,
            loss,
            images_per_s: None,
            per_level: vec![None],
        }
    }

    #[test]
    fn class_extremes_per_evaluation() {
        // Two evaluations of three classes, with a train row between them.
        let rows = [
            row(10, Split::Fid, 300.0),
            row(10, Split::Class(0), 0.5),
            row(10, Split::Class(1), 0.2),
            row(10, Split::Class(2), 0.3),
            row(15, Split::Train, 0.9),
            row(20, Split::Class(0), 0.3),
            row(20, Split::Class(1), 0.1),
            row(20, Split::Class(2), 0.6),
        ];
        let e = class_extremes(&rows);
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].step, e[0].smallest, e[0].largest, e[0].largest_class),
            (10.0, 0.2, 0.5, 0)
        );
        assert_eq!(
            (e[1].step, e[1].smallest, e[1].largest, e[1].largest_class),
            (20.0, 0.1, 0.6, 2)
        );
    }

    #[test]
    fn the_classifier_panel_appears_with_its_rows() {
        // The sure share's colour is drawn only by the classifier panel (its line and legend).
        let purple_pixels = |rows: &[LogRow]| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("loss.png");
            plot_losses(rows, &[1.0], "test run", &path).unwrap();
            let img = image::open(&path).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), SIZE);
            img.pixels().filter(|p| p.0 == [148, 103, 189]).count()
        };
        let mut rows = vec![
            row(10, Split::Train, 0.9),
            row(20, Split::Test, 0.8),
            row(20, Split::Fid, 120.0),
        ];
        assert_eq!(purple_pixels(&rows), 0);
        for step in [20, 40] {
            rows.push(row(step, Split::Sure, 0.4));
            rows.extend((0..10).map(|k| row(step, Split::Class(k), if k == 9 { 0.19 } else { 0.09 })));
        }
        assert!(purple_pixels(&rows) > 50);
    }
}
