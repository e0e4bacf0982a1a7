//! `exp` and `ln` in `f32` as short polynomials that a compiler turns into SIMD.
//!
//! The C library's `expf` and `logf` are one call per element; elementwise loops over activations
//! (ncsn's ELU, the toys' softplus and sigmoid) that call them run one element at a time. These
//! are Cephes' methods (range reduction, then a minimax polynomial), branch-free, with every
//! `a * b + c` a fused multiply-add (`mul_add`, one rounding). Call them from a loop inside
//! [`simd`], which compiles it with the `fma` target feature and AVX-512 or AVX2: there each
//! `mul_add` is one instruction and the loop runs 16 or 8 lanes at once. Without the feature,
//! `mul_add` is a correctly rounded library call, slow but with the same bits, so the results
//! never depend on the SIMD width a CPU gets.

/// Runs `f` compiled for the widest SIMD this CPU has: AVX-512 with FMA, AVX2 with FMA, or plain
/// code. The closure is inlined into a function with those target features, so the loop in it is
/// vectorised for them (the way `pulp` and `gemm` dispatch). Keep the closure one plain loop:
/// LLVM may compile a larger one (a `match` over several loops, say) on its own, without the
/// features, and then every `mul_add` is a library call, ten times slower (measured on the
/// toys' softplus, which keeps its own `#[target_feature]` wrappers for that reason). Plain
/// arithmetic gives the same bits at every width; only more lanes run at once.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,fma")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("fma") {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F and FMA (checked above).
                return unsafe { avx512(f) };
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { avx2(f) };
            }
        }
    }
    f()
}

/// `e^x` for `x <= 0`, to about 1 ulp (tested to 2); 0 below `x = -87`, where `e^x` would soon
/// fall under the smallest normal `f32` (subnormal results are slow, see [`crate::subnormal`]).
/// A NaN goes through.
///
/// Range reduction: `x = n ln 2 + r` with `n = round(x / ln 2)` and `|r| <= ln(2) / 2`, so
/// `e^x = 2^n e^r`; `ln 2` is split in two (`LN2_HI` has few bits, so `n LN2_HI` is exact) to keep
/// `r` accurate. `e^r = 1 + r + r^2 P(r)` with Cephes' degree-5 `P`; `2^n` is built from its
/// exponent bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375, 9 significant bits
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - LN2_HI
                                         // Adding 1.5 * 2^23 rounds to the nearest integer (the sum has no bits below 1), without a
                                         // `round` instruction that plain x86-64 lacks; its low mantissa bits are then `n`.
    const ROUND: f32 = 12_582_912.0;
    let below = x < -87.0;
    let x = if below { -87.0 } else { x };
    let t = x.mul_add(LOG2E, ROUND);
    let n = t - ROUND; // round(x / ln 2), as a float
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32; // the same, as an integer
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x)); // x - n ln 2
    let p = 1.987_569_2e-4f32
        .mul_add(r, 1.398_2e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 0.166_666_65)
        .mul_add(r, 0.5);
    let exp_r = p.mul_add(r * r, r) + 1.0; // 1 + r + r^2 P(r)
    let two_n = f32::from_bits(((n_bits + 127) as u32) << 23); // 2^n, n in [-126, 0]
    if below {
        0.0
    } else {
        exp_r * two_n
    }
}

/// `ln(u)` for `u` in `[1, 2]`, to about 1 ulp: Cephes' `logf` on that range. With `u = 2^k m`,
/// `m` in `[1/sqrt 2, sqrt 2)` (`k` = 0 or 1 here) and `f = m - 1` (exact),
/// `ln u = k ln 2 + f - f^2/2 + f^3 P(f)`, `P` of degree 8.
#[inline(always)]
pub fn ln_1_to_2(u: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let high = u > std::f32::consts::SQRT_2;
    let k: f32 = if high { 1.0 } else { 0.0 };
    let f = if high { u * 0.5 } else { u } - 1.0;
    let z = f * f;
    let p = 7.037_683_6e-2f32
        .mul_add(f, -0.115_146_1)
        .mul_add(f, 0.116_769_98)
        .mul_add(f, -0.124_201_41)
        .mul_add(f, 0.142_493_23)
        .mul_add(f, -0.166_680_57)
        .mul_add(f, 0.200_007_15)
        .mul_add(f, -0.249_999_94)
        .mul_add(f, 0.333_333_3);
    let y = k.mul_add(LN2_LO, (p * f).mul_add(z, -0.5 * z)); // f^3 P(f) - f^2/2 + k LN2_LO
    k.mul_add(LN2_HI, f + y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_ln_are_within_two_ulp() {
        // 2 ulp: the polynomials are accurate to about 1 ulp, plus the rounding of the range
        // reduction. A dense grid of [-87, 0] and of [1, 2].
        for i in 0..87_000 {
            let x = -(i as f32) * 1e-3;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 2.0 * f32::EPSILON as f64 * want,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(
            (exp_nonpositive(0.0), exp_nonpositive(-87.5), exp_nonpositive(-1e30)),
            (1.0, 0.0, 0.0)
        );
        assert!(exp_nonpositive(f32::NAN).is_nan());
        for i in 0..=100_000 {
            let u = 1.0 + i as f32 * 1e-5;
            let (got, want) = (ln_1_to_2(u) as f64, (u as f64).ln());
            let tol = 2.0 * f32::EPSILON as f64 * want.max(f32::EPSILON as f64);
            assert!((got - want).abs() <= tol, "ln({u}) = {got}, want {want}");
        }
        assert_eq!(ln_1_to_2(1.0), 0.0);
    }
}
