//! Fig. 3: the particles of each sampler over the density, and the mode weights as bars.
use super::density_contours;
use crate::experiments::langevin_weights::{ParticleSets, Report, SamplerResult};
use crate::experiments::Context;
use crate::plot::{self, draw_legend, plot_err, scatter_panel, FONT, PALETTE};
use anyhow::Result;
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
        bars_figure(ctx, &report.exact, &report.learned)?,
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

fn bars_figure(ctx: &Context, exact: &[SamplerResult], learned: &[SamplerResult]) -> Result<String> {
    // exact samples, Langevin exact, annealed exact, Langevin learned, annealed learned
    let bars: Vec<(&str, &SamplerResult)> = vec![
        ("exact samples", &exact[0]),
        ("Langevin", &exact[1]),
        ("annealed", &exact[2]),
        ("Langevin (learned)", &learned[1]),
        ("annealed (learned)", &learned[2]),
    ];
    let name = "langevin_weights_bars.png";
    plot::save_png(&ctx.out, name, (1000, 560), |root| {
        let n = bars.len();
        let mut chart = ChartBuilder::on(root)
            .caption("Mode weights after sampling (true: 0.2 / 0.8)", (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n as f64, 0.0..1.0)
            .map_err(plot_err)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
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
            .x_labels(2 * n + 1)
            .x_label_formatter(&fmt)
            .y_desc("fraction of particles")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(plot_err)?;
        let (c0, c1) = (PALETTE[0], PALETTE[1]);
        let w0: Vec<(usize, f64)> = bars.iter().enumerate().map(|(i, b)| (i, b.1.mode_weights[0])).collect();
        chart
            .draw_series(
                w0.iter()
                    .map(|&(i, w)| Rectangle::new([(i as f64 + 0.2, 0.0), (i as f64 + 0.8, w)], c0.filled())),
            )
            .map_err(plot_err)?
            .label("mode at (-5, -5)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c0.filled()));
        chart
            .draw_series(
                w0.iter()
                    .map(|&(i, w)| Rectangle::new([(i as f64 + 0.2, w), (i as f64 + 0.8, 1.0)], c1.mix(0.75).filled())),
            )
            .map_err(plot_err)?
            .label("mode at (5, 5)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c1.mix(0.75).filled()));
        chart
            .draw_series(w0.iter().map(|&(i, w)| {
                // the weight, written inside the bottom bar
                let style = TextStyle::from((FONT, 17).into_font())
                    .color(&WHITE)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                Text::new(format!("{w:.2}"), (i as f64 + 0.5, w / 2.0), style)
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.2), (n as f64, 0.2)],
                BLACK.stroke_width(2),
            )))
            .map_err(plot_err)?
            .label("true weight 0.2")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
        draw_legend(&mut chart, 15)
    })?;
    Ok(name.to_string())
}
