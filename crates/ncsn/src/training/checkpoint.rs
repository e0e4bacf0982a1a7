//! Checkpoints: everything needed to continue a run exactly, or to sample from its model.
//!
//! A checkpoint in a run folder is two files:
//!
//! - `checkpoint-<step>.safetensors`: the weights `model.<param>`, the EMA weights `ema.<param>`
//!   (when the run keeps an EMA) and Adam's moments `adam.m.<param>`, `adam.v.<param>`;
//! - `checkpoint.json` ([`RunState`]): the step, the whole [`TrainConfig`], the noise
//!   levels, Adam's step count, the state of the random generators and of the data loaders,
//!   and the name of its weights file.
//!
//! A [`crate::Trainer`] owns its [`RunState`] and writes it as it is ([`save`]); a checkpoint is
//! read once, by [`Checkpoint::open`], which checks the state and the tensors (none missing
//! from the ones it needs, none extra), for resuming and for sampling alike.
//!
//! Both are written atomically, weights first; `checkpoint.json` is written last and is the
//! commit point, so an interrupted save leaves the previous checkpoint intact. Weights files
//! no longer named by `checkpoint.json` are then removed, except the kept ones: with
//! `keep_every`, the checkpoint of every multiple of that step also stays as
//! `checkpoint-<step>.json` beside its weights, a checkpoint of its own for `ncsn sample`.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::LoaderState;
use crate::error::{Error, Result};
use crate::fsutil::{remove_temporaries, safetensors_bytes, test_pause, write_atomic, write_atomic_with};
use crate::model::{reference_shapes, ModelConfig};
use crate::vars::{first_non_finite, load_into};

/// File name of a checkpoint's metadata in a run folder.
pub const CHECKPOINT_JSON: &str = "checkpoint.json";
/// Version tag of the checkpoint format.
pub const FORMAT: &str = "ncsn-checkpoint-1";

/// The running mean of the training loss since the last log row (stored so that a resumed run
/// writes the same log rows as an uninterrupted one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossAccumulator {
    /// Sum of per-example losses.
    pub sum: f64,
    /// Number of examples.
    pub count: u64,
    /// Per noise level: sum of per-example losses.
    pub level_sum: Vec<f64>,
    /// Per noise level: number of examples.
    pub level_count: Vec<u64>,
}

impl LossAccumulator {
    /// An empty accumulator for `levels` noise levels.
    pub fn new(levels: usize) -> Self {
        Self {
            sum: 0.0,
            count: 0,
            level_sum: vec![0.0; levels],
            level_count: vec![0; levels],
        }
    }
    /// Adds per-example losses with their level indices.
    pub fn add(&mut self, losses: &[f64], levels: &[u32]) {
        for (&l, &i) in losses.iter().zip(levels) {
            self.sum += l;
            self.count += 1;
            if let (Some(s), Some(c)) = (self.level_sum.get_mut(i as usize), self.level_count.get_mut(i as usize)) {
                *s += l;
                *c += 1;
            }
        }
    }
    /// The mean loss and the per-level means (`None` for a level without examples).
    pub fn means(&self) -> (f64, Vec<Option<f64>>) {
        let mean = self.sum / self.count.max(1) as f64;
        let levels = self
            .level_sum
            .iter()
            .zip(&self.level_count)
            .map(|(&s, &c)| (c > 0).then(|| s / c as f64))
            .collect();
        (mean, levels)
    }
}

/// A run's state apart from its tensors: what `checkpoint.json` holds, and what a
/// [`crate::Trainer`] keeps up to date as it trains (so that saving writes it as it is).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    /// [`FORMAT`].
    pub format: String,
    /// Training steps done.
    pub step: u64,
    /// Weights file of this step, in the same folder ([`weights_name`]).
    pub weights: String,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The model's shape (derived from `config`; stored for readers of the file).
    pub model: ModelConfig,
    /// The noise levels sigma_1 > ... > sigma_L.
    pub sigmas: Vec<f64>,
    /// Adam's step count.
    pub adam_steps: u64,
    /// The training generator (data dequantisation and flips, noise levels, noise).
    pub rng: ChaCha8Rng,
    /// The test generator.
    pub test_rng: ChaCha8Rng,
    /// Position of the training loader.
    pub train_loader: LoaderState,
    /// Position of the test loader.
    pub test_loader: LoaderState,
    /// Training loss since the last log row.
    pub loss_accumulator: LossAccumulator,
}

/// The path of `checkpoint.json` for `path`, which is either a run folder or the JSON file.
pub fn meta_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(CHECKPOINT_JSON)
    } else {
        path.to_path_buf()
    }
}

impl RunState {
    /// Reads and checks the state of the checkpoint at `path` (a run folder or its
    /// `checkpoint.json`).
    pub fn read(path: &Path) -> Result<Self> {
        let json = meta_path(path);
        if !json.is_file() {
            return Err(Error::checkpoint(
                &json,
                "not found: expected a run folder holding checkpoint.json (e.g. runs/mnist) or the path of a checkpoint.json",
            ));
        }
        let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
        let state: RunState = serde_json::from_str(&text)
            .map_err(|e| Error::checkpoint(&json, format!("is not an ncsn checkpoint file: {e}")))?;
        if state.format != FORMAT {
            return Err(Error::checkpoint(
                &json,
                format!("has format {:?}, expected {FORMAT:?}", state.format),
            ));
        }
        state.validate(&json)?;
        Ok(state)
    }

    /// Checks the state read from `json` as a new run's settings are checked: the
    /// configuration's ranges, the noise levels against it, the weights file name, and the
    /// lengths of the per-level counters. The loaders' positions are checked against the data
    /// when they are restored.
    pub fn validate(&self, json: &Path) -> Result<()> {
        let bad = |message: String| Error::checkpoint(json, message);
        self.config
            .validate()
            .map_err(|e| bad(format!("its `config` is not a valid configuration: {e}")))?;
        if self.model != self.config.model_config() {
            return Err(bad(
                "its `model` does not match its `config`: the file was edited".into()
            ));
        }
        let expected = self.config.sigmas()?;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
        if self.sigmas.len() != expected.len() || !self.sigmas.iter().zip(&expected).all(|(&a, &b)| close(a, b)) {
            return Err(bad(format!(
                "its `sigmas` {:?} are not the {} levels geometric from sigma_begin = {} to sigma_end = {} of its \
                 config: the file was edited",
                self.sigmas,
                expected.len(),
                self.config.sigma_begin,
                self.config.sigma_end
            )));
        }
        let plain = Path::new(&self.weights).file_name().and_then(|n| n.to_str()) == Some(self.weights.as_str());
        if !plain || self.weights == ".." || !self.weights.ends_with(".safetensors") {
            return Err(bad(format!(
                "its `weights` entry {:?} is not the name of a .safetensors file inside the run folder",
                self.weights
            )));
        }
        let levels = expected.len();
        let acc = &self.loss_accumulator;
        if acc.level_sum.len() != levels || acc.level_count.len() != levels {
            return Err(bad(format!(
                "its `loss_accumulator` has {} and {} per-level entries, expected {levels} (one per noise level)",
                acc.level_sum.len(),
                acc.level_count.len()
            )));
        }
        if self.adam_steps != self.step {
            return Err(bad(format!(
                "its `adam_steps` = {} differs from its `step` = {} (Adam takes one step per training step)",
                self.adam_steps, self.step
            )));
        }
        Ok(())
    }
}

/// A checkpoint read from a run folder: its state and its tensors, checked.
pub struct Checkpoint {
    /// Its `checkpoint.json`.
    pub json: PathBuf,
    /// Its weights file.
    pub weights: PathBuf,
    /// The run state.
    pub state: RunState,
    /// The tensors of the weights file: `model.*`, `adam.m.*`, `adam.v.*`, and `ema.*` when the
    /// run keeps an EMA.
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads the checkpoint at `path` (a run folder or its `checkpoint.json`), with its tensors on
    /// `device`. Every tensor must belong to the network of its configuration (under one of the
    /// prefixes above): an extra one means the files come from another model.
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let json = meta_path(path);
        let state = RunState::read(&json)?;
        let weights = json.parent().unwrap_or(Path::new(".")).join(&state.weights);
        if !weights.is_file() {
            return Err(Error::checkpoint(
                &weights,
                format!("the weights file named by {} is missing", json.display()),
            ));
        }
        let tensors = candle_core::safetensors::load(&weights, device)
            .map_err(|e| Error::checkpoint(&weights, format!("is not a readable safetensors file: {e}")))?;
        let checkpoint = Self {
            json,
            weights,
            state,
            tensors,
        };
        checkpoint.check_no_extra()?;
        Ok(checkpoint)
    }

    /// Sets `vars` (named as the network's parameters) to the tensors `prefix` + name
    /// (`"model."`, `"ema."`): each must be there with its shape, and finite.
    pub fn load(&self, vars: &[(String, Var)], prefix: &str) -> Result<()> {
        load_into(vars, &self.tensors, prefix, &self.weights)
    }

    /// Every tensor must belong to the model of the checkpoint's configuration.
    fn check_no_extra(&self) -> Result<()> {
        let shapes = reference_shapes(&self.state.model);
        let names: std::collections::HashSet<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
        let prefixes: &[&str] = if self.state.config.ema {
            &["model.", "adam.m.", "adam.v.", "ema."]
        } else {
            &["model.", "adam.m.", "adam.v."]
        };
        let mut extra: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| {
                !prefixes
                    .iter()
                    .any(|p| k.strip_prefix(p).is_some_and(|n| names.contains(n)))
            })
            .collect();
        extra.sort();
        match extra.first() {
            None => Ok(()),
            Some(first) => Err(Error::checkpoint(
                &self.weights,
                format!(
                    "holds {} tensor(s) that the model of its configuration does not have (first: `{first}`): \
                     it was saved from another model",
                    extra.len()
                ),
            )),
        }
    }
}

/// Writes `tensors` and `meta` (the run state) into the run folder `dir` (see the module documentation). The
/// caller holds the folder's [`crate::fsutil::RunLock`]. Refuses tensors with a non-finite
/// value, so that a diverged run never replaces a good checkpoint.
///
/// The test-only hook [`crate::fsutil::test_pause`] can stop the save at the points
/// `weights-tmp` (weights written to their temporary file), `weights` (renamed into place),
/// `json-tmp` and `json` (the same for `checkpoint.json`, the commit point).
pub fn save(dir: &Path, meta: &RunState, tensors: Vec<(String, Tensor)>) -> Result<PathBuf> {
    let weights = dir.join(&meta.weights);
    if let Some((name, count)) = first_non_finite(tensors.iter().map(|(n, t)| (n.as_str(), t)))? {
        return Err(Error::NonFinite(format!(
            "after step {}, tensor `{name}` holds {count} non-finite value(s) (NaN or infinity): no checkpoint \
             is saved ({} keeps its previous checkpoint, if any). {}",
            meta.step,
            dir.display(),
            meta.config.non_finite_suspects()
        )));
    }
    remove_temporaries(dir);
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    let bytes = safetensors_bytes(&weights, &map)?;
    write_atomic_with(&weights, |tmp| {
        std::fs::write(tmp, &bytes).map_err(|e| Error::io(tmp, e))?;
        test_pause("weights-tmp", meta.step);
        Ok::<_, Error>(())
    })?;
    test_pause("weights", meta.step);
    let json = dir.join(CHECKPOINT_JSON);
    let text = serde_json::to_string_pretty(meta).map_err(|e| Error::checkpoint(&json, e.to_string()))?;
    write_atomic_with(&json, |tmp| {
        std::fs::write(tmp, text.as_bytes()).map_err(|e| Error::io(tmp, e))?;
        test_pause("json-tmp", meta.step);
        Ok::<_, Error>(())
    })?;
    test_pause("json", meta.step);
    let keep_every = meta.config.keep_every;
    if keep_every > 0 && meta.step.is_multiple_of(keep_every) {
        write_atomic(&dir.join(kept_json_name(&meta.weights)), text.as_bytes())?;
    }
    remove_stale_weights(dir, Some(&meta.weights));
    Ok(json)
}

/// The name of a kept checkpoint's JSON: its weights file's name with `.json` for
/// `.safetensors` (`checkpoint-00000400.json`).
pub fn kept_json_name(weights: &str) -> String {
    format!("{}.json", weights.trim_end_matches(".safetensors"))
}

/// Removes the weights files of `dir` other than `keep` and the kept checkpoints' (older
/// checkpoints, or the weights of a save interrupted before its `checkpoint.json`). Only under
/// the folder's lock.
pub fn remove_stale_weights(dir: &Path, keep: Option<&str>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kept = dir.join(kept_json_name(&name)).is_file();
            if name.starts_with("checkpoint-") && name.ends_with(".safetensors") && Some(name.as_str()) != keep && !kept
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The weights file name for a step.
pub fn weights_name(step: u64) -> String {
    format!("checkpoint-{step:08}.safetensors")
}
