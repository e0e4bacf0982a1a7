//! Fig. 1 idea: what score matching learns on a curve, with and without noise: the slope of the
//! learned score across the curve over training (the quantity the theory is about), and the
//! training losses.
use crate::experiments::manifold::{Report, RunSummary};
use crate::experiments::{moving_average, Context};
use crate::plot::{self, plot_err, FONT, PALETTE};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// `manifold_loss.png` and `manifold_loss.svg`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    plot::save_png(&ctx.out, "manifold_loss.png", SIZE, |root| figure(root, report))?;
    plot::save_svg(&ctx.out, "manifold_loss.svg", SIZE, |root| figure(root, report))?;
    Ok(vec!["manifold_loss.png".into(), "manifold_loss.svg".into()])
}

/// The figure's size in pixels (the page shows it about half as large: big type).
const SIZE: (u32, u32) = (1500, 640);

/// Red for the clean curve, blue for the curve plus noise; implicit score matching solid and
/// thick, sliced lighter.
fn style(run: &RunSummary) -> ShapeStyle {
    let color = if run.noise > 0.0 { PALETTE[0] } else { PALETTE[1] };
    if run.objective == "implicit" {
        color.stroke_width(3)
    } else {
        color.mix(0.45).stroke_width(3)
    }
}

fn run_label(run: &RunSummary) -> String {
    let data = if run.noise > 0.0 {
        format!("curve + {} z", run.noise)
    } else {
        "curve".to_string()
    };
    format!("{}, {data}", run.objective)
}

fn figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let (left, right) = root.split_horizontally(SIZE.0 * 3 / 5);
    slope_panel(&left, report)?;
    loss_panel(&right, report)
}

/// The slope across the curve on a log axis, with the noisy runs' optimum `1/sigma^2`.
fn slope_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    // (the first measurements are near 0 or slightly negative: clamped to the bottom edge)
    let lo = 1.0;
    let top = report
        .runs
        .iter()
        .flat_map(|r| r.normal_slope.iter().cloned())
        .chain(std::iter::once(report.slope_target))
        .filter(|v| v.is_finite())
        .fold(lo * 10.0, f64::max)
        * 2.0;
    let n = report.steps.max(2) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption("slope of s_θ across the curve", (FONT, 30))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(56)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..n, (lo..top).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("−nᵀ ∇s_θ n, mean over the curve")
        .x_labels(5)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 24))
        .axis_desc_style((FONT, 24))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    let target = report.slope_target;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, target), (n, target)],
            12,
            8,
            BLACK.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("1/σ² = {target:.0}: the optimum with noise"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(2)));
    for r in &report.runs {
        let st = style(r);
        let points = report
            .slope_steps
            .iter()
            .zip(&r.normal_slope)
            .map(|(&k, &v)| (k as f64, v.max(lo)));
        chart
            .draw_series(LineSeries::new(points, st))
            .map_err(plot_err)?
            .label(run_label(r))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], st));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 22))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// A symmetric log scale for losses that go negative: linear on `[-1, 1]`,
/// `sign(y) (1 + log10 |y|)` outside, so that `t = -2, -3, -4` mean `y = -10, -100, -1000`.
fn symlog(y: f64) -> f64 {
    if y.abs() < 1.0 {
        y
    } else {
        y.signum() * (1.0 + y.abs().log10())
    }
}

fn symlog_inv(t: f64) -> f64 {
    if t.abs() < 1.0 {
        t
    } else {
        t.signum() * 10f64.powf(t.abs() - 1.0)
    }
}

/// Tick labels only at whole numbers of the symlog scale (0, ±1, ±10, ±100, ...).
fn symlog_label(t: &f64) -> String {
    if (t - t.round()).abs() < 1e-9 {
        format!("{}", symlog_inv(t.round()).round())
    } else {
        String::new()
    }
}

/// The training losses (moving averages of 50 steps) on a symmetric log axis.
fn loss_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let smooth: Vec<Vec<f64>> = report
        .runs
        .iter()
        .map(|r| {
            let finite: Vec<f64> = r
                .loss_history
                .iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .collect();
            moving_average(&finite, 50).into_iter().map(symlog).collect()
        })
        .collect();
    let all = smooth.iter().flatten().cloned();
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (-1.0, 1.0)
    };
    let pad = 0.05 * (hi - lo);
    let n = report.steps.max(2) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption("training loss (moving average of 50)", (FONT, 30))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(56)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..n, (lo - pad)..(hi + pad))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("loss (symmetric log scale)")
        .x_labels(3)
        .y_labels((hi - lo + 2.0 * pad).ceil() as usize * 4 + 1)
        .y_label_formatter(&symlog_label)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 24))
        .axis_desc_style((FONT, 24))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    for (r, c) in report.runs.iter().zip(&smooth) {
        let st = style(r);
        chart
            .draw_series(LineSeries::new(c.iter().enumerate().map(|(i, v)| (i as f64, *v)), st))
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlog_round_trips_and_keeps_sign() {
        assert_eq!(symlog(-100.0), -3.0);
        assert_eq!(symlog_label(&-3.0), "-100");
        assert_eq!(symlog_label(&-2.5), "");
        for y in [-1234.5, -1.0, 0.0, 0.3, 99.0] {
            assert!((symlog_inv(symlog(y)) - y).abs() < 1e-9 * (1.0 + y.abs()));
        }
        assert!(symlog(-5.0) < 0.0 && symlog(5.0) > 0.0);
    }
}
