//! Sliced score matching (Song, Garg, Shi & Ermon 2019): implicit score matching along random
//! directions `v` with `E[v v^T] = I`,
//!
//! `J_SSM(theta) = E_{p(x)} E_{p(v)} [ v^T J_s(x) v + 1/2 (v^T s(x))^2 ]`.
//!
//! Since `E_v[v^T A v] = tr A` and `E_v[(v^T s)^2] = ||s||^2`, the expectation over `v` is the
//! implicit objective; one JVP per projection replaces the `D` JVPs of the trace. The
//! variance-reduced form (SSM-VR) keeps the random trace but uses the exact `1/2 ||s(x)||^2`.
use crate::jvp::{check_same_shape, half_sq_norm, row_dot, JvpScore};
use candle_core::{DType, Device, Result, Tensor};
use rand::Rng;

/// Distribution of the random projections of sliced score matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionKind {
    /// v ~ N(0, I).
    Gaussian,
    /// v uniform on {-1, +1}^D.
    Rademacher,
}

/// Projections of the given `shape`, one per row, drawn from the caller's seeded `rng`.
/// Both kinds satisfy `E[v v^T] = I`, the only property the estimator needs.
pub fn draw_projections<R: Rng + ?Sized>(
    rng: &mut R,
    kind: ProjectionKind,
    shape: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    match kind {
        ProjectionKind::Gaussian => Ok(langevin::randn_tensor(rng, shape, dtype, device)?),
        ProjectionKind::Rademacher => {
            let n: usize = shape.iter().product();
            let signs: Vec<f32> = (0..n).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
            Tensor::from_vec(signs, shape, device)?.to_dtype(dtype)
        }
    }
}

/// Per-example `v^T J_s(x) v + 1/2 (v^T s(x))^2`, or with `variance_reduced`
/// `v^T J_s(x) v + 1/2 ||s(x)||^2`; shape `(batch,)` for `x` and `v` of shape `(batch, D)`.
pub fn ssm_per_example<M: JvpScore + ?Sized>(
    model: &M,
    x: &Tensor,
    v: &Tensor,
    variance_reduced: bool,
) -> Result<Tensor> {
    check_same_shape("projection", v, x)?;
    let (s, jv) = model.score_and_jvp(x, v)?;
    check_same_shape("score", &s, x)?;
    check_same_shape("Jacobian-vector product", &jv, x)?;
    let v_jv = row_dot(v, &jv)?; // v^T J v
    let square = if variance_reduced {
        half_sq_norm(&s)? // 1/2 ||s||^2 = E_v[1/2 (v^T s)^2], exactly
    } else {
        (row_dot(v, &s)?.sqr()? * 0.5)? // 1/2 (v^T s)^2
    };
    v_jv + square
}

/// The batch mean of [`ssm_per_example`].
pub fn ssm_loss<M: JvpScore + ?Sized>(model: &M, x: &Tensor, v: &Tensor, variance_reduced: bool) -> Result<Tensor> {
    ssm_per_example(model, x, v, variance_reduced)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn projections_have_identity_second_moment() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for kind in [ProjectionKind::Gaussian, ProjectionKind::Rademacher] {
            let n = 20_000;
            let v = draw_projections(&mut rng, kind, &[n, 2], DType::F64, &Device::Cpu).unwrap();
            let m = v.t().unwrap().matmul(&v).unwrap().affine(1.0 / n as f64, 0.0).unwrap();
            let m = m.to_vec2::<f64>().unwrap();
            // Each entry of (1/n) sum v v^T has standard deviation <= sqrt(2/n) = 0.01; 5 sd.
            for (i, row) in m.iter().enumerate() {
                for (j, &e) in row.iter().enumerate() {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((e - want).abs() < 0.05, "{kind:?} E[vv^T][{i}][{j}] = {e}");
                }
            }
            if kind == ProjectionKind::Rademacher {
                assert!(v
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .iter()
                    .all(|x| x.abs() == 1.0));
            }
        }
    }
}
