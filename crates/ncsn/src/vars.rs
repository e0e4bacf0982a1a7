//! Named parameters of a `VarMap`, in a fixed (sorted) order, and loading them back from
//! stored tensors with a clear error for a missing or misshapen one.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};

use crate::error::{Error, Result};

pub use workbench::vars::{named_vars, non_finite_count};

/// Sets every parameter `name` of `vars` to `tensors[prefix + name]`
/// ([`workbench::vars::load_named`]). A missing tensor, another shape or a non-finite value is
/// an error naming the tensor and `path` (the checkpoint), as happens with a checkpoint of
/// another model configuration or of a run that had diverged.
pub fn load_into(vars: &[(String, Var)], tensors: &HashMap<String, Tensor>, prefix: &str, path: &Path) -> Result<()> {
    workbench::vars::load_named(vars, tensors, prefix).map_err(|e| stored_tensor_error(path, e))
}

/// A stored-tensor error of the workbench as a checkpoint error of the file `path`, with what a
/// user can do about it.
pub fn stored_tensor_error(path: &Path, e: workbench::Error) -> Error {
    match e {
        workbench::Error::MissingTensor { name } => Error::checkpoint(
            path,
            format!("has no tensor `{name}`: it was saved from another model configuration"),
        ),
        workbench::Error::TensorShape { name, expected, got } => Error::checkpoint(
            path,
            format!(
                "tensor `{name}` has shape {got:?}, but the model built from the configuration expects {expected:?}"
            ),
        ),
        workbench::Error::NonFinite { name, count, total } => Error::checkpoint(
            path,
            format!(
                "tensor `{name}` holds {count} non-finite value(s) (NaN or infinity) of {total}: the run had diverged \
                 when it was saved; use an earlier checkpoint or train again (with a smaller lr)"
            ),
        ),
        other => other.into(),
    }
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
