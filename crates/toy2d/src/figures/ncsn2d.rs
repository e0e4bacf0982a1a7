//! NCSN in 2D: data against samples for every data set, and the training losses.
use crate::experiments::ncsn2d::{Report, TOYS};
use crate::experiments::{moving_average, Context};
use crate::plot::{self, draw_legend, draw_loss_axes, plot_err, scatter_panel, FONT, PALETTE};
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// `ncsn2d_grid.png`, `ncsn2d_loss.png` and `ncsn2d_loss.svg`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    if report.results.len() != TOYS.len() {
        bail!(
            "ncsn2d figure: expected one result per data set ({}), got {}",
            TOYS.len(),
            report.results.len()
        );
    }
    let steps = report.train_steps();
    plot::save_png(&ctx.out, "ncsn2d_grid.png", (1600, 860), |root| {
        let (head, body) = root.split_vertically(40);
        head.titled(
            &format!("NCSN on toy data: data (top) vs. annealed Langevin samples of a DSM-trained s_θ(x, σ) = f_θ(x, σ)/σ ({steps} steps, bottom)"),
            (FONT, 20),
        )
        .map_err(plot_err)?;
        let cells = body.split_evenly((2, TOYS.len()));
        for (t, toy) in TOYS.into_iter().enumerate() {
            let r = &report.results[t];
            scatter_panel(
                &cells[t],
                &format!("{} data", toy.name()),
                toy.bounds(),
                &r.fresh_points,
                PALETTE[0],
                None,
            )?;
            // over the draws: mean ± sd
            let title = format!(
                "MMD {:.3}±{:.3}, floor {:.3}±{:.3}",
                r.mmd_mean, r.mmd_sd, r.mmd_data_vs_data_mean, r.mmd_data_vs_data_sd
            );
            scatter_panel(
                &cells[TOYS.len() + t],
                &title,
                toy.bounds(),
                &r.sample_points,
                PALETTE[1],
                None,
            )?;
        }
        Ok(())
    })?;
    plot::save_png(&ctx.out, "ncsn2d_loss.png", (1000, 600), |root| {
        loss_figure(root, report)
    })?;
    plot::save_svg(&ctx.out, "ncsn2d_loss.svg", (1000, 600), |root| {
        loss_figure(root, report)
    })?;
    Ok(vec![
        "ncsn2d_grid.png".into(),
        "ncsn2d_loss.png".into(),
        "ncsn2d_loss.svg".into(),
    ])
}

fn loss_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let curves: Vec<(String, Vec<f64>)> = report
        .results
        .iter()
        .map(|r| (r.data.clone(), moving_average(&r.loss_history, 50)))
        .collect();
    // a linear axis from 0 to a bit above the curves after their first 50 steps (the first steps,
    // with losses up to ~100, are clamped to the top edge)
    let settled = curves
        .iter()
        .flat_map(|c| c.1.iter().skip(50).cloned())
        .filter(|v| v.is_finite());
    let top = 1.25 * settled.fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let n = curves.iter().map(|c| c.1.len()).max().unwrap_or(1).max(2);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Noise-conditional DSM loss (1/L) Σ σᵢ² ℓ(θ; σᵢ), moving average of 50 steps",
            (FONT, 20),
        )
        .margin(12)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(plot_err)?;
    // (10 labels: plotters' default)
    draw_loss_axes(&mut chart, "loss", 10, &|v| format!("{v:.2}"))?;
    for (k, (name, c)) in curves.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                c.iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| (i as f64, v.min(top))),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart, 15)
}
