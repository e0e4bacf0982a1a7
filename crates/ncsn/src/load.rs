//! Where a model to sample from comes from: a run folder of `ncsn train` (its `checkpoint.json`
//! holds the configuration), or a bare `.safetensors` file of weights, such as a reference
//! PyTorch checkpoint converted by `scripts/convert_reference_checkpoint.py`, whose
//! configuration must be given (`--model-config cifar10|mnist|FILE.toml`).
use std::collections::HashSet;
use std::path::Path;

use candle_core::Device;

use crate::checkpoint::{build_model, load_checkpoint, LoadedModel};
use crate::config::{Overrides, TrainConfig};
use crate::error::{Error, Result};
use crate::vars::{load_into, named_vars};

/// The configuration named by `--model-config`: `cifar10` (the paper's model: ngf 128, 3x32x32,
/// sigmas 1 -> 0.01, L = 10), `mnist` (the reference's: ngf 64, 1x28x28, same sigmas), or a TOML
/// file with the keys of `ncsn train --config` (`ngf`, `channels`, `image_size`, `sigma_begin`,
/// `sigma_end`, `num_levels`, ...; missing keys take the data set's defaults).
pub fn model_config(value: &str) -> Result<TrainConfig> {
    match value {
        "cifar10" => Ok(TrainConfig::cifar10()),
        "mnist" => Ok(TrainConfig::mnist()),
        path => {
            let path = Path::new(path);
            if !path.is_file() {
                return Err(Error::config(
                    "model_config",
                    format!(
                        "expected `cifar10`, `mnist` or a TOML file of settings; {} is neither",
                        path.display()
                    ),
                ));
            }
            TrainConfig::resolve(&Overrides::from_toml_file(path)?, &Overrides::default())
        }
    }
}

/// Whether `path` names a bare weights file (rather than a run folder or `checkpoint.json`).
pub fn is_weights_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Loads the weights file `path` (tensor names as the reference's state_dict, without a
/// `module.` prefix) into the network of `config`. Every tensor of the network must be there
/// with its shape, and nothing else.
pub fn load_weights_file(path: &Path, config: TrainConfig, device: &Device) -> Result<LoadedModel> {
    if !path.is_file() {
        return Err(Error::checkpoint(
            path,
            "not found: expected a .safetensors file of weights",
        ));
    }
    let tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| Error::checkpoint(path, format!("is not a readable safetensors file: {e}")))?;
    if tensors.keys().any(|k| k.starts_with("model.")) {
        return Err(Error::checkpoint(
            path,
            "is the weights file of an `ncsn train` run: pass its run folder (or its checkpoint.json) instead, \
             which also holds the configuration",
        ));
    }
    let (varmap, model) = build_model(&config.model_config(), device, None)?;
    let vars = named_vars(&varmap);
    load_into(&vars, &tensors, "", path)?;
    let names: HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !names.contains(k.as_str())).collect();
    extra.sort();
    if let Some(first) = extra.first() {
        return Err(Error::checkpoint(
            path,
            format!(
                "holds {} tensor(s) that the model of the given configuration does not have (first: `{first}`)",
                extra.len()
            ),
        ));
    }
    Ok(LoadedModel {
        sigmas: config.sigmas()?,
        config,
        step: 0,
        model,
        ema: None,
    })
}

/// The model of `--checkpoint PATH [--model-config C]`: a run folder or `checkpoint.json`
/// (then `model_config` must be `None`), or a `.safetensors` weights file (then it is required).
pub fn load_model(checkpoint: &Path, model_config_flag: Option<&str>, device: &Device) -> Result<LoadedModel> {
    match (is_weights_file(checkpoint), model_config_flag) {
        (true, Some(flag)) => load_weights_file(checkpoint, model_config(flag)?, device),
        (true, None) => Err(Error::checkpoint(
            checkpoint,
            "is a bare weights file, which does not say which model it holds: add --model-config cifar10, \
             --model-config mnist or --model-config FILE.toml",
        )),
        (false, None) => load_checkpoint(checkpoint, device),
        (false, Some(_)) => Err(Error::config(
            "model_config",
            format!(
                "--model-config is only for a bare .safetensors file; {} is a run folder or checkpoint.json, \
                 which holds its configuration",
                checkpoint.display()
            ),
        )),
    }
}
