//! Drawing pieces shared by the figures, generic over the plotters backend (PNG, SVG, GIF).
use super::{iso_lines, plot_err, viridis, Grid, FONT};
use anyhow::Result;
use ndarray::{Array2, ArrayView2, Axis};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// A 2D chart with `f64` axes.
pub type Chart2d<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Colours for series, distinguishable in print (Tableau-like).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// A chart over `[lo, hi]^2` with a title and axes `x₁`, `x₂`. Give it a square area so that
/// arrows keep their angles.
pub fn square_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    (lo, hi): (f64, f64),
    title_size: u32,
) -> Result<Chart2d<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, title_size))
        .margin(8)
        .margin_right(16)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x₁")
        .y_desc("x₂")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_labels(5)
        .y_labels(5)
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// Fills each grid cell with `color(t)`, `t = (value - vmin) / (vmax - vmin)`.
pub fn draw_heatmap<DB: DrawingBackend>(
    chart: &mut Chart2d<'_, DB>,
    grid: &Grid,
    values: &Array2<f64>,
    (vmin, vmax): (f64, f64),
    color: impl Fn(f64) -> RGBColor,
) -> Result<()> {
    let h = grid.cell() / 2.0;
    let span = if vmax > vmin { vmax - vmin } else { 1.0 };
    let cells = values.indexed_iter().map(|((iy, ix), v)| {
        let (cx, cy) = (grid.center(ix), grid.center(iy));
        // overlap cells by a hair so no seams show between them
        Rectangle::new(
            [(cx - h * 1.02, cy - h * 1.02), (cx + h * 1.02, cy + h * 1.02)],
            color((v - vmin) / span).filled(),
        )
    });
    chart.draw_series(cells).map_err(plot_err)?;
    Ok(())
}

/// Draws the iso-lines of `values` at each level in `levels` with `style`.
pub fn draw_contours<DB: DrawingBackend>(
    chart: &mut Chart2d<'_, DB>,
    grid: &Grid,
    values: &Array2<f64>,
    levels: &[f64],
    style: ShapeStyle,
) -> Result<()> {
    for &level in levels {
        let segs = iso_lines(grid, values, level);
        chart
            .draw_series(segs.into_iter().map(|s| PathElement::new(vec![s[0], s[1]], style)))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// Arrows from each point `p` to `p + v` (`v` already scaled to data units), with a small head.
pub fn draw_arrows<DB: DrawingBackend>(
    chart: &mut Chart2d<'_, DB>,
    points: ArrayView2<f64>,
    vectors: ArrayView2<f64>,
    style: ShapeStyle,
) -> Result<()> {
    let mut paths = Vec::with_capacity(points.nrows() * 2);
    for (p, v) in points.outer_iter().zip(vectors.outer_iter()) {
        let (x, y, dx, dy) = (p[0], p[1], v[0], v[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if !len.is_finite() || len < 1e-9 {
            continue;
        }
        let tip = (x + dx, y + dy);
        paths.push(PathElement::new(vec![(x, y), tip], style));
        // head: two strokes of 30% of the length, at +-25 degrees from the shaft, pointing back
        let (ux, uy) = (-dx / len, -dy / len);
        let head = 0.3 * len;
        let (c, s) = (25f64.to_radians().cos(), 25f64.to_radians().sin());
        let left = (tip.0 + head * (c * ux - s * uy), tip.1 + head * (s * ux + c * uy));
        let right = (tip.0 + head * (c * ux + s * uy), tip.1 + head * (-s * ux + c * uy));
        paths.push(PathElement::new(vec![left, tip, right], style));
    }
    chart.draw_series(paths).map_err(plot_err)?;
    Ok(())
}

/// Arrow vectors for a field `s`: direction of `s`, length `cell * log(1 + |s|) / log(1 + s_max)`,
/// so that both the tiny scores near a mode and the large ones far away stay visible.
pub fn arrow_vectors(s: &Array2<f64>, cell: f64, s_max: f64) -> Array2<f64> {
    let mut v = s.clone();
    for mut row in v.axis_iter_mut(Axis(0)) {
        let norm = (row[0] * row[0] + row[1] * row[1]).sqrt();
        if norm > 0.0 && norm.is_finite() {
            let len = cell * (1.0 + norm).ln() / (1.0 + s_max).ln();
            row[0] *= len / norm;
            row[1] *= len / norm;
        }
    }
    v
}

/// One square scatter panel over `bounds`, with faint contours under the points:
/// `contours = (grid, log-density)` draws the log-density levels 1, 3 and 6 nats below its peak.
pub fn scatter_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    bounds: (f64, f64),
    points: &Array2<f64>,
    color: RGBColor,
    contours: Option<&(Grid, Array2<f64>)>,
) -> Result<()> {
    let mut chart = square_chart(area, title, bounds, 18)?;
    if let Some((grid, logp)) = contours {
        let top = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let levels: Vec<f64> = [1.0, 3.0, 6.0].iter().map(|d| top - d).collect();
        draw_contours(&mut chart, grid, logp, &levels, RGBColor(150, 150, 150).stroke_width(1))?;
    }
    draw_points(&mut chart, points.view(), color.mix(0.45), 2, None)?;
    Ok(())
}

/// The axes of a loss curve: `training step` across, `y_desc` up with `y_labels` labels written
/// by `y_format`, light grey grid lines.
pub fn draw_loss_axes<DB: DrawingBackend>(
    chart: &mut Chart2d<'_, DB>,
    y_desc: &str,
    y_labels: usize,
    y_format: &dyn Fn(&f64) -> String,
) -> Result<()> {
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc(y_desc)
        .y_labels(y_labels)
        .y_label_formatter(y_format)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// The legend of a chart's labelled series, boxed in its upper right corner.
pub fn draw_legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart2d<'a, DB>, font_size: u32) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, font_size))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Points as small filled circles of `radius` pixels; points outside the chart are skipped.
pub fn draw_points<DB: DrawingBackend>(
    chart: &mut Chart2d<'_, DB>,
    points: ArrayView2<f64>,
    color: RGBAColor,
    radius: u32,
    label: Option<&str>,
) -> Result<()> {
    let (xr, yr) = (chart.x_range(), chart.y_range());
    let inside: Vec<(f64, f64)> = points
        .outer_iter()
        .map(|p| (p[0], p[1]))
        .filter(|(x, y)| xr.contains(x) && yr.contains(y))
        .collect();
    let series = chart
        .draw_series(inside.into_iter().map(|p| Circle::new(p, radius, color.filled())))
        .map_err(plot_err)?;
    if let Some(label) = label {
        series
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    Ok(())
}

/// A vertical colour bar for viridis over `[vmin, vmax]` with a label, in its own (narrow) area.
pub fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (vmin, vmax): (f64, f64),
    label: &str,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(44)
        .margin_right(8)
        .y_label_area_size(54)
        .build_cartesian_2d(0.0..1.0, vmin..vmax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .y_labels(6)
        .draw()
        .map_err(plot_err)?;
    let steps = 100;
    let dv = (vmax - vmin) / steps as f64;
    chart
        .draw_series((0..steps).map(|i| {
            let v = vmin + i as f64 * dv;
            Rectangle::new(
                [(0.0, v), (1.0, v + dv * 1.05)],
                viridis(i as f64 / (steps - 1) as f64).filled(),
            )
        }))
        .map_err(plot_err)?;
    Ok(())
}
