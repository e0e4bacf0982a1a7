//! The Langevin visualizer: a GIF of the particles over each level's score field (a fixed
//! square), and `trajectories_levels.png`: six chosen levels, each in a window that grows with
//! its sigma.
use crate::experiments::trajectories::{panel_bounds, Report, BOUNDS, PANEL_LEVELS};
use crate::experiments::Context;
use crate::plot::{
    self, arrow_vectors, density_color, draw_arrows, draw_heatmap, draw_points, plot_err, square_chart, Chart2d, Grid,
    FONT,
};
use anyhow::{bail, Result};
use gmm::GaussianMixture;
use langevin::Snapshot;
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One level's field over one square: the shading `sqrt(p_sigma / max p_sigma)` on `shade`, the
/// arrows of `grad log p_sigma` at the centres of `arrows`.
struct Field {
    shade: Grid,
    shading: Array2<f64>,
    arrow_points: Array2<f64>,
    arrows: Array2<f64>,
}

impl Field {
    /// The field of `q` (one perturbed mixture `p_sigma`) over `[lo, hi]^2`: `shade_n x shade_n`
    /// shading cells, `arrow_n x arrow_n` arrows.
    fn new(q: &GaussianMixture, (lo, hi): (f64, f64), shade_n: usize, arrow_n: usize) -> Result<Self> {
        let shade = Grid::square(lo, hi, shade_n);
        let d = q.density(shade.points().view());
        let dmax = d.iter().cloned().fold(0.0, f64::max);
        let agrid = Grid::square(lo, hi, arrow_n);
        let arrow_points = agrid.points();
        let s = q.score(arrow_points.view());
        let s_max = s.outer_iter().map(|r| r.dot(&r).sqrt()).fold(0.0, f64::max);
        Ok(Self {
            shading: shade.reshape(&d.iter().map(|v| (v / dmax).sqrt()).collect::<Vec<_>>())?,
            shade,
            arrows: arrow_vectors(&s, agrid.cell() * 0.9, s_max),
            arrow_points,
        })
    }

    /// Shading (in `bands` flat colours, or smooth with `None`), then the arrows.
    fn draw<DB: DrawingBackend>(
        &self,
        chart: &mut Chart2d<'_, DB>,
        bands: Option<f64>,
        arrow_width: u32,
    ) -> Result<()> {
        draw_heatmap(chart, &self.shade, &self.shading, (0.0, 1.0), |t| match bands {
            Some(b) => density_color(0.6 * (t * b).floor().min(b - 1.0) / (b - 1.0)),
            None => density_color(0.85 * t),
        })?;
        draw_arrows(
            chart,
            self.arrow_points.view(),
            self.arrows.view(),
            RGBColor(90, 90, 90).stroke_width(arrow_width),
        )
    }
}

fn field_of<'a>(fields: &'a [Field], snap: &Snapshot<Array2<f64>>) -> Result<&'a Field> {
    match fields.get(snap.level) {
        Some(f) => Ok(f),
        None => bail!(
            "trajectories figure: a snapshot of level {} has no score field",
            snap.level
        ),
    }
}

/// `trajectories.gif` and `trajectories_levels.png`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    let snaps = &report.snapshots;
    if snaps.is_empty() || report.level_ends.len() != report.levels.len() {
        bail!("trajectories figure: expected snapshots and one end of level per level");
    }
    // the GIF: every snapshot over the fixed square BOUNDS (8 shading bands: flat colours keep
    // the GIF small), then the last one held for a while
    let gif_fields: Vec<Field> = report
        .exact
        .levels()
        .iter()
        .map(|q| Field::new(q, BOUNDS, 80, 17))
        .collect::<Result<_>>()?;
    let total_levels = report.levels.len();
    let bar = ctx.bar(report.frames as u64, "rendering trajectories.gif");
    plot::save_gif(
        &ctx.out,
        "trajectories.gif",
        (560, 600),
        150,
        report.frames,
        |root, k| {
            bar.inc(1);
            let snap = &snaps[k.min(snaps.len() - 1)];
            let (head, body) = root.split_vertically(34);
            head.titled("Annealed Langevin dynamics, exact scores of p_σ", (FONT, 19))
                .map_err(plot_err)?;
            let title = format!(
                "level {}/{}, σ = {:.2}, step {}",
                snap.level + 1,
                total_levels,
                snap.sigma,
                snap.step
            );
            let mut chart = square_chart(&body, &title, BOUNDS, 18)?;
            field_of(&gif_fields, snap)?.draw(&mut chart, Some(8.0), 1)?;
            draw_points(&mut chart, snap.x.view(), RGBColor(214, 39, 40).mix(0.8), 2, None)?;
            Ok(())
        },
    )?;
    bar.finish_and_clear();

    // the chosen levels, 2 x 3, each over its own window (smooth shading on a fine grid); sized
    // so that the labels stay readable when the page shrinks the image to ~700 px wide
    plot::save_png(&ctx.out, "trajectories_levels.png", (1500, 1080), |root| {
        let (head, body) = root.split_vertically(56);
        head.titled(
            "Annealed Langevin, exact scores: particles after 6 of the 10 levels, fractions at (-5,-5) / (5,5)",
            (FONT, 32),
        )
        .map_err(plot_err)?;
        for (&level, area) in PANEL_LEVELS.iter().zip(body.split_evenly((2, 3)).iter()) {
            let (Some(end), Some(summary), Some(q)) = (
                report.level_ends.get(level),
                report.levels.get(level),
                report.exact.levels().get(level),
            ) else {
                bail!("trajectories figure: level {} was not run", level + 1);
            };
            let bounds = panel_bounds(summary.sigma);
            let field = Field::new(q, bounds, 240, 13)?;
            let title = format!(
                "level {}, σ = {:.1}: {:.2} / {:.2}",
                level + 1,
                summary.sigma,
                summary.mode_weights_at_end[0],
                summary.mode_weights_at_end[1]
            );
            let mut chart = big_square_chart(area, &title, bounds)?;
            field.draw(&mut chart, None, 2)?;
            draw_points(&mut chart, end.x.view(), RGBColor(214, 39, 40).mix(0.7), 3, None)?;
        }
        Ok(())
    })?;
    Ok(vec!["trajectories.gif".into(), "trajectories_levels.png".into()])
}

/// [`square_chart`] with large type (the panels are shown at about a third of their size).
fn big_square_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    (lo, hi): (f64, f64),
) -> Result<Chart2d<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 30))
        .margin(10)
        .margin_right(22)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 26))
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}
