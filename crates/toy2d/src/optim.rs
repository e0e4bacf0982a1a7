//! Adam as one pass per parameter tensor, on the host.
//!
//! `candle_nn::AdamW` spends about fourteen tensor operations (each an allocation and a pass) and
//! three `Var::set` copies on every parameter at every step; on the toys' small MLPs that
//! overhead was a large part of a training step. [`FusedAdam`] does the same arithmetic in one
//! loop per parameter, in place in the parameter's own storage (a candle in-place op), with the
//! moments kept as plain `f32` vectors that anyone can read ([`FusedAdam::moments`]).
//!
//! The update, for gradient `g` at step `t` (AdamW with weight decay `lambda`):
//!
//! ```text
//! m <- beta1 m + (1 - beta1) g
//! v <- beta2 v + (1 - beta2) g^2
//! theta <- (1 - lr lambda) theta - lr m_hat / (sqrt(v_hat) + eps),
//!          m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)
//! ```
//!
//! Every product and sum is rounded in `f32` in the order `candle_nn::AdamW` rounds it (a scalar
//! times a tensor is candle's `x * c + 0`), so the two give the same parameters bit for bit: the
//! test below checks it, and the toys' figures did not move when this replaced `AdamW`.
use candle_core::{backprop::GradStore, bail, CpuStorage, DType, Layout, Result, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use std::cell::RefCell;

/// One parameter and its moments.
#[derive(Debug)]
struct Slot {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Adam(W) over `f32` parameters, one fused pass per parameter. Same settings
/// ([`ParamsAdamW`]) and same numbers as `candle_nn::AdamW`.
#[derive(Debug)]
pub struct FusedAdam {
    slots: Vec<Slot>,
    params: ParamsAdamW,
    step_t: usize,
}

/// The step's constants, as `f32` the way candle's scalar ops convert them.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    scale_m: f32,
    scale_v: f32,
    decay: f32,
    eps: f32,
    lr: f32,
}

impl Coefficients {
    /// One element: updates `m`, `v` and returns the new `theta`.
    #[inline(always)]
    fn update(&self, theta: f32, g: f32, m: &mut f32, v: &mut f32) -> f32 {
        let c = self;
        // m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2  (each `x * c + 0` as in candle)
        *m = (*m * c.beta1 + 0.0) + (g * c.one_minus_beta1 + 0.0);
        *v = (*v * c.beta2 + 0.0) + ((g * g) * c.one_minus_beta2 + 0.0);
        let m_hat = *m * c.scale_m + 0.0; // m / (1 - beta1^t)
        let v_hat = *v * c.scale_v + 0.0; // v / (1 - beta2^t)
        let step = m_hat / (v_hat.sqrt() + c.eps); // m_hat / (sqrt(v_hat) + eps)
        (theta * c.decay + 0.0) - (step * c.lr + 0.0) // (1 - lr lambda) theta - lr step
    }
}

/// The in-place op: `theta` (the parameter's storage) updated from `grad`, moments alongside.
struct Update<'a> {
    coef: Coefficients,
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
}

fn contiguous<'a>(s: &'a [f32], l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => bail!("FusedAdam: expected contiguous tensors"),
    }
}

impl candle_core::InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (CpuStorage::F32(theta), CpuStorage::F32(grad)) = (s1, s2) else {
            bail!("FusedAdam: expected f32 parameters and gradients");
        };
        let Some((a, b)) = l1.contiguous_offsets() else {
            bail!("FusedAdam: expected a contiguous parameter");
        };
        let grad = contiguous(grad, l2)?;
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        if grad.len() != b - a || m.len() != b - a {
            bail!(
                "FusedAdam: gradient of {} values for a parameter of {}",
                grad.len(),
                b - a
            );
        }
        for (((t, g), m), v) in theta[a..b].iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            *t = self.coef.update(*t, *g, m, v);
        }
        Ok(())
    }
}

impl FusedAdam {
    /// The parameters and their moments `(var, m, v)`, in the order they were given.
    pub fn moments(&self) -> impl Iterator<Item = (&Var, &[f32], &[f32])> {
        self.slots.iter().map(|s| (&s.var, s.m.as_slice(), s.v.as_slice()))
    }

    /// The number of steps taken.
    pub fn step_count(&self) -> usize {
        self.step_t
    }

    /// The settings.
    pub fn params(&self) -> &ParamsAdamW {
        &self.params
    }
}

impl Optimizer for FusedAdam {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let mut slots = Vec::with_capacity(vars.len());
        for var in vars {
            if var.dtype() != DType::F32 {
                bail!("FusedAdam: expected f32 parameters, got {:?}", var.dtype());
            }
            let n = var.elem_count();
            slots.push(Slot {
                var,
                m: vec![0.0; n],
                v: vec![0.0; n],
            });
        }
        Ok(Self {
            slots,
            params,
            step_t: 0,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let t = self.step_t as i32;
        let coef = Coefficients {
            beta1: p.beta1 as f32,
            one_minus_beta1: (1.0 - p.beta1) as f32,
            beta2: p.beta2 as f32,
            one_minus_beta2: (1.0 - p.beta2) as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(t))) as f32,
            decay: (1.0 - p.lr * p.weight_decay) as f32,
            eps: p.eps as f32,
            lr: p.lr as f32,
        };
        for slot in self.slots.iter_mut() {
            let Some(g) = grads.get(&slot.var) else { continue };
            if slot.var.device().is_cpu() {
                let op = Update {
                    coef,
                    m: RefCell::new(&mut slot.m),
                    v: RefCell::new(&mut slot.v),
                };
                slot.var.as_tensor().inplace_op2(g, &op)?;
            } else {
                // Another device: the same pass on the host, then one copy back.
                let mut theta = slot.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                let grad = g.flatten_all()?.to_vec1::<f32>()?;
                for (((t, g), m), v) in theta
                    .iter_mut()
                    .zip(&grad)
                    .zip(slot.m.iter_mut())
                    .zip(slot.v.iter_mut())
                {
                    *t = coef.update(*t, *g, m, v);
                }
                let new = Tensor::from_vec(theta, slot.var.shape(), slot.var.device())?;
                slot.var.set(&new)?;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::AdamW;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn same_parameters_and_moments_as_candle_adamw_bit_for_bit() {
        // A quadratic-plus-quartic loss on two parameters, 50 steps with a changing rate and
        // weight decay: any difference in the order of the f32 roundings shows up as a bit.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let init: Vec<f32> = (0..24).map(|_| StandardNormal.sample(&mut rng)).collect();
        let make = || {
            let a = Var::from_vec(init[..16].to_vec(), (4, 4), &Device::Cpu).unwrap();
            let b = Var::from_vec(init[16..].to_vec(), 8, &Device::Cpu).unwrap();
            (a, b)
        };
        let params = ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        };
        let (a1, b1) = make();
        let (a2, b2) = make();
        let mut ours = FusedAdam::new(vec![a1.clone(), b1.clone()], params.clone()).unwrap();
        let mut theirs = AdamW::new(vec![a2.clone(), b2.clone()], params).unwrap();
        let loss = |a: &Var, b: &Var| {
            let l1 = (a.as_tensor() - 0.3).unwrap().sqr().unwrap().sum_all().unwrap();
            let l2 = b.as_tensor().powf(4.0).unwrap().sum_all().unwrap();
            (l1 + l2).unwrap()
        };
        for step in 0..50 {
            let lr = 0.05 * (1.0 - step as f64 / 60.0);
            ours.set_learning_rate(lr);
            theirs.set_learning_rate(lr);
            ours.backward_step(&loss(&a1, &b1)).unwrap();
            theirs.backward_step(&loss(&a2, &b2)).unwrap();
        }
        let bits = |v: &Var| -> Vec<u32> {
            let t = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            t.into_iter().map(f32::to_bits).collect()
        };
        assert_eq!(bits(&a1), bits(&a2));
        assert_eq!(bits(&b1), bits(&b2));
        assert_ne!(bits(&a1), init[..16].iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // The moments are open: m of the first parameter is readable and moved.
        let (_, m, v) = ours.moments().next().unwrap();
        assert_eq!(m.len(), 16);
        assert!(m.iter().any(|&x| x != 0.0) && v.iter().all(|&x| x >= 0.0));
        assert_eq!(ours.step_count(), 50);
    }
}
