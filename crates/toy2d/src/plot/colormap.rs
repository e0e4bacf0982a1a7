//! Colour maps: `viridis` for magnitudes (perceptually uniform, readable in grey) and a
//! white-to-blue ramp for densities.
use plotters::style::RGBColor;

/// Linear interpolation between colour anchors at equally spaced positions of `t` in `[0, 1]`.
fn ramp(anchors: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (anchors.len() - 1) as f64;
    let i = (pos.floor() as usize).min(anchors.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (anchors[i], anchors[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + f * (q as f64 - p as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Viridis, sampled at 9 anchors.
pub fn viridis(t: f64) -> RGBColor {
    const V: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    ramp(&V, t)
}

/// White (t = 0) to dark blue (t = 1), for densities under arrows and points.
pub fn density_color(t: f64) -> RGBColor {
    const B: [(u8, u8, u8); 5] = [
        (255, 255, 255),
        (222, 235, 247),
        (158, 202, 225),
        (66, 146, 198),
        (8, 69, 148),
    ];
    ramp(&B, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(7.0), viridis(1.0));
        assert_eq!(density_color(f64::NAN), RGBColor(255, 255, 255));
    }
}
