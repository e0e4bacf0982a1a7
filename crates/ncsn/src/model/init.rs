//! Reproducible initialisation: overwrite every variable from a seeded ChaCha8 generator.
//!
//! candle's CPU generator cannot be seeded, so the values [`super::CondRefineNetDilated::new`]
//! draws differ from run to run. [`seeded_init`] redraws all of them with the same rules from
//! `ChaCha8Rng::seed_from_u64(seed)`, visiting the variables in sorted-name order.
use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::conv::pytorch_conv_bound;

/// Redraws every variable of `varmap` (as created by `CondRefineNetDilated::new`) from `seed`:
///
/// - `*.embed.weight` `[L, 3C]` (CondInstanceNorm++): the `gamma` and `alpha` blocks (columns
///   `0..2C`) ~ N(1, 0.02^2), the `beta` block (columns `2C..3C`) = 0;
/// - `*.weight` `[out, in, k, k]` (convolutions): U(-b, b), `b = 1 / sqrt(in k k)`;
/// - `*.bias`: U(-b, b) with the `b` of the sibling `*.weight`.
///
/// Any other name or shape is an error naming the variable.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let conv_fan_in = |weight_name: &str| -> Result<usize> {
        let var = vars.get(weight_name).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "seeded_init: no convolution weight `{weight_name}` for its bias"
            ))
        })?;
        match var.dims() {
            [_, cin, kh, kw] => Ok(cin * kh * kw),
            dims => candle_core::bail!("seeded_init: `{weight_name}` expected [out, in, k, k], got {dims:?}"),
        }
    };
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f64> = if name.ends_with("embed.weight") {
            let [l, three_c] = dims[..] else {
                candle_core::bail!("seeded_init: `{name}` expected [L, 3C], got {dims:?}")
            };
            if !three_c.is_multiple_of(3) {
                candle_core::bail!("seeded_init: `{name}` expected [L, 3C], got {dims:?}")
            }
            let c = three_c / 3;
            let normal = Normal::new(1.0, 0.02).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..l {
                v.extend((0..2 * c).map(|_| normal.sample(&mut rng))); // gamma | alpha ~ N(1, 0.02^2)
                v.extend(std::iter::repeat_n(0.0, c)); // beta = 0
            }
            v
        } else if let Some(prefix) = name.strip_suffix(".weight") {
            uniform_values(
                &mut rng,
                n,
                pytorch_conv_bound(conv_fan_in(&format!("{prefix}.weight"))?),
            )?
        } else if let Some(prefix) = name.strip_suffix(".bias") {
            uniform_values(
                &mut rng,
                n,
                pytorch_conv_bound(conv_fan_in(&format!("{prefix}.weight"))?),
            )?
        } else {
            candle_core::bail!("seeded_init: no initialisation rule for variable `{name}`")
        };
        let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// `n` draws of U(-bound, bound).
fn uniform_values<R: Rng>(rng: &mut R, n: usize, bound: f64) -> Result<Vec<f64>> {
    let uniform = Uniform::new(-bound, bound).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok((0..n).map(|_| uniform.sample(rng)).collect())
}
