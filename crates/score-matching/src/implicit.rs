//! Implicit score matching (Hyvarinen 2005, Theorem 1).
//!
//! Integrating the cross term of the explicit objective by parts (the boundary term vanishes when
//! `p s -> 0` at infinity) removes the unknown score:
//!
//! `1/2 E||s - grad log p||^2 = E[ 1/2 ||s(x)||^2 + tr(grad_x s(x)) ] + 1/2 E||grad log p||^2`,
//!
//! so `J_ISM(theta) = E[1/2 ||s(x)||^2 + tr(grad_x s(x))]` has the same minimiser and differs from
//! the explicit objective by a constant. The trace needs `D` Jacobian-vector products.
use crate::jvp::{half_sq_norm, score_and_divergence, JvpScore};
use candle_core::{Result, Tensor};

/// Per-example `1/2 ||s(x)||^2 + tr J_s(x)`, shape `(batch,)`, for `x` of shape `(batch, D)`.
pub fn ism_per_example<M: JvpScore + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    let (s, trace) = score_and_divergence(model, x)?;
    half_sq_norm(&s)? + trace
}

/// The batch mean of [`ism_per_example`].
pub fn ism_loss<M: JvpScore + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    ism_per_example(model, x)?.mean_all()
}
