//! Noise-conditional denoising score matching (NCSN's objective, Song & Ermon 2019, eq. 5-6).
//!
//! For data `x`, a noise level `sigma_i` and `x~ = x + sigma_i z`, the denoising score matching
//! target is `grad_x~ log q(x~ | x) = -(x~ - x) / sigma_i^2 = -z / sigma_i`. Weighted by
//! `lambda(sigma_i) = sigma_i^2`, one example's loss is
//!
//! `l_i = 1/2 sigma_i^2 || s(x~, i) + (x~ - x)/sigma_i^2 ||^2 = 1/2 || sigma_i s(x~, i) + z ||^2`,
//!
//! a quantity of the same order at every level (`sigma s` is what the network must match to `-z`).
//! As the reference implementation does, each example of a batch gets its own level index drawn
//! uniformly, so the batch mean estimates `(1/L) sum_i lambda(sigma_i) l(theta; sigma_i)`.
use candle_core::{DType, Device, Result, Tensor, D};
use rand::Rng;

/// The noise levels as an `f32` tensor of shape `(L,)` on `device`.
pub fn sigmas_tensor(sigmas: &[f64], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
    Tensor::from_vec(v, sigmas.len(), device)
}

/// One uniformly drawn level index per example, from the project's seeded RNG, as a `u32`
/// tensor of shape `(batch,)`.
pub fn draw_levels<R: Rng + ?Sized>(rng: &mut R, batch: usize, levels: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = (0..batch).map(|_| rng.random_range(0..levels as u32)).collect();
    Tensor::from_vec(v, batch, device)
}

/// Per-example losses `1/2 sigma_i^2 || s(x~, i) - (-(x~ - x)/sigma_i^2) ||^2`, shape `(batch,)`.
///
/// - `x`: clean data, shape `(batch, ...)`;
/// - `noise`: `z ~ N(0, I)` of the same shape (drawn by the caller from a seeded RNG);
/// - `levels`: `u32` level indices, shape `(batch,)`;
/// - `sigmas`: the levels, `f32`, shape `(L,)`;
/// - `score(x~, levels)`: the network.
pub fn anneal_dsm_per_example<F>(
    score: F,
    x: &Tensor,
    noise: &Tensor,
    levels: &Tensor,
    sigmas: &Tensor,
) -> Result<Tensor>
where
    F: FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
{
    let batch = x.dim(0)?;
    // sigma for each example, broadcastable over the data dimensions: shape (batch, 1, ..., 1).
    let mut bshape = vec![batch];
    bshape.extend(std::iter::repeat_n(1, x.rank() - 1));
    let used = sigmas.index_select(levels, 0)?.to_dtype(x.dtype())?.reshape(bshape)?;
    let perturbed = (x + noise.broadcast_mul(&used)?)?; // x~ = x + sigma z
    let target = noise.broadcast_div(&used)?.neg()?; // -(x~ - x)/sigma^2 = -z/sigma
    let s = score(&perturbed, levels)?;
    if s.dims() != x.dims() {
        candle_core::bail!(
            "score network returned shape {:?}, expected the data shape {:?}",
            s.dims(),
            x.dims()
        );
    }
    // 1/2 * sigma^2 * ||s - target||^2, summed over every axis but the batch.
    let sq = (s - target)?.sqr()?.broadcast_mul(&used.sqr()?)?;
    let per = sq.flatten_from(1)?.sum(D::Minus1)?;
    per * 0.5
}

/// The batch mean of [`anneal_dsm_per_example`]: the NCSN training loss.
pub fn anneal_dsm_loss<F>(score: F, x: &Tensor, noise: &Tensor, levels: &Tensor, sigmas: &Tensor) -> Result<Tensor>
where
    F: FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
{
    anneal_dsm_per_example(score, x, noise, levels, sigmas)?.mean_all()
}

/// Per-level means of per-example losses (`None` where a level drew no example); for logs.
pub fn per_level_means(per_example: &Tensor, levels: &Tensor, n_levels: usize) -> Result<Vec<Option<f64>>> {
    let losses = per_example.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let lv = levels.to_vec1::<u32>()?;
    let mut sum = vec![0.0; n_levels];
    let mut count = vec![0usize; n_levels];
    for (l, &i) in losses.iter().zip(&lv) {
        sum[i as usize] += l;
        count[i as usize] += 1;
    }
    Ok(sum
        .iter()
        .zip(&count)
        .map(|(s, &c)| (c > 0).then(|| s / c as f64))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn loss_is_zero_for_the_oracle_denoiser_and_matches_hand_computation() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f32, 2.0], [0.0, -1.0]], &dev).unwrap();
        let z = Tensor::new(&[[0.5f32, -1.0], [2.0, 1.0]], &dev).unwrap();
        let sig = sigmas_tensor(&[2.0, 0.5], &dev).unwrap();
        let lv = Tensor::new(&[0u32, 1], &dev).unwrap();
        // The oracle s(x~) = -z/sigma (knows the noise) gives zero loss.
        let z2 = z.clone();
        let sig2 = sig.clone();
        let oracle = move |_: &Tensor, l: &Tensor| z2.broadcast_div(&sig2.index_select(l, 0)?.reshape((2, 1))?)?.neg();
        let l0 = anneal_dsm_loss(oracle, &x, &z, &lv, &sig)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(l0.abs() < 1e-7);
        // s = 0: l_i = 1/2 ||z_i||^2 whatever sigma: (1.25 + 5)/2 / 2 = 1.5625.
        let zero = |t: &Tensor, _: &Tensor| t.zeros_like();
        let per = anneal_dsm_per_example(zero, &x, &z, &lv, &sig)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((per[0] - 0.625).abs() < 1e-6 && (per[1] - 2.5).abs() < 1e-6, "{per:?}");
        let means = per_level_means(
            &Tensor::new(&[1.0f32, 3.0, 5.0], &dev).unwrap(),
            &Tensor::new(&[0u32, 0, 2], &dev).unwrap(),
            3,
        )
        .unwrap();
        assert_eq!(means, vec![Some(2.0), None, Some(5.0)]);
    }

    #[test]
    fn wrong_score_shape_is_an_error() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
        let sig = sigmas_tensor(&[1.0], &dev).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let lv = draw_levels(&mut rng, 3, 1, &dev).unwrap();
        let bad = |_: &Tensor, _: &Tensor| Tensor::zeros((3, 5), DType::F32, &Device::Cpu);
        assert!(anneal_dsm_loss(bad, &x, &x, &lv, &sig).is_err());
    }
}
