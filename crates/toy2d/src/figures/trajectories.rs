//! The Langevin visualizer: a GIF of the particles over each level's score field, and one panel
//! per level.
use crate::experiments::trajectories::{Report, BOUNDS};
use crate::experiments::Context;
use crate::plot::{
    self, arrow_vectors, density_color, draw_arrows, draw_heatmap, draw_points, plot_err, square_chart, Grid, FONT,
};
use anyhow::{bail, Result};
use langevin::Snapshot;
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;

struct FieldOfLevel {
    shading: Array2<f64>,
    arrows: Array2<f64>,
}

/// What every frame draws under the particles: the field of each level.
struct Scene {
    shade: Grid,
    apts: Array2<f64>,
    fields: Vec<FieldOfLevel>,
}

impl Scene {
    /// The density shading `sqrt(p_sigma / max p_sigma)` and the arrows of `grad log p_sigma` of
    /// every level of `report.exact`.
    fn new(report: &Report) -> Result<Self> {
        let shade = Grid::square(BOUNDS.0, BOUNDS.1, 80);
        let agrid = Grid::square(BOUNDS.0, BOUNDS.1, 17);
        let apts = agrid.points();
        let fields = report
            .exact
            .levels()
            .iter()
            .map(|q| {
                let d = q.density(shade.points().view());
                let dmax = d.iter().cloned().fold(0.0, f64::max);
                let s = q.score(apts.view());
                let s_max = s.outer_iter().map(|r| r.dot(&r).sqrt()).fold(0.0, f64::max);
                Ok(FieldOfLevel {
                    shading: shade.reshape(&d.iter().map(|v| (v / dmax).sqrt()).collect::<Vec<_>>())?,
                    arrows: arrow_vectors(&s, agrid.cell() * 0.9, s_max),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { shade, apts, fields })
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        snap: &Snapshot<Array2<f64>>,
        title: &str,
        size: u32,
    ) -> Result<()> {
        let Some(f) = self.fields.get(snap.level) else {
            bail!(
                "trajectories figure: a snapshot of level {} has no score field",
                snap.level
            );
        };
        let mut chart = square_chart(area, title, BOUNDS, size)?;
        // 8 shading bands (flat colours keep the GIF small)
        draw_heatmap(&mut chart, &self.shade, &f.shading, (0.0, 1.0), |t| {
            density_color(0.6 * (t * 8.0).floor().min(7.0) / 7.0)
        })?;
        draw_arrows(
            &mut chart,
            self.apts.view(),
            f.arrows.view(),
            RGBColor(90, 90, 90).stroke_width(1),
        )?;
        draw_points(&mut chart, snap.x.view(), RGBColor(214, 39, 40).mix(0.8), 2, None)?;
        Ok(())
    }
}

/// `trajectories.gif` and `trajectories_levels.png`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    let scene = Scene::new(report)?;
    let snaps = &report.snapshots;
    if snaps.is_empty() || report.level_ends.len() != report.levels.len() {
        bail!("trajectories figure: expected snapshots and one end of level per level");
    }
    // the GIF: every snapshot, then the last one held for a while
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
            scene.draw(&body, snap, &title, 18)
        },
    )?;
    bar.finish_and_clear();

    // one panel per level: the particles at the end of that level
    plot::save_png(&ctx.out, "trajectories_levels.png", (1800, 820), |root| {
        let (head, body) = root.split_vertically(40);
        head.titled(
            "Annealed Langevin with exact scores of p_σ: particles after each level (shading: p_σ, arrows: ∇ log p_σ; particles outside the square not shown)",
            (FONT, 22),
        )
        .map_err(plot_err)?;
        for ((end, summary), area) in report
            .level_ends
            .iter()
            .zip(&report.levels)
            .zip(body.split_evenly((2, 5)).iter())
        {
            let title = format!("level {}: σ = {:.2}", summary.level + 1, summary.sigma);
            scene.draw(area, end, &title, 16)?;
        }
        Ok(())
    })?;
    Ok(vec!["trajectories.gif".into(), "trajectories_levels.png".into()])
}
