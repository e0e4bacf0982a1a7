//! The toy data sets of the book, each a sampler with a fixed seed-independent definition.
//!
//! | name | what | exact score |
//! |---|---|---|
//! | `mixture` | the paper's `1/5 N((-5,-5), I) + 4/5 N((5,5), I)` | yes |
//! | `ring` | 8 equal modes on a circle of radius 4, variance 0.05 | yes |
//! | `moons` | two interleaved half circles with Gaussian noise 0.05 | no |
//! | `spiral` | one and a half turns of a spiral with Gaussian noise 0.1 | no |
//! | `curve` | a sine curve with zero thickness (the manifold hypothesis) | no (no density) |
use crate::GaussianMixture;
use ndarray::{array, Array2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

/// The paper's mixture (Fig. 3): `p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)`.
pub fn paper_mixture() -> GaussianMixture {
    GaussianMixture::isotropic(&[0.2, 0.8], array![[-5.0, -5.0], [5.0, 5.0]], &[1.0, 1.0])
        .expect("the paper's mixture is valid")
}

/// `modes` equally weighted isotropic Gaussians of variance `variance` on a circle of `radius`.
///
/// Returns an error through [`GaussianMixture::new`] if `modes == 0` or `variance <= 0`.
pub fn ring(modes: usize, radius: f64, variance: f64) -> Result<GaussianMixture, crate::GmmError> {
    let means = Array2::from_shape_fn((modes, 2), |(k, d)| {
        let angle = 2.0 * PI * k as f64 / modes as f64;
        radius * if d == 0 { angle.cos() } else { angle.sin() }
    });
    let w = vec![1.0 / modes as f64; modes];
    // Equal weights 1/K sum to 1 within rounding.
    GaussianMixture::isotropic(&w, means, &vec![variance; modes])
}

/// Two interleaved half circles ("two moons"), scaled by 2 and centred, plus `N(0, noise^2 I)`.
pub fn two_moons<R: Rng + ?Sized>(n: usize, noise: f64, rng: &mut R) -> Array2<f64> {
    let mut out = Array2::zeros((n, 2));
    for mut row in out.outer_iter_mut() {
        let t = PI * rng.random::<f64>();
        let (x, y) = if rng.random::<bool>() {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        let (zx, zy): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
        // centre (0.5, 0.25) and scale 2 so the moons fill about [-3, 3] x [-1.5, 2.5]
        row[0] = 2.0 * (x - 0.5) + noise * zx;
        row[1] = 2.0 * (y - 0.25) + noise * zy;
    }
    out
}

/// A spiral: angle `3 pi t`, radius `0.5 + 3.5 t` for `t ~ U(0, 1)`, plus `N(0, noise^2 I)`.
pub fn spiral<R: Rng + ?Sized>(n: usize, noise: f64, rng: &mut R) -> Array2<f64> {
    let mut out = Array2::zeros((n, 2));
    for mut row in out.outer_iter_mut() {
        let t: f64 = rng.random();
        let (angle, radius) = (3.0 * PI * t, 0.5 + 3.5 * t);
        let (zx, zy): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
        row[0] = radius * angle.cos() + noise * zx;
        row[1] = radius * angle.sin() + noise * zy;
    }
    out
}

/// Points exactly on the curve `y = 2 sin(x)`, `x ~ U(-4, 4)`: a 1D manifold in 2D with zero
/// thickness, so the data have no density in `R^2` and no score.
pub fn curve<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<f64> {
    let mut out = Array2::zeros((n, 2));
    for mut row in out.outer_iter_mut() {
        let x = rng.random_range(-4.0..4.0);
        row[0] = x;
        row[1] = 2.0 * f64::sin(x);
    }
    out
}

/// The toy data sets by name, for command lines and figure grids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toy {
    /// [`paper_mixture`].
    Mixture,
    /// [`ring`] with 8 modes, radius 4, variance 0.05.
    Ring,
    /// [`two_moons`] with noise 0.05.
    Moons,
    /// [`spiral`] with noise 0.1.
    Spiral,
    /// [`curve`].
    Curve,
}

impl Toy {
    /// Every data set, in the book's order.
    pub const ALL: [Toy; 5] = [Toy::Mixture, Toy::Ring, Toy::Moons, Toy::Spiral, Toy::Curve];

    /// The lower-case name used on command lines and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Toy::Mixture => "mixture",
            Toy::Ring => "ring",
            Toy::Moons => "moons",
            Toy::Spiral => "spiral",
            Toy::Curve => "curve",
        }
    }

    /// Parses a name given by [`Toy::name`].
    pub fn from_name(name: &str) -> Option<Toy> {
        Toy::ALL.into_iter().find(|t| t.name() == name)
    }

    /// `n` samples, shape `(n, 2)`.
    pub fn sample<R: Rng + ?Sized>(self, n: usize, rng: &mut R) -> Array2<f64> {
        match self {
            Toy::Mixture => paper_mixture().sample(n, rng),
            Toy::Ring => ring_default().sample(n, rng),
            Toy::Moons => two_moons(n, 0.05, rng),
            Toy::Spiral => spiral(n, 0.1, rng),
            Toy::Curve => curve(n, rng),
        }
    }

    /// The exact distribution, where the data set is a mixture.
    pub fn exact(self) -> Option<GaussianMixture> {
        match self {
            Toy::Mixture => Some(paper_mixture()),
            Toy::Ring => Some(ring_default()),
            _ => None,
        }
    }

    /// A square `[lo, hi]^2` that frames the data for plots.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            Toy::Mixture => (-8.0, 8.0),
            Toy::Ring => (-6.0, 6.0),
            Toy::Moons => (-3.5, 3.5),
            Toy::Spiral => (-5.0, 5.0),
            Toy::Curve => (-5.0, 5.0),
        }
    }
}

fn ring_default() -> GaussianMixture {
    ring(8, 4.0, 0.05).expect("the default ring is valid")
}
