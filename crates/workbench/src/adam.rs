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
//! (the bias-corrected form that PyTorch's `torch.optim.Adam` computes). [`Adam`] is a
//! `candle_nn::Optimizer`, so `opt.backward_step(&loss)` works as with candle's own optimizers.
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::vars::load_named;
use crate::Result;

/// The learning rate at step `step` (counted from 0) of a run of `steps`: a cosine from `lr`
/// down to 0, `lr_t = lr * 1/2 (1 + cos(pi t / T))`.
///
/// The stochastic gradients of score matching are noisy (the DSM target `-z/sigma` is mostly
/// noise), and a constant rate leaves the last iterate jittering around the minimiser; the decay
/// lets it settle. The schedule is a function of the step alone, so a resumed run follows it
/// exactly.
pub fn cosine_lr(lr: f64, step: u64, steps: u64) -> f64 {
    lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps.max(1) as f64).cos())
}

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

/// The scalars of step `t`.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    beta1: f64,
    one_minus_beta1: f64,
    beta2: f64,
    one_minus_beta2: f64,
    /// `lr / (1 - beta1^t)`.
    step_size: f64,
    /// `1 / sqrt(1 - beta2^t)`.
    inv_sqrt_bc2: f64,
    eps: f64,
}

impl Coefficients {
    fn new(config: &AdamConfig, t: u64) -> Self {
        let AdamConfig { lr, beta1, beta2, eps } = *config;
        let t = t.min(i32::MAX as u64) as i32;
        Self {
            beta1,
            one_minus_beta1: 1.0 - beta1,
            beta2,
            one_minus_beta2: 1.0 - beta2,
            step_size: lr / (1.0 - beta1.powi(t)),
            inv_sqrt_bc2: 1.0 / (1.0 - beta2.powi(t)).sqrt(),
            eps,
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
    /// Zero moments for every parameter of `vars` (`(name, var)`, as [`crate::vars::named_vars`]
    /// gives them; the names key the state in a checkpoint). `candle_nn::Optimizer::new` takes
    /// unnamed variables and names them by position.
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> candle_core::Result<Self> {
        // Two separate sets of zeros: on the CPU the moments are updated in place, so `m` and
        // `v` must not share storage.
        let zeros = || {
            vars.iter()
                .map(|(_, v)| v.zeros_like())
                .collect::<candle_core::Result<Vec<_>>>()
        };
        let (m, v) = (zeros()?, zeros()?);
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

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.t += 1;
        let c = Coefficients::new(&self.config, self.t);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            if fused::applies(var, g, &self.m[i], &self.v[i]) {
                // One pass over memory per line below, nothing allocated.
                self.m[i].inplace_op2(g, &fused::FirstMoment(c))?;
                self.v[i].inplace_op2(g, &fused::SecondMoment(c))?;
                var.inplace_op3(&self.m[i], &self.v[i], &fused::Parameter(c))?;
                continue;
            }
            // m <- beta1 m + (1 - beta1) g
            let m = (self.m[i].affine(c.beta1, 0.0)? + g.affine(c.one_minus_beta1, 0.0)?)?;
            // v <- beta2 v + (1 - beta2) g^2
            let v = (self.v[i].affine(c.beta2, 0.0)? + g.sqr()?.affine(c.one_minus_beta2, 0.0)?)?;
            // theta <- theta - step_size * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
            let denom = v.sqrt()?.affine(c.inv_sqrt_bc2, c.eps)?;
            let update = (m.affine(c.step_size, 0.0)? / denom)?;
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

    /// Restores the moments from a checkpoint's tensors (named as [`Adam::state_tensors`] names
    /// them) and the step count `t`. A missing, misshapen or non-finite moment is an error naming
    /// it, and the optimizer is left as it was.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, t: u64) -> Result<()> {
        // Each moment is read into fresh holders of the parameters' shapes, so that a failure
        // leaves the optimizer's own state untouched.
        let read = |prefix: &str| -> Result<Vec<Tensor>> {
            let holders: Vec<(String, Var)> = self
                .vars
                .iter()
                .map(|(name, var)| Ok((name.clone(), Var::zeros(var.dims(), var.dtype(), var.device())?)))
                .collect::<Result<_>>()?;
            load_named(&holders, tensors, prefix)?;
            Ok(holders.into_iter().map(|(_, v)| v.into_inner()).collect())
        };
        let (m, v) = (read("adam.m.")?, read("adam.v.")?);
        (self.m, self.v, self.t) = (m, v, t);
        Ok(())
    }
}

impl candle_nn::Optimizer for Adam {
    type Config = AdamConfig;

    fn new(vars: Vec<Var>, config: AdamConfig) -> candle_core::Result<Self> {
        let named = vars.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect();
        Adam::new(named, config)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        Adam::step(self, grads)
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate of the next steps (a schedule).
    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}

/// Adam's update on the CPU as three in-place passes over memory (candle custom ops), with the
/// same floating-point operations, in the same order, as the tensor-op form in [`Adam::step`]:
/// the results are identical, only the temporaries are gone.
mod fused {
    use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

    use super::Coefficients;

    /// Whether the fused form applies: every tensor on the CPU, contiguous, of f32 or f64.
    pub fn applies(var: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor) -> bool {
        [var, g, m, v].iter().all(|t| {
            t.device().is_cpu()
                && t.is_contiguous()
                && t.dtype() == var.dtype()
                && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
        })
    }

    /// Runs `f32_fn` or `f64_fn` on the destination and the sources' elements.
    macro_rules! dispatch {
        ($dst:expr, $dl:expr, [$(($s:expr, $sl:expr)),*], |$d:ident, $($x:ident),*| $body:expr) => {
            match $dst {
                CpuStorage::F32(d) => {
                    let $d = crate::storage::slice_mut("adam", d, $dl)?;
                    $(let $x = match $s { CpuStorage::F32(x) => crate::storage::slice("adam", x, $sl)?, _ => candle_core::bail!("adam: mixed dtypes") };)*
                    type F = f32;
                    $body(F::from_f64)
                }
                CpuStorage::F64(d) => {
                    let $d = crate::storage::slice_mut("adam", d, $dl)?;
                    $(let $x = match $s { CpuStorage::F64(x) => crate::storage::slice("adam", x, $sl)?, _ => candle_core::bail!("adam: mixed dtypes") };)*
                    type F = f64;
                    $body(F::from_f64)
                }
                _ => candle_core::bail!("adam: the fused update supports f32 and f64"),
            }
        };
    }

    /// `f64 -> T` as candle's `affine` converts its scalars.
    trait FromF64 {
        fn from_f64(v: f64) -> Self;
    }
    impl FromF64 for f32 {
        fn from_f64(v: f64) -> Self {
            v as f32
        }
    }
    impl FromF64 for f64 {
        fn from_f64(v: f64) -> Self {
            v
        }
    }

    /// `m <- beta1 m + (1 - beta1) g`, in place in `m`.
    pub struct FirstMoment(pub Coefficients);
    /// `v <- beta2 v + (1 - beta2) g^2`, in place in `v`.
    pub struct SecondMoment(pub Coefficients);
    /// `theta <- theta - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`, in place in `theta`.
    pub struct Parameter(pub Coefficients);

    impl InplaceOp2 for FirstMoment {
        fn name(&self) -> &'static str {
            "adam-first-moment"
        }
        fn cpu_fwd(&self, dst: &mut CpuStorage, dl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
            let c = self.0;
            dispatch!(dst, dl, [(g, gl)], |m, g| |cast: fn(f64) -> _| {
                let (b1, c1) = (cast(c.beta1), cast(c.one_minus_beta1));
                for (m, &g) in m.iter_mut().zip(g) {
                    *m = *m * b1 + g * c1;
                }
                Ok(())
            })
        }
    }

    impl InplaceOp2 for SecondMoment {
        fn name(&self) -> &'static str {
            "adam-second-moment"
        }
        fn cpu_fwd(&self, dst: &mut CpuStorage, dl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
            let c = self.0;
            dispatch!(dst, dl, [(g, gl)], |v, g| |cast: fn(f64) -> _| {
                let (b2, c2) = (cast(c.beta2), cast(c.one_minus_beta2));
                for (v, &g) in v.iter_mut().zip(g) {
                    *v = *v * b2 + (g * g) * c2;
                }
                Ok(())
            })
        }
    }

    impl InplaceOp3 for Parameter {
        fn name(&self) -> &'static str {
            "adam-parameter"
        }
        fn cpu_fwd(
            &self,
            dst: &mut CpuStorage,
            dl: &Layout,
            m: &CpuStorage,
            ml: &Layout,
            v: &CpuStorage,
            vl: &Layout,
        ) -> Result<()> {
            let c = self.0;
            dispatch!(dst, dl, [(m, ml), (v, vl)], |theta, m, v| |cast: fn(f64) -> _| {
                let (a, eps, s) = (cast(c.inv_sqrt_bc2), cast(c.eps), cast(c.step_size));
                for ((theta, &m), &v) in theta.iter_mut().zip(m).zip(v) {
                    *theta -= (m * s) / (v.sqrt() * a + eps);
                }
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn cosine_schedule_starts_at_lr_halves_midway_and_ends_near_zero() {
        // Exact values of 1/2 (1 + cos(pi t / T)) at t = 0, T/4, T/2, 3T/4, and just before T.
        let lr: f64 = 2e-3;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * lr.max(b.abs());
        assert_eq!(cosine_lr(lr, 0, 400), lr);
        assert!(close(cosine_lr(lr, 100, 400), lr * (0.5 + 0.5 * 0.5f64.sqrt())));
        assert!(close(cosine_lr(lr, 200, 400), lr / 2.0));
        assert!(close(cosine_lr(lr, 300, 400), lr * (0.5 - 0.5 * 0.5f64.sqrt())));
        // The last step (t = T - 1) still moves: lr (1 - cos(pi/T))/2 ~ lr (pi/T)^2 / 4.
        let last = cosine_lr(lr, 399, 400);
        assert!(last > 0.0 && (last / (lr * (std::f64::consts::PI / 400.0).powi(2) / 4.0) - 1.0).abs() < 1e-4);
        // Monotone decreasing over the run.
        assert!((1..400).all(|t| cosine_lr(lr, t, 400) < cosine_lr(lr, t - 1, 400)));
    }

    #[test]
    fn fused_update_equals_the_tensor_op_form_bit_for_bit() {
        // f32 parameters and gradients of mixed scales; three steps. The fused CPU passes do the
        // same f32 operations in the same order as the tensor ops, so the results are equal.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 1000;
        let mut draw = |scale: f32| -> Tensor {
            let v: Vec<f32> = (0..n).map(|_| (rng.random::<f32>() - 0.5) * scale).collect();
            Tensor::from_vec(v, n, &Device::Cpu).unwrap()
        };
        let theta0 = draw(2.0);
        let var = Var::from_tensor(&theta0).unwrap();
        let cfg = AdamConfig::default();
        let mut adam = Adam::new(vec![("p".into(), var.clone())], cfg).unwrap();
        let (mut th, mut m, mut v) = (
            theta0.clone(),
            theta0.zeros_like().unwrap(),
            theta0.zeros_like().unwrap(),
        );
        for t in 1..=3u64 {
            let g = draw(10f32.powi(t as i32 - 2));
            // The gradient enters as d/dtheta of sum(theta * g).
            let grads = (var.as_tensor() * &g).unwrap().sum_all().unwrap().backward().unwrap();
            adam.step(&grads).unwrap();
            let c = Coefficients::new(&cfg, t);
            m = (m.affine(c.beta1, 0.0).unwrap() + g.affine(c.one_minus_beta1, 0.0).unwrap()).unwrap();
            v = (v.affine(c.beta2, 0.0).unwrap() + g.sqr().unwrap().affine(c.one_minus_beta2, 0.0).unwrap()).unwrap();
            let denom = v.sqrt().unwrap().affine(c.inv_sqrt_bc2, c.eps).unwrap();
            th = (th - (m.affine(c.step_size, 0.0).unwrap() / denom).unwrap()).unwrap();
            assert_eq!(
                var.as_tensor().to_vec1::<f32>().unwrap(),
                th.to_vec1::<f32>().unwrap(),
                "step {t}"
            );
            assert_eq!(adam.m[0].to_vec1::<f32>().unwrap(), m.to_vec1::<f32>().unwrap());
            assert_eq!(adam.v[0].to_vec1::<f32>().unwrap(), v.to_vec1::<f32>().unwrap());
        }
    }

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
        fresh.load_state(&state, adam.steps()).unwrap();
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
        let err = bad.load_state(&state, 3).unwrap_err().to_string();
        assert!(err.contains("adam.m.other"), "{err}");
    }
}
