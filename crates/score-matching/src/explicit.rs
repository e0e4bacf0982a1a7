//! Explicit score matching (Hyvarinen 2005, eq. 2): the Fisher divergence to a known score,
//!
//! `J_ESM(theta) = 1/2 E_{p(x)} || s_theta(x) - grad_x log p(x) ||^2`.
//!
//! Real data never comes with `grad_x log p`, so this objective is an oracle for teaching: on a
//! Gaussian mixture the target is exact, and the other objectives are judged against it.
use crate::jvp::{check_same_shape, half_sq_norm};
use candle_core::{Result, Tensor};

/// Per-example `1/2 ||s(x) - target||^2`, shape `(batch,)`, for points `x` of shape `(batch, D)`
/// and the true scores `target = grad log p(x)` of the same shape.
pub fn esm_per_example<F>(score: F, x: &Tensor, target: &Tensor) -> Result<Tensor>
where
    F: FnOnce(&Tensor) -> Result<Tensor>,
{
    check_same_shape("target score", target, x)?;
    let s = score(x)?;
    check_same_shape("score", &s, x)?;
    half_sq_norm(&(s - target)?)
}

/// The batch mean of [`esm_per_example`].
pub fn esm_loss<F>(score: F, x: &Tensor, target: &Tensor) -> Result<Tensor>
where
    F: FnOnce(&Tensor) -> Result<Tensor>,
{
    esm_per_example(score, x, target)?.mean_all()
}
