//! The Fréchet distance against scipy: `scripts/make_frechet_fixture.py` computed
//! `|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(scipy.linalg.sqrtm(S1 @ S2))` in float64 for random
//! pairs at d = 4, 32, 128 (covariances `A A^T / n`, n = 2d + 3) and stored inputs and results
//! in `tests/fixtures/frechet_scipy.safetensors`.
//!
//! Tolerance 1e-6 relative: scipy's `sqrtm` (a Schur method on a non-symmetric product) and the
//! symmetric eigendecompositions here are both backward stable, but the distance is a
//! difference of traces several times larger than itself, so each method's ~1e-13 relative
//! error in the traces can grow to ~1e-12 in the result; the check asks far less than that and
//! fails at once on a formula error (a missing factor 2, a transposed product).
use std::path::Path;

use quality::features::FeatureStats;
use quality::frechet::{frechet_distance, frechet_distance_parts};
use safetensors::SafeTensors;

fn read(file: &SafeTensors, name: &str) -> Vec<f64> {
    let t = file.tensor(name).unwrap_or_else(|_| panic!("fixture lacks {name}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F64, "{name}");
    t.data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn agrees_with_scipy_sqrtm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frechet_scipy.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    for d in [4usize, 32, 128] {
        let get = |what: &str| read(&file, &format!("d{d}.{what}"));
        let (mu1, s1, mu2, s2) = (get("mu1"), get("sigma1"), get("mu2"), get("sigma2"));
        let want = get("fid")[0];
        let got = frechet_distance_parts(&mu1, &s1, &mu2, &s2, d).unwrap();
        let rel = (got - want).abs() / want.abs();
        eprintln!("d={d}: rust {got:.15} scipy {want:.15} relative difference {rel:.2e}");
        assert!(rel <= 1e-6, "d={d}: {got} vs scipy {want} ({rel:e})");

        // The same through the statistics' checks (the fixture's covariances came from
        // n = 2d + 3 samples).
        let stats = |mu: Vec<f64>, sigma: Vec<f64>| FeatureStats {
            mu,
            sigma,
            count: 2 * d + 3,
            network: "fixture".into(),
        };
        let via_stats = frechet_distance(&stats(mu1, s1), &stats(mu2, s2)).unwrap();
        assert!((via_stats - want).abs() <= 1e-6 * want.abs());
    }
}
