//! Chapter 1: the exact score field of the paper's mixture over its density, and the cut of
//! `log p` and of the score along the diagonal.
use crate::experiments::scores::{Report, ARROW_GRID, BOUNDS, CUT};
use crate::experiments::Context;
use crate::plot::{
    self, arrow_vectors, density_color, draw_arrows, draw_contours, draw_heatmap, plot_err, square_chart, Grid, FONT,
    PALETTE,
};
use anyhow::Result;
use gmm::datasets::paper_mixture;
use plotters::coord::Shift;
use plotters::prelude::*;

/// `scores.png`.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    let name = "scores.png";
    plot::save_png(&ctx.out, name, (1000, 520), |root| {
        let (left, right) = root.split_horizontally(520);
        field_panel(&left)?;
        let (top, bottom) = right.split_vertically(260);
        let cut = |v: &[f64]| report.cut_u.iter().cloned().zip(v.iter().cloned()).collect::<Vec<_>>();
        line_chart(
            &top,
            "(b) log p along x = u (1,1)/√2",
            "log p",
            &cut(&report.cut_log_p),
            PALETTE[0],
            None,
        )?;
        line_chart(
            &bottom,
            "(c) the score along it: the slope of (b)",
            "s(x)·(1,1)/√2",
            &cut(&report.cut_score),
            PALETTE[1],
            Some(report.equal_responsibility_sum / 2f64.sqrt()),
        )?;
        Ok(())
    })?;
    Ok(vec![name.into()])
}

/// The field: density shading, log-density contours, score arrows, the diagonal of the cut.
fn field_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<()> {
    let p = paper_mixture();
    let shade = Grid::square(BOUNDS.0, BOUNDS.1, 200);
    let logp_vals = p.log_density(shade.points().view());
    let top = logp_vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    // shading by sqrt(p / p_max), so the small mode shows next to the large one
    let shading = shade.reshape(&logp_vals.iter().map(|l| (0.5 * (l - top)).exp()).collect::<Vec<_>>())?;
    let logp = shade.reshape(&logp_vals.to_vec())?;
    let arrows = Grid::square(BOUNDS.0, BOUNDS.1, ARROW_GRID);
    let apts = arrows.points();
    let s = p.score(apts.view());
    let s_max = s.outer_iter().map(|r| r.dot(&r).sqrt()).fold(0.0, f64::max);
    let mut chart = square_chart(area, "(a) the score ∇ₓ log p over the density p", BOUNDS, 19)?;
    draw_heatmap(&mut chart, &shade, &shading, (0.0, 1.0), |t| density_color(0.85 * t))?;
    // log p at 2, 6, 12, 20, 30 nats below its peak
    let levels: Vec<f64> = [2.0, 6.0, 12.0, 20.0, 30.0].iter().map(|d| top - d).collect();
    draw_contours(
        &mut chart,
        &shade,
        &logp,
        &levels,
        RGBColor(130, 130, 130).stroke_width(1),
    )?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(BOUNDS.0, BOUNDS.0), (BOUNDS.1, BOUNDS.1)],
            PALETTE[3].stroke_width(1),
        )))
        .map_err(plot_err)?;
    let v = arrow_vectors(&s, arrows.cell() * 0.95, s_max);
    draw_arrows(&mut chart, apts.view(), v.view(), BLACK.stroke_width(1))?;
    // labels on white boxes (about 0.045 data units a pixel: 445 pixels for 20 units; a
    // character about 7.5 pixels wide)
    let note = (FONT, 14).into_font().color(&BLACK);
    for (text, (x, y)) in [
        ("weight 0.2", (-7.3, -2.6)),
        ("weight 0.8", (2.7, 7.4)),
        ("orange: the cut of (b), (c)", (-9.7, 9.6)),
    ] {
        let w = 0.045 * 7.5 * text.chars().count() as f64;
        chart
            .draw_series([Rectangle::new(
                [(x - 0.1, y + 0.1), (x + w, y - 0.8)],
                WHITE.mix(0.9).filled(),
            )])
            .map_err(plot_err)?;
        chart
            .draw_series([Text::new(text, (x, y), note.clone())])
            .map_err(plot_err)?;
    }
    Ok(())
}

/// A curve over `u` in `[-CUT, CUT]` with a zero line and the modes (and, if given, the line of
/// equal responsibilities) marked.
fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    color: RGBColor,
    boundary: Option<f64>,
) -> Result<()> {
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = 0.06 * (hi - lo);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(34)
        .y_label_area_size(52)
        .build_cartesian_2d(-CUT..CUT, (lo - pad)..(hi + pad))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("u")
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(230, 230, 230))
        .draw()
        .map_err(plot_err)?;
    let grey = RGBColor(150, 150, 150);
    let mode = 5.0 * 2f64.sqrt();
    let mut marks = vec![-mode, mode];
    marks.extend(boundary);
    for u in marks {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(u, lo - pad), (u, hi + pad)],
                grey.stroke_width(1),
            )))
            .map_err(plot_err)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-CUT, 0.0), (CUT, 0.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new(points.iter().cloned(), color.stroke_width(2)))
        .map_err(plot_err)?;
    let note = (FONT, 13).into_font().color(&RGBColor(90, 90, 90));
    let y = hi + pad * 0.2 - 0.08 * (hi - lo);
    let mut labels = vec![
        Text::new("small mode".to_string(), (-mode + 0.2, y), note.clone()),
        Text::new("large mode".to_string(), (mode + 0.2, y), note.clone()),
    ];
    if let Some(b) = boundary {
        // low and to the right, clear of the jump of the curve
        labels.push(Text::new(
            "r_small = r_large = ½".to_string(),
            (b + 0.5, lo + 0.25 * (hi - lo)),
            note,
        ));
    }
    chart.draw_series(labels).map_err(plot_err)?;
    Ok(())
}
