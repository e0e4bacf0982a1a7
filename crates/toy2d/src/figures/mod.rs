//! The figures of the experiments, drawn from their reports ([`crate::experiments::Report`]):
//! one module per experiment, the shared drawing pieces in [`crate::plot`].
pub mod ascent_vs_langevin;
pub mod langevin_weights;
pub mod manifold;
pub mod ncsn2d;
pub mod score_field;
pub mod scores;
pub mod trajectories;

use crate::experiments::{Context, Report};
use crate::plot::Grid;
use anyhow::Result;
use gmm::GaussianMixture;
use ndarray::Array2;

/// Draws every figure of `report` into `ctx.out`; returns the names of the files written.
pub fn draw(report: &Report, ctx: &Context) -> Result<Vec<String>> {
    match report {
        Report::Scores(r) => scores::draw(r, ctx),
        Report::AscentVsLangevin(r) => ascent_vs_langevin::draw(r, ctx),
        Report::ScoreField(r) => score_field::draw(r, ctx),
        Report::LangevinWeights(r) => langevin_weights::draw(r, ctx),
        Report::Manifold(r) => manifold::draw(r, ctx),
        Report::Ncsn2d(r) => ncsn2d::draw(r, ctx),
        Report::Trajectories(r) => trajectories::draw(r, ctx),
    }
}

/// The log-density of `p` on a 120 x 120 grid over `bounds`, for the faint contours under
/// scatter panels ([`crate::plot::scatter_panel`]).
pub fn density_contours(p: &GaussianMixture, bounds: (f64, f64)) -> Result<(Grid, Array2<f64>)> {
    let grid = Grid::square(bounds.0, bounds.1, 120);
    let logp = p.log_density(grid.points().view());
    let values = grid.reshape(&logp.to_vec())?;
    Ok((grid, values))
}
