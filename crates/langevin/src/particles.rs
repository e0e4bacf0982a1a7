//! The particles a sampler moves: a small trait so that one Langevin implementation serves
//! `ndarray` arrays (the 2D toys, `f64`) and `candle` tensors (images, `f32`, CPU or GPU).
//!
//! Every random draw comes from a caller-supplied, seeded [`rand::Rng`]: candle's CPU generator
//! cannot be seeded, so tensors of noise are drawn on the host and moved to the device.
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use ndarray::{Array, Dimension};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// What a Langevin sampler needs from a batch of particles.
pub trait Particles: Sized {
    /// The shape, for error messages.
    fn shape_vec(&self) -> Vec<usize>;
    /// `self + a * other`.
    fn add_scaled(&self, other: &Self, a: f64) -> Result<Self>;
    /// A draw `z ~ N(0, I)` of the same shape (and device), from `rng`.
    fn standard_normal_like<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Self>;

    /// The Langevin update in place, `self <- self + drift * score + noise * z`, `z ~ N(0, I)` from
    /// `rng` (drawn in the order of [`Particles::standard_normal_like`]). The default goes through
    /// the two methods above; arrays override it with one pass and no allocation.
    fn langevin_update<R: Rng + ?Sized>(&mut self, score: &Self, drift: f64, noise: f64, rng: &mut R) -> Result<()> {
        let z = self.standard_normal_like(rng)?;
        *self = self.add_scaled(score, drift)?.add_scaled(&z, noise)?;
        Ok(())
    }
}

impl<D: Dimension> Particles for Array<f64, D> {
    fn shape_vec(&self) -> Vec<usize> {
        self.shape().to_vec()
    }

    fn add_scaled(&self, other: &Self, a: f64) -> Result<Self> {
        if self.shape() != other.shape() {
            return Err(Error::ScoreShape {
                expected: self.shape().to_vec(),
                got: other.shape().to_vec(),
            });
        }
        let mut out = self.clone();
        out.scaled_add(a, other);
        Ok(out)
    }

    fn standard_normal_like<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Self> {
        Ok(Array::from_shape_simple_fn(self.raw_dim(), || {
            StandardNormal.sample(rng)
        }))
    }

    fn langevin_update<R: Rng + ?Sized>(&mut self, score: &Self, drift: f64, noise: f64, rng: &mut R) -> Result<()> {
        if self.shape() != score.shape() {
            return Err(Error::ScoreShape {
                expected: self.shape().to_vec(),
                got: score.shape().to_vec(),
            });
        }
        // One pass in logical (row-major) order: each z is drawn (ziggurat) where it is used.
        let update = |x: &mut f64, s: &f64, rng: &mut R| {
            let z: f64 = StandardNormal.sample(rng);
            *x = (*x + drift * s) + noise * z; // x + drift s + noise z, summed as `add_scaled` twice
        };
        match (self.as_slice_mut(), score.as_slice()) {
            // Row-major memory (the usual case): a plain slice loop.
            (Some(xs), Some(ss)) => xs.iter_mut().zip(ss).for_each(|(x, s)| update(x, s, rng)),
            _ => self.iter_mut().zip(score.iter()).for_each(|(x, s)| update(x, s, rng)),
        }
        Ok(())
    }
}

impl Particles for Tensor {
    fn shape_vec(&self) -> Vec<usize> {
        self.dims().to_vec()
    }

    fn add_scaled(&self, other: &Self, a: f64) -> Result<Self> {
        if self.dims() != other.dims() {
            return Err(Error::ScoreShape {
                expected: self.dims().to_vec(),
                got: other.dims().to_vec(),
            });
        }
        Ok((self + (other * a)?)?)
    }

    fn standard_normal_like<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Self> {
        randn_tensor(rng, self.dims(), self.dtype(), self.device())
    }
}

/// A tensor of independent standard normal draws from a seeded host RNG, built on `device`
/// with `dtype` (drawn in `f32`, converted if needed).
pub fn randn_tensor<R: Rng + ?Sized>(rng: &mut R, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    let t = Tensor::from_vec(data, shape, device)?;
    Ok(if dtype == DType::F32 { t } else { t.to_dtype(dtype)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn array_and_tensor_agree_on_add_scaled() {
        let a = ndarray::array![[1.0, 2.0], [3.0, 4.0]];
        let b = ndarray::array![[0.5, -1.0], [2.0, 0.0]];
        let c = a.add_scaled(&b, 2.0).unwrap();
        assert_eq!(c, ndarray::array![[2.0, 0.0], [7.0, 4.0]]);
        let ta = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let tb = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.0]], &Device::Cpu).unwrap();
        let tc = ta.add_scaled(&tb, 2.0).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(tc, vec![vec![2.0, 0.0], vec![7.0, 4.0]]);
        assert!(a.add_scaled(&ndarray::Array2::zeros((3, 2)), 1.0).is_err());
    }

    #[test]
    fn in_place_update_is_the_update_of_the_default_method() {
        // The array override and the trait's default (two `add_scaled` and a fresh `z`) must give
        // the same numbers from the same seed, bit for bit (same draws, same order of the sums).
        let x0 = ndarray::Array2::from_shape_fn((5, 3), |(i, j)| i as f64 - 0.5 * j as f64);
        let s = x0.mapv(|v| -v);
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut fast = x0.clone();
        fast.langevin_update(&s, 0.05, 0.3, &mut r1).unwrap();
        let z = x0.standard_normal_like(&mut r2).unwrap();
        let slow = x0.add_scaled(&s, 0.05).unwrap().add_scaled(&z, 0.3).unwrap();
        assert_eq!(fast, slow);
        assert!(fast
            .langevin_update(&ndarray::Array2::zeros((2, 2)), 0.1, 0.1, &mut r1)
            .is_err());
    }

    #[test]
    fn randn_is_seeded_and_standard() {
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let t1 = randn_tensor(&mut r1, &[100, 100], DType::F32, &Device::Cpu).unwrap();
        let t2 = randn_tensor(&mut r2, &[100, 100], DType::F32, &Device::Cpu).unwrap();
        let v1 = t1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v1, t2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        // 10,000 draws: the mean has sd 0.01 and the variance sd about 0.014; 5 sd bounds.
        let mean = v1.iter().map(|&v| v as f64).sum::<f64>() / 1e4;
        let var = v1.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 1e4;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.07, "mean {mean} var {var}");
    }
}
