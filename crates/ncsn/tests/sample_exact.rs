//! The image sampler (`ncsn::sampling::sample`, the code path of `ncsn sample`) against an exact
//! score: a two-component Gaussian mixture in image space, whose score at every noise level is
//! known in closed form. The samples must carry the mixture's weights, and each mode the
//! variance that Langevin dynamics with the sampler's step size leaves on a Gaussian.
//!
//! The data distribution, on images of 1 x 4 x 4 = 16 pixels:
//!
//! ```text
//! p(x) = w_1 N(x; mu_1, s_1^2 I) + w_2 N(x; mu_2, s_2^2 I)
//! p_sigma = p * N(0, sigma^2 I) = sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I)
//! grad log p_sigma(x) = sum_k r_k(x) (mu_k - x) / (s_k^2 + sigma^2),
//!     r_k(x) = w_k N(x; mu_k, v_k I) / sum_j w_j N(x; mu_j, v_j I)   (responsibilities)
//! ```
//!
//! At the last level the modes are far apart (their distance, 2, is 14 standard deviations of
//! the wider one), so near mode k the score is that of one Gaussian, `(mu_k - x) / v_k`, and the
//! paper's update `x <- x + a/2 s + sqrt(a) z` is the linear recursion
//! `x - mu <- (1 - a/(2v)) (x - mu) + sqrt(a) z`, whose stationary variance per pixel is
//!
//! ```text
//! V = a / (1 - (1 - a/(2v))^2) = v / (1 - a/(4v))
//! ```
//!
//! exactly, for any step `a` below `4v`. With `a = alpha_L = eps` comparable to `v`, `V` depends
//! on the step: a wrong step size or a wrong noise scale moves it far outside the tolerance.
//! The mode weights depend on the chains crossing between the modes at the large noise levels,
//! which only the step `alpha_i = eps sigma_i^2 / sigma_L^2` allows within the few steps per
//! level used here.
use candle_core::{DType, Device, Tensor};
use langevin::NoiseConditionalScore;
use ncsn::sampling::{count_non_finite, sample, SampleConfig};
use ncsn::Progress;

/// Pixels of an image (1 x 4 x 4).
const D: usize = 16;
const DIMS: [usize; 3] = [1, 4, 4];

/// Two modes: constant images of value `mean`, weight `weight`, pixel standard deviation `sd`.
struct Mode {
    weight: f64,
    mean: f64,
    sd: f64,
}

const MODES: [Mode; 2] = [
    Mode {
        weight: 0.3,
        mean: 0.25,
        sd: 0.05,
    },
    Mode {
        weight: 0.7,
        mean: 0.75,
        sd: 0.1,
    },
];

/// The exact noise-conditional score of the mixture at `sigmas`.
struct ExactMixture {
    sigmas: Vec<f64>,
}

impl NoiseConditionalScore<Tensor> for ExactMixture {
    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    fn score(&self, x: &Tensor, level: usize) -> langevin::Result<Tensor> {
        let sigma = self.sigmas[level];
        let shape = x.shape().clone();
        let b = x.dim(0)?;
        let flat = x.to_dtype(DType::F64)?.reshape((b, D))?;
        let mut logs = Vec::new(); // log(w_k N(x; mu_k, v_k I)) per image, [B] each
        let mut pulls = Vec::new(); // (mu_k - x) / v_k, [B, D] each
        for mode in &MODES {
            let v = mode.sd * mode.sd + sigma * sigma; // v_k = s_k^2 + sigma^2
            let diff = flat.affine(-1.0, mode.mean)?; // mu_k - x
            let sq = diff.sqr()?.sum(1)?; // |x - mu_k|^2
                                          // log w_k - d/2 log(2 pi v_k) - |x - mu_k|^2 / (2 v_k)
            let constant = mode.weight.ln() - 0.5 * D as f64 * (2.0 * std::f64::consts::PI * v).ln();
            logs.push(sq.affine(-0.5 / v, constant)?);
            pulls.push(diff.affine(1.0 / v, 0.0)?);
        }
        // r_k = exp(l_k - max) / sum_j exp(l_j - max)
        let l = Tensor::stack(&logs, 1)?; // [B, 2]
        let e = l.broadcast_sub(&l.max_keepdim(1)?)?.exp()?;
        let r = e.broadcast_div(&e.sum_keepdim(1)?)?;
        let mut s = pulls[0].broadcast_mul(&r.narrow(1, 0, 1)?)?;
        s = (s + pulls[1].broadcast_mul(&r.narrow(1, 1, 1)?)?)?;
        Ok(s.to_dtype(x.dtype())?.reshape(shape)?)
    }
}

#[test]
fn annealed_sampler_draws_the_mixture_from_its_exact_score() {
    // sigma_1 = 2 (the modes, 2 apart, overlap) down to sigma_L = 0.1, L = 10; eps = sigma_L^2,
    // so alpha_i / v_i <= eps / sigma_L^2 = 1 at every level: each level mixes within a few steps.
    let sigmas = langevin::geometric_sigmas(2.0, 0.1, 10).unwrap();
    let sigma_l = sigmas[9];
    let eps = sigma_l * sigma_l;
    let n = 3000;
    let config = SampleConfig {
        n,
        batch_size: 1000,
        seed: 3,
        eps,
        steps_per_level: 10,
        ..SampleConfig::default()
    };
    let score = ExactMixture { sigmas };
    let out = sample(&score, DIMS, &config, &Device::Cpu, Progress::Quiet).unwrap();
    assert_eq!(out.samples.dims(), [n, 1, 4, 4]);
    assert_eq!(count_non_finite(&out.samples).unwrap(), 0, "no chain diverged");
    let x = out.samples.to_dtype(DType::F64).unwrap().reshape((n, D)).unwrap();
    let images: Vec<Vec<f64>> = x.to_vec2().unwrap();

    // Each image goes to the mode whose mean is nearer (the means are constant images, so: the
    // mean pixel below or above the midpoint 0.5).
    let midpoint = 0.5 * (MODES[0].mean + MODES[1].mean);
    let (first, second): (Vec<&Vec<f64>>, Vec<&Vec<f64>>) = images
        .iter()
        .partition(|img| img.iter().sum::<f64>() / (D as f64) < midpoint);

    // Weights: n_1 / n against w_1; the binomial standard error sqrt(w (1 - w) / n) = 0.0084.
    // Tolerance 4 standard errors (a false alarm once in 16,000 runs).
    let w1 = first.len() as f64 / n as f64;
    eprintln!("weight of the first mode: {w1}");
    let se = (MODES[0].weight * MODES[1].weight / n as f64).sqrt();
    assert!(
        (w1 - MODES[0].weight).abs() < 4.0 * se,
        "weight of the first mode {w1}, expected {} +- {}",
        MODES[0].weight,
        4.0 * se
    );

    for (mode, members) in MODES.iter().zip([&first, &second]) {
        // The stationary variance per pixel of the last level's chain: V = v / (1 - a / (4 v)),
        // a = alpha_L = eps, v = s_k^2 + sigma_L^2.
        let v = mode.sd * mode.sd + sigma_l * sigma_l;
        let expected = v / (1.0 - eps / (4.0 * v));
        // Pixels are independent given the mode, so m = 16 n_k squared deviations from the known
        // mean: their mean has relative standard deviation sqrt(2 / m) (chi-square), 1.2% for
        // the first mode and 0.8% for the second. Tolerance 4 of them, plus 1% for what the
        // previous level leaves (a contraction of (1 - a/(2v))^2 <= 0.56 per step over 10
        // steps, below 0.3%) and the far mode's pull (zero to f64 precision).
        let m = (D * members.len()) as f64;
        let got = members
            .iter()
            .flat_map(|img| img.iter().map(|p| (p - mode.mean).powi(2)))
            .sum::<f64>()
            / m;
        let tolerance = 4.0 * (2.0 / m).sqrt() + 0.01;
        eprintln!(
            "mode at {}: variance per pixel {got:.6}, expected {expected:.6}",
            mode.mean
        );
        assert!(
            (got / expected - 1.0).abs() < tolerance,
            "mode at {}: variance per pixel {got:.6}, expected {expected:.6} (relative tolerance {tolerance:.3}; \
             the data's own is {v:.6})",
            mode.mean
        );
        // The mean: standard error sqrt(V / m) per mode, tolerance 4 of them.
        let mean = members.iter().flat_map(|img| img.iter()).sum::<f64>() / m;
        assert!(
            (mean - mode.mean).abs() < 4.0 * (expected / m).sqrt(),
            "mode at {}: mean pixel {mean}",
            mode.mean
        );
    }
}
