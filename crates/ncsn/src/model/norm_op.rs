//! CondInstanceNorm++ as one CPU op, with its backward pass written out.
//!
//! The layer ([`super::norm`]) defines the function with a dozen tensor ops; differentiated by
//! candle, that is some forty passes over the activations per training step, each with a fresh
//! allocation. Here the forward pass is two reads and one write per image, the backward pass
//! three reads and one write, every sum accumulated in f64. Other devices keep the tensor ops.
//!
//! For one image, channel `c` of `C`, `N = H W` pixels, and the rows `gamma, alpha, beta` of the
//! noise level's embedding:
//!
//! ```text
//! mu_c = sum x / N        r_c = 1 / sqrt(sum (x - mu_c)^2 / N + eps)
//! m = mean_c mu_c         d_c = mu_c - m      q = 1 / sqrt(sum_c d_c^2 / (C - 1) + eps)
//! z = gamma_c r_c (x - mu_c) + gamma_c alpha_c q d_c + beta_c
//! ```
//!
//! Backward, with `g = dL/dz`, `S_c = sum g`, `P_c = sum g (x - mu_c)` (sums over the pixels):
//!
//! ```text
//! dbeta_c  = S_c
//! dgamma_c = r_c P_c + alpha_c q d_c S_c
//! dalpha_c = gamma_c q d_c S_c
//! dx       = gamma_c r_c (g - S_c / N - r_c^2 P_c (x - mu_c) / N)      (instance norm)
//!          + dmu_c / N                                                  (through the mean term)
//! dmu_c    = q (G_c - mean_j G_j) - q^3 (sum_j G_j d_j) d_c / (C - 1),  G_c = gamma_c alpha_c S_c
//! ```
//!
//! The instance-norm line is the usual one; `dmu_c` is the chain rule through `q d_c`:
//! `d d_c / d mu_j = [c = j] - 1/C`, and `d q / d mu_j = -q^3 d_j / (C - 1)` (the `-1/C` part
//! of `d v / d mu_j` vanishes because `sum_j d_j = 0`).
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::norm::NORM_EPS;

/// CondInstanceNorm++ of `x [B, C, H, W]` with each image's embedding row `e [B, 3C]`
/// (`gamma | alpha | beta`), on the CPU in f32 or f64; differentiable in both.
pub fn cond_instance_norm_cpu(x: &Tensor, e: &Tensor) -> Result<Tensor> {
    let (b, c, _, _) = x.dims4()?;
    if e.dims() != [b, 3 * c] {
        bail!(
            "CondInstanceNorm++: embedding rows {:?}, expected [{b}, {}]",
            e.dims(),
            3 * c
        )
    }
    x.contiguous()?.apply_op2(&e.contiguous()?, CondNorm)
}

struct CondNorm;

/// The backward pass as an op of its own: `(x, e, dz) -> [dx | de]` flattened into one vector.
struct CondNormGrad;

/// The per-image quantities that both passes need.
struct Stats {
    mu: Vec<f64>,
    r: Vec<f64>,
    d: Vec<f64>,
    q: f64,
}

/// `sum_i f(xs[i])` in f64, in eight lanes so that the loop vectorises.
fn sum_by<T: WithDType>(xs: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|v| f(v.to_f64())).sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v.to_f64());
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// `(sum_i g_i, sum_i g_i (x_i - mu))` in f64, in eight lanes.
fn sums_of_grad<T: WithDType>(g: &[T], x: &[T], mu: f64) -> (f64, f64) {
    let (mut s, mut p) = ([0f64; 8], [0f64; 8]);
    let (gc, xc) = (g.chunks_exact(8), x.chunks_exact(8));
    let (mut s_rest, mut p_rest) = (0.0, 0.0);
    for (g, x) in gc.remainder().iter().zip(xc.remainder()) {
        s_rest += g.to_f64();
        p_rest += g.to_f64() * (x.to_f64() - mu);
    }
    for (g, x) in gc.zip(xc) {
        for j in 0..8 {
            s[j] += g[j].to_f64();
            p[j] += g[j].to_f64() * (x[j].to_f64() - mu);
        }
    }
    (s.iter().sum::<f64>() + s_rest, p.iter().sum::<f64>() + p_rest)
}

impl Stats {
    /// Channel means and inverse deviations of one image `[C, N]`, and the normalised means.
    fn of<T: WithDType>(image: &[T], c: usize, n: usize) -> Self {
        let mu: Vec<f64> = image.chunks(n).map(|x| sum_by(x, |v| v) / n as f64).collect();
        let r = image
            .chunks(n)
            .zip(&mu)
            .map(|(x, &mu)| 1.0 / (sum_by(x, |v| (v - mu) * (v - mu)) / n as f64 + NORM_EPS).sqrt())
            .collect();
        let m = mu.iter().sum::<f64>() / c as f64;
        let d: Vec<f64> = mu.iter().map(|mu| mu - m).collect();
        // Unbiased across channels, as the reference's torch.var: NaN for a single channel.
        let v = d.iter().map(|d| d * d).sum::<f64>() / (c as f64 - 1.0);
        Stats {
            mu,
            r,
            d,
            q: 1.0 / (v + NORM_EPS).sqrt(),
        }
    }
}

/// The forward pass over a batch: `z` of `x [B, C, N]` and `e [B, 3C]`.
fn forward<T: WithDType>(x: &[T], e: &[T], c: usize, n: usize) -> Vec<T> {
    let mut z = vec![T::zero(); x.len()];
    z.par_chunks_mut(c * n)
        .zip(x.par_chunks(c * n))
        .zip(e.par_chunks(3 * c))
        .for_each(|((z, x), e)| {
            let s = Stats::of(x, c, n);
            for ch in 0..c {
                let (gamma, alpha, beta) = (e[ch].to_f64(), e[c + ch].to_f64(), e[2 * c + ch].to_f64());
                // z = scale (x - mu) + shift
                let scale = gamma * s.r[ch];
                let shift = gamma * alpha * s.q * s.d[ch] + beta;
                let (mu, range) = (s.mu[ch], ch * n..(ch + 1) * n);
                for (z, x) in z[range.clone()].iter_mut().zip(&x[range]) {
                    *z = T::from_f64(scale * (x.to_f64() - mu) + shift);
                }
            }
        });
    z
}

/// The backward pass over a batch: `dx` (`[B, C, N]`) followed by `de` (`[B, 3C]`).
fn backward<T: WithDType>(x: &[T], e: &[T], g: &[T], b: usize, c: usize, n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); b * c * n + b * 3 * c];
    let (dx, de) = out.split_at_mut(b * c * n);
    dx.par_chunks_mut(c * n)
        .zip(de.par_chunks_mut(3 * c))
        .zip(x.par_chunks(c * n).zip(g.par_chunks(c * n)))
        .zip(e.par_chunks(3 * c))
        .for_each(|(((dx, de), (x, g)), e)| {
            let s = Stats::of(x, c, n);
            let nf = n as f64;
            let sums: Vec<(f64, f64)> = (0..c)
                .map(|ch| sums_of_grad(&g[ch * n..(ch + 1) * n], &x[ch * n..(ch + 1) * n], s.mu[ch]))
                .collect();
            // G_c = gamma_c alpha_c S_c, the gradient reaching the normalised mean q d_c.
            let big_g: Vec<f64> = (0..c)
                .map(|ch| e[ch].to_f64() * e[c + ch].to_f64() * sums[ch].0)
                .collect();
            let g_mean = big_g.iter().sum::<f64>() / c as f64;
            let g_dot_d: f64 = big_g.iter().zip(&s.d).map(|(g, d)| g * d).sum();
            for ch in 0..c {
                let (gamma, alpha) = (e[ch].to_f64(), e[c + ch].to_f64());
                let (sum, p) = sums[ch];
                let (r, d) = (s.r[ch], s.d[ch]);
                de[ch] = T::from_f64(r * p + alpha * s.q * d * sum); // dgamma
                de[c + ch] = T::from_f64(gamma * s.q * d * sum); // dalpha
                de[2 * c + ch] = T::from_f64(sum); // dbeta
                let dmu = s.q * (big_g[ch] - g_mean) - s.q.powi(3) * g_dot_d * d / (c as f64 - 1.0);
                // dx = a g + k1 (x - mu) + k0
                let a = gamma * r;
                let k1 = -gamma * r * r * r * p / nf;
                let k0 = (dmu - gamma * r * sum) / nf;
                let (mu, range) = (s.mu[ch], ch * n..(ch + 1) * n);
                for ((dx, g), x) in dx[range.clone()].iter_mut().zip(&g[range.clone()]).zip(&x[range]) {
                    *dx = T::from_f64(a * g.to_f64() + k1 * (x.to_f64() - mu) + k0);
                }
            }
        });
    out
}

/// The elements of a contiguous tensor (the wrappers make their inputs contiguous).
fn slice<'a, T>(data: &'a [T], l: &Layout) -> Result<&'a [T]> {
    workbench::storage::slice("CondInstanceNorm++", data, l)
}

impl CustomOp2 for CondNorm {
    fn name(&self) -> &'static str {
        "cond-instance-norm-pp"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, h, w) = l1.shape().dims4()?;
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(e)) => {
                CpuStorage::F32(forward(slice(x, l1)?, slice(e, l2)?, c, h * w))
            }
            (CpuStorage::F64(x), CpuStorage::F64(e)) => {
                CpuStorage::F64(forward(slice(x, l1)?, slice(e, l2)?, c, h * w))
            }
            _ => bail!(
                "CondInstanceNorm++ on the CPU supports f32 and f64, got {:?}",
                s1.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, e: &Tensor, _z: &Tensor, dz: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, c, _, _) = x.dims4()?;
        let both = x.apply_op3_no_bwd(e, &dz.contiguous()?, &CondNormGrad)?;
        let len = x.elem_count();
        let dx = both.narrow(0, 0, len)?.reshape(x.shape())?;
        let de = both.narrow(0, len, b * 3 * c)?.reshape((b, 3 * c))?;
        Ok((Some(dx), Some(de)))
    }
}

impl CustomOp3 for CondNormGrad {
    fn name(&self) -> &'static str {
        "cond-instance-norm-pp-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(e), CpuStorage::F32(g)) => {
                CpuStorage::F32(backward(slice(x, l1)?, slice(e, l2)?, slice(g, l3)?, b, c, h * w))
            }
            (CpuStorage::F64(x), CpuStorage::F64(e), CpuStorage::F64(g)) => {
                CpuStorage::F64(backward(slice(x, l1)?, slice(e, l2)?, slice(g, l3)?, b, c, h * w))
            }
            _ => bail!(
                "CondInstanceNorm++ on the CPU supports f32 and f64, got {:?}",
                s1.dtype()
            ),
        };
        let len = b * c * h * w + b * 3 * c;
        Ok((out, Shape::from(len)))
    }
}
