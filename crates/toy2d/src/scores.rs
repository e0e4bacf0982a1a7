//! The exact noise-conditional score of the toys: a Gaussian mixture `p` perturbed at every noise
//! level, `p_sigma_i = p * N(0, sigma_i^2 I)`, which is again a mixture (each covariance grows by
//! `sigma_i^2 I`), so `grad_x log p_sigma_i` is known in closed form. It is what a trained
//! [`crate::model::NoiseConditionalMlp`] approximates, and both are a
//! [`langevin::NoiseConditionalScore`].
use gmm::{GaussianMixture, GmmError};
use langevin::NoiseConditionalScore;
use ndarray::Array2;

/// `p` and its perturbations `p_sigma_i` at the levels `sigma_1 > ... > sigma_L`.
#[derive(Debug, Clone)]
pub struct PerturbedMixture {
    mixture: GaussianMixture,
    sigmas: Vec<f64>,
    /// `p_sigma_i` for every level, built once.
    levels: Vec<GaussianMixture>,
}

impl PerturbedMixture {
    /// `mixture` perturbed at each of `sigmas` (finite, non-negative).
    pub fn new(mixture: GaussianMixture, sigmas: &[f64]) -> Result<Self, GmmError> {
        let levels = sigmas.iter().map(|&s| mixture.perturbed(s)).collect::<Result<_, _>>()?;
        Ok(Self {
            mixture,
            sigmas: sigmas.to_vec(),
            levels,
        })
    }

    /// The unperturbed mixture `p`.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    /// Every `p_sigma_i`, largest sigma first.
    pub fn levels(&self) -> &[GaussianMixture] {
        &self.levels
    }

    /// `grad_x log p_sigma_level(x)` written into `out` (no allocation: the form the samplers'
    /// `_into` variants take). Panics if `level` is out of range or `out` has another shape.
    pub fn score_into(&self, x: &Array2<f64>, level: usize, out: &mut Array2<f64>) {
        self.levels[level].score_into(x.view(), out.view_mut());
    }
}

impl NoiseConditionalScore<Array2<f64>> for PerturbedMixture {
    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// `grad_x log p_sigma_level(x) = mixture.perturbed(sigma_level).score(x)`.
    fn score(&self, x: &Array2<f64>, level: usize) -> langevin::Result<Array2<f64>> {
        match self.levels.get(level) {
            Some(q) => Ok(q.score(x.view())),
            None => Err(langevin::Error::InvalidParameter {
                field: "level",
                message: format!(
                    "level {level} out of range: the score knows {} levels",
                    self.levels.len()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmm::datasets::paper_mixture;
    use ndarray::array;

    #[test]
    fn the_score_at_level_i_is_that_of_the_mixture_perturbed_by_sigma_i() {
        let p = paper_mixture();
        let exact = PerturbedMixture::new(p.clone(), &[4.0, 1.0]).unwrap();
        let x = array![[0.5, -1.0], [5.0, 4.0], [-7.0, 2.0]];
        for (i, sigma) in [4.0, 1.0].into_iter().enumerate() {
            let want = p.perturbed(sigma).unwrap().score(x.view());
            assert_eq!(exact.score(&x, i).unwrap(), want);
            let mut out = Array2::zeros((3, 2));
            exact.score_into(&x, i, &mut out);
            assert_eq!(out, want);
        }
        // the levels differ (a wrong index would not pass the loop above unnoticed)
        assert_ne!(exact.score(&x, 0).unwrap(), exact.score(&x, 1).unwrap());
        assert!(exact.score(&x, 2).is_err());
        assert_eq!(NoiseConditionalScore::sigmas(&exact), &[4.0, 1.0]);
    }

    #[test]
    fn sampling_through_the_trait_is_the_in_place_sampler_bit_for_bit() {
        use langevin::{annealed_langevin_into, sample_annealed, AnnealedLangevin, NoProjection};
        use rand::SeedableRng;
        use rand_chacha::ChaCha8Rng;
        let exact = PerturbedMixture::new(paper_mixture(), &[5.0, 2.0, 1.0]).unwrap();
        let mut config = AnnealedLangevin::paper(vec![5.0, 2.0, 1.0]);
        config.steps_per_level = 5;
        let x0 = Array2::from_shape_fn((7, 2), |(i, j)| i as f64 - 3.0 * j as f64);
        let a = sample_annealed(
            x0.clone(),
            &exact,
            &config,
            &mut NoProjection,
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        let b = annealed_langevin_into(
            x0,
            |x, level, _, out| {
                exact.score_into(x, level, out);
                Ok(())
            },
            &config,
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        assert_eq!(a.samples, b.samples);
        // and a sampler over other levels than the score's is refused
        config.sigmas = vec![5.0, 2.0];
        let x = Array2::zeros((1, 2));
        assert!(sample_annealed(x, &exact, &config, &mut NoProjection, &mut ChaCha8Rng::seed_from_u64(1)).is_err());
    }
}
