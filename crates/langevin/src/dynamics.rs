//! Langevin dynamics with a fixed step.
//!
//! Given a score `s(x) = grad_x log p(x)` and a step `alpha > 0`, the chain
//! `x_{t+1} = x_t + alpha/2 * s(x_t) + sqrt(alpha) * z_t`, `z_t ~ N(0, I)`,
//! has `p` as its stationary distribution as `alpha -> 0` and `t -> infinity`. Without the noise
//! term it is gradient *ascent* on `log p` and collapses onto the modes.
use crate::error::invalid;
use crate::trajectory::{Snapshot, Trajectory};
use crate::{Error, Particles, Result};
use rand::Rng;

/// How a step size is turned into the drift and noise scales of one Langevin update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepConvention {
    /// The paper's form: `x <- x + alpha/2 * s(x) + sqrt(alpha) * z`.
    #[default]
    Paper,
    /// The reference code's form: `x <- x + step * s(x) + sqrt(2 step) * z`
    /// (the paper's update with `alpha = 2 step`).
    Reference,
}

impl StepConvention {
    /// The (drift, noise) coefficients of `x + drift * s(x) + noise * z` for a step size.
    pub fn coefficients(self, step: f64) -> (f64, f64) {
        match self {
            StepConvention::Paper => (0.5 * step, step.sqrt()),
            StepConvention::Reference => (step, (2.0 * step).sqrt()),
        }
    }

    /// Parses `paper` or `reference` (as a command line would give it).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(StepConvention::Paper),
            "reference" => Ok(StepConvention::Reference),
            other => Err(invalid(
                "step_convention",
                format!("expected `paper` or `reference`, got `{other}`"),
            )),
        }
    }
}

/// Errors unless the score `s` has the shape of the particles `x`.
pub(crate) fn check_score<X: Particles>(x: &X, s: &X) -> Result<()> {
    let (a, b) = (x.shape_vec(), s.shape_vec());
    if a != b {
        return Err(Error::ScoreShape { expected: a, got: b });
    }
    Ok(())
}

/// Runs `n_steps` of Langevin dynamics with a fixed `step` from `x0`.
///
/// `record_every = Some(k)` keeps the particles every `k` steps (and the start) in the returned
/// [`Trajectory`]; the snapshots carry `level = 0` and `sigma = NaN` (no noise level here).
pub fn langevin<X, F, R>(
    x0: X,
    mut score: F,
    step: f64,
    n_steps: usize,
    convention: StepConvention,
    record_every: Option<usize>,
    rng: &mut R,
) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    F: FnMut(&X) -> Result<X>,
    R: Rng + ?Sized,
{
    langevin_into(
        x0,
        |x, out| {
            *out = score(x)?;
            Ok(())
        },
        step,
        n_steps,
        convention,
        record_every,
        rng,
    )
}

/// [`langevin`] with a score that writes into a buffer, `score(x, out)`: with an array and a score
/// that fills `out` in place (e.g. `GaussianMixture::score_into`), a step allocates nothing.
pub fn langevin_into<X, F, R>(
    x0: X,
    mut score: F,
    step: f64,
    n_steps: usize,
    convention: StepConvention,
    record_every: Option<usize>,
    rng: &mut R,
) -> Result<Trajectory<X>>
where
    X: Particles + Clone,
    F: FnMut(&X, &mut X) -> Result<()>,
    R: Rng + ?Sized,
{
    if !(step.is_finite() && step > 0.0) {
        return Err(invalid("step", format!("expected a finite positive step, got {step}")));
    }
    if record_every == Some(0) {
        return Err(invalid("record_every", "expected a positive interval"));
    }
    let (drift, noise) = convention.coefficients(step);
    let mut snapshots = Vec::new();
    let mut x = x0;
    let mut s = x.clone(); // the score buffer, reused at every step
    for t in 0..n_steps {
        if record_every.is_some_and(|k| t.is_multiple_of(k)) {
            snapshots.push(Snapshot {
                level: 0,
                step: t,
                sigma: f64::NAN,
                x: x.clone(),
                denoised: None,
            });
        }
        score(&x, &mut s)?;
        check_score(&x, &s)?;
        x.langevin_update(&s, drift, noise, rng)?; // x + drift s + noise z
    }
    if record_every.is_some() {
        snapshots.push(Snapshot {
            level: 0,
            step: n_steps,
            sigma: f64::NAN,
            x: x.clone(),
            denoised: None,
        });
    }
    Ok(Trajectory { samples: x, snapshots })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;

    #[test]
    fn conventions_are_the_same_chain_with_twice_the_step() {
        let (d1, n1) = StepConvention::Paper.coefficients(0.2);
        let (d2, n2) = StepConvention::Reference.coefficients(0.1);
        assert!((d1 - d2).abs() < 1e-15 && (n1 - n2).abs() < 1e-15);
        assert!(StepConvention::parse("paper").is_ok());
        assert!(StepConvention::parse("Paper!")
            .unwrap_err()
            .to_string()
            .contains("step_convention"));
    }

    #[test]
    fn samples_a_gaussian_from_its_score() {
        // Target N(2, 0.5^2): score -(x - 2)/0.25. 4,000 chains, 2,000 small steps.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x0 = Array2::<f64>::zeros((4000, 1));
        let out = langevin(
            x0,
            |x| Ok(x.mapv(|v| -(v - 2.0) / 0.25)),
            0.01,
            2000,
            StepConvention::Paper,
            None,
            &mut rng,
        )
        .unwrap()
        .samples;
        let mean = out.mean().unwrap();
        let var = out.mapv(|v| (v - mean) * (v - mean)).mean().unwrap();
        // Discretisation bias of the variance at alpha = 0.01 is about alpha/(4 * 0.25) ~ 1%;
        // Monte-Carlo error of the mean ~ 0.5/sqrt(4000) = 0.008. Tolerances: 0.04 and 0.02.
        assert!((mean - 2.0).abs() < 0.04, "mean {mean}");
        assert!((var - 0.25).abs() < 0.02, "var {var}");
    }

    #[test]
    fn rejects_bad_step_and_bad_score_shape() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x0 = Array2::<f64>::zeros((4, 2));
        assert!(langevin(
            x0.clone(),
            |x| Ok(x.clone()),
            -1.0,
            3,
            StepConvention::Paper,
            None,
            &mut rng
        )
        .is_err());
        let err = langevin(
            x0,
            |_| Ok(Array2::zeros((4, 3))),
            0.1,
            3,
            StepConvention::Paper,
            None,
            &mut rng,
        )
        .unwrap_err();
        assert!(matches!(err, Error::ScoreShape { .. }));
    }
}
