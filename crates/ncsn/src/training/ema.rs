//! Exponential moving average of the weights (NCSNv2, Song & Ermon 2020): after every
//! optimizer step, `shadow <- mu * shadow + (1 - mu) * theta` with `mu` = 0.999. Sampling with
//! the averaged weights gives steadier images than the last iterate.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};

use crate::error::Result;
use crate::vars::load_into;

/// The shadow copy of a list of named parameters.
pub struct Ema {
    rate: f64,
    vars: Vec<(String, Var)>,
    shadow: Vec<Var>,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(vars: Vec<(String, Var)>, rate: f64) -> Result<Self> {
        let shadow = vars
            .iter()
            .map(|(_, v)| Var::from_tensor(&v.as_tensor().copy()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { rate, vars, shadow })
    }

    /// `shadow <- mu * shadow + (1 - mu) * theta` for every parameter.
    pub fn update(&mut self) -> Result<()> {
        for ((_, var), shadow) in self.vars.iter().zip(&self.shadow) {
            let next = (shadow.as_tensor().affine(self.rate, 0.0)? + var.as_tensor().affine(1.0 - self.rate, 0.0)?)?;
            shadow.set(&next)?;
        }
        Ok(())
    }

    /// The averaged weights as named tensors `ema.<param>`, for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .zip(&self.shadow)
            .map(|((name, _), s)| (format!("ema.{name}"), s.as_tensor().clone()))
            .collect()
    }

    /// Restores the averaged weights from a checkpoint's `ema.<param>` tensors.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        let named: Vec<(String, Var)> = self
            .vars
            .iter()
            .zip(&self.shadow)
            .map(|((name, _), s)| (name.clone(), s.clone()))
            .collect();
        load_into(&named, tensors, "ema.", path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn average_follows_the_recursion() {
        let var = Var::new(&[0.0f64], &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("w".into(), var.clone())], 0.9).unwrap();
        let mut expected = 0.0;
        for k in 1..=5 {
            var.set(&Tensor::new(&[k as f64], &Device::Cpu).unwrap()).unwrap();
            ema.update().unwrap();
            expected = 0.9 * expected + 0.1 * k as f64;
        }
        let got = ema.state_tensors()[0].1.to_vec1::<f64>().unwrap()[0];
        // f64 arithmetic, same order of operations: equal to rounding (1e-12).
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert_eq!(ema.state_tensors()[0].0, "ema.w");
    }
}
