//! Drawing with plotters: the font, colour maps, a grid of evaluation points and the pieces the
//! figures ([`crate::figures`]) share (heat maps, contour lines, arrow fields, scatter panels,
//! legends, colour bars). Errors are `anyhow` errors: a plotters failure ([`plot_err`]) or data
//! of the wrong shape for a figure ([`Grid::reshape`]).
//!
//! There are no system fonts on the machines this runs on: [`register_font`] embeds DejaVu Sans
//! (which has Greek letters, so `σ` renders) and registers it as `sans-serif` once.
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

use plotters::style::FontStyle;
use std::sync::Once;

/// The font family every figure uses.
pub const FONT: &str = "sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("../../../../assets/DejaVuSans.ttf");

/// Registers the embedded DejaVu Sans as `sans-serif` (idempotent; called by every saver).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only mean missing labels.
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            eprintln!("warning: the embedded font could not be registered; figures will lack text");
        }
    });
}

/// Turns any plotters error into an `anyhow` error (plotters' error types are generic over the
/// backend, which `anyhow` cannot always hold).
pub fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e}")
}
