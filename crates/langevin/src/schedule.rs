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
    pub(crate) fn normal_cdf(x: f64) -> f64 {
        0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
    }

    /// Error function: its Maclaurin series `erf x = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1))`
    /// below `|x| = 3` (summed to rounding; the alternating terms reach about `e^(x^2)`, so some
    /// `1e-13` is lost to cancellation), the asymptotic expansion of `erfc` from 3 on, truncated
    /// after four terms: its error is below the first omitted term,
    /// `105/(16 x^8) exp(-x^2)/(x sqrt(pi))`, at most `3e-8` at `x = 3` and falling fast beyond.
    /// That is enough to solve for the NCSNv2 ratio.
    pub(crate) fn erf(x: f64) -> f64 {
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

    /// Technique 2: the ratio `gamma = sigma_{i-1} / sigma_i` for data of dimension `d`, the root
    /// `gamma > 1` of
    /// `f(gamma) = Phi(sqrt(2d)(gamma - 1) + 3 gamma) - Phi(sqrt(2d)(gamma - 1) - 3 gamma) - 0.5`,
    /// found by bisection. (For CIFAR-10, `d = 3072`, gamma is a few percent above 1.)
    ///
    /// A root exists for `d >= 5` only. With `s = sqrt(2d)` the two arguments are the ends of the
    /// window `[(s - 3) gamma - s, (s + 3) gamma - s]`. For `d <= 4`, `s < 3`: at every
    /// `gamma >= 1` the lower end is at most `-3` and the upper end at least `3`, so the window
    /// holds at least `Phi(3) - Phi(-3) > 0.99` of the mass and `f > 0`; those `d` are an error.
    /// For `d >= 5`, `s > 3`: both ends grow without bound, `f -> -0.5`, and since
    /// `f(1) = Phi(3) - Phi(-3) - 0.5 > 0` there is a root.
    pub fn ratio(d: usize) -> Result<f64> {
        if d < 5 {
            return Err(invalid(
                "d",
                format!(
                    "expected a data dimension d >= 5, got {d}: for d <= 4 (sqrt(2d) < 3) the equation \
                     Phi(sqrt(2d)(gamma - 1) + 3 gamma) - Phi(sqrt(2d)(gamma - 1) - 3 gamma) = 0.5 has no \
                     solution gamma >= 1"
                ),
            ));
        }
        let s = (2.0 * d as f64).sqrt();
        let f = |g: f64| normal_cdf(s * (g - 1.0) + 3.0 * g) - normal_cdf(s * (g - 1.0) - 3.0 * g) - 0.5;
        // f(1) > 0 and f -> -0.5 as gamma grows (s > 3): double `hi` until f(hi) <= 0, then bisect.
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

    /// Technique 4's criterion for the step size, in the reference convention: NCSNv2 writes the
    /// update `x <- x + alpha_i s + sqrt(2 alpha_i) z` with `alpha_i = eps sigma_i^2 / sigma_L^2`
    /// ([`crate::StepConvention::Reference`]; the paper's `eps` for the same chain is twice this
    /// one). On `N(0, sigma_i^2 I)` the score is `-x / sigma_i^2`, so one step maps the variance
    /// `v` to `a^2 v + 2 alpha_i` with `a = 1 - eps / sigma_L^2`. After `T` steps started from the
    /// previous level's variance `gamma^2 sigma_i^2`, the variance over the target `sigma_i^2` is
    /// `a^(2T) (gamma^2 - b) + b`, with `b = 2 eps / (sigma_L^2 (1 - a^2))` the chain's fixed point;
    /// the criterion asks for a value close to 1.
    pub fn variance_ratio(eps_reference: f64, sigma_last: f64, gamma: f64, steps_per_level: usize) -> f64 {
        let s2 = sigma_last * sigma_last;
        let a = 1.0 - eps_reference / s2;
        let b = 2.0 * eps_reference / (s2 - s2 * a * a);
        a.powi(2 * steps_per_level as i32) * (gamma * gamma - b) + b
    }

    /// Technique 4: the reference-convention step size `eps` in `(0, sigma_L^2)` whose
    /// [`variance_ratio`] is closest to 1 among 901 log-spaced values
    /// `eps_k = 0.999 sigma_L^2 10^(-9 + 9k/900)`, `k = 0..=900` (neighbours differ by a factor
    /// `10^(1/100)`).
    pub fn step_size(sigma_last: f64, gamma: f64, steps_per_level: usize) -> Result<f64> {
        if !(sigma_last.is_finite() && sigma_last > 0.0) {
            return Err(invalid(
                "sigma_last",
                format!("expected a finite positive noise level, got {sigma_last}"),
            ));
        }
        if !(gamma.is_finite() && gamma > 1.0) {
            return Err(invalid("gamma", format!("expected a finite ratio > 1, got {gamma}")));
        }
        if steps_per_level == 0 {
            return Err(invalid("steps_per_level", "expected at least one step per level"));
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
        // Where the asymptotic branch is least accurate, x = 3: the first omitted term bounds it.
        assert!((ncsnv2::erf(3.0) - 0.999_977_909_503_001_4).abs() < 3e-8);
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
    fn ncsnv2_ratio_exists_from_d_5_and_is_an_error_below() {
        // d <= 4: the equation has no root gamma >= 1 (see `ratio`); the old bracket doubled to
        // infinity and returned Ok(inf).
        for d in 0..=4 {
            let msg = ncsnv2::ratio(d).unwrap_err().to_string();
            assert!(msg.contains("`d`") && msg.contains("d >= 5"), "d = {d}: {msg}");
        }
        // d = 5, the smallest dimension with a root: finite, > 1, and a root of the equation.
        let g = ncsnv2::ratio(5).unwrap();
        let s = 10.0f64.sqrt();
        let lhs = ncsnv2::normal_cdf(s * (g - 1.0) + 3.0 * g) - ncsnv2::normal_cdf(s * (g - 1.0) - 3.0 * g);
        assert!(g.is_finite() && g > 1.0, "{g}");
        assert!((lhs - 0.5).abs() < 1e-9, "{lhs}");
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
