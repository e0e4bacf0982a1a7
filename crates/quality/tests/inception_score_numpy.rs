//! The Inception score against numpy on pseudo-random logits.
//!
//! The logits come from a 32-bit linear congruential generator that Python reproduces bit for
//! bit (`lcg_logits` in `scripts/make_frechet_fixture.py`); the expected numbers are what
//!
//! ```sh
//! python3 scripts/make_frechet_fixture.py /tmp/f.safetensors
//! ```
//!
//! printed (`inception_score_numpy` there, float64 throughout). Tolerance 1e-9 relative: both
//! sides compute the same f64 formula on the same f32 inputs, differing only in summation order
//! and in `exp`/`log` last bits (~1e-15).
use quality::inception_score::{inception_score, DEFAULT_SPLITS};

/// n x k logits: x <- (1664525 x + 1013904223) mod 2^32, logit = (x >> 8) / 2^21 - 4, exact in f32.
fn lcg_logits(n: usize, k: usize, seed: u32) -> Vec<f32> {
    let mut x = seed;
    (0..n * k)
        .map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            ((x >> 8) as f64 / (1u64 << 21) as f64 - 4.0) as f32
        })
        .collect()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs()
}

#[test]
fn agrees_with_numpy() {
    let logits = lcg_logits(200, 10, 12345);
    assert_eq!(logits[0], {
        let x = 12345u32.wrapping_mul(1664525).wrapping_add(1013904223);
        ((x >> 8) as f64 / 2097152.0 - 4.0) as f32
    });
    let (mean, sd) = inception_score(&logits, 10, DEFAULT_SPLITS).unwrap();
    eprintln!(
        "10 splits: mean {mean:.16} ({:.1e} rel), sd {sd:.17} ({:.1e} rel)",
        (mean / 2.4716911951940754 - 1.0).abs(),
        (sd / 0.13788298279597708 - 1.0).abs()
    );
    assert!(close(mean, 2.4716911951940754), "{mean:.16}");
    assert!(close(sd, 0.13788298279597708), "{sd:.17}");
    let (mean, sd) = inception_score(&logits, 10, 3).unwrap();
    assert!(close(mean, 2.588219563473208), "{mean:.16}");
    assert!(close(sd, 0.062046004823667116), "{sd:.17}");
}
