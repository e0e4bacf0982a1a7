//! Noise schedules: the noise levels `sigma_1 > sigma_2 > ... > sigma_L` of NCSN.
//!
//! NCSN uses a geometric sequence, `sigma_i = sigma_1 * r^(i-1)` with
//! `r = (sigma_L / sigma_1)^(1/(L-1))`, so that consecutive levels have a constant ratio.
//! The CIFAR-10 defaults of the paper are `sigma_1 = 1`, `sigma_L = 0.01`, `L = 10`.
//!
//! [`ncsnv2`] collects the rules of "Improved Techniques for Training Score-Based Generative
//! Models" (Song & Ermon 2020) for choosing `sigma_1`, the ratio and the step size.
use crate::error::invalid;
use crate::Result;

/// Geometric noise levels from `sigma_first` down to `sigma_last` in `levels` steps:
/// `sigma_i = sigma_1 (sigma_L / sigma_1)^((i-1)/(L-1))`, `i = 1..=L`.
///
/// With `levels == 1` the schedule is `[sigma_first]` and `sigma_last` must equal it.
pub fn geometric_sigmas(sigma_first: f64, sigma_last: f64, levels: usize) -> Result<Vec<f64>> {
    if !(sigma_first.is_finite() && sigma_first > 0.0) {
        return Err(invalid(
            "sigma_first",
            format!("expected a finite positive number, got {sigma_first}"),
        ));
    }
    if !(sigma_last.is_finite() && sigma_last > 0.0) {
        return Err(invalid(
            "sigma_last",
            format!("expected a finite positive number, got {sigma_last}"),
        ));
    }
    if levels == 0 {
        return Err(invalid("levels", "expected at least one noise level"));
    }
    if levels == 1 {
        if sigma_first != sigma_last {
            return Err(invalid("levels", "one level needs sigma_first == sigma_last"));
        }
        return Ok(vec![sigma_first]);
    }
    if sigma_last > sigma_first {
        return Err(invalid(
            "sigma_last",
            format!("expected sigma_last <= sigma_first (levels decrease), got {sigma_last} > {sigma_first}"),
        ));
    }
    // log sigma_i is linear in i: interpolate in log space.
    let (a, b) = (sigma_first.ln(), sigma_last.ln());
    Ok((0..levels)
        .map(|i| {
            let t = i as f64 / (levels - 1) as f64;
            (a + t * (b - a)).exp()
        })
        .collect())
}

/// NCSNv2's rules (Song & Ermon 2020, Techniques 1-4) for choosing the schedule and step size.
pub mod ncsnv2 {
    use crate::error::invalid;
    use crate::Result;

    /// Technique 1: `sigma_1` as large as the maximum Euclidean distance between training points,
    /// so that the first level can move a particle from any data point to any other.
    pub fn sigma_1(points: &[Vec<f64>]) -> f64 {
        let mut best = 0.0_f64;
        for (i, p) in points.iter().enumerate() {
            for q in &points[i + 1..] {
                let d2: f64 = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                best = best.max(d2.sqrt());
            }
        }
        best
    }

    /// Standard normal CDF `Phi(x) = (1 + erf(x / sqrt 2)) / 2`.
    pub fn normal_cdf(x: f64) -> f64 {
        0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
    }

    /// Error function: its Maclaurin series `erf x = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1))`
    /// below `|x| = 3` (accurate to about 1e-13), the asymptotic expansion of `erfc` above (about
    /// 1e-9), which is enough to solve for the NCSNv2 ratio.
    pub fn erf(x: f64) -> f64 {
        // erf by its Maclaurin series for |x| < 3, by the asymptotic complement beyond.
        let ax = x.abs();
        let value = if ax < 3.0 {
            let mut term = ax;
            let mut sum = ax;
            let x2 = ax * ax;
            let mut n = 0.0;
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -x2 / n;
                sum += term / (2.0 * n + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        } else {
            // erfc(x) ~ exp(-x^2)/(x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - ...)
            let x2 = ax * ax;
            let series = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2 * x2 * x2);
            1.0 - (-x2).exp() / (ax * std::f64::consts::PI.sqrt()) * series
        };
        value.copysign(x)
    }

    /// Technique 2: the ratio `gamma = sigma_{i-1} / sigma_i` for data of dimension `d`, solving
    /// `Phi(sqrt(2d)(gamma - 1) + 3 gamma) - Phi(sqrt(2d)(gamma - 1) - 3 gamma) = 0.5`
    /// by bisection on `gamma > 1`. (For CIFAR-10, `d = 3072`, gamma is about 1.03.)
    pub fn ratio(d: usize) -> Result<f64> {
        if d == 0 {
            return Err(invalid("d", "expected a positive data dimension"));
        }
        let s = (2.0 * d as f64).sqrt();
        let f = |g: f64| normal_cdf(s * (g - 1.0) + 3.0 * g) - normal_cdf(s * (g - 1.0) - 3.0 * g) - 0.5;
        // f(1) = Phi(3) - Phi(-3) - 0.5 > 0 and f decreases to -0.5 as gamma grows.
        let (mut lo, mut hi) = (1.0, 2.0);
        while f(hi) > 0.0 {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if f(mid) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(0.5 * (lo + hi))
    }

    /// Number of levels `L` so that a geometric schedule with ratio `gamma` goes from
    /// `sigma_first` to at most `sigma_last`: `L = ceil(log(sigma_1/sigma_L)/log(gamma)) + 1`.
    pub fn levels(sigma_first: f64, sigma_last: f64, gamma: f64) -> Result<usize> {
        if gamma.is_nan() || gamma <= 1.0 {
            return Err(invalid("gamma", format!("expected a ratio > 1, got {gamma}")));
        }
        if !(sigma_first > sigma_last && sigma_last > 0.0) {
            return Err(invalid("sigma_first", "expected sigma_first > sigma_last > 0"));
        }
        // The 1e-9 keeps a ratio that divides the range exactly from rounding up one level too many.
        Ok(((sigma_first / sigma_last).ln() / gamma.ln() - 1e-9).ceil() as usize + 1)
    }

    /// Technique 4's criterion for the step size `eps` (in the paper's convention, where the
    /// step at level `i` is `alpha_i = eps sigma_i^2 / sigma_L^2`): with `T` steps per level, the
    /// variance ratio of a Langevin chain on `N(0, sigma_i^2 I)` started from the previous level is
    /// `(1 - eps/sigma_L^2)^(2T) (gamma^2 - 2 eps / (sigma_L^2 - sigma_L^2 (1 - eps/sigma_L^2)^2))
    ///  + 2 eps / (sigma_L^2 - sigma_L^2 (1 - eps/sigma_L^2)^2)`,
    /// which should be close to 1. (NCSNv2 writes the update as `x + eps s + sqrt(2 eps) z`;
    /// there `eps` is half of ours, see [`crate::StepConvention`].)
    pub fn variance_ratio(eps_reference: f64, sigma_last: f64, gamma: f64, steps_per_level: usize) -> f64 {
        let s2 = sigma_last * sigma_last;
        let a = 1.0 - eps_reference / s2;
        let b = 2.0 * eps_reference / (s2 - s2 * a * a);
        a.powi(2 * steps_per_level as i32) * (gamma * gamma - b) + b
    }

    /// Technique 4: the reference-convention step size `eps` in `(0, sigma_L^2)` whose
    /// [`variance_ratio`] is closest to 1, found by a log-spaced scan then golden-section refinement.
    pub fn step_size(sigma_last: f64, gamma: f64, steps_per_level: usize) -> Result<f64> {
        if sigma_last.is_nan() || sigma_last <= 0.0 || gamma.is_nan() || gamma <= 1.0 || steps_per_level == 0 {
            return Err(invalid(
                "step_size",
                "expected sigma_last > 0, gamma > 1 and at least one step",
            ));
        }
        let s2 = sigma_last * sigma_last;
        let obj = |e: f64| (variance_ratio(e, sigma_last, gamma, steps_per_level) - 1.0).abs();
        let mut best = (f64::INFINITY, s2 * 1e-9);
        for k in 0..=900 {
            let e = s2 * 10f64.powf(-9.0 + 9.0 * k as f64 / 900.0) * 0.999;
            let v = obj(e);
            if v < best.0 {
                best = (v, e);
            }
        }
        Ok(best.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_has_constant_ratio_and_endpoints() {
        let s = geometric_sigmas(1.0, 0.01, 10).unwrap();
        assert_eq!(s.len(), 10);
        assert!((s[0] - 1.0).abs() < 1e-15 && (s[9] - 0.01).abs() < 1e-15);
        let r = s[1] / s[0];
        for w in s.windows(2) {
            assert!((w[1] / w[0] - r).abs() < 1e-12);
        }
        // 0.01^(1/9) = 0.59948...
        assert!((r - 0.599_484_250_318_941).abs() < 1e-12);
    }

    #[test]
    fn geometric_rejects_bad_input() {
        assert!(geometric_sigmas(0.0, 0.01, 10).is_err());
        assert!(geometric_sigmas(1.0, 2.0, 10).is_err());
        assert!(geometric_sigmas(1.0, 0.1, 0).is_err());
        assert!(geometric_sigmas(f64::NAN, 0.1, 3).is_err());
        let msg = geometric_sigmas(1.0, -1.0, 3).unwrap_err().to_string();
        assert!(msg.contains("sigma_last"), "{msg}");
    }

    #[test]
    fn erf_matches_known_values() {
        // Tolerance 1e-12: the series converges to machine precision below |x| = 3.
        assert!((ncsnv2::erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-12);
        assert!((ncsnv2::erf(1.0) - 0.842_700_792_949_714_9).abs() < 1e-12);
        assert!((ncsnv2::erf(-2.0) + 0.995_322_265_018_952_7).abs() < 1e-12);
        assert!((ncsnv2::erf(3.5) - 0.999_999_256_901_627_7).abs() < 1e-9);
    }

    #[test]
    fn ncsnv2_ratio_solves_its_equation() {
        let g = ncsnv2::ratio(3072).unwrap();
        let s = (2.0f64 * 3072.0).sqrt();
        let lhs = ncsnv2::normal_cdf(s * (g - 1.0) + 3.0 * g) - ncsnv2::normal_cdf(s * (g - 1.0) - 3.0 * g);
        assert!((lhs - 0.5).abs() < 1e-9);
        assert!(g > 1.0 && g < 1.1, "CIFAR-10 ratio should be a few percent, got {g}");
        // A larger dimension needs a ratio closer to 1.
        assert!(ncsnv2::ratio(12288).unwrap() < g);
    }

    #[test]
    fn ncsnv2_step_size_matches_their_cifar10_choice() {
        // NCSNv2's CIFAR-10 schedule: sigma_1 = 50, sigma_L = 0.01, L = 232, T = 5; the paper
        // reports eps = 6.2e-6 (their convention). The criterion is "as close to 1 as possible".
        let g = (50.0f64 / 0.01).powf(1.0 / 231.0);
        let eps = ncsnv2::step_size(0.01, g, 5).unwrap();
        assert!((eps / 6.2e-6 - 1.0).abs() < 0.1, "eps {eps}");
        let r5 = ncsnv2::variance_ratio(eps, 0.01, g, 5);
        let r100 = ncsnv2::variance_ratio(ncsnv2::step_size(0.01, g, 100).unwrap(), 0.01, g, 100);
        // More steps per level let the chain equilibrate: the ratio gets closer to 1.
        assert!(r5 > 1.0 && (r100 - 1.0).abs() < (r5 - 1.0), "{r5} {r100}");
        assert_eq!(ncsnv2::levels(50.0, 0.01, g).unwrap(), 232);
    }
}
