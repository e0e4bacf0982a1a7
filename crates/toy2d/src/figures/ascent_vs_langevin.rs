//! Chapter 4: the start, gradient ascent's end, Langevin's end, and the spread of each over the
//! steps.
use super::density_contours;
use crate::experiments::ascent_vs_langevin::{Report, STEPS};
use crate::experiments::Context;
use crate::plot::{self, draw_contours, draw_points, plot_err, scatter_panel, square_chart, FONT, PALETTE};
use anyhow::Result;
use gmm::datasets::paper_mixture;
use plotters::coord::Shift;
use plotters::prelude::*;

/// The square of the scatter panels.
const BOUNDS: (f64, f64) = (-10.0, 10.0);

/// `ascent_vs_langevin.png`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    let contours = density_contours(&paper_mixture(), BOUNDS)?;
    let name = "ascent_vs_langevin.png";
    let [ascent, langevin] = &report.samplers[..] else {
        anyhow::bail!("ascent-vs-langevin figure: expected two samplers");
    };
    plot::save_png(&ctx.out, name, (960, 980), |root| {
        let (head, body) = root.split_vertically(40);
        head.titled(
            &format!(
                "{} particles, the same exact score and step ε = {}, {} steps",
                thousands(report.particles),
                report.eps,
                thousands(report.steps)
            ),
            (FONT, 20),
        )
        .map_err(plot_err)?;
        let panels = body.split_evenly((2, 2));
        scatter_panel(
            &panels[0],
            "(a) start: uniform in [-8, 8]²",
            BOUNDS,
            &report.start,
            PALETTE[4],
            Some(&contours),
        )?;
        // (b): every particle sits on a mode, so the dots are drawn larger and counted
        let mut chart = square_chart(&panels[1], "(b) gradient ascent: two points", BOUNDS, 18)?;
        let (grid, logp) = &contours;
        let peak = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let levels: Vec<f64> = [1.0, 3.0, 6.0].iter().map(|d| peak - d).collect();
        draw_contours(&mut chart, grid, logp, &levels, RGBColor(150, 150, 150).stroke_width(1))?;
        draw_points(&mut chart, report.ends[0].view(), PALETTE[0].mix(0.9), 6, None)?;
        let n = report.particles as f64;
        let note = |w: f64| format!("{:.0} particles here", w * n);
        let style = (FONT, 15).into_font().color(&BLACK);
        chart
            .draw_series([
                Text::new(note(ascent.mode_weights[0]), (-8.5, -7.6), style.clone()),
                Text::new(note(ascent.mode_weights[1]), (1.5, 3.2), style),
            ])
            .map_err(plot_err)?;
        scatter_panel(
            &panels[2],
            &format!(
                "(c) Langevin: variance {:.2} per coordinate",
                langevin.within_mode_variance
            ),
            BOUNDS,
            &report.ends[1],
            PALETTE[1],
            Some(&contours),
        )?;
        spread_panel(&panels[3], report)?;
        Ok(())
    })?;
    Ok(vec![name.into()])
}

/// The mean squared distance to the nearest mode per coordinate against the step, log scale.
fn spread_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let floor = 1e-12;
    let top = report.spread_history.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("(d) variance within a mode", (FONT, 18))
        .margin(8)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..STEPS as f64, (floor..top).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("mean (x − mode)² per coordinate")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(230, 230, 230))
        .draw()
        .map_err(plot_err)?;
    let v = report.mode_variance;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, v), (STEPS as f64, v)],
            BLACK.stroke_width(1),
        )))
        .map_err(plot_err)?
        .label(format!("p's variance within a mode, {v}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
    let names = ["ascent (below 1e-12 off the chart)", "Langevin"];
    for (k, history) in report.spread_history.iter().enumerate() {
        let color = PALETTE[k];
        chart
            .draw_series(LineSeries::new(
                history.iter().filter(|p| p.1 >= floor).map(|&(t, s)| (t as f64, s)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(names[k])
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    // (draw_legend takes linear axes; this one is logarithmic)
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// `1280` as `1,280`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
