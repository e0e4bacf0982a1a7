//! Adam (Kingma & Ba 2015) without weight decay, as the reference implementation trains NCSN,
//! with its state (`m`, `v`, `t`) open so that a checkpoint can store and restore it.
//!
//! For a parameter `theta` with gradient `g`, step `t = 1, 2, ...`:
//!
//! ```text
//! m <- beta1 m + (1 - beta1) g            first moment
//! v <- beta2 v + (1 - beta2) g^2          second moment
//! theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! (the bias-corrected form that PyTorch's `torch.optim.Adam` computes).
use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::Result;
use crate::vars::load_into;

/// Adam's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl Default for AdamConfig {
    /// The paper's settings: lr 1e-3, betas (0.9, 0.999), eps 1e-8.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam over a fixed list of named parameters.
pub struct Adam {
    config: AdamConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
}

impl Adam {
    /// Zero moments for every parameter of `vars` (`(name, var)`, as [`crate::vars::named_vars`]).
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            config,
            vars,
            m,
            v,
            t: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdamConfig { lr, beta1, beta2, eps } = self.config;
        self.t += 1;
        let t = self.t as i32;
        let step_size = lr / (1.0 - beta1.powi(t)); // lr / (1 - beta1^t)
        let sqrt_bc2 = (1.0 - beta2.powi(t)).sqrt(); // sqrt(1 - beta2^t)
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            // m <- beta1 m + (1 - beta1) g
            let m = (self.m[i].affine(beta1, 0.0)? + g.affine(1.0 - beta1, 0.0)?)?;
            // v <- beta2 v + (1 - beta2) g^2
            let v = (self.v[i].affine(beta2, 0.0)? + g.sqr()?.affine(1.0 - beta2, 0.0)?)?;
            // theta <- theta - step_size * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
            let denom = v.sqrt()?.affine(1.0 / sqrt_bc2, eps)?;
            let update = (m.affine(step_size, 0.0)? / denom)?;
            var.set(&(var.as_tensor() - update)?)?;
            // The gradient carries the graph of the step that produced it: keep the moments'
            // values only, or every step's graph would stay alive through m and v.
            self.m[i] = m.detach();
            self.v[i] = v.detach();
        }
        Ok(())
    }

    /// The moments as named tensors `adam.m.<param>` and `adam.v.<param>`, for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("adam.m.{name}"), self.m[i].clone()));
            out.push((format!("adam.v.{name}"), self.v[i].clone()));
        }
        out
    }

    /// Restores the moments from a checkpoint's tensors and the step count `t`.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, t: u64, path: &Path) -> Result<()> {
        for (which, store) in [("adam.m.", &mut self.m), ("adam.v.", &mut self.v)] {
            let holders: Vec<(String, Var)> = self
                .vars
                .iter()
                .map(|(name, var)| Ok((name.clone(), Var::zeros(var.dims(), var.dtype(), var.device())?)))
                .collect::<Result<_>>()?;
            load_into(&holders, tensors, which, path)?;
            *store = holders.into_iter().map(|(_, v)| v.into_inner()).collect();
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn matches_hand_computed_adam_steps() {
        // One scalar parameter theta = 1, loss = theta^2 (g = 2 theta), lr 0.1.
        let var = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let cfg = AdamConfig {
            lr: 0.1,
            ..Default::default()
        };
        let mut adam = Adam::new(vec![("theta".into(), var.clone())], cfg).unwrap();
        let (mut th, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for t in 1..=3 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
            let g = 2.0 * th;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            th -= 0.1 / (1.0 - 0.9f64.powi(t)) * m / (v.sqrt() / (1.0 - 0.999f64.powi(t)).sqrt() + 1e-8);
            let got = var.as_tensor().to_vec1::<f64>().unwrap()[0];
            // f64 throughout: agreement to rounding (1e-12).
            assert!((got - th).abs() < 1e-12, "step {t}: {got} vs {th}");
            if t == 1 {
                // Adam's first step moves by lr whatever the gradient's scale (m / sqrt(v) = sign g).
                assert!((got - 0.9).abs() < 1e-6, "{got}");
            }
        }
        // The moments hold values, not graphs (else memory grows with every step).
        assert!(!adam.m[0].track_op() && !adam.v[0].track_op());
        // State round trip: moments and t restore into a fresh optimizer.
        let state: HashMap<String, Tensor> = adam.state_tensors().into_iter().collect();
        let var2 = Var::new(&[0.0f64], &Device::Cpu).unwrap();
        let mut fresh = Adam::new(vec![("theta".into(), var2)], cfg).unwrap();
        fresh.load_state(&state, adam.steps(), Path::new("ckpt")).unwrap();
        assert_eq!(fresh.steps(), 3);
        // The restored moment is the optimizer's own tensor, so it equals it exactly.
        assert_eq!(
            fresh.m[0].to_vec1::<f64>().unwrap(),
            adam.m[0].to_vec1::<f64>().unwrap()
        );
        assert!((fresh.m[0].to_vec1::<f64>().unwrap()[0] - m).abs() < 1e-12);
        let bad = Adam::new(
            vec![("other".into(), Var::zeros(1, DType::F64, &Device::Cpu).unwrap())],
            cfg,
        )
        .unwrap();
        let mut bad = bad;
        let err = bad.load_state(&state, 3, Path::new("ckpt")).unwrap_err().to_string();
        assert!(err.contains("adam.m.other"), "{err}");
    }
}
