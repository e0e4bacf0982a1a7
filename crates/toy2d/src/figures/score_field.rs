//! Fig. 2: the exact and the learned score field over the density, and the squared error.
use crate::experiments::score_field::{Report, ARROW_GRID, BOUNDS, ERROR_GRID};
use crate::experiments::{fmt_num, Context};
use crate::plot::{
    self, arrow_vectors, density_color, draw_arrows, draw_colorbar, draw_contours, draw_heatmap, plot_err,
    square_chart, viridis, Grid, FONT,
};
use anyhow::Result;
use gmm::datasets::paper_mixture;
use plotters::prelude::*;

/// `score_field.png` and `score_error.png`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    Ok(vec![field_figure(ctx, report)?, error_figure(ctx, report)?])
}

fn field_figure(ctx: &Context, report: &Report) -> Result<String> {
    let p = paper_mixture();
    let steps = report.steps;
    let shade = Grid::square(BOUNDS.0, BOUNDS.1, 160);
    let dens = p.density(shade.points().view());
    let dmax = dens.iter().cloned().fold(0.0, f64::max);
    // shading by sqrt(p / p_max), so the small mode is visible next to the large one
    let shading = shade.reshape(&dens.iter().map(|d| (d / dmax).sqrt()).collect::<Vec<_>>())?;
    let logp = shade.reshape(&dens.iter().map(|d| d.max(1e-300).log10()).collect::<Vec<_>>())?;
    let arrows = Grid::square(BOUNDS.0, BOUNDS.1, ARROW_GRID);
    let apts = arrows.points();
    let exact = p.score(apts.view());
    let learned = &report.learned_arrows;
    let s_max = exact.outer_iter().map(|r| r.dot(&r).sqrt()).fold(0.0, f64::max);
    let name = "score_field.png";
    plot::save_png(&ctx.out, name, (1400, 760), |root| {
        let (body, foot) = root.split_vertically(720);
        let panels = body.split_evenly((1, 2));
        let titles = [
            "Data scores ∇ₓ log p(x)".to_string(),
            format!("Estimated scores s_θ(x) (sliced SM, {steps} steps)"),
        ];
        for (k, area) in panels.iter().enumerate() {
            let mut chart = square_chart(area, &titles[k], BOUNDS, 22)?;
            draw_heatmap(&mut chart, &shade, &shading, (0.0, 1.0), |t| density_color(0.85 * t))?;
            draw_contours(
                &mut chart,
                &shade,
                &logp,
                &[-2.0, -3.0, -4.0],
                RGBColor(120, 120, 120).stroke_width(1),
            )?;
            let field = if k == 0 { &exact } else { learned };
            let v = arrow_vectors(field, arrows.cell() * 0.95, s_max);
            draw_arrows(&mut chart, apts.view(), v.view(), BLACK.stroke_width(1))?;
        }
        foot.draw_text(
            "Shading: density p (darker = higher). Grey contours: p = 10⁻², 10⁻³, 10⁻⁴. Arrow length ∝ log(1 + |s|), same scale in both panels.",
            &(FONT, 17).into_font().color(&BLACK),
            (30, 8),
        )
        .map_err(plot_err)?;
        Ok(())
    })?;
    Ok(name.into())
}

fn error_figure(ctx: &Context, report: &Report) -> Result<String> {
    let grid = &Grid::square(BOUNDS.0, BOUNDS.1, ERROR_GRID);
    let dens = paper_mixture().density(grid.points().view());
    let err = &report.error_on_grid;
    let log_err: Vec<f64> = err.iter().map(|e| e.max(1e-6).log10()).collect();
    let (vmin, vmax) = (
        log_err.iter().cloned().fold(f64::INFINITY, f64::min).max(-4.0),
        log_err.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let values = grid.reshape(&log_err)?;
    let logp = grid.reshape(&dens.iter().map(|d| d.max(1e-300).log10()).collect::<Vec<_>>())?;
    let name = "score_error.png";
    plot::save_png(&ctx.out, name, (900, 800), |root| {
        let (main, bar) = root.split_horizontally(790);
        let title = format!(
            "Squared error ‖s_θ(x) − ∇ₓ log p(x)‖²: E_p = {}, mean over square = {}",
            fmt_num(report.error_weighted_by_p),
            fmt_num(report.error_uniform_square)
        );
        let mut chart = square_chart(&main, &title, BOUNDS, 17)?;
        draw_heatmap(&mut chart, grid, &values, (vmin, vmax), viridis)?;
        draw_contours(&mut chart, grid, &logp, &[-2.0, -3.0, -4.0], WHITE.stroke_width(2))?;
        chart
            .draw_series(std::iter::once(Text::new(
                "white contours: p = 10⁻², 10⁻³, 10⁻⁴",
                (BOUNDS.0 + 0.3, BOUNDS.1 - 0.4),
                (FONT, 16).into_font().color(&WHITE),
            )))
            .map_err(plot_err)?;
        draw_colorbar(&bar, (vmin, vmax), "log₁₀ squared error")?;
        Ok(())
    })?;
    Ok(name.into())
}
