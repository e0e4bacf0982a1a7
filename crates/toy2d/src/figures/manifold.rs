//! Fig. 1 idea: the loss curves of score matching on a curve, with and without noise.
use crate::experiments::manifold::{Report, RunSummary};
use crate::experiments::{moving_average, Context};
use crate::plot::{self, draw_legend, draw_loss_axes, plot_err, FONT, PALETTE};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// `manifold_loss.png` and `manifold_loss.svg`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    plot::save_png(&ctx.out, "manifold_loss.png", (1400, 600), |root| {
        loss_figure(root, report)
    })?;
    plot::save_svg(&ctx.out, "manifold_loss.svg", (1400, 600), |root| {
        loss_figure(root, report)
    })?;
    Ok(vec!["manifold_loss.png".into(), "manifold_loss.svg".into()])
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

fn loss_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let (head, body) = root.split_vertically(44);
    head.titled(
        "Score matching on data on a curve: without noise the loss does not settle; with x + 0.05 z it converges",
        (FONT, 20),
    )
    .map_err(plot_err)?;
    let panels = body.split_evenly((1, 2));
    for (k, name) in ["sliced", "implicit"].iter().enumerate() {
        let runs: Vec<&RunSummary> = report.runs.iter().filter(|r| r.objective == *name).collect();
        let all: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.loss_history.iter().cloned())
            .filter(|v| v.is_finite())
            .map(symlog)
            .collect();
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (-1.0, 1.0)
        };
        let pad = 0.05 * (hi - lo);
        let n = runs.iter().map(|r| r.loss_history.len()).max().unwrap_or(1).max(2);
        let mut chart = ChartBuilder::on(&panels[k])
            .caption(format!("{name} score matching"), (FONT, 20))
            .margin(10)
            .margin_right(20)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..n as f64, (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        let y_labels = (4.0 * (hi - lo + 2.0 * pad)).ceil() as usize + 1;
        draw_loss_axes(&mut chart, "loss (symmetric log scale)", y_labels, &symlog_label)?;
        for r in &runs {
            let color = if r.noise > 0.0 { PALETTE[0] } else { PALETTE[1] };
            let raw: Vec<(f64, f64)> = r
                .loss_history
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| (i as f64, symlog(*v)))
                .collect();
            chart
                .draw_series(LineSeries::new(raw, color.mix(0.25).stroke_width(1)))
                .map_err(plot_err)?;
            let finite: Vec<f64> = r
                .loss_history
                .iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .collect();
            let smooth = moving_average(&finite, 50);
            let label = if r.noise > 0.0 {
                format!("curve + {} z (moving average of 50)", r.noise)
            } else {
                "curve, no noise (moving average of 50)".to_string()
            };
            chart
                .draw_series(LineSeries::new(
                    smooth.iter().enumerate().map(|(i, v)| (i as f64, symlog(*v))),
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        draw_legend(&mut chart, 14)?;
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
