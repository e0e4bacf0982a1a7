//! Named parameters of a `VarMap`, in a fixed (sorted) order, and loading them back from
//! stored tensors with a clear error for a missing or misshapen one.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};
use candle_nn::VarMap;

use crate::error::{Error, Result};

/// The parameters of `varmap` as `(name, var)`, sorted by name (a `VarMap` is a hash map;
/// sorting makes every loop over the parameters deterministic).
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Sets every parameter `name` of `vars` to `tensors[prefix + name]`. A missing tensor or
/// another shape is an error naming the tensor and `path` (the checkpoint), as happens with a
/// checkpoint of another model configuration.
pub fn load_into(vars: &[(String, Var)], tensors: &HashMap<String, Tensor>, prefix: &str, path: &Path) -> Result<()> {
    for (name, var) in vars {
        let key = format!("{prefix}{name}");
        let t = tensors.get(&key).ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("has no tensor `{key}`: it was saved from another model configuration"),
            )
        })?;
        if t.dims() != var.dims() {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor `{key}` has shape {:?}, but the model built from the configuration expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        let bad = non_finite_count(t)?;
        if bad > 0 {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor `{key}` holds {bad} non-finite value(s) (NaN or infinity) of {}: the run had diverged \
                     when it was saved; use an earlier checkpoint or train again (with a smaller lr)",
                    t.elem_count()
                ),
            ));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// Number of values of `t` that are NaN or infinite (`x - x` is 0 exactly for finite `x`).
pub fn non_finite_count(t: &Tensor) -> Result<usize> {
    if !t.dtype().is_float() {
        return Ok(0);
    }
    let d = t.sub(t)?;
    let count = d
        .ne(&d)?
        .to_dtype(candle_core::DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()?;
    Ok(count as usize)
}

/// The first (by name) of `tensors` that holds a non-finite value, with the count of such values.
pub fn first_non_finite<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Result<Option<(String, usize)>> {
    let mut bad = Vec::new();
    for (name, t) in tensors {
        let n = non_finite_count(t)?;
        if n > 0 {
            bad.push((name.to_string(), n));
        }
    }
    bad.sort();
    Ok(bad.into_iter().next())
}
