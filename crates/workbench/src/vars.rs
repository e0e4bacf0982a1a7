//! Named parameters of a `VarMap` in a fixed (sorted) order, and setting them from stored
//! tensors with an error naming the tensor that is missing, misshapen or not finite.
use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;

use crate::{Error, Result};

/// The parameters of `varmap` as `(name, var)`, sorted by name (a `VarMap` is a hash map;
/// sorting makes every loop over the parameters deterministic).
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Sets every parameter `name` of `vars` to `tensors[prefix + name]` (converted to the
/// parameter's dtype and device). Fails, naming the tensor, on a missing one, another shape, or
/// NaN / infinite values; parameters before the failing one are already set.
pub fn load_named(vars: &[(String, Var)], tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
    for (name, var) in vars {
        let key = format!("{prefix}{name}");
        let t = tensors
            .get(&key)
            .ok_or_else(|| Error::MissingTensor { name: key.clone() })?;
        if t.dims() != var.dims() {
            return Err(Error::TensorShape {
                name: key,
                expected: var.dims().to_vec(),
                got: t.dims().to_vec(),
            });
        }
        let count = non_finite_count(t)?;
        if count > 0 {
            return Err(Error::NonFinite {
                name: key,
                count,
                total: t.elem_count(),
            });
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// Number of values of `t` that are NaN or infinite (`x - x` is 0 exactly for finite `x`, NaN
/// otherwise, and NaN is the one value not equal to itself).
pub fn non_finite_count(t: &Tensor) -> Result<usize> {
    if !t.dtype().is_float() {
        return Ok(0);
    }
    let d = t.sub(t)?;
    let count = d.ne(&d)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()?;
    Ok(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn loads_by_name_and_names_what_is_wrong() {
        let dev = Device::Cpu;
        let var = Var::zeros((2, 3), DType::F32, &dev).unwrap();
        let vars = vec![("w".to_string(), var.clone())];
        let good = Tensor::arange(0f64, 6.0, &dev).unwrap().reshape((2, 3)).unwrap();
        let mut stored = HashMap::from([("p.w".to_string(), good)]);
        load_named(&vars, &stored, "p.").unwrap();
        assert_eq!(
            var.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 1., 2., 3., 4., 5.]
        );

        let err = load_named(&vars, &stored, "q.").unwrap_err();
        assert!(matches!(&err, Error::MissingTensor { name } if name == "q.w"), "{err}");
        stored.insert("p.w".into(), Tensor::zeros(6, DType::F32, &dev).unwrap());
        let err = load_named(&vars, &stored, "p.").unwrap_err();
        assert!(matches!(&err, Error::TensorShape { got, .. } if got == &[6]), "{err}");
        let bad = Tensor::new(&[[1f32, f32::NAN, 0.0], [f32::INFINITY, 0.0, 0.0]], &dev).unwrap();
        stored.insert("p.w".into(), bad);
        let err = load_named(&vars, &stored, "p.").unwrap_err();
        assert!(matches!(&err, Error::NonFinite { count: 2, total: 6, .. }), "{err}");
    }

    #[test]
    fn named_vars_are_sorted() {
        let map = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        for name in ["b", "c", "a"] {
            vb.get(1, name).unwrap();
        }
        let names: Vec<String> = named_vars(&map).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
