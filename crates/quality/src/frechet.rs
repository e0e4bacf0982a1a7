//! The Fréchet distance between two Gaussians fitted to features, `N(mu1, S1)` and `N(mu2, S2)`:
//!
//! ```text
//! d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})
//! ```
//!
//! (Dowson and Landau, 1982), the FID of Heusel et al. (2017) when the features are Inception-v3's
//! 2,048 pool features. The number reported is `d^2`, not its square root.
//!
//! `S1 S2` is not symmetric, but its eigenvalues are those of the symmetric positive
//! semi-definite `M = S1^{1/2} S2 S1^{1/2}` (the eigenvalues of `AB` and `BA` agree; take
//! `A = S1^{1/2}`, `B = S1^{1/2} S2`), so `tr((S1 S2)^{1/2}) = sum_i sqrt(eig_i(M))`: two
//! symmetric eigendecompositions, which are stable, instead of a general matrix square root.
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par, Side};

use crate::features::FeatureStats;
use crate::{Error, Result};

/// The Fréchet distance (squared, as the FID is reported) between the Gaussians of two sets of
/// feature statistics. Refuses statistics of different networks or dimensions
/// ([`Error::Mismatch`]), non-finite ones ([`Error::NonFinite`]), and a set with no more samples
/// than dimensions ([`Error::TooFewSamples`]: its covariance is singular, and the distance
/// would mostly measure the sample size). The result can be a little below 0 by rounding when
/// the two sets are the same.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    frechet_distance_named(a, "first statistics", b, "second statistics")
}

/// [`frechet_distance`] with the names of the two sets for its errors (`"generated samples"`,
/// `"mnist-train.safetensors"`).
pub fn frechet_distance_named(a: &FeatureStats, a_name: &str, b: &FeatureStats, b_name: &str) -> Result<f64> {
    if a.network != b.network {
        return Err(Error::Mismatch(format!(
            "{a_name} are features of network {:?}, {b_name} of {:?}: only statistics of the \
             same network can be compared",
            a.network, b.network
        )));
    }
    if a.dim() != b.dim() {
        return Err(Error::Mismatch(format!(
            "{a_name} have dimension {}, {b_name} {}",
            a.dim(),
            b.dim()
        )));
    }
    for (stats, name) in [(a, a_name), (b, b_name)] {
        stats.validate(name)?;
        // With n samples the covariance has rank at most n - 1.
        if stats.count <= stats.dim() {
            return Err(Error::TooFewSamples {
                what: name.to_string(),
                count: stats.count,
                dim: stats.dim(),
            });
        }
    }
    frechet_distance_parts(&a.mu, &a.sigma, &b.mu, &b.sigma, a.dim())
}

/// The Fréchet distance from means and covariances (`dim x dim`, row-major, symmetric positive
/// semi-definite) with no check on sample counts: the computation behind [`frechet_distance`].
/// Errors: lengths that do not fit `dim` ([`Error::Shape`]), non-finite values.
pub fn frechet_distance_parts(mu1: &[f64], s1: &[f64], mu2: &[f64], s2: &[f64], dim: usize) -> Result<f64> {
    let d = dim;
    if d == 0 || mu1.len() != d || mu2.len() != d || s1.len() != d * d || s2.len() != d * d {
        return Err(Error::Shape(format!(
            "Fréchet distance in dimension {d}: means of length {} and {}, covariances of {} and {} values",
            mu1.len(),
            mu2.len(),
            s1.len(),
            s2.len()
        )));
    }
    for (name, v) in [("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)] {
        let bad = v.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            return Err(Error::NonFinite {
                what: name.to_string(),
                count: bad,
            });
        }
    }
    // Symmetrised copies: (S + S^T) / 2, so that rounding in the inputs cannot matter.
    let s1 = Mat::from_fn(d, d, |i, j| 0.5 * (s1[i * d + j] + s1[j * d + i]));
    let s2 = Mat::from_fn(d, d, |i, j| 0.5 * (s2[i * d + j] + s2[j * d + i]));

    let tr_sqrt = trace_sqrt_product(&s1, &s2)?;
    // |mu1 - mu2|^2
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let tr1: f64 = (0..d).map(|i| s1[(i, i)]).sum();
    let tr2: f64 = (0..d).map(|i| s2[(i, i)]).sum();
    // d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})
    Ok(mean_term + tr1 + tr2 - 2.0 * tr_sqrt)
}

/// `tr((S1 S2)^{1/2})` for symmetric positive semi-definite `S1`, `S2`.
fn trace_sqrt_product(s1: &Mat<f64>, s2: &Mat<f64>) -> Result<f64> {
    let d = s1.nrows();
    let eig = s1
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Shape(format!("eigendecomposition of the first covariance failed: {e:?}")))?;
    let (v, l) = (eig.U(), eig.S().column_vector());
    // S1^{1/2} = V diag(sqrt(max(l, 0))) V^T: tiny negative eigenvalues are rounding of a
    // semi-definite matrix, so they are clipped to 0.
    let v_scaled = Mat::from_fn(d, d, |i, j| v[(i, j)] * l[j].max(0.0).sqrt());
    let mut root = Mat::<f64>::zeros(d, d);
    matmul(
        root.as_mut(),
        Accum::Replace,
        v_scaled.as_ref(),
        v.transpose(),
        1.0,
        Par::Seq,
    );
    // M = S1^{1/2} S2 S1^{1/2}
    let mut tmp = Mat::<f64>::zeros(d, d);
    matmul(tmp.as_mut(), Accum::Replace, root.as_ref(), s2.as_ref(), 1.0, Par::Seq);
    let mut m = Mat::<f64>::zeros(d, d);
    matmul(m.as_mut(), Accum::Replace, tmp.as_ref(), root.as_ref(), 1.0, Par::Seq);
    // M is symmetric in exact arithmetic; (M + M^T) / 2 removes the rounding that says otherwise.
    let m = Mat::from_fn(d, d, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let mu = m
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| Error::Shape(format!("eigenvalues of S1^(1/2) S2 S1^(1/2) failed: {e:?}")))?;
    // tr((S1 S2)^{1/2}) = sum_i sqrt(max(eig_i(M), 0))
    Ok(mu.iter().map(|x| x.max(0.0).sqrt()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn stats(mu: Vec<f64>, sigma: Vec<f64>, count: usize, network: &str) -> FeatureStats {
        FeatureStats {
            mu,
            sigma,
            count,
            network: network.to_string(),
        }
    }

    fn diag(values: &[f64]) -> Vec<f64> {
        let d = values.len();
        let mut s = vec![0.0; d * d];
        for (i, v) in values.iter().enumerate() {
            s[i * d + i] = *v;
        }
        s
    }

    /// The closed form for covariances with the same eigenvectors and eigenvalues `a`, `b`:
    /// |dmu|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    fn closed_form(mu1: &[f64], mu2: &[f64], a: &[f64], b: &[f64]) -> f64 {
        let m: f64 = mu1.iter().zip(mu2).map(|(x, y)| (x - y).powi(2)).sum();
        m + a.iter().zip(b).map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2)).sum::<f64>()
    }

    fn random_vec(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(lo..hi)).collect()
    }

    /// A random orthogonal matrix: the Q of a Gram-Schmidt on a random matrix (row-major).
    fn random_orthogonal(rng: &mut ChaCha8Rng, d: usize) -> Vec<Vec<f64>> {
        let mut q: Vec<Vec<f64>> = Vec::new();
        while q.len() < d {
            let mut v = random_vec(rng, d, -1.0, 1.0);
            for _ in 0..2 {
                // twice, for orthogonality to rounding
                for u in &q {
                    let p: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                    v.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            v.iter_mut().for_each(|a| *a /= norm);
            q.push(v);
        }
        q
    }

    /// Q^T diag(l) Q (the rows of `q` are the eigenvectors).
    fn with_eigen(q: &[Vec<f64>], l: &[f64]) -> Vec<f64> {
        let d = l.len();
        let mut s = vec![0.0; d * d];
        for (k, u) in q.iter().enumerate() {
            for i in 0..d {
                for j in 0..d {
                    s[i * d + j] += l[k] * u[i] * u[j];
                }
            }
        }
        s
    }

    #[test]
    fn diagonal_covariances_match_the_closed_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = 16;
        let (mu1, mu2) = (random_vec(&mut rng, d, -1.0, 1.0), random_vec(&mut rng, d, -1.0, 1.0));
        let (a, b) = (random_vec(&mut rng, d, 0.1, 3.0), random_vec(&mut rng, d, 0.1, 3.0));
        let got = frechet_distance_parts(&mu1, &diag(&a), &mu2, &diag(&b), d).unwrap();
        let want = closed_form(&mu1, &mu2, &a, &b);
        // Eigenvectors of a diagonal matrix are exact; the only error is rounding in sums of 16
        // terms of size ~3: 1e-12 relative leaves a wide margin.
        eprintln!("diagonal d=16: relative {:.1e}", (got - want).abs() / want);
        assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    }

    #[test]
    fn commuting_covariances_match_the_closed_form_at_d64() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let d = 64;
        let q = random_orthogonal(&mut rng, d);
        let (a, b) = (random_vec(&mut rng, d, 0.05, 4.0), random_vec(&mut rng, d, 0.05, 4.0));
        let (mu1, mu2) = (random_vec(&mut rng, d, -1.0, 1.0), random_vec(&mut rng, d, -1.0, 1.0));
        let got = frechet_distance_parts(&mu1, &with_eigen(&q, &a), &mu2, &with_eigen(&q, &b), d).unwrap();
        let want = closed_form(&mu1, &mu2, &a, &b);
        // Eigenvalues come back to ~d eps |S| ~ 1e-13 absolute; the distance (~30) is a
        // difference of traces ~130, so 1e-6 relative (the tolerance asked of the scipy
        // comparison) holds with orders of magnitude to spare.
        let rel = (got - want).abs() / want;
        eprintln!("commuting d=64: {got} vs closed form {want}, relative {rel:.1e}");
        assert!(rel <= 1e-6, "{got} vs {want}: {rel:e}");
    }

    #[test]
    fn distance_to_itself_is_zero_and_the_distance_is_symmetric() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n, d) = (200, 24);
        // Correlated features: x = A z.
        let a = random_vec(&mut rng, d * d, -1.0, 1.0);
        let rows: Vec<f32> = (0..n)
            .flat_map(|_| {
                let z = random_vec(&mut rng, d, -1.0, 1.0);
                let a = &a;
                (0..d).map(move |i| (0..d).map(|k| a[i * d + k] * z[k]).sum::<f64>() as f32)
            })
            .collect();
        let s = FeatureStats::from_rows(&rows, d, "net").unwrap();
        // FID of a set's statistics against the same statistics: 0, up to the rounding of
        // tr(S) + tr(S) - 2 sum sqrt(eig(S^2)) (~d eps tr(S)); the bound 1e-9 tr(S) is loose.
        let zero = frechet_distance(&s, &s).unwrap();
        eprintln!("self distance {zero:.1e} = {:.1e} tr(S)", zero / s.trace());
        assert!(zero.abs() <= 1e-9 * s.trace(), "{zero:e} vs tr {}", s.trace());
        // The same features summarised again, in other batches: the same statistics, distance 0.
        let mut acc = crate::features::FeatureAccumulator::new(d, "net");
        for chunk in rows.chunks(7 * d) {
            acc.add_rows(chunk, chunk.len() / d).unwrap();
        }
        let again = acc.finish().unwrap();
        assert!(frechet_distance(&s, &again).unwrap().abs() <= 1e-9 * s.trace());

        // Symmetry: d(a, b) = d(b, a). The two orders decompose different matrices
        // (S1^{1/2} S2 S1^{1/2} vs S2^{1/2} S1 S2^{1/2}), so they agree to rounding: 1e-10.
        let other = FeatureStats::from_rows(
            &rows[..150 * d].iter().map(|v| v * 1.5 + 0.2).collect::<Vec<_>>(),
            d,
            "net",
        )
        .unwrap();
        let (ab, ba) = (
            frechet_distance(&s, &other).unwrap(),
            frechet_distance(&other, &s).unwrap(),
        );
        eprintln!("d(a,b) = {ab}, d(b,a) - d(a,b) = {:.1e} relative", (ba - ab) / ab);
        assert!(ab > 1.0 && (ab - ba).abs() <= 1e-10 * ab, "{ab} vs {ba}");
    }

    /// Timing at the size of the FID (d = 2048): `cargo test -p quality -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_at_inception_size() {
        let (n, d) = (2560, 2048);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let rows: Vec<f32> = (0..n * d).map(|_| rng.random_range(0.0f32..1.0)).collect();
        let t = std::time::Instant::now();
        let mut acc = crate::features::FeatureAccumulator::new(d, "net");
        for chunk in rows.chunks(256 * d) {
            acc.add_rows(chunk, 256).unwrap();
        }
        let mut a = acc.finish().unwrap();
        let accumulate = t.elapsed().as_secs_f64();
        a.count = 50_000; // only the matrices matter for the timing
        let mut b = a.clone();
        b.sigma.iter_mut().step_by(d + 1).for_each(|v| *v *= 1.1);
        let t = std::time::Instant::now();
        let fid = frechet_distance(&a, &b).unwrap();
        eprintln!(
            "d={d}: {n} rows accumulated in {accumulate:.2} s ({:.1} ms/row), distance {fid:.4e} in {:.2} s",
            1e3 * accumulate / n as f64,
            t.elapsed().as_secs_f64()
        );
    }

    #[test]
    fn refuses_what_cannot_be_compared() {
        let d = 3;
        let ok = stats(vec![0.0; d], diag(&[1.0, 2.0, 3.0]), 10, "inception");
        // count <= dim: singular covariance, named with the count needed.
        let few = stats(vec![0.0; d], diag(&[1.0, 2.0, 3.0]), 3, "inception");
        match frechet_distance_named(&ok, "train", &few, "generated samples") {
            Err(e @ Error::TooFewSamples { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("generated samples") && msg.contains("at least 4"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        // Other network.
        let mnist = stats(vec![0.0; d], diag(&[1.0, 2.0, 3.0]), 10, "mnist");
        let msg = frechet_distance(&ok, &mnist).unwrap_err().to_string();
        assert!(msg.contains("\"inception\"") && msg.contains("\"mnist\""), "{msg}");
        // Other dimension.
        let d2 = stats(vec![0.0; 2], diag(&[1.0, 2.0]), 10, "inception");
        assert!(matches!(frechet_distance(&ok, &d2), Err(Error::Mismatch(_))));
        // NaN.
        let mut nan = ok.clone();
        nan.mu[1] = f64::NAN;
        assert!(matches!(
            frechet_distance(&ok, &nan),
            Err(Error::NonFinite { count: 1, .. })
        ));
        assert!(matches!(
            frechet_distance_parts(&[0.0], &[1.0], &[0.0], &[1.0, 2.0], 1),
            Err(Error::Shape(_))
        ));
    }
}
