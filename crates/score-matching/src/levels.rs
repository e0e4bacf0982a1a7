//! Which noise level each training example gets.
//!
//! The NCSN objective (paper eq. 6) weights every level alike: each example of a batch draws its
//! level index uniformly, and the batch mean estimates `(1/L) sum_i sigma_i^2 l(theta; sigma_i)`.
//! Drawing level `i` with probability `p_i` instead estimates `sum_i p_i sigma_i^2 l(theta;
//! sigma_i)`. Each level's term is minimised by the same score, the score of the data perturbed
//! at that level, so the optimum does not move; what moves is where a short run spends its
//! updates.
//!
//! Not every level needs the same share of them. At the largest levels the perturbed data are
//! nearly a Gaussian around the data's mean and the score is learnt in a few hundred steps; at
//! the smallest the loss is dominated by noise no network can predict, and it falls slowly
//! whatever the run does. In between, where the noise is about the size of the data's own
//! spread, the network decides what the sample will be. Karras et al. (2022, "Elucidating the
//! Design Space of Diffusion-Based Generative Models") draw `ln sigma` from a normal distribution
//! centred there for that reason. [`LevelDistribution::LogNormal`] does the same on the fixed
//! levels of an NCSN, and keeps a share of uniform draws so that no level goes untrained: the
//! sampler visits every one of them.
use candle_core::{Device, Result, Tensor};
use rand::Rng;

/// How a training step draws each example's noise level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelDistribution {
    /// Every level equally often (the paper's and the reference implementation's).
    Uniform,
    /// A share `share` of the draws from a normal distribution of `ln sigma` with mean
    /// `ln center` and standard deviation `spread`, put onto the levels; the other `1 - share`
    /// uniform. For geometric levels (equally spaced in `ln sigma`) the weight of level `i` is
    /// the normal density at `ln sigma_i`.
    LogNormal {
        /// The level the draws concentrate around (a noise level, not its logarithm).
        center: f64,
        /// Standard deviation of `ln sigma` (1.2 spans a factor of 3.3 either side).
        spread: f64,
        /// Share of the draws taken from the log-normal, in `[0, 1]`.
        share: f64,
    },
}

impl LevelDistribution {
    /// The probability of each level `sigmas[i]`; they sum to 1.
    pub fn probabilities(&self, sigmas: &[f64]) -> Vec<f64> {
        let n = sigmas.len() as f64;
        match *self {
            LevelDistribution::Uniform => vec![1.0 / n; sigmas.len()],
            LevelDistribution::LogNormal { center, spread, share } => {
                // w_i = exp(-d_i^2 / (2 spread^2)) with d_i = |ln sigma_i - ln center|, normalised
                // over the levels. Each is divided by the nearest level's, exp(-d_min^2 / (2
                // spread^2)), which normalising cancels: the nearest level weighs 1, so a spread
                // narrow enough to underflow every weight still puts its draws on that level.
                let d: Vec<f64> = sigmas.iter().map(|s| (s / center).ln().abs()).collect();
                let d_min = d.iter().copied().fold(f64::INFINITY, f64::min);
                let w: Vec<f64> = d
                    .iter()
                    .map(|&di| (-((di - d_min) * (di + d_min) / spread / spread) / 2.0).exp())
                    .collect();
                let total: f64 = w.iter().sum();
                // p_i = (1 - share) / L + share * w_i / sum_j w_j
                w.iter().map(|wi| (1.0 - share) / n + share * wi / total).collect()
            }
        }
    }

    /// One level index per example, from the caller's seeded RNG, as a `u32` tensor of shape
    /// `(batch,)`. [`LevelDistribution::Uniform`] draws exactly what [`crate::draw_levels`] draws.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R, batch: usize, sigmas: &[f64], device: &Device) -> Result<Tensor> {
        if sigmas.is_empty() {
            candle_core::bail!("no noise levels to draw from");
        }
        if *self == LevelDistribution::Uniform {
            return crate::draw_levels(rng, batch, sigmas.len(), device);
        }
        // Inverse of the cumulative distribution: the first level whose cumulative probability
        // exceeds a uniform draw u in [0, 1).
        let mut cumulative = self.probabilities(sigmas);
        for i in 1..cumulative.len() {
            cumulative[i] += cumulative[i - 1];
        }
        let last = sigmas.len() - 1;
        let v: Vec<u32> = (0..batch)
            .map(|_| {
                let u: f64 = rng.random();
                cumulative.iter().position(|&c| u < c).unwrap_or(last) as u32
            })
            .collect();
        Tensor::from_vec(v, batch, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn geometric(first: f64, last: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| first * (last / first).powf(i as f64 / (n - 1) as f64))
            .collect()
    }

    #[test]
    fn uniform_draws_the_levels_of_draw_levels() {
        // The default must leave every existing run's draws, and so the reference checks, as
        // they were: the same generator state gives the same indices and leaves the same state.
        let sigmas = geometric(16.0, 0.01, 40);
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut b = a.clone();
        let ours = LevelDistribution::Uniform
            .draw(&mut a, 100, &sigmas, &Device::Cpu)
            .unwrap();
        let theirs = crate::draw_levels(&mut b, 100, 40, &Device::Cpu).unwrap();
        assert_eq!(ours.to_vec1::<u32>().unwrap(), theirs.to_vec1::<u32>().unwrap());
        assert_eq!(a.random::<u64>(), b.random::<u64>());
    }

    #[test]
    fn log_normal_probabilities_peak_at_the_center_and_keep_the_uniform_floor() {
        let sigmas = geometric(16.0, 0.01, 40);
        let share = 0.7;
        let p = LevelDistribution::LogNormal {
            center: 0.3,
            spread: 1.2,
            share,
        }
        .probabilities(&sigmas);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // No level below the uniform part's (1 - share) / L.
        let floor = (1.0 - share) / 40.0;
        assert!(p.iter().all(|&pi| pi >= floor), "{p:?}");
        // The most likely level is the one nearest the centre in ln sigma.
        let nearest = (0..40)
            .min_by(|&i, &j| (sigmas[i] / 0.3).ln().abs().total_cmp(&(sigmas[j] / 0.3).ln().abs()))
            .unwrap();
        let mode = (0..40).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
        assert_eq!(mode, nearest);
        // Symmetric in ln sigma: levels k steps either side of a level at the centre are equally
        // likely (centre on level 20 exactly).
        let p = LevelDistribution::LogNormal {
            center: sigmas[20],
            spread: 1.2,
            share,
        }
        .probabilities(&sigmas);
        for k in 1..=15 {
            assert!((p[20 - k] - p[20 + k]).abs() < 1e-12, "k = {k}");
        }
        // share = 0 is the uniform distribution.
        let p = LevelDistribution::LogNormal {
            center: 0.3,
            spread: 1.2,
            share: 0.0,
        }
        .probabilities(&sigmas);
        assert!(p.iter().all(|&pi| (pi - 1.0 / 40.0).abs() < 1e-15));
    }

    #[test]
    fn log_normal_draws_follow_their_probabilities() {
        let sigmas = geometric(16.0, 0.01, 40);
        let dist = LevelDistribution::LogNormal {
            center: 0.3,
            spread: 1.2,
            share: 0.7,
        };
        let p = dist.probabilities(&sigmas);
        let n = 200_000;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let idx = dist
            .draw(&mut rng, n, &sigmas, &Device::Cpu)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        let mut count = [0usize; 40];
        for i in idx {
            count[i as usize] += 1;
        }
        // Each count is binomial(n, p_i): standard error sqrt(n p_i (1 - p_i)); five of them is a
        // bound a correct sampler crosses with probability under 1e-5 per level, while a sampler
        // off by one level (the next level's probability) is off by more than 5 standard errors
        // wherever the probabilities change fastest.
        for i in 0..40 {
            let expected = n as f64 * p[i];
            let se = (n as f64 * p[i] * (1.0 - p[i])).sqrt();
            assert!(
                (count[i] as f64 - expected).abs() < 5.0 * se,
                "level {i}: {} draws, expected {expected:.0} +- {se:.0}",
                count[i]
            );
        }
    }

    #[test]
    fn a_narrow_log_normal_draws_only_its_center() {
        let sigmas = geometric(1.0, 0.01, 10);
        let dist = LevelDistribution::LogNormal {
            center: sigmas[3],
            spread: 0.01,
            share: 1.0,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let idx = dist
            .draw(&mut rng, 1000, &sigmas, &Device::Cpu)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert!(idx.iter().all(|&i| i == 3));
        assert!(dist.draw(&mut rng, 1, &[], &Device::Cpu).is_err());
        // A spread so narrow that every level's density underflows to 0 (the nearest level here
        // is 0.01 in ln sigma from the centre, 1e198 spreads) still draws the nearest level.
        let between = LevelDistribution::LogNormal {
            center: sigmas[3] * 1.01,
            spread: 1e-200,
            share: 1.0,
        };
        let p = between.probabilities(&sigmas);
        assert!(p.iter().all(|pi| pi.is_finite()) && (p[3] - 1.0).abs() < 1e-12, "{p:?}");
        let idx = between
            .draw(&mut rng, 100, &sigmas, &Device::Cpu)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert!(idx.iter().all(|&i| i == 3));
    }
}
