//! One training step of noise-conditional denoising score matching for the toys' network
//! ([`NoiseConditionalMlp`] with a level embedding), forward and backward written out on plain
//! `f32` buffers: the loss and the gradient of every parameter, for the optimizer.
//!
//! Through candle's autograd this step is about sixty ops, each allocating its output, and the
//! gradient store adds every gradient into a zeroed tensor; on a 2-256-256-2 network and a batch
//! of 128 that bookkeeping cost more than the arithmetic. Here it is eight matrix products (three
//! forward, five backward), made with the `gemm` call candle's own CPU product makes, and a few
//! passes over the activations.
//!
//! For example `n` at level `l` (`sigma = sigma_l`), with `[.]_l` the level's row of a table:
//!
//! ```text
//! forward                                    backward (g_v: d loss / d v)
//! x~ = x + sigma z                           g_s  = 2 (s + z/sigma) (sigma^2 / 2N)
//! u  = c_in(sigma) x~                        g_f  = g_s / sigma            (or g_s)
//! a1 = u W1^T + b1                           W3, b3: g_f^T h2, sum_n g_f;  g_h2 = g_f W3
//! m1 = gamma1[l] a1 + beta1[l]               g_m2 = g_h2 sigmoid(m2)
//! h1 = softplus(m1)                          gamma2[l] += g_m2 a2, beta2[l] += g_m2
//! a2 = h1 W2^T + b2                          g_a2 = g_m2 gamma2[l]
//! m2 = gamma2[l] a2 + beta2[l]               W2, b2: g_a2^T h1, sum_n g_a2; g_h1 = g_a2 W2
//! h2 = softplus(m2)                          g_m1 = g_h1 sigmoid(m1)
//! f  = h2 W3^T + b3                          gamma1[l] += g_m1 a1, beta1[l] += g_m1
//! s  = f / sigma     (EmbeddingOverSigma)    g_a1 = g_m1 gamma1[l]
//! loss = 1/N sum_n 1/2 sigma^2 |s + z/sigma|^2   W1, b1: g_a1^T u, sum_n g_a1
//! ```
//!
//! Every product, sum and rounding is the one candle's ops make in
//! [`crate::train::ncsn_loss`] and its backward pass (the layers' own ops included), in the same
//! order, so the loss and the gradients are the same bits: a test holds them to it, and so the
//! toy experiments' outputs do not depend on which of the two paths trained them.
use candle_core::backprop::GradStore;
use candle_core::{bail, Device, Result, Tensor};

use crate::model::NoiseConditionalMlp;
use crate::plain::{column_sums, matmul, read};
use crate::softplus::{softplus_grad_vec, softplus_vec};

/// The loss (a scalar tensor, as candle's path returns it) and the gradients of every parameter
/// of `model` for one batch: clean points `x` (`(N, 2)`, row-major), their noise `z` (`(N, 2)`),
/// their levels and the loss's `sigmas` (`f32`, as [`crate::train::ncsn_loss`] takes them); `None` where the model is not one this step computes (not on the CPU in `f32`, or
/// divided by sigma without a level embedding): train it through candle's ops instead.
pub fn dsm_step(
    model: &NoiseConditionalMlp,
    x: &[f32],
    z: &[f32],
    levels: &[u32],
    sigmas: &Tensor,
) -> Result<Option<(Tensor, GradStore)>> {
    let Some(p) = model.dsm_parts() else {
        return Ok(None);
    };
    let n = levels.len();
    if x.len() != 2 * n || z.len() != 2 * n {
        bail!(
            "dsm_step: {} levels for {} coordinates and {} noise values, expected {} of each",
            n,
            x.len(),
            z.len(),
            2 * n
        );
    }
    let n_levels = model.sigmas().len();
    if let Some(bad) = levels.iter().find(|&&l| l as usize >= n_levels) {
        bail!("dsm_step: level {bad} out of range, the model has {n_levels} noise levels");
    }
    let (w1, b1, w2, b2, w3, b3) = (
        read(p.weights[0])?,
        read(p.biases[0])?,
        read(p.weights[1])?,
        read(p.biases[1])?,
        read(p.weights[2])?,
        read(p.biases[2])?,
    );
    let (gamma1, beta1, gamma2, beta2) = (read(p.gamma[0])?, read(p.beta[0])?, read(p.gamma[1])?, read(p.beta[1])?);
    let (c_in, sigmas, over_sigma) = (read(p.c_in)?, read(sigmas)?, p.over_sigma.map(read).transpose()?);
    let (w1, b1, w2, b2, w3, b3) = (w1.get()?, b1.get()?, w2.get()?, b2.get()?, w3.get()?, b3.get()?);
    let (gamma1, beta1, gamma2, beta2) = (gamma1.get()?, beta1.get()?, gamma2.get()?, beta2.get()?);
    let (c_in, sigmas) = (c_in.get()?, sigmas.get()?);
    let over_sigma = over_sigma.as_ref().map(|v| v.get()).transpose()?;
    if sigmas.len() != n_levels {
        bail!(
            "dsm_step: {} sigmas for a model of {n_levels} noise levels",
            sigmas.len()
        );
    }
    let h = b1.len();
    let sigma = |i: usize| sigmas[levels[i] as usize];

    // Forward. u = c_in (x + sigma z), the network's input; t = -z / sigma, DSM's target.
    let mut u = vec![0f32; 2 * n];
    let mut target = vec![0f32; 2 * n];
    for i in 0..n {
        let (s, c) = (sigma(i), c_in[levels[i] as usize]);
        for d in 0..2 {
            let j = 2 * i + d;
            u[j] = (x[j] + z[j] * s) * c;
            target[j] = -(z[j] / s);
        }
    }
    let threads = candle_core::utils::get_num_threads();
    let hidden_layer = |input: &[f32], k: usize, w: &[f32], b: &[f32], gamma: &[f32], beta: &[f32]| {
        // a = input W^T + b, then m = gamma[l] a + beta[l]
        let mut a = vec![0f32; n * h];
        matmul(threads, (n, h, k), &mut a, (input, k, 1), (w, 1, k));
        let mut m = vec![0f32; n * h];
        for (i, (a, m)) in a.chunks_exact_mut(h).zip(m.chunks_exact_mut(h)).enumerate() {
            let l = levels[i] as usize;
            let (gamma, beta) = (&gamma[l * h..(l + 1) * h], &beta[l * h..(l + 1) * h]);
            for ((((a, m), b), g), be) in a.iter_mut().zip(m).zip(b).zip(gamma).zip(beta) {
                *a += b;
                *m = *a * g + be;
            }
        }
        (a, m)
    };
    let (a1, m1) = hidden_layer(&u, 2, w1, b1, gamma1, beta1);
    let h1 = softplus_vec(&m1);
    let (a2, m2) = hidden_layer(&h1, h, w2, b2, gamma2, beta2);
    let h2 = softplus_vec(&m2);
    let mut f = vec![0f32; 2 * n];
    matmul(threads, (n, 2, h), &mut f, (&h2, h, 1), (w3, 1, h));
    for row in f.chunks_exact_mut(2) {
        row[0] += b3[0];
        row[1] += b3[1];
    }

    // The loss per example, 1/2 sigma^2 |s - t|^2, and the gradient of the batch mean with
    // respect to f (the mean's and the halving's factors as candle's backward pass applies them).
    let g_mean = (1.0 / n as f64) as f32 * 0.5;
    let mut per_example = vec![0f32; n];
    let mut g_f = vec![0f32; 2 * n];
    for i in 0..n {
        let s2 = sigma(i) * sigma(i);
        let mut sum = 0f32;
        for d in 0..2 {
            let j = 2 * i + d;
            let s = match over_sigma {
                Some(over) => f[j] / over[levels[i] as usize],
                None => f[j],
            };
            let diff = s - target[j];
            sum += diff * diff * s2;
            let g_s = (diff * (g_mean * s2)) * 2.0;
            g_f[j] = match over_sigma {
                Some(over) => g_s / over[levels[i] as usize],
                None => g_s,
            };
        }
        per_example[i] = sum * 0.5;
    }
    let loss = Tensor::from_vec(per_example, n, &Device::Cpu)?.mean_all()?;

    // Backward, layer 3: dW3 = g_f^T h2, db3 = sum_n g_f, g_h2 = g_f W3.
    let mut dw3 = vec![0f32; 2 * h];
    matmul(threads, (2, h, n), &mut dw3, (&g_f, 1, 2), (&h2, h, 1));
    let db3 = column_sums(&g_f, 2);
    let mut g = vec![0f32; n * h];
    matmul(threads, (n, h, 2), &mut g, (&g_f, 2, 1), (w3, h, 1));
    // Layer 2, then layer 1: the softplus, the level's scale and shift, the bias, the product.
    let layer2 = hidden_backward(threads, &mut g, &m2, &a2, &h1, h, levels, gamma2, n_levels);
    let mut g_h1 = vec![0f32; n * h];
    matmul(threads, (n, h, h), &mut g_h1, (&g, h, 1), (w2, h, 1));
    let layer1 = hidden_backward(threads, &mut g_h1, &m1, &a1, &u, 2, levels, gamma1, n_levels);

    let mut grads = GradStore::default();
    let dev = Device::Cpu;
    let mut put = |t: &Tensor, values: Vec<f32>| -> Result<()> {
        grads.insert(t, Tensor::from_vec(values, t.dims(), &dev)?);
        Ok(())
    };
    put(p.weights[2], dw3)?;
    put(p.biases[2], db3)?;
    for (k, layer) in [layer1, layer2].into_iter().enumerate() {
        put(p.weights[k], layer.dw)?;
        put(p.biases[k], layer.db)?;
        put(p.gamma[k], layer.dgamma)?;
        put(p.beta[k], layer.dbeta)?;
    }
    Ok(Some((loss, grads)))
}

/// The gradients of one hidden layer's parameters.
struct HiddenGrads {
    dw: Vec<f32>,
    db: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// The backward pass of `h = softplus(gamma[l] (input W^T + b) + beta[l])` given `g = g_h`
/// (overwritten with `g_a`, the gradient of `a = input W^T + b`, for the layer below).
#[allow(clippy::too_many_arguments)]
fn hidden_backward(
    threads: usize,
    g: &mut Vec<f32>,
    m: &[f32],
    a: &[f32],
    input: &[f32],
    k: usize,
    levels: &[u32],
    gamma: &[f32],
    n_levels: usize,
) -> HiddenGrads {
    let (n, h) = (levels.len(), m.len() / levels.len().max(1));
    *g = softplus_grad_vec(m, g); // g_m = g_h sigmoid(m)
    let mut dgamma = vec![0f32; n_levels * h];
    let mut dbeta = vec![0f32; n_levels * h];
    for (i, (g, a)) in g.chunks_exact(h).zip(a.chunks_exact(h)).enumerate() {
        let l = levels[i] as usize;
        for ((s, g), a) in dgamma[l * h..(l + 1) * h].iter_mut().zip(g).zip(a) {
            *s += g * a; // dgamma[l] += g_m a
        }
        for (s, g) in dbeta[l * h..(l + 1) * h].iter_mut().zip(g) {
            *s += g; // dbeta[l] += g_m
        }
    }
    for (i, g) in g.chunks_exact_mut(h).enumerate() {
        let l = levels[i] as usize;
        for (g, s) in g.iter_mut().zip(&gamma[l * h..(l + 1) * h]) {
            *g *= s; // g_a = g_m gamma[l]
        }
    }
    let db = column_sums(g, h);
    let mut dw = vec![0f32; h * k];
    matmul(threads, (h, k, n), &mut dw, (g, 1, h), (input, k, 1)); // dW = g_a^T input
    HiddenGrads { dw, db, dgamma, dbeta }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Conditioning;
    use candle_core::DType;
    use rand::{Rng, SeedableRng};
    use score_matching::anneal_dsm;

    /// The loss and every parameter's gradient (in the order the returned names list them), from
    /// [`dsm_step`] and from candle's autograd, on a model whose parameters were moved off their
    /// initial values (so that the level tables are not all ones and zeros).
    fn both_paths(conditioning: Conditioning, hidden: usize, batch: usize, seed: u64) -> (String, Vec<f32>, Vec<f32>) {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let sigmas = [6.0, 2.5, 0.9, 0.3, 0.1];
        let (model, varmap) =
            NoiseConditionalMlp::seeded(hidden, &sigmas, conditioning, DType::F32, &dev, &mut rng).unwrap();
        let sigmas_t = score_matching::sigmas_tensor(&sigmas, &dev).unwrap();
        // Move the tables away from their initial values.
        for var in varmap.all_vars() {
            let noise = langevin::randn_tensor(&mut rng, var.dims(), DType::F32, &dev).unwrap();
            var.set(&(var.as_tensor() + (noise * 0.3).unwrap()).unwrap()).unwrap();
        }
        let x: Vec<f32> = (0..2 * batch).map(|_| rng.random_range(-4.0f32..4.0)).collect();
        let z = langevin::randn_tensor(&mut rng, &[batch, 2], DType::F32, &dev).unwrap();
        let levels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..sigmas.len() as u32)).collect();
        let xt = Tensor::from_vec(x.clone(), (batch, 2), &dev).unwrap();
        let lv = Tensor::from_vec(levels.clone(), batch, &dev).unwrap();

        let loss = anneal_dsm::anneal_dsm_loss(|xt, lv| model.forward(xt, lv), &xt, &z, &lv, &sigmas_t).unwrap();
        let grads = loss.backward().unwrap();
        let zv = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (loss2, grads2) = dsm_step(&model, &x, &zv, &levels, &sigmas_t).unwrap().unwrap();

        let all = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut params = String::new();
        let (mut ours, mut theirs) = (all(&loss2), all(&loss));
        let mut vars: Vec<_> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in vars {
            params.push_str(&name);
            params.push(' ');
            ours.extend(all(grads2
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))));
            theirs.extend(all(grads.get(var.as_tensor()).unwrap()));
        }
        (format!("loss, then {params}"), ours, theirs)
    }

    #[test]
    fn the_written_out_step_gives_candles_loss_and_gradients_bit_for_bit() {
        // Both conditionings with a level embedding; widths that are and are not multiples of
        // the SIMD lanes; a batch smaller than a level table and the experiments' own shape.
        for (conditioning, hidden, batch, seed) in [
            (Conditioning::EmbeddingOverSigma, 37, 29, 1),
            (Conditioning::Embedding, 16, 3, 2),
            (Conditioning::EmbeddingOverSigma, 128, 128, 3),
            (Conditioning::EmbeddingOverSigma, 256, 128, 4),
        ] {
            let (what, ours, theirs) = both_paths(conditioning, hidden, batch, seed);
            assert_eq!(ours.len(), theirs.len());
            let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ, 0,
                "{conditioning:?} hidden {hidden} batch {batch}: {differ} values differ ({what})"
            );
        }
    }

    #[test]
    fn models_without_a_level_embedding_and_bad_batches_are_declined() {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let sigmas = [1.0, 0.5];
        let sigmas_t = score_matching::sigmas_tensor(&sigmas, &dev).unwrap();
        let (plain, _) =
            NoiseConditionalMlp::seeded(8, &sigmas, Conditioning::DivideBySigma, DType::F32, &dev, &mut rng).unwrap();
        assert!(dsm_step(&plain, &[0.0; 4], &[0.0; 4], &[0, 1], &sigmas_t)
            .unwrap()
            .is_none());
        let (model, _) =
            NoiseConditionalMlp::seeded(8, &sigmas, Conditioning::Embedding, DType::F32, &dev, &mut rng).unwrap();
        assert!(dsm_step(&model, &[0.0; 4], &[0.0; 4], &[0, 2], &sigmas_t).is_err()); // level 2 of 2
        assert!(dsm_step(&model, &[0.0; 6], &[0.0; 4], &[0, 1], &sigmas_t).is_err()); // 3 points, 2 levels
        let three = score_matching::sigmas_tensor(&[1.0, 0.5, 0.1], &dev).unwrap();
        assert!(dsm_step(&model, &[0.0; 4], &[0.0; 4], &[0, 1], &three).is_err());
    }
}
