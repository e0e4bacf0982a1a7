//! The Inception score (Salimans et al., 2016): `exp(E_x KL(p(y|x) || p(y)))`, large when each
//! sample is classified confidently (sharp `p(y|x)`) and the samples spread over the classes
//! (flat `p(y)`). It lies between 1 (every prediction the same) and the number of classes `k`
//! (every prediction certain, classes balanced).
//!
//! As in the original code, the samples are cut into `splits` contiguous parts, the score is
//! computed within each part (with that part's `p(y)`), and the mean and the standard deviation
//! over parts are reported.

use crate::{Error, Result};

/// The number of parts of the original code (and of most reported scores).
pub const DEFAULT_SPLITS: usize = 10;

/// The Inception score of `n = logits.len() / k` samples whose class logits are stored row after
/// row (`n x k`, as a classifier's last layer outputs them; softmax is applied here), over
/// `splits` contiguous parts `i n / splits .. (i + 1) n / splits`. Returns the mean of the
/// parts' scores and their population standard deviation (divided by `splits`, numpy's
/// `np.std` default). All arithmetic is in `f64`.
///
/// Errors: `k == 0` or a length that is not whole rows ([`Error::Shape`]), fewer samples than
/// parts or `splits == 0` ([`Error::Shape`]), NaN or infinite logits ([`Error::NonFinite`]).
pub fn inception_score(logits: &[f32], k: usize, splits: usize) -> Result<(f64, f64)> {
    if k == 0 || !logits.len().is_multiple_of(k) {
        return Err(Error::Shape(format!(
            "Inception score: {} logits are not whole rows of {k} classes",
            logits.len()
        )));
    }
    let n = logits.len() / k;
    if splits == 0 || n < splits {
        return Err(Error::Shape(format!(
            "Inception score: {n} sample(s) cannot be cut into {splits} part(s)"
        )));
    }
    let bad = logits.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(Error::NonFinite {
            what: "logits for the Inception score".into(),
            count: bad,
        });
    }
    // log p(y|x) for every sample, row-major n x k.
    let log_p: Vec<f64> = logits.chunks_exact(k).flat_map(log_softmax).collect();

    let scores: Vec<f64> = (0..splits)
        .map(|i| {
            let part = &log_p[i * n / splits * k..(i + 1) * n / splits * k];
            split_score(part, k)
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / splits as f64;
    // population sd: sqrt((1/S) sum_s (score_s - mean)^2)
    let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / splits as f64;
    Ok((mean, var.sqrt()))
}

/// `log softmax(z)_y = z_y - max(z) - log(sum_j exp(z_j - max(z)))`: subtracting the maximum
/// keeps every `exp` in `(0, 1]`, so nothing overflows.
fn log_softmax(z: &[f32]) -> Vec<f64> {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let log_sum = z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    z.iter().map(|&v| v as f64 - max - log_sum).collect()
}

/// `exp(mean_x KL(p(y|x) || p(y)))` for one part, from its `log p(y|x)` rows.
fn split_score(log_p: &[f64], k: usize) -> f64 {
    let m = log_p.len() / k;
    // p(y) = (1/m) sum_x p(y|x)
    let mut p_y = vec![0.0; k];
    for row in log_p.chunks_exact(k) {
        for (py, lp) in p_y.iter_mut().zip(row) {
            *py += lp.exp();
        }
    }
    let log_p_y: Vec<f64> = p_y.iter().map(|s| (s / m as f64).ln()).collect();
    // KL(p(y|x) || p(y)) = sum_y p(y|x) (log p(y|x) - log p(y)); a class with p(y|x) = 0
    // contributes 0 (the limit of p log p), even where p(y) = 0 too.
    let mean_kl = log_p
        .chunks_exact(k)
        .map(|row| {
            row.iter()
                .zip(&log_p_y)
                .map(|(lp, lpy)| {
                    let p = lp.exp();
                    if p > 0.0 {
                        p * (lp - lpy)
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        / m as f64;
    mean_kl.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_predictions_score_one() {
        // k = 8: p = 1/8 and its means are exact in binary, so KL is exactly 0.
        let (mean, sd) = inception_score(&[0.5; 40 * 8], 8, 4).unwrap();
        assert_eq!((mean, sd), (1.0, 0.0));
        // k = 10: 1/10 is rounded, and so is the mean of 40 of them; what is left is rounding.
        let (mean, sd) = inception_score(&[-3.0; 40 * 10], 10, DEFAULT_SPLITS).unwrap();
        assert!((mean - 1.0).abs() < 1e-14 && sd < 1e-14, "{mean} {sd}");
    }

    #[test]
    fn confident_balanced_predictions_score_k() {
        // Each part of 20 holds every class twice, each predicted with logit margin 60:
        // p(y|x) = 1 - 9 e^-60 = 1 in f64, so the score is exp(log 10) = 10 up to rounding.
        let (k, n) = (10, 200);
        let mut logits = vec![0.0f32; n * k];
        for i in 0..n {
            logits[i * k + i % k] = 60.0;
        }
        let (mean, sd) = inception_score(&logits, k, DEFAULT_SPLITS).unwrap();
        assert!((mean - 10.0).abs() < 1e-12 && sd < 1e-12, "{mean} {sd}");
        // All confident in one class: the score falls to 1.
        let same: Vec<f32> = (0..n * k).map(|j| if j % k == 3 { 60.0 } else { 0.0 }).collect();
        let (mean, _) = inception_score(&same, k, DEFAULT_SPLITS).unwrap();
        assert!((mean - 1.0).abs() < 1e-12, "{mean}");
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(inception_score(&[0.0; 9], 10, 1), Err(Error::Shape(_))));
        assert!(matches!(inception_score(&[], 0, 1), Err(Error::Shape(_))));
        assert!(matches!(inception_score(&[0.0; 50], 10, 6), Err(Error::Shape(_))));
        assert!(matches!(inception_score(&[0.0; 50], 10, 0), Err(Error::Shape(_))));
        let mut z = vec![0.0; 50];
        z[7] = f32::NAN;
        z[8] = f32::NEG_INFINITY;
        assert!(matches!(
            inception_score(&z, 10, 5),
            Err(Error::NonFinite { count: 2, .. })
        ));
    }
}
