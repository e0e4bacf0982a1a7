//! The font of every figure, embedded: the machines this runs on have no system fonts.
//! DejaVu Sans (free to ship) has the Greek letters the figures use (`σ`).
use std::sync::Once;

use plotters::style::FontStyle;

/// The font family every figure uses.
pub const FAMILY: &str = "sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Registers the embedded DejaVu Sans as [`FAMILY`]; idempotent, call before drawing text.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and parses; a failure would only mean figures without text.
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_err() {
            eprintln!("warning: the embedded font could not be registered; figures will lack text");
        }
    });
}
