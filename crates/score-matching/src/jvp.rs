//! Jacobian-vector products of a score network: the derivative terms of implicit and sliced
//! score matching, computed by pushing a tangent forward through the network.
//!
//! candle's autodiff is first order and reverse mode. Implicit and sliced score matching need
//! `J_s(x) v = d/dt s(x + t v) |_{t=0}` inside the loss, and the loss must still be differentiated
//! in the parameters. Forward-mode propagation gives `J_s(x) v` as an ordinary expression of the
//! parameters built from a few extra tensor ops per layer (for `h = softplus(W x + b)`:
//! `dh = sigmoid(W x + b) * (W dx)`), so one reverse pass over the loss gives its gradient.
//!
//! This crate does not know the network: a model implements [`JvpScore`] and the losses take it.
use candle_core::{bail, Result, Tensor, D};

/// A score network `s: R^D -> R^D` that can also push a tangent through itself.
pub trait JvpScore {
    /// For points `x` and tangents `v`, both `(batch, D)`, returns `(s(x), J_s(x) v)`, row by row:
    /// `(J_s(x_n) v_n)_i = sum_j d s_i / d x_j (x_n) v_{n j}`.
    fn score_and_jvp(&self, x: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)>;
}

/// `s(x)` and the divergence `tr J_s(x) = sum_d e_d^T J_s(x) e_d`, one value per row.
///
/// The `D` Jacobian-vector products against the basis tangents `e_1, ..., e_D` are batched into
/// one pass over `D * batch` rows (block `d` holds every point with tangent `e_d`). This costs `D`
/// forward passes: exact, and cheap for the 2D toys; for images use sliced score matching.
pub fn score_and_divergence<M: JvpScore + ?Sized>(model: &M, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, d) = x.dims2()?;
    // Rows k*n .. (k+1)*n: the points x with tangent e_k.
    let x_rep = x.repeat((d, 1))?;
    let basis = Tensor::eye(d, x.dtype(), x.device())?.reshape((d, 1, d))?; // e_k as block k
    let tangents = basis.broadcast_as((d, n, d))?.reshape((d * n, d))?;
    let (s_rep, jv) = model.score_and_jvp(&x_rep, &tangents)?;
    check_same_shape("score", &s_rep, &x_rep)?;
    check_same_shape("Jacobian-vector product", &jv, &x_rep)?;
    let s = s_rep.narrow(0, 0, n)?;
    // e_k^T J e_k: keep component k of block k, then sum over k.
    let diagonal = (jv * tangents)?.reshape((d, n, d))?;
    let trace = diagonal.sum(D::Minus1)?.sum(0)?;
    Ok((s, trace))
}

/// Errors unless `t` has the shape of `like` (a model returning the wrong shape is a bug in the
/// model, reported rather than broadcast silently).
pub(crate) fn check_same_shape(what: &str, t: &Tensor, like: &Tensor) -> Result<()> {
    if t.dims() != like.dims() {
        bail!(
            "the model returned a {what} of shape {:?}, expected {:?}",
            t.dims(),
            like.dims()
        );
    }
    Ok(())
}

/// Row-wise `1/2 ||a||^2`, shape `(batch,)`.
pub(crate) fn half_sq_norm(a: &Tensor) -> Result<Tensor> {
    a.sqr()?.sum(D::Minus1)? * 0.5
}

/// Row-wise dot product `a . b`, shape `(batch,)`.
pub(crate) fn row_dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a * b)?.sum(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    /// A linear score `s(x) = A x` (the score of a Gaussian when `A = -Sigma^{-1}`): `J = A`.
    struct Linear(Tensor);

    impl JvpScore for Linear {
        fn score_and_jvp(&self, x: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
            Ok((x.matmul(&self.0.t()?)?, v.matmul(&self.0.t()?)?))
        }
    }

    /// Five points in 3D drawn from the seeded ChaCha stream `seed`.
    fn points(seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        langevin::randn_tensor(&mut rng, &[5, 3], DType::F64, &Device::Cpu).unwrap()
    }

    #[test]
    fn divergence_of_a_linear_score_is_the_trace() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[-2.0f64, 0.5, 0.0], [1.0, -0.25, 3.0], [0.0, 7.0, 4.0]], &dev).unwrap();
        let x = points(11);
        // The same seed gives the same points, bit for bit (the test is reproducible).
        let again = points(11).to_vec2::<f64>().unwrap();
        assert_eq!(x.to_vec2::<f64>().unwrap(), again);
        assert_ne!(points(12).to_vec2::<f64>().unwrap(), again);
        let (s, tr) = score_and_divergence(&Linear(a.clone()), &x).unwrap();
        // Exact in f64 up to rounding: tr A = -2 - 0.25 + 4 = 1.75 at every point.
        for t in tr.to_vec1::<f64>().unwrap() {
            assert!((t - 1.75).abs() < 1e-12, "{t}");
        }
        let want = x.matmul(&a.t().unwrap()).unwrap();
        let err = (s - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(err < 1e-12);
        assert_eq!(tr.dims(), &[5]);
    }
}
