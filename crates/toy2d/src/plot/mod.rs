//! Drawing with plotters: the font, colour maps, a grid of evaluation points and the pieces the
//! figures ([`crate::figures`]) share (heat maps, contour lines, arrow fields, scatter panels,
//! legends, colour bars). Errors are `anyhow` errors: a plotters failure ([`plot_err`]) or data
//! of the wrong shape for a figure ([`Grid::reshape`]).
//!
//! The font is the workbench's embedded one ([`workbench::font`]), registered by every saver.
pub mod colormap;
pub mod contour;
pub mod draw;
pub mod grid;
pub mod save;

pub use colormap::{density_color, viridis};
pub use contour::iso_lines;
pub use draw::{
    arrow_vectors, draw_arrows, draw_colorbar, draw_contours, draw_heatmap, draw_legend, draw_loss_axes, draw_points,
    scatter_panel, square_chart, Chart2d, PALETTE,
};
pub use grid::Grid;
pub use save::{save_gif, save_png, save_svg};

/// The font family every figure uses.
pub use workbench::font::FAMILY as FONT;

/// Turns any plotters error into an `anyhow` error (plotters' error types are generic over the
/// backend, which `anyhow` cannot always hold).
pub fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e}")
}
