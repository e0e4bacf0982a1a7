//! Reproducible initialisation: a `VarBuilder` backend that draws every new variable from a
//! seeded ChaCha8 generator, following the variable's own `Init` hint.
//!
//! candle's CPU generator cannot be seeded, so `VarBuilder::from_varmap` initialises
//! differently on every run. With [`SeededVarMap`] a layer asks for its parameters exactly as
//! it would from a `VarMap` (`vb.get_with_hints(shape, "weight", init)`) and gets values drawn
//! from the project's own generator, in the order the network asks for them: the same seed and
//! the same architecture give the same parameters, bit for bit.
//!
//! The hints are drawn as PyTorch defines them (`torch.nn.init`):
//!
//! ```text
//! Const(c)                  every value c
//! Randn { mean, stdev }     N(mean, stdev^2)
//! Uniform { lo, up }        U(lo, up)
//! Kaiming { dist, fan, g }  std = gain(g) / sqrt(fan);  N(0, std^2)  or  U(-sqrt(3) std, sqrt(3) std)
//! ```
use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// A `VarMap` whose new variables are drawn from a seeded generator (see the module docs).
/// Variables the map already holds are returned as they are (their shape checked).
pub struct SeededVarMap {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SeededVarMap {
    /// New variables go into `varmap` (shared: a `VarMap` is a handle), drawn from `rng`.
    pub fn new(varmap: &VarMap, rng: ChaCha8Rng) -> Self {
        Self {
            varmap: varmap.clone(),
            rng: Mutex::new(rng),
        }
    }

    /// [`SeededVarMap::new`] with `ChaCha8Rng::seed_from_u64(seed)`.
    pub fn from_seed(varmap: &VarMap, seed: u64) -> Self {
        Self::new(varmap, ChaCha8Rng::seed_from_u64(seed))
    }

    /// A `VarBuilder` over this backend, creating variables of `dtype` on `device`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }
}

/// A `VarBuilder` that fills `varmap` with variables drawn from `seed`: the usual way to build a
/// network reproducibly (`let net = Net::new(config, seeded_var_builder(&varmap, 7, DType::F32, &dev))?`).
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    SeededVarMap::from_seed(varmap, seed).into_var_builder(dtype, device)
}

/// `n` values drawn from `init` for a variable of `shape`.
pub fn draw<R: rand::Rng + ?Sized>(init: Init, shape: &Shape, rng: &mut R) -> Result<Vec<f64>> {
    let n = shape.elem_count();
    let err = |e: rand_distr::uniform::Error| candle_core::Error::Msg(format!("initialisation {init:?}: {e}"));
    let normal = |mean: f64, std: f64, rng: &mut R| -> Result<Vec<f64>> {
        let d = Normal::new(mean, std).map_err(|e| candle_core::Error::Msg(format!("initialisation {init:?}: {e}")))?;
        Ok((0..n).map(|_| d.sample(rng)).collect())
    };
    let uniform = |lo: f64, up: f64, rng: &mut R| -> Result<Vec<f64>> {
        if lo == up {
            return Ok(vec![lo; n]);
        }
        let d = Uniform::new(lo, up).map_err(err)?;
        Ok((0..n).map(|_| d.sample(rng)).collect())
    };
    match init {
        Init::Const(c) => Ok(vec![c; n]),
        Init::Randn { mean, stdev } => normal(mean, stdev, rng),
        Init::Uniform { lo, up } => uniform(lo, up, rng),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt(); // gain / sqrt(fan)
            match dist {
                NormalOrUniform::Normal => normal(0.0, std, rng),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std; // U(-b, b) has variance b^2 / 3 = std^2
                    uniform(-bound, bound, rng)
                }
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "variable `{name}`: asked for shape {shape:?}, the map holds {:?}",
                    var.shape()
                )
            }
            return Ok(var.as_tensor().clone());
        }
        let values = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("generator lock poisoned".into()))?;
            draw(init, &shape, &mut *rng)?
        };
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> Result<Tensor> {
        candle_core::bail!("SeededVarMap: `{name}` asked for without a shape; use `get` with a shape and an init")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().is_ok_and(|vars| vars.contains_key(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::{FanInOut, NonLinearity};

    fn build(seed: u64) -> (VarMap, Vec<Vec<f32>>) {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, DType::F32, &Device::Cpu);
        let a = vb
            .pp("layer")
            .get_with_hints((64, 32), "weight", Init::Uniform { lo: -0.5, up: 0.5 })
            .unwrap();
        let b = vb
            .get_with_hints(4096, "b", Init::Randn { mean: 1.0, stdev: 0.02 })
            .unwrap();
        let c = vb.get_with_hints(7, "c", Init::Const(3.0)).unwrap();
        let vals = [a.flatten_all().unwrap(), b, c]
            .iter()
            .map(|t| t.to_vec1::<f32>().unwrap())
            .collect();
        (varmap, vals)
    }

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        let (map, a) = build(1);
        assert_eq!(a, build(1).1);
        assert_ne!(a[0], build(2).1[0]);
        // The variables are in the map under their full names, and asking again returns them.
        assert!(map.data().lock().unwrap().contains_key("layer.weight"));
        let vb = seeded_var_builder(&map, 9, DType::F32, &Device::Cpu);
        let again = vb.get_with_hints(7, "c", Init::Const(0.0)).unwrap();
        assert_eq!(again.to_vec1::<f32>().unwrap(), vec![3.0; 7]);
        assert!(vb.get_with_hints(8, "c", Init::Const(0.0)).is_err(), "another shape");
    }

    #[test]
    fn draws_follow_the_hints() {
        let (_, v) = build(3);
        // U(-0.5, 0.5), 2048 draws: inside the bounds, mean 0 with sd 1/sqrt(12 * 2048) = 0.0064
        // (5 sd: 0.032), variance 1/12 within 10%.
        let u = &v[0];
        assert!(u.iter().all(|x| (-0.5..0.5).contains(x)));
        let mean = u.iter().sum::<f32>() / u.len() as f32;
        let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / u.len() as f32;
        assert!(mean.abs() < 0.032 && (var * 12.0 - 1.0).abs() < 0.1, "{mean} {var}");
        // N(1, 0.02^2), 4096 draws: mean within 5 sd (5 * 0.02/64 = 0.0016), sd within 5%.
        let n = &v[1];
        let mean = n.iter().sum::<f32>() / n.len() as f32;
        let sd = (n.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n.len() as f32).sqrt();
        assert!(
            (mean - 1.0).abs() < 0.0016 && (sd / 0.02 - 1.0).abs() < 0.05,
            "{mean} {sd}"
        );
        assert_eq!(v[2], vec![3.0; 7]);
    }

    #[test]
    fn kaiming_uses_the_fan_of_the_shape() {
        // [out 16, in 8, 3, 3]: fan_in = 72; ReLU gain sqrt(2): std = sqrt(2/72) = 1/6, uniform
        // bound sqrt(3)/6.
        let shape = Shape::from((16, 8, 3, 3));
        let init = Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ReLU,
        };
        let v = draw(init, &shape, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let bound = 3f64.sqrt() / 6.0;
        assert_eq!(v.len(), 16 * 72);
        assert!(v.iter().all(|x| x.abs() < bound));
        assert!(v.iter().any(|x| x.abs() > 0.9 * bound), "the draws fill the interval");
    }
}
