//! Fig. 3: the particles of each sampler over the density, and the small mode's weight per
//! sampler (mean and sd over seeds for the exact scores).
use super::density_contours;
use crate::experiments::langevin_weights::{OverSeeds, ParticleSets, Report, SamplerResult};
use crate::experiments::Context;
use crate::plot::{self, draw_legend, plot_err, scatter_panel, FONT, PALETTE};
use anyhow::{bail, Result};
use gmm::datasets::paper_mixture;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// `langevin_weights.png`, `langevin_weights_learned.png`, `langevin_weights_bars.png`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    let exact_heading = "Exact scores ∇ₓ log p (a: i.i.d. samples of p)".to_string();
    let learned_heading = format!(
        "Learned noise-conditional score s_θ(x, σ) (DSM, {} steps); (b) uses σ_L = 1",
        report.learned_train_steps
    );
    Ok(vec![
        scatter_figure(
            ctx,
            "langevin_weights.png",
            &report.exact_particles,
            &report.exact,
            &exact_heading,
        )?,
        scatter_figure(
            ctx,
            "langevin_weights_learned.png",
            &report.learned_particles,
            &report.learned,
            &learned_heading,
        )?,
        bars_figure(ctx, report)?,
    ])
}

fn scatter_figure(
    ctx: &Context,
    name: &str,
    sets: &ParticleSets,
    results: &[SamplerResult],
    heading: &str,
) -> Result<String> {
    let titles = [
        "(a) exact samples",
        "(b) Langevin dynamics",
        "(c) annealed Langevin dynamics",
    ];
    let sets = [&sets.iid, &sets.plain, &sets.annealed];
    let contours = density_contours(&paper_mixture(), (-8.0, 8.0))?;
    plot::save_png(&ctx.out, name, (1500, 560), |root| {
        let (top, body) = root.split_vertically(40);
        top.titled(heading, (FONT, 22)).map_err(plot_err)?;
        let panels = body.split_evenly((1, 3));
        for (k, area) in panels.iter().enumerate() {
            let w = &results[k].mode_weights;
            let title = format!("{}: weights {:.2} / {:.2}", titles[k], w[0], w[1]);
            scatter_panel(area, &title, (-8.0, 8.0), sets[k], PALETTE[k], Some(&contours))?;
        }
        Ok(())
    })?;
    Ok(name.to_string())
}

/// The small mode's weight per sampler: the exact-score samplers as mean ± sd over the
/// repetitions (each repetition a faint dot), the learned ones as one seed's value; the true
/// weight 0.2 as a dashed line, every number written above its marker.
fn bars_figure(ctx: &Context, report: &Report) -> Result<String> {
    let over = &report.exact_over_seeds;
    let learned = &report.learned;
    if over.len() != 3 || learned.len() != 3 {
        bail!("langevin-weights figure: expected three samplers over seeds and three learned results");
    }
    // (name, mean, sd and the per-seed values when repeated)
    let columns: Vec<(&str, f64, Option<&OverSeeds>)> = vec![
        ("exact samples", over[0].mean, Some(&over[0])),
        ("Langevin", over[1].mean, Some(&over[1])),
        ("annealed", over[2].mean, Some(&over[2])),
        ("Langevin (learned)", learned[1].mode_weights[0], None),
        ("annealed (learned)", learned[2].mode_weights[0], None),
    ];
    let truth = report.true_weights[0];
    let name = "langevin_weights_bars.png";
    plot::save_png(&ctx.out, name, (1100, 620), |root| {
        let n = columns.len();
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Weight of the small mode (-5, -5) after sampling (true: 0.2)",
                (FONT, 26),
            )
            .margin(14)
            .margin_right(20)
            .x_label_area_size(44)
            .y_label_area_size(74)
            .build_cartesian_2d(0.0..n as f64, 0.0..0.62)
            .map_err(plot_err)?;
        let names: Vec<String> = columns.iter().map(|c| c.0.to_string()).collect();
        let fmt = move |v: &f64| {
            let i = v.floor() as usize;
            if (v - i as f64 - 0.5).abs() < 1e-6 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(230, 230, 230))
            .x_labels(2 * n + 1)
            .x_label_formatter(&fmt)
            .y_labels(7)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .y_desc("fraction of particles at (-5, -5)")
            .label_style((FONT, 19))
            .axis_desc_style((FONT, 20))
            .draw()
            .map_err(plot_err)?;
        // the true weight first, so that every marker and label lies on top of it
        let dashes: Vec<PathElement<(f64, f64)>> = (0..4 * n)
            .map(|k| {
                let x = k as f64 * 0.25;
                PathElement::new(vec![(x, truth), (x + 0.15, truth)], BLACK.stroke_width(2))
            })
            .collect();
        chart
            .draw_series(dashes)
            .map_err(plot_err)?
            .label(format!("true weight {truth}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        let blue = PALETTE[0];
        let red = PALETTE[1];
        // the repetitions, spread across the column so that equal values do not hide each other
        for (i, c) in columns.iter().enumerate() {
            if let Some(o) = c.2 {
                let m = o.per_seed.len().max(2) as f64;
                chart
                    .draw_series(o.per_seed.iter().enumerate().map(|(k, &w)| {
                        let x = i as f64 + 0.3 + 0.4 * k as f64 / (m - 1.0);
                        Circle::new((x, w), 3, blue.mix(0.3).filled())
                    }))
                    .map_err(plot_err)?;
            }
        }
        // mean +- sd: a thick bar of 2 sd with the mean as a dot
        let mut first = true;
        let mut first_single = true;
        for (i, c) in columns.iter().enumerate() {
            let x = i as f64 + 0.5;
            let label_y;
            let text;
            match c.2 {
                Some(o) => {
                    let whisker = |y: f64| PathElement::new(vec![(x - 0.08, y), (x + 0.08, y)], blue.stroke_width(3));
                    chart
                        .draw_series([
                            PathElement::new(vec![(x, o.mean - o.sd), (x, o.mean + o.sd)], blue.stroke_width(3)),
                            whisker(o.mean - o.sd),
                            whisker(o.mean + o.sd),
                        ])
                        .map_err(plot_err)?;
                    let dot = chart
                        .draw_series(std::iter::once(Circle::new((x, o.mean), 7, blue.filled())))
                        .map_err(plot_err)?;
                    if first {
                        dot.label(format!("mean ± sd over {} seeds (dots: each seed)", o.per_seed.len()))
                            .legend(move |(x, y)| Circle::new((x + 8, y), 6, blue.filled()));
                        first = false;
                    }
                    label_y = o.max.max(o.mean + o.sd);
                    text = format!("{:.3} ± {:.3}", o.mean, o.sd);
                }
                None => {
                    let marker = chart
                        .draw_series(std::iter::once(TriangleMarker::new((x, c.1), 10, red.filled())))
                        .map_err(plot_err)?;
                    if first_single {
                        marker
                            .label("one seed (the learned model)")
                            .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 7, red.filled()));
                        first_single = false;
                    }
                    label_y = c.1;
                    text = format!("{:.3}", c.1);
                }
            }
            let style = TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(std::iter::once(Text::new(text, (x, label_y + 0.025), style)))
                .map_err(plot_err)?;
        }
        draw_legend(&mut chart, 18)
    })?;
    Ok(name.to_string())
}
