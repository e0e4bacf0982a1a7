//! Denoising score matching at one noise level (Vincent 2011).
//!
//! Perturb the data, `x~ = x + sigma z` with `z ~ N(0, I)`, and regress the score of the
//! perturbation kernel `grad_x~ log q(x~ | x) = -(x~ - x) / sigma^2`:
//!
//! `J_DSM(theta) = 1/2 E || s(x~) + (x~ - x) / sigma^2 ||^2`.
//!
//! Its minimiser is the score of the perturbed density `p_sigma = p * N(0, sigma^2 I)`, and it
//! equals `1/2 E_{p_sigma} || s - grad log p_sigma ||^2` plus a constant. No derivative of the
//! network is needed. This is the one-level case of [`crate::anneal_dsm`], divided by the weight
//! `lambda(sigma) = sigma^2` that the noise-conditional objective puts on each level.
use crate::anneal_dsm::{anneal_dsm_per_example, sigmas_tensor};
use candle_core::{bail, DType, Result, Tensor};

/// Per-example `1/2 || s(x + sigma z) + z / sigma ||^2`, shape `(batch,)`, for clean data `x`,
/// noise `z` (same shape, drawn by the caller from a seeded RNG) and the level `sigma > 0`.
pub fn dsm_per_example<F>(score: F, x: &Tensor, noise: &Tensor, sigma: f64) -> Result<Tensor>
where
    F: FnOnce(&Tensor) -> Result<Tensor>,
{
    if !(sigma.is_finite() && sigma > 0.0) {
        bail!("denoising score matching: expected a finite positive sigma, got {sigma}");
    }
    let batch = x.dim(0)?;
    let level0 = Tensor::zeros(batch, DType::U32, x.device())?;
    let sigmas = sigmas_tensor(&[sigma], x.device())?;
    // anneal_dsm weights the level by lambda(sigma) = sigma^2: undo it.
    let weighted = anneal_dsm_per_example(|xt, _| score(xt), x, noise, &level0, &sigmas)?;
    weighted / (sigma * sigma)
}

/// The batch mean of [`dsm_per_example`].
pub fn dsm_loss<F>(score: F, x: &Tensor, noise: &Tensor, sigma: f64) -> Result<Tensor>
where
    F: FnOnce(&Tensor) -> Result<Tensor>,
{
    dsm_per_example(score, x, noise, sigma)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dsm_matches_hand_computation() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f32, 2.0], [0.0, -1.0]], &dev).unwrap();
        let z = Tensor::new(&[[0.5f32, -1.0], [2.0, 1.0]], &dev).unwrap();
        // s(x~) = x~ = x + 0.5 z; residual x + 0.5 z + 2 z = x + 2.5 z.
        // Row 0: (2.25, -0.5) -> 1/2 (5.0625 + 0.25) = 2.65625. Row 1: (5, 1.5) -> 13.625.
        let per = dsm_per_example(|t: &Tensor| Ok(t.clone()), &x, &z, 0.5)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            (per[0] - 2.65625).abs() < 1e-5 && (per[1] - 13.625).abs() < 1e-5,
            "{per:?}"
        );
        assert!(dsm_loss(|t: &Tensor| Ok(t.clone()), &x, &z, 0.0).is_err());
    }
}
