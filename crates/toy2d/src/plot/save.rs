//! Writing figures atomically: draw into `name.tmp.png` (or `.svg`, `.gif`), then rename.
use super::plot_err;
use crate::output::OutDir;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::PathBuf;
use workbench::font::register as register_font;

/// Draws a PNG of `size` pixels with `draw` and saves it as `name` in `out`.
pub fn save_png(
    out: &OutDir,
    name: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<PathBuf> {
    register_font();
    out.write_with(name, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
        Ok(())
    })
}

/// Draws an SVG of `size` with `draw` and saves it as `name` in `out`.
pub fn save_svg(
    out: &OutDir,
    name: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<PathBuf> {
    register_font();
    out.write_with(name, |tmp| {
        let root = SVGBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
        Ok(())
    })
}

/// An animated GIF: `frames` frames of `size`, `delay_ms` apart; `draw(area, k)` draws frame `k`.
pub fn save_gif(
    out: &OutDir,
    name: &str,
    size: (u32, u32),
    delay_ms: u32,
    frames: usize,
    mut draw: impl FnMut(&DrawingArea<BitMapBackend, Shift>, usize) -> Result<()>,
) -> Result<PathBuf> {
    register_font();
    out.write_with(name, |tmp| {
        let root = BitMapBackend::gif(tmp, size, delay_ms)
            .map_err(plot_err)?
            .into_drawing_area();
        for k in 0..frames {
            root.fill(&WHITE).map_err(plot_err)?;
            draw(&root, k)?;
            // each present() appends one frame
            root.present().map_err(plot_err)?;
        }
        Ok(())
    })
}
