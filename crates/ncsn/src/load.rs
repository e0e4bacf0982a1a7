//! A trained network to sample from, differentiate or fine-tune: from a run folder of
//! `ncsn train` (its `checkpoint.json` holds the configuration), or from a bare `.safetensors`
//! file of weights, such as a reference PyTorch checkpoint converted by
//! `scripts/convert_reference_checkpoint.py`, whose network shape and noise levels must be given.
use std::collections::HashSet;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarMap;

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::model::{build_model, frozen_model, CondRefineNetDilated, ModelConfig, ScoreNet};
use crate::training::checkpoint::Checkpoint;
use crate::vars::{load_into, named_vars};

/// A trained network with its noise levels.
pub struct LoadedModel {
    /// The noise levels sigma_1 > ... > sigma_L the network was trained with.
    pub sigmas: Vec<f64>,
    /// Training steps done (0 for a bare weights file).
    pub step: u64,
    /// The network with the last weights.
    pub model: CondRefineNetDilated,
    /// The parameters of `model`, as variables: differentiate with respect to them
    /// (`loss.backward()` then `grads.get(var)`), or optimise them to fine-tune.
    pub params: VarMap,
    /// The network with the EMA weights, when the run kept an EMA, as constants
    /// ([`crate::model::frozen_model`]: nothing differentiates them).
    pub ema: Option<CondRefineNetDilated>,
    /// `model` with its weights as constants (sharing their storage): what sampling runs, so
    /// that it records no graph.
    frozen: CondRefineNetDilated,
    /// The run configuration: a run folder's, or the one `--model-config` names ([`load_model`]);
    /// `None` from [`load_weights_file`], which takes only the network's shape and sigmas.
    pub run: Option<TrainConfig>,
    /// Tensors of a bare weights file that are not parameters of the network (sorted), which
    /// were ignored: a converted training checkpoint may hold more than the network (the CLI
    /// reports them). Always empty for a run folder, whose checkpoint must hold nothing else.
    pub ignored: Vec<String>,
}

impl LoadedModel {
    /// The network to sample with: the EMA weights when there are some (as NCSNv2 does),
    /// otherwise the last weights.
    pub fn sampling_model(&self) -> &CondRefineNetDilated {
        self.ema.as_ref().unwrap_or(&self.frozen)
    }

    /// The network to sample with ([`Self::sampling_model`], or the last weights when `no_ema`)
    /// as a noise-conditional score, with the name of the weights it uses.
    pub fn score_net(&self, no_ema: bool) -> Result<(ScoreNet<'_>, &'static str)> {
        let model = if no_ema { &self.frozen } else { self.sampling_model() };
        let name = if std::ptr::eq(model, &self.frozen) {
            "weights"
        } else {
            "EMA weights"
        };
        let over_sigma = self.run.as_ref().is_some_and(|r| r.score_over_sigma);
        Ok((ScoreNet::new(model, &self.sigmas)?.over_sigma(over_sigma), name))
    }

    /// The network's shape.
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }
}

/// Loads the model of a checkpoint (a run folder or its `checkpoint.json`), in `f32`.
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<LoadedModel> {
    let checkpoint = Checkpoint::open(path, device)?;
    let state = &checkpoint.state;
    let (params, model) = build_model(&state.model, DType::F32, device, None)?;
    checkpoint.load(&named_vars(&params), "model.")?;
    let frozen = frozen_model(&state.model, &params, DType::F32, device)?;
    let ema = if state.config.ema {
        let (ema_vars, _) = build_model(&state.model, DType::F32, device, None)?;
        checkpoint.load(&named_vars(&ema_vars), "ema.")?;
        Some(frozen_model(&state.model, &ema_vars, DType::F32, device)?)
    } else {
        None
    };
    Ok(LoadedModel {
        sigmas: state.sigmas.clone(),
        step: state.step,
        model,
        params,
        ema,
        frozen,
        run: Some(checkpoint.state.config),
        ignored: Vec::new(),
    })
}

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
            let file = crate::config::Overrides::from_toml_file(path)?;
            TrainConfig::resolve(&file, &Default::default())
        }
    }
}

/// Whether `path` names a bare weights file (rather than a run folder or `checkpoint.json`).
pub fn is_weights_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Loads the weights file `path` (tensor names as the reference's state_dict, without a
/// `module.` prefix) into the network `config` with noise levels `sigmas`, in `dtype`. Every
/// parameter of the network must be there with its shape; other tensors are ignored and listed
/// in [`LoadedModel::ignored`].
pub fn load_weights_file(
    path: &Path,
    config: &ModelConfig,
    sigmas: Vec<f64>,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel> {
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
    let (params, model) = build_model(config, dtype, device, None)?;
    let vars = named_vars(&params);
    load_into(&vars, &tensors, "", path)?;
    let names: HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut ignored: Vec<String> = tensors
        .keys()
        .filter(|k| !names.contains(k.as_str()))
        .cloned()
        .collect();
    ignored.sort();
    // The network checks that it has one level per sigma.
    ScoreNet::new(&model, &sigmas)?;
    let frozen = frozen_model(config, &params, dtype, device)?;
    Ok(LoadedModel {
        sigmas,
        step: 0,
        model,
        params,
        ema: None,
        frozen,
        run: None,
        ignored,
    })
}

/// The model of `--checkpoint PATH [--model-config C]`: a run folder or `checkpoint.json`
/// (then `model_config` must be `None`), or a `.safetensors` weights file (then it is required),
/// with the run configuration it came with or was given.
pub fn load_model(checkpoint: &Path, model_config_flag: Option<&str>, device: &Device) -> Result<LoadedModel> {
    match (is_weights_file(checkpoint), model_config_flag) {
        (true, Some(flag)) => {
            let config = model_config(flag)?;
            let loaded = load_weights_file(checkpoint, &config.model_config(), config.sigmas()?, DType::F32, device)?;
            Ok(LoadedModel {
                run: Some(config),
                ..loaded
            })
        }
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
