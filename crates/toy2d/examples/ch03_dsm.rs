//! What denoising score matching estimates (the book's Chapter 3, Figure 3.1):
//!
//! `cargo run --release -p toy2d --example ch03_dsm`
//!
//! writes `book/src/figures/ch03_dsm.png` and the numbers the chapter quotes to
//! `book/src/figures/ch03_dsm.json`.
//!
//! The minimiser of the DSM objective at noise level `sigma` is `grad log p_sigma`, the score of the
//! data blurred by `N(0, sigma^2 I)`, not the score of the data. On the paper's mixture
//! `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)` both are exact: `p_sigma` is the mixture with variances
//! `1 + sigma^2` (`GaussianMixture::perturbed`). The figure follows the line `x = (t, t)` through the
//! two modes: above, the density `p_sigma(t, t)` for a few `sigma` (each scaled to its maximum);
//! below, the DSM minimiser there, `d/dx_1 log p_sigma(t, t)` (equal to `d/dx_2` by symmetry).
//!
//! Nothing is sampled or trained, so there is no seed: every curve is a closed form.
#![cfg_attr(test, allow(dead_code))] // under `cargo test`, main and the drawing go unused
use anyhow::{ensure, Result};
use gmm::datasets::paper_mixture;
use gmm::GaussianMixture;
use ndarray::Array2;
use plotters::prelude::*;
use serde::Serialize;
use toy2d::output::OutDir;
use toy2d::plot::{draw_legend, plot_err, save_png, FONT, PALETTE};

/// The noise levels drawn; `sigma = 0` is the data itself.
const SIGMAS: [f64; 4] = [0.0, 1.0, 2.0, 5.0];
/// The stretch of the line drawn, `t in [-T_MAX, T_MAX]`.
const T_MAX: f64 = 10.0;
/// Points along the line.
const POINTS: usize = 401;

/// The points `(t, t)` for `POINTS` values of `t` evenly spaced over `[lo, hi]`.
fn line(lo: f64, hi: f64, n: usize) -> (Vec<f64>, Array2<f64>) {
    let ts: Vec<f64> = (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect();
    let x = Array2::from_shape_fn((n, 2), |(i, _)| ts[i]);
    (ts, x)
}

/// Along the line at level `sigma`: `log p_sigma(t, t)` and the first coordinate of
/// `grad log p_sigma(t, t)` (the DSM minimiser).
struct Profile {
    sigma: f64,
    log_density: Vec<f64>,
    score: Vec<f64>,
}

fn profile(data: &GaussianMixture, sigma: f64, x: &Array2<f64>) -> Result<Profile> {
    let p = data.perturbed(sigma)?; // p_sigma = sum_k w_k N(mu_k, (1 + sigma^2) I)
    let s = p.score(x.view());
    Ok(Profile {
        sigma,
        log_density: p.log_density(x.view()).to_vec(),
        score: s.column(0).to_vec(),
    })
}

/// How many local maxima `p_sigma(t, t)` has on `t in [-20, 20]` (a grid of step 0.004).
fn modes_on_line(data: &GaussianMixture, sigma: f64) -> Result<usize> {
    let (_, x) = line(-20.0, 20.0, 10_001);
    let l = data.perturbed(sigma)?.log_density(x.view());
    Ok((1..l.len() - 1)
        .filter(|&i| l[i] > l[i - 1] && l[i] >= l[i + 1])
        .count())
}

/// The smallest `sigma` at which `p_sigma(t, t)` has a single mode, by bisection on `[0, 10]`
/// (two modes at `sigma = 0`, one at `sigma = 10`; the count only falls as `sigma` grows).
fn one_mode_sigma(data: &GaussianMixture) -> Result<f64> {
    let (mut lo, mut hi) = (0.0, 10.0);
    ensure!(modes_on_line(data, lo)? == 2 && modes_on_line(data, hi)? == 1);
    while hi - lo > 1e-4 {
        let mid = 0.5 * (lo + hi);
        if modes_on_line(data, mid)? == 1 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

#[derive(Serialize)]
struct Level {
    sigma: f64,
    /// `d/dx_1 log p_sigma` at the midpoint `(0, 0)` between the modes. There the responsibilities
    /// stay at the weights 0.2 / 0.8 for every `sigma` (both modes are at the same distance with
    /// the same variance), so this is `(0.2 (-5) + 0.8 (5)) / (1 + sigma^2) = 3 / (1 + sigma^2)`.
    midpoint_score: f64,
    /// First coordinate of the Tweedie denoiser `E[x | x~ = (0, 0)] = x~ + sigma^2 grad log p_sigma(x~)`.
    midpoint_denoiser: f64,
    /// Local maxima of `p_sigma(t, t)`.
    modes_on_line: usize,
}

#[derive(Serialize)]
struct Report {
    levels: Vec<Level>,
    /// The smallest `sigma` (to 1e-4) at which `p_sigma(t, t)` has one mode.
    one_mode_sigma: f64,
}

fn main() -> Result<()> {
    let data = paper_mixture();
    let out = OutDir::create(concat!(env!("CARGO_MANIFEST_DIR"), "/../../book/src/figures"))?;
    let (ts, x) = line(-T_MAX, T_MAX, POINTS);
    let profiles: Vec<Profile> = SIGMAS.iter().map(|&s| profile(&data, s, &x)).collect::<Result<_>>()?;

    let origin = ndarray::array![[0.0, 0.0]];
    let levels: Vec<Level> = SIGMAS
        .iter()
        .map(|&sigma| {
            let s0 = data.perturbed(sigma)?.score(origin.view())[[0, 0]];
            Ok(Level {
                sigma,
                midpoint_score: s0,
                midpoint_denoiser: 0.0 + sigma * sigma * s0, // Tweedie: x~ + sigma^2 s(x~)
                modes_on_line: modes_on_line(&data, sigma)?,
            })
        })
        .collect::<Result<_>>()?;
    let report = Report {
        levels,
        one_mode_sigma: one_mode_sigma(&data)?,
    };
    out.write_json("ch03_dsm.json", &report)?;

    let path = save_png(&out, "ch03_dsm.png", (1000, 820), |root| {
        let (top, bottom) = root.split_vertically(380);
        draw_densities(&top, &ts, &profiles)?;
        draw_scores(&bottom, &ts, &profiles)?;
        Ok(())
    })?;
    println!("wrote {}", path.display());
    Ok(())
}

fn label(sigma: f64) -> String {
    if sigma == 0.0 {
        "σ = 0 (the data)".to_string()
    } else {
        format!("σ = {sigma}")
    }
}

/// Above: `p_sigma(t, t) / max_t p_sigma(t, t)` for every level.
fn draw_densities<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ts: &[f64],
    profiles: &[Profile],
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption("Density along the line x = (t, t) through both modes", (FONT, 24))
        .margin(10)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-T_MAX..T_MAX, 0.0..1.08)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(230, 230, 230))
        .y_labels(6)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("p_σ(t, t) / its maximum")
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 19))
        .draw()
        .map_err(plot_err)?;
    for (k, p) in profiles.iter().enumerate() {
        let top = p.log_density.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let pts = ts.iter().zip(&p.log_density).map(|(&t, &l)| (t, (l - top).exp()));
        let color = PALETTE[k];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(3)))
            .map_err(plot_err)?
            .label(label(p.sigma))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 18))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Below: the DSM minimiser `d/dx_1 log p_sigma(t, t)` for every level, with the zero line.
fn draw_scores<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ts: &[f64],
    profiles: &[Profile],
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption("What DSM at level σ learns there: ∂/∂x₁ log p_σ(t, t)", (FONT, 24))
        .margin(10)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(-T_MAX..T_MAX, -5.5..5.5)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc("t")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("score (first coordinate)")
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 19))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new(
            vec![(-T_MAX, 0.0), (T_MAX, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
    for (k, p) in profiles.iter().enumerate() {
        let color = PALETTE[k];
        chart
            .draw_series(LineSeries::new(
                ts.iter().zip(&p.score).map(|(&t, &s)| (t, s)),
                color.stroke_width(3),
            ))
            .map_err(plot_err)?
            .label(label(p.sigma))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    draw_legend(&mut chart, 18)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plotted scores are the derivatives of the plotted log densities: on the line,
    /// `d/dt log p_sigma(t, t) = s_1 + s_2 = 2 s_1` (the two coordinates are equal by symmetry), and a
    /// central difference of step `h = 1e-4` agrees to `O(h^2)`. A score of the data instead of
    /// `p_sigma`, or a wrong sign, fails it.
    #[test]
    fn plotted_scores_are_derivatives_of_the_plotted_log_densities() {
        let data = paper_mixture();
        let h = 1e-4;
        let (ts, x) = line(-T_MAX, T_MAX, 97);
        let (_, xp) = line(-T_MAX + h, T_MAX + h, 97);
        let (_, xm) = line(-T_MAX - h, T_MAX - h, 97);
        for &sigma in &SIGMAS {
            let p = profile(&data, sigma, &x).unwrap();
            let (lp, lm) = (
                profile(&data, sigma, &xp).unwrap().log_density,
                profile(&data, sigma, &xm).unwrap().log_density,
            );
            let s2 = data.perturbed(sigma).unwrap().score(x.view()).column(1).to_vec();
            for i in 0..ts.len() {
                let fd = (lp[i] - lm[i]) / (2.0 * h);
                assert!((fd - 2.0 * p.score[i]).abs() < 1e-5, "sigma {sigma}, t {}", ts[i]);
                assert!((p.score[i] - s2[i]).abs() < 1e-12);
            }
        }
    }

    /// The midpoint's score is `3 / (1 + sigma^2)` (see [`Level::midpoint_score`]), and the line has
    /// two modes for the data and one for a blur much wider than the modes' distance.
    #[test]
    fn midpoint_score_and_mode_count() {
        let data = paper_mixture();
        let origin = ndarray::array![[0.0, 0.0]];
        for &sigma in &SIGMAS {
            let s = data.perturbed(sigma).unwrap().score(origin.view());
            assert!((s[[0, 0]] - 3.0 / (1.0 + sigma * sigma)).abs() < 1e-12);
        }
        assert_eq!(modes_on_line(&data, 0.0).unwrap(), 2);
        assert_eq!(modes_on_line(&data, 10.0).unwrap(), 1);
        let s = one_mode_sigma(&data).unwrap();
        assert!(s > 1.0 && s < 10.0);
        assert_eq!(modes_on_line(&data, s + 0.01).unwrap(), 1);
        assert_eq!(modes_on_line(&data, s - 0.01).unwrap(), 2);
    }
}
