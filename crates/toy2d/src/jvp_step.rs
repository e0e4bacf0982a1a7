//! One training step of sliced or implicit score matching for the toys' unconditional network
//! ([`ScoreMlp`], `2 -> H -> H -> 2` with softplus), forward, tangent and backward written out on
//! plain `f32` buffers, as [`crate::dsm_step`] does for denoising score matching.
//!
//! Both objectives need `J_s(x) v`, the network's Jacobian times a direction, which the forward
//! pass carries as a tangent beside each activation (forward mode): for a layer
//! `a = W x + b`, `h = softplus(a)`, the tangent is `da = W dx`, `dh = sigmoid(a) da`. The loss
//! then depends on each weight twice, through the activations and through the tangents, and the
//! backward pass collects both:
//!
//! ```text
//! g_a  = g_h sigmoid(a) + (g_dh da) sigmoid(a) (1 - sigmoid(a))     (d dh / d a)
//! g_da = g_dh sigmoid(a)
//! dW   = g_a^T x + g_da^T dx,   db = sum_n g_a,   g_x = g_a W,   g_dx = g_da W
//! ```
//!
//! - Sliced (per example, `v` a random direction): `v^T J v + 1/2 (v^T s)^2`, or with the variance
//!   reduction `v^T J v + 1/2 |s|^2`; so `g_Jv = v / N` and `g_s = (v^T s) v / N` (or `s / N`).
//! - Implicit, in 2D: `tr J + 1/2 |s|^2`, the trace from two tangents, `e_1` and `e_2`: as
//!   `score_matching::score_and_divergence` does, the points are stacked twice, the first copy
//!   with tangent `e_1` and the second with `e_2`, and the score is the first copy's.
//!
//! As in `dsm_step.rs`, every product, sum and rounding is the one candle's ops make (the
//! objectives of `score_matching` through [`ScoreMlp`]'s layers), in the same order, so the loss
//! and the gradients are the same bits (tested for both objectives and both forms of sliced).
use candle_core::backprop::GradStore;
use candle_core::{bail, Device, Result, Tensor};

use crate::model::ScoreMlp;
use crate::plain::{column_sums, matmul, read};
use crate::softplus::{sigmoid_vec, softplus_vec};

/// Which objective [`jvp_step`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JvpObjective {
    /// Sliced score matching with the directions `v` given, in the variance-reduced form or not.
    Sliced { variance_reduced: bool },
    /// Implicit score matching (the exact trace; 2D points).
    Implicit,
}

/// The loss (a scalar tensor) and the gradient of every parameter of `model` on the points `x`
/// (`(N, 2)`, row-major), with the directions `v` (`(N, 2)`) for sliced score matching (ignored
/// by implicit); `None` where the model is not one this step computes (not on the CPU in `f32`).
pub fn jvp_step(
    model: &ScoreMlp,
    objective: JvpObjective,
    x: &[f32],
    v: &[f32],
) -> Result<Option<(Tensor, GradStore)>> {
    let Some(p) = model.layers() else {
        return Ok(None);
    };
    let n = x.len() / 2;
    if x.len() != 2 * n || (matches!(objective, JvpObjective::Sliced { .. }) && v.len() != x.len()) {
        bail!(
            "jvp_step: {} coordinates and {} direction values, expected two per point of each",
            x.len(),
            v.len()
        );
    }
    let values = p
        .iter()
        .map(|(w, b)| Ok((read(w)?, read(b)?)))
        .collect::<Result<Vec<_>>>()?;
    let layers = values
        .iter()
        .map(|(w, b)| Ok((w.get()?, b.get()?)))
        .collect::<Result<Vec<_>>>()?;
    let h = layers[0].1.len();
    let threads = candle_core::utils::get_num_threads();

    // The rows the network sees and their tangents: the batch with v (sliced), or the batch
    // twice, with e_1 then e_2 (implicit).
    let (rows, tangents) = match objective {
        JvpObjective::Sliced { .. } => (x.to_vec(), v.to_vec()),
        JvpObjective::Implicit => {
            let rows = [x, x].concat();
            let tangents = (0..2 * n)
                .flat_map(|r| if r < n { [1.0, 0.0] } else { [0.0, 1.0] })
                .collect();
            (rows, tangents)
        }
    };
    let m = rows.len() / 2;

    // Forward with tangents: a = x W^T + b, h = softplus(a), da = dx W^T, dh = sigmoid(a) da.
    let hidden = |x: &[f32], dx: &[f32], k: usize, (w, b): (&[f32], &[f32])| {
        let mut a = vec![0f32; m * h];
        matmul(threads, (m, h, k), &mut a, (x, k, 1), (w, 1, k));
        for row in a.chunks_exact_mut(h) {
            for (a, b) in row.iter_mut().zip(b) {
                *a += b;
            }
        }
        let mut da = vec![0f32; m * h];
        matmul(threads, (m, h, k), &mut da, (dx, k, 1), (w, 1, k));
        let sig = sigmoid_vec(&a); // kept for the backward pass
        let dh = times(&da, &sig); // sigmoid(a) da
        (softplus_vec(&a), sig, da, dh)
    };
    let (h1, sig1, da1, dh1) = hidden(&rows, &tangents, 2, layers[0]);
    let (h2, sig2, da2, dh2) = hidden(&h1, &dh1, h, layers[1]);
    let (w3, b3) = layers[2];
    let mut s = vec![0f32; 2 * m];
    matmul(threads, (m, 2, h), &mut s, (&h2, h, 1), (w3, 1, h));
    for row in s.chunks_exact_mut(2) {
        row[0] += b3[0];
        row[1] += b3[1];
    }
    let mut jv = vec![0f32; 2 * m];
    matmul(threads, (m, 2, h), &mut jv, (&dh2, h, 1), (w3, 1, h));

    // The loss per example and its gradients with respect to s and Jv (g: the batch mean's
    // factor, as candle's backward pass applies it).
    let g = (1.0 / n as f64) as f32;
    let mut per_example = vec![0f32; n];
    let mut g_s = vec![0f32; 2 * m];
    let mut g_jv = vec![0f32; 2 * m];
    // a row's sum of two values as candle reduces it: from zero, in order
    let sum2 = |a: f32, b: f32| {
        let mut t = 0f32;
        t += a;
        t += b;
        t
    };
    for i in 0..n {
        let (si, r) = (&s[2 * i..2 * i + 2], 2 * i..2 * i + 2);
        let half_sq = sum2(si[0] * si[0], si[1] * si[1]) * 0.5; // 1/2 |s|^2
        let vr_grad = |k: usize| (si[k] * (g * 0.5)) * 2.0;
        match objective {
            JvpObjective::Sliced { variance_reduced } => {
                let vi = &tangents[r.clone()];
                let v_jv = sum2(vi[0] * jv[2 * i], vi[1] * jv[2 * i + 1]); // v^T J v
                let v_s = sum2(vi[0] * si[0], vi[1] * si[1]);
                per_example[i] = v_jv + if variance_reduced { half_sq } else { v_s * v_s * 0.5 };
                for k in 0..2 {
                    g_jv[2 * i + k] = g * vi[k];
                    g_s[2 * i + k] = match variance_reduced {
                        true => vr_grad(k),
                        false => ((v_s * (g * 0.5)) * 2.0) * vi[k],
                    };
                }
            }
            JvpObjective::Implicit => {
                // e_k^T J e_k from copy k: its tangent's components times e_k, summed
                let (j1, j2) = (2 * i, 2 * (n + i));
                let trace = sum2(sum2(jv[j1], jv[j1 + 1] * 0.0), sum2(jv[j2] * 0.0, jv[j2 + 1]));
                per_example[i] = half_sq + trace;
                for k in 0..2 {
                    g_s[2 * i + k] = vr_grad(k);
                    g_jv[j1 + k] = g * tangents[j1 + k];
                    g_jv[j2 + k] = g * tangents[j2 + k];
                }
            }
        }
    }
    let loss = Tensor::from_vec(per_example, n, &Device::Cpu)?.mean_all()?;

    // Backward, layer 3: both products use W3; only the score has the bias.
    let mut dw3 = vec![0f32; 2 * h];
    matmul(threads, (2, h, m), &mut dw3, (&g_s, 1, 2), (&h2, h, 1));
    let mut dw3_tangent = vec![0f32; 2 * h];
    matmul(threads, (2, h, m), &mut dw3_tangent, (&g_jv, 1, 2), (&dh2, h, 1));
    add_into(&mut dw3, &dw3_tangent);
    let db3 = column_sums(&g_s, 2);
    let mut g_h2 = vec![0f32; m * h];
    matmul(threads, (m, h, 2), &mut g_h2, (&g_s, 2, 1), (w3, h, 1));
    let mut g_dh2 = vec![0f32; m * h];
    matmul(threads, (m, h, 2), &mut g_dh2, (&g_jv, 2, 1), (w3, h, 1));
    // A hidden layer's parameter gradients given g_h and g_dh (its input x with tangent dx).
    let back = |g_h: &[f32], g_dh: &[f32], sig: &[f32], da: &[f32], x: &[f32], dx: &[f32], k: usize| {
        // g_a = g_h s + (g_dh da) s (1 - s);  g_da = g_dh s;  s = sigmoid(a)
        let mut g_a = times(g_h, sig);
        for (((g_a, g_dh), da), s) in g_a.iter_mut().zip(g_dh).zip(da).zip(sig) {
            *g_a += (g_dh * da) * (s * (1.0 - s));
        }
        let g_da = times(g_dh, sig);
        let db = column_sums(&g_a, h);
        let (mut dw, mut dw_tangent) = (vec![0f32; h * k], vec![0f32; h * k]);
        matmul(threads, (h, k, m), &mut dw, (&g_a, 1, h), (x, k, 1));
        matmul(threads, (h, k, m), &mut dw_tangent, (&g_da, 1, h), (dx, k, 1));
        add_into(&mut dw, &dw_tangent);
        (dw, db, g_a, g_da)
    };
    let (dw2, db2, g_a2, g_da2) = back(&g_h2, &g_dh2, &sig2, &da2, &h1, &dh1, h);
    // layer 2's inputs: g_h1 = g_a2 W2, g_dh1 = g_da2 W2
    let w2 = layers[1].0;
    let (mut g_h1, mut g_dh1) = (vec![0f32; m * h], vec![0f32; m * h]);
    matmul(threads, (m, h, h), &mut g_h1, (&g_a2, h, 1), (w2, h, 1));
    matmul(threads, (m, h, h), &mut g_dh1, (&g_da2, h, 1), (w2, h, 1));
    let (dw1, db1, _, _) = back(&g_h1, &g_dh1, &sig1, &da1, &rows, &tangents, 2);

    let mut grads = GradStore::default();
    let dev = Device::Cpu;
    for ((w, b), (dw, db)) in p.into_iter().zip([(dw1, db1), (dw2, db2), (dw3, db3)]) {
        grads.insert(w, Tensor::from_vec(dw, w.dims(), &dev)?);
        grads.insert(b, Tensor::from_vec(db, b.dims(), &dev)?);
    }
    Ok(Some((loss, grads)))
}

/// `a b`, elementwise, into a new vector.
fn times(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| a * b).collect()
}

/// `a += b`, elementwise: two gradient contributions to one value.
fn add_into(a: &mut [f32], b: &[f32]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use rand::{Rng, SeedableRng};
    use score_matching::{implicit, sliced};

    /// The loss and every gradient from [`jvp_step`] and from candle's autograd of the
    /// `score_matching` objective, flattened in parameter order, on a model whose parameters were
    /// moved off their initial values.
    fn both_paths(objective: JvpObjective, hidden: usize, batch: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (model, varmap) = ScoreMlp::seeded(hidden, DType::F32, &dev, &mut rng).unwrap();
        for var in varmap.all_vars() {
            let noise = langevin::randn_tensor(&mut rng, var.dims(), DType::F32, &dev).unwrap();
            var.set(&(var.as_tensor() + (noise * 0.2).unwrap()).unwrap()).unwrap();
        }
        let x: Vec<f32> = (0..2 * batch).map(|_| rng.random_range(-6.0f32..6.0)).collect();
        let v = langevin::randn_tensor(&mut rng, &[batch, 2], DType::F32, &dev).unwrap();
        let xt = Tensor::from_vec(x.clone(), (batch, 2), &dev).unwrap();
        let loss = match objective {
            JvpObjective::Sliced { variance_reduced } => sliced::ssm_loss(&model, &xt, &v, variance_reduced),
            JvpObjective::Implicit => implicit::ism_loss(&model, &xt),
        }
        .unwrap();
        let grads = loss.backward().unwrap();
        let vv = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (loss2, grads2) = jvp_step(&model, objective, &x, &vv).unwrap().unwrap();
        let all = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (mut ours, mut theirs) = (all(&loss2), all(&loss));
        for (w, b) in model.layers().unwrap() {
            for t in [w, b] {
                ours.extend(all(grads2.get(t).unwrap()));
                theirs.extend(all(grads.get(t).unwrap()));
            }
        }
        (ours, theirs)
    }

    #[test]
    fn the_written_out_step_gives_candles_loss_and_gradients_bit_for_bit() {
        for objective in [
            JvpObjective::Sliced { variance_reduced: true },
            JvpObjective::Sliced {
                variance_reduced: false,
            },
            JvpObjective::Implicit,
        ] {
            for (hidden, batch, seed) in [(37, 29, 1), (128, 128, 2), (5, 1, 3)] {
                let (ours, theirs) = both_paths(objective, hidden, batch, seed);
                assert_eq!(ours.len(), theirs.len());
                let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
                assert_eq!(
                    differ,
                    0,
                    "{objective:?} hidden {hidden} batch {batch}: {differ} of {} values differ",
                    ours.len()
                );
            }
        }
    }

    #[test]
    fn mismatched_directions_are_an_error() {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (model, _) = ScoreMlp::seeded(8, DType::F32, &dev, &mut rng).unwrap();
        let sliced = JvpObjective::Sliced { variance_reduced: true };
        assert!(jvp_step(&model, sliced, &[0.0; 4], &[0.0; 2]).is_err());
        assert!(jvp_step(&model, JvpObjective::Implicit, &[0.0; 3], &[]).is_err());
        assert!(jvp_step(&model, JvpObjective::Implicit, &[0.0; 4], &[])
            .unwrap()
            .is_some());
    }
}
