//! Training configuration: the paper's defaults, a TOML file and command-line flags.
//!
//! A run's settings are resolved in three layers, each overriding the one before:
//!
//! 1. the defaults of the data set ([`TrainConfig::cifar10`] is the paper's CIFAR-10 setup,
//!    [`TrainConfig::mnist`] the reference implementation's MNIST setup);
//! 2. a TOML file (`--config F`), whose keys are exactly the fields of [`Overrides`]
//!    (a misspelled key is an error naming it);
//! 3. command-line flags: the same keys, `--batch-size 32` for `batch_size = 32`.
//!
//! The resolved [`TrainConfig`] is stored in every checkpoint, so a resumed run knows how it was
//! started and a checkpoint of another configuration is refused.
use std::path::{Path, PathBuf};

use langevin::{LowNoiseSteps, StepBand};
use score_matching::LevelDistribution;
use serde::{Deserialize, Serialize};

use crate::data::DataSpec;
use crate::error::{show_number, Error, Result};
use crate::model::ModelConfig;

pub use crate::data::DatasetKind;

/// One training setting's type as a layer gives it: the value itself, or for an optional
/// setting (`data`, `test_data`) the value when it is set. A layer (file, flags) that gives the
/// key replaces the setting.
pub trait Setting {
    /// What a layer gives.
    type Given: Clone;
    /// Replaces the setting by what a layer gave.
    fn set(&mut self, given: &Self::Given);
}

macro_rules! plain_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            type Given = $t;
            fn set(&mut self, given: &$t) {
                *self = given.clone();
            }
        }
    )*};
}
plain_setting!(String, u64, usize, f64, bool, DatasetKind, LrSchedule, LevelSampling);

impl Setting for Option<PathBuf> {
    type Given = PathBuf;
    fn set(&mut self, given: &PathBuf) {
        *self = Some(given.clone());
    }
}

/// How the learning rate of a run moves with the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` at every step (the paper's).
    Constant,
    /// A cosine from `lr` at the first step down to 0 after the last.
    Cosine,
}

impl LrSchedule {
    /// The learning rate of step `step` (counted from 0) of a run of `steps` at base rate `lr`.
    pub fn rate(self, lr: f64, step: u64, steps: u64) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => workbench::adam::cosine_lr(lr, step, steps),
        }
    }
}

/// How a training step draws each example's noise level (`level_sampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LevelSampling {
    /// Every level equally often (the paper's).
    Uniform,
    /// More often near `level_center`: [`score_matching::LevelDistribution::LogNormal`].
    LogNormal,
}

/// Declares every training setting once: its field of [`TrainConfig`] (with its documentation),
/// its optional field of [`Overrides`] (the TOML key and the `--flag`, with the flag's help, to
/// which the real defaults are appended by [`flag_help`]), and [`TrainConfig::apply`].
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty, help = $help:literal $(, default = $default:literal)? $(, absent = $absent:literal)?;
    )*) => {
        /// Every setting of a training run (flat: one key per setting, as in the TOML file).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct TrainConfig {
            $( $(#[doc = $doc])* $(#[serde(default = $absent)])? pub $key: $ty, )*
        }

        /// Settings to override: the keys of a TOML config file and, with the same names, the
        /// command-line flags of `ncsn train` (`batch_size` is `--batch-size`). Every key is
        /// optional; `--help` shows each one's defaults, read from [`TrainConfig::defaults`].
        #[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct Overrides {
            $(
                $(#[doc = $doc])*
                #[arg(long, help = flag_help(stringify!($key), $help, None $(.or(Some($default)))?))]
                pub $key: Option<<$ty as Setting>::Given>,
            )*
        }

        impl TrainConfig {
            /// Sets every key that `overrides` gives.
            pub fn apply(&mut self, overrides: &Overrides) {
                $( if let Some(given) = &overrides.$key { self.$key.set(given); } )*
            }
        }
    };
}

settings! {
    /// Run name; the run folder defaults to `runs/<name>`.
    name: String, help = "Run name; the run folder is runs/<name>";
    /// Seed of every random draw: initial weights, data order, dequantisation, flips, noise.
    seed: u64, help = "Seed of every random draw (weights, data order, dequantisation, flips, noise)";
    /// Kind of data.
    dataset: DatasetKind, help = "Kind of data", default = "detected from --data; mnist without --data";
    /// Training data (a folder or an IDX file). `None`: the MNIST digits shipped in `data/`.
    data: Option<PathBuf>,
        help = "Training data: a cifar-10-batches-bin folder, an MNIST IDX images file (.gz or plain) or a folder of PNG/JPEG images",
        default = "data/cifar-10-batches-bin for cifar10; the 5,000 MNIST digits shipped in data/ otherwise";
    /// Test data in the same format. `None`: CIFAR-10's `test_batch.bin`, otherwise a held-out
    /// `test_fraction` of the training images.
    test_data: Option<PathBuf>, help = "Test data in the same format",
        default = "CIFAR-10's test_batch.bin, else a held-out fraction";
    /// Fraction of the training images held out as test set when there is no test file.
    test_fraction: f64, help = "Fraction of training images held out for the test loss when there is no test file";
    /// Uniform dequantisation `x * 255/256 + U[0,1)/256` (as the reference).
    dequantize: bool, help = "Uniform dequantisation x*255/256 + U[0,1)/256 (true/false)";
    /// Random horizontal flips of training images.
    random_flip: bool, help = "Random horizontal flips (true/false)";
    /// Base width of the RefineNet (128 for CIFAR-10, 64 for MNIST).
    ngf: usize, help = "Base width of the RefineNet";
    /// Image channels (3 RGB, 1 grayscale).
    channels: usize, help = "Image channels, 1 or 3";
    /// Image height = width.
    image_size: usize, help = "Image height = width";
    /// Largest noise level sigma_1.
    sigma_begin: f64, help = "Largest noise level sigma_1";
    /// Smallest noise level sigma_L.
    sigma_end: f64, help = "Smallest noise level sigma_L";
    /// Number of noise levels L (geometric from `sigma_begin` to `sigma_end`).
    num_levels: usize, help = "Number of noise levels L";
    /// The score is the network's output divided by the level's sigma, `s(x, sigma_i) = f(x, i)
    /// / sigma_i` (NCSNv2's parametrisation; the paper's is `s = f(x, i)`).
    score_over_sigma: bool, help = "Score = network output / sigma_i, as NCSNv2 (true/false)",
        absent = "defaults::score_over_sigma";
    /// Adam learning rate.
    lr: f64, help = "Adam learning rate";
    /// How the learning rate moves over the run: `constant` (the paper's) or `cosine`, from `lr`
    /// down to 0 at the last of `steps` ([`workbench::adam::cosine_lr`]).
    lr_schedule: LrSchedule, help = "Learning-rate schedule: constant (the paper's) or cosine (from lr down to 0 at the last step)",
        absent = "defaults::lr_schedule";
    /// How each example's noise level is drawn: `uniform` (the paper's: every level alike) or
    /// `log-normal` (a share `level_share` of the draws from a normal distribution of
    /// `ln sigma` around `ln level_center` with standard deviation `level_spread`, the rest
    /// uniform; [`score_matching::LevelDistribution`]). The test loss always draws uniformly.
    level_sampling: LevelSampling,
        help = "How each example's noise level is drawn: uniform (the paper's) or log-normal (more often near level_center)",
        absent = "defaults::level_sampling";
    /// The noise level that `level_sampling = "log-normal"` draws most often.
    level_center: f64, help = "The noise level that level_sampling = log-normal draws most often",
        absent = "defaults::level_center";
    /// Standard deviation of `ln sigma` in `level_sampling = "log-normal"`.
    level_spread: f64, help = "Standard deviation of ln sigma of level_sampling = log-normal",
        absent = "defaults::level_spread";
    /// Share of the draws that `level_sampling = "log-normal"` takes from the log-normal (the
    /// rest are uniform, so that every level the sampler visits is trained).
    level_share: f64, help = "Share of the draws of level_sampling = log-normal taken from the log-normal (the rest uniform)",
        absent = "defaults::level_share";
    /// Adam's first-moment decay beta_1.
    beta1: f64, help = "Adam beta_1";
    /// Adam's second-moment decay beta_2.
    beta2: f64, help = "Adam beta_2";
    /// Adam's epsilon.
    adam_eps: f64, help = "Adam epsilon";
    /// Images per training step.
    batch_size: usize, help = "Images per step";
    /// Total number of training steps (iterations).
    steps: u64, help = "Training steps";
    /// Write a checkpoint every this many steps (and at the end).
    snapshot_every: u64, help = "Checkpoint every N steps, and at the end";
    /// Also keep the checkpoint of every multiple of this many steps (0: only the latest):
    /// `checkpoint-<step>.json` beside its weights, a checkpoint that `ncsn sample --checkpoint`
    /// reads, for measuring a run over its training. A multiple of `snapshot_every`.
    keep_every: u64, help = "Keep the checkpoint of every multiple of N steps as checkpoint-<step>.json (0: only the latest)",
        absent = "defaults::keep_every";
    /// Log the training loss (mean since the last row) every this many steps.
    log_every: u64, help = "Log the mean training loss every N steps";
    /// Evaluate the loss on one test batch every this many steps.
    test_every: u64, help = "Evaluate one test batch every N steps";
    /// Images per test batch.
    test_batch_size: usize, help = "Images per test batch";
    /// Keep an exponential moving average of the weights (NCSNv2).
    ema: bool, help = "Keep an EMA of the weights (true/false)";
    /// EMA rate mu: `shadow <- mu * shadow + (1 - mu) * theta`.
    ema_rate: f64, help = "EMA rate mu";
    /// Base step size eps of the run's sampler (`ncsn sample`'s default for this run, and the
    /// sampler of `fid_every`): the step at level i is `eps * sigma_i^2 / sigma_L^2`.
    sample_eps: f64, help = "Step size eps of the run's sampler (ncsn sample's default for the run, and fid_every's)",
        absent = "defaults::sample_eps";
    /// Langevin steps per noise level T of the run's sampler.
    sample_steps_per_level: usize, help = "Langevin steps per noise level of the run's sampler",
        absent = "defaults::sample_steps_per_level";
    /// Langevin steps at each level of the run's sampler whose noise is below
    /// `sample_low_noise_below`, instead of `sample_steps_per_level` (0: no such levels).
    sample_low_noise_steps: usize,
        help = "Langevin steps of the run's sampler at the levels below sample_low_noise_below (0: as every level)",
        absent = "defaults::sample_low_noise_steps";
    /// The noise level below which the run's sampler takes `sample_low_noise_steps` (0: none).
    sample_low_noise_below: f64,
        help = "Noise level below which the run's sampler takes sample_low_noise_steps (0: none)",
        absent = "defaults::sample_low_noise_below";
    /// The lowest noise level of the run sampler's step band, where the step is
    /// `sample_band_factor` times longer (0 with `sample_band_high` 0: no band).
    sample_band_low: f64,
        help = "Lowest noise level of the run sampler's step band (0: no band)",
        absent = "defaults::sample_band_low";
    /// The highest noise level of the run sampler's step band (0 with `sample_band_low` 0: no band).
    sample_band_high: f64,
        help = "Highest noise level of the run sampler's step band (0: no band)",
        absent = "defaults::sample_band_high";
    /// What the run sampler's step is multiplied by at the levels of its band (1: as elsewhere).
    sample_band_factor: f64,
        help = "Factor of the run sampler's step at the levels of its band",
        absent = "defaults::sample_band_factor";
    /// End the run's sampler with the denoising step `x + sigma_L^2 s(x, sigma_L)`.
    sample_denoise: bool, help = "End the run's sampler with the denoising step (true/false)",
        absent = "defaults::sample_denoise";
    /// Every this many steps, draw `fid_samples` images with the run's sampler and log their
    /// FID against the training images in the MNIST classifier's features (0: never; needs
    /// 28x28 grayscale images).
    fid_every: u64, help = "Log the MNIST FID of fid_samples samples every N steps (0: never; 28x28 grayscale runs)",
        absent = "defaults::fid_every";
    /// Samples per FID of `fid_every` (more than the 64 features of the MNIST classifier).
    fid_samples: usize, help = "Samples per FID of fid_every", absent = "defaults::fid_samples";
}

/// The values of the settings added after the first checkpoints were written, for a
/// checkpoint's configuration that lacks them (serde's `default`).
mod defaults {
    use super::{LevelSampling, LrSchedule};
    pub fn lr_schedule() -> LrSchedule {
        LrSchedule::Constant
    }
    pub fn level_sampling() -> LevelSampling {
        LevelSampling::Uniform
    }
    pub fn level_center() -> f64 {
        0.3
    }
    pub fn level_spread() -> f64 {
        1.2
    }
    pub fn level_share() -> f64 {
        0.7
    }
    pub fn keep_every() -> u64 {
        0
    }
    pub fn score_over_sigma() -> bool {
        false
    }
    pub fn sample_eps() -> f64 {
        2e-5
    }
    pub fn sample_steps_per_level() -> usize {
        100
    }
    pub fn sample_low_noise_steps() -> usize {
        0
    }
    pub fn sample_low_noise_below() -> f64 {
        0.0
    }
    pub fn sample_band_low() -> f64 {
        0.0
    }
    pub fn sample_band_high() -> f64 {
        0.0
    }
    pub fn sample_band_factor() -> f64 {
        1.0
    }
    pub fn sample_denoise() -> bool {
        false
    }
    pub fn fid_every() -> u64 {
        0
    }
    pub fn fid_samples() -> usize {
        500
    }
}

/// The help of `--key`: `help`, then the defaults, `default` when given (for the keys whose
/// default is not a value: detected, or a path chosen by the data set), otherwise read from the
/// defaults of each data set ([`TrainConfig::defaults`]), e.g. `[default: 128 for cifar10 and
/// images, 64 for mnist]`.
pub fn flag_help(key: &str, help: &str, default: Option<&str>) -> String {
    let default = default.map(str::to_string).unwrap_or_else(|| {
        let mut values: Vec<(String, Vec<&str>)> = Vec::new();
        for kind in [DatasetKind::Cifar10, DatasetKind::Mnist, DatasetKind::Images] {
            let value = serde_json::to_value(TrainConfig::defaults(kind))
                .ok()
                .and_then(|v| v.get(key).cloned())
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .unwrap_or_default();
            match values.iter_mut().find(|(v, _)| *v == value) {
                Some((_, kinds)) => kinds.push(kind.name()),
                None => values.push((value, vec![kind.name()])),
            }
        }
        match &values[..] {
            [(value, _)] => value.clone(),
            _ => values
                .iter()
                .map(|(value, kinds)| format!("{value} for {}", kinds.join(" and ")))
                .collect::<Vec<_>>()
                .join(", "),
        }
    });
    format!("{help} [default: {default}]")
}

impl TrainConfig {
    /// The paper's CIFAR-10 setup: sigmas geometric 1 -> 0.01, L = 10; Adam lr 1e-3,
    /// betas (0.9, 0.999); batch 128; 200k steps; checkpoint every 5k; ngf 128.
    pub fn cifar10() -> Self {
        Self {
            name: "cifar10".into(),
            seed: 1234,
            dataset: DatasetKind::Cifar10,
            data: None,
            test_data: None,
            test_fraction: 0.1,
            dequantize: true,
            random_flip: true,
            ngf: 128,
            channels: 3,
            image_size: 32,
            sigma_begin: 1.0,
            sigma_end: 0.01,
            num_levels: 10,
            score_over_sigma: defaults::score_over_sigma(),
            lr: 1e-3,
            lr_schedule: defaults::lr_schedule(),
            level_sampling: defaults::level_sampling(),
            level_center: defaults::level_center(),
            level_spread: defaults::level_spread(),
            level_share: defaults::level_share(),
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            batch_size: 128,
            steps: 200_000,
            snapshot_every: 5_000,
            keep_every: defaults::keep_every(),
            log_every: 25,
            test_every: 100,
            test_batch_size: 128,
            ema: false,
            ema_rate: 0.999,
            sample_eps: defaults::sample_eps(),
            sample_steps_per_level: defaults::sample_steps_per_level(),
            sample_low_noise_steps: defaults::sample_low_noise_steps(),
            sample_low_noise_below: defaults::sample_low_noise_below(),
            sample_band_low: defaults::sample_band_low(),
            sample_band_high: defaults::sample_band_high(),
            sample_band_factor: defaults::sample_band_factor(),
            sample_denoise: defaults::sample_denoise(),
            fid_every: defaults::fid_every(),
            fid_samples: defaults::fid_samples(),
        }
    }

    /// The reference implementation's MNIST setup: as CIFAR-10 but ngf 64, one channel,
    /// 28x28, no flips.
    pub fn mnist() -> Self {
        Self {
            name: "mnist".into(),
            dataset: DatasetKind::Mnist,
            random_flip: false,
            ngf: 64,
            channels: 1,
            image_size: 28,
            ..Self::cifar10()
        }
    }

    /// Defaults for a folder of images: the CIFAR-10 setup (RGB, 32x32, flips).
    pub fn images() -> Self {
        Self {
            name: "images".into(),
            dataset: DatasetKind::Images,
            ..Self::cifar10()
        }
    }

    /// The defaults of a data set.
    pub fn defaults(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Cifar10 => Self::cifar10(),
            DatasetKind::Mnist => Self::mnist(),
            DatasetKind::Images => Self::images(),
        }
    }

    /// Resolves a new run: the data set is taken from the flags, else the file, else detected
    /// from the data path (MNIST when no data is given); its defaults are then overridden by
    /// the file and then by the flags.
    pub fn resolve(file: &Overrides, flags: &Overrides) -> Result<Self> {
        let data = flags.data.as_ref().or(file.data.as_ref());
        let kind = match flags.dataset.or(file.dataset) {
            Some(kind) => kind,
            None => match data {
                Some(path) => crate::data::detect_kind(path)?,
                None => DatasetKind::Mnist,
            },
        };
        let mut config = Self::defaults(kind);
        config.apply(file);
        config.apply(flags);
        config.validate()?;
        Ok(config)
    }

    /// Resolves the configuration of a resumed run: the checkpoint's configuration `saved`, with
    /// the layers `overrides` (a file, then flags) applied on top. Only the keys of
    /// [`RESUMABLE_KEYS`] may change (to train longer, or log and save at another rate); any
    /// other difference is an error naming the key and the checkpoint `ckpt`.
    pub fn resolve_resumed(saved: &TrainConfig, overrides: &[&Overrides], ckpt: &Path) -> Result<Self> {
        let mut config = saved.clone();
        for layer in overrides {
            config.apply(layer);
        }
        config.validate()?;
        let changed: Vec<String> = config
            .differences(saved)
            .into_iter()
            .filter(|(key, _, _)| !RESUMABLE_KEYS.contains(&key.as_str()))
            .map(|(key, ours, theirs)| format!("`{key}` = {ours} (the checkpoint has {theirs})"))
            .collect();
        if config.lr_schedule == LrSchedule::Cosine && config.steps != saved.steps {
            return Err(Error::checkpoint(
                ckpt,
                format!(
                    "it was trained with lr_schedule = \"cosine\" over steps = {}, and the schedule depends on \
                     the number of steps: this run asks for steps = {} (resume with steps = {}, or start a new run)",
                    saved.steps, config.steps, saved.steps
                ),
            ));
        }
        if !changed.is_empty() {
            return Err(Error::checkpoint(
                ckpt,
                format!(
                    "it was trained with another configuration; this run asks for {}. Only {} may change on resume",
                    changed.join(", "),
                    RESUMABLE_KEYS.join(", ")
                ),
            ));
        }
        Ok(config)
    }

    /// Keys whose values differ between `self` and `other`, with both values as JSON text.
    pub fn differences(&self, other: &TrainConfig) -> Vec<(String, String, String)> {
        let ours = serde_json::to_value(self).unwrap_or_default();
        let theirs = serde_json::to_value(other).unwrap_or_default();
        let (Some(ours), Some(theirs)) = (ours.as_object(), theirs.as_object()) else {
            return Vec::new();
        };
        ours.iter()
            .filter(|(key, value)| theirs.get(*key) != Some(value))
            .map(|(key, value)| {
                let other = theirs.get(key).map(|v| v.to_string()).unwrap_or_default();
                (key.clone(), value.to_string(), other)
            })
            .collect()
    }

    /// Checks every value's range; the error names the key and what was expected.
    pub fn validate(&self) -> Result<()> {
        fn unit_interval(key: &str, v: f64) -> Result<()> {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(key, format!("expected a number in [0, 1), got {v}")))
            }
        }
        fn at_least_one<T: PartialOrd + From<u8> + std::fmt::Display>(key: &str, v: T) -> Result<()> {
            if v >= T::from(1u8) {
                Ok(())
            } else {
                Err(Error::config(key, format!("expected at least 1, got {v}")))
            }
        }
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name == ".." {
            return Err(Error::config(
                "name",
                format!("expected a plain folder name, got {:?}", self.name),
            ));
        }
        unit_interval("test_fraction", self.test_fraction)?;
        validate_network(&self.model_config(), "num_levels")?;
        match self.dataset {
            DatasetKind::Cifar10 if self.channels != 3 || self.image_size != 32 => {
                return Err(Error::config(
                    if self.channels != 3 { "channels" } else { "image_size" },
                    format!(
                        "CIFAR-10 images are 32x32 RGB: expected channels = 3 and image_size = 32, got {} and {}",
                        self.channels, self.image_size
                    ),
                ));
            }
            DatasetKind::Mnist if self.channels != 1 => {
                return Err(Error::config(
                    "channels",
                    format!("MNIST images are grayscale: expected 1, got {}", self.channels),
                ));
            }
            DatasetKind::Images if self.data.is_none() => {
                return Err(Error::config(
                    "data",
                    "dataset = \"images\" needs a folder of PNG/JPEG images: set `data` (or --data DIR)",
                ));
            }
            _ => {}
        }
        sigma_in_range("sigma_begin", self.sigma_begin)?;
        sigma_in_range("sigma_end", self.sigma_end)?;
        if self.sigma_end >= self.sigma_begin {
            return Err(Error::config(
                "sigma_end",
                format!(
                    "expected a value below sigma_begin = {}, got {}",
                    self.sigma_begin, self.sigma_end
                ),
            ));
        }
        positive_f32("lr", self.lr)?;
        sigma_in_range("level_center", self.level_center)?;
        if !(self.level_spread.is_finite() && self.level_spread > 0.0) {
            return Err(Error::config(
                "level_spread",
                format!(
                    "expected a positive number (the standard deviation of ln sigma), got {}",
                    self.level_spread
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.level_share) {
            return Err(Error::config(
                "level_share",
                format!("expected a number in [0, 1], got {}", self.level_share),
            ));
        }
        unit_interval("beta1", self.beta1)?;
        unit_interval("beta2", self.beta2)?;
        positive_f32("adam_eps", self.adam_eps)?;
        at_least_one("batch_size", self.batch_size)?;
        at_least_one("steps", self.steps)?;
        at_least_one("snapshot_every", self.snapshot_every)?;
        if !self.keep_every.is_multiple_of(self.snapshot_every) {
            return Err(Error::config(
                "keep_every",
                format!(
                    "expected 0 or a multiple of snapshot_every = {} (only checkpoints that are written can be \
                     kept), got {}",
                    self.snapshot_every, self.keep_every
                ),
            ));
        }
        at_least_one("log_every", self.log_every)?;
        at_least_one("test_every", self.test_every)?;
        at_least_one("test_batch_size", self.test_batch_size)?;
        unit_interval("ema_rate", self.ema_rate)?;
        positive_f32("sample_eps", self.sample_eps)?;
        at_least_one("sample_steps_per_level", self.sample_steps_per_level)?;
        self.sample_low_noise()?;
        self.sample_step_band()?;
        if self.fid_every > 0 {
            if (self.channels, self.image_size) != (1, 28) {
                return Err(Error::config(
                    "fid_every",
                    format!(
                        "the FID logged during training uses the MNIST classifier, which needs 28x28 grayscale \
                         images; this run's are {}x{}x{} (set fid_every = 0, and measure samples with `ncsn fid \
                         --inception FILE`)",
                        self.channels, self.image_size, self.image_size
                    ),
                ));
            }
            let dim = quality::mnist::FEATURE_DIM;
            if self.fid_samples <= dim {
                return Err(Error::config(
                    "fid_samples",
                    format!(
                        "expected more samples than the classifier's {dim} features (a covariance of fewer is \
                         singular), got {}",
                        self.fid_samples
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The run sampler's [`LowNoiseSteps`]: `None` when both keys are 0; an error names the key
    /// when only one is set or the level is not a finite positive number.
    pub fn sample_low_noise(&self) -> Result<Option<LowNoiseSteps>> {
        let (steps, below) = (self.sample_low_noise_steps, self.sample_low_noise_below);
        if !(below.is_finite() && below >= 0.0) {
            return Err(Error::config(
                "sample_low_noise_below",
                format!("expected a finite noise level, 0 or more, got {below}"),
            ));
        }
        match (steps, below > 0.0) {
            (0, false) => Ok(None),
            (0, true) => Err(Error::config(
                "sample_low_noise_steps",
                format!("expected at least 1 with sample_low_noise_below = {below}, got 0"),
            )),
            (_, false) => Err(Error::config(
                "sample_low_noise_below",
                format!("expected a positive noise level with sample_low_noise_steps = {steps}, got 0"),
            )),
            (steps, true) => Ok(Some(LowNoiseSteps { below, steps })),
        }
    }

    /// The run sampler's [`StepBand`]: `None` when both ends are 0 (the factor must then be 1);
    /// an error names the key that is wrong.
    pub fn sample_step_band(&self) -> Result<Option<StepBand>> {
        let (low, high, factor) = (self.sample_band_low, self.sample_band_high, self.sample_band_factor);
        if (low, high) == (0.0, 0.0) {
            return if factor == 1.0 {
                Ok(None)
            } else {
                Err(Error::config(
                    "sample_band_factor",
                    format!("expected 1 without a band (sample_band_low and sample_band_high are 0), got {factor}"),
                ))
            };
        }
        let band = StepBand { low, high, factor };
        band.validate().map_err(|e| match e {
            // `step_band.low` is this file's `sample_band_low`.
            langevin::Error::InvalidParameter { field, message } => {
                Error::config(field.replace("step_band.", "sample_band_"), message)
            }
            other => other.into(),
        })?;
        Ok(Some(band))
    }

    /// How a training step draws each example's noise level.
    pub fn level_distribution(&self) -> LevelDistribution {
        match self.level_sampling {
            LevelSampling::Uniform => LevelDistribution::Uniform,
            LevelSampling::LogNormal => LevelDistribution::LogNormal {
                center: self.level_center,
                spread: self.level_spread,
                share: self.level_share,
            },
        }
    }

    /// The noise levels `sigma_1 > ... > sigma_L`, geometric.
    pub fn sigmas(&self) -> Result<Vec<f64>> {
        Ok(langevin::geometric_sigmas(
            self.sigma_begin,
            self.sigma_end,
            self.num_levels,
        )?)
    }

    /// The settings that can make training produce a NaN or an infinity, with their values, for
    /// the messages that report one.
    pub fn non_finite_suspects(&self) -> String {
        format!(
            "Settings that can cause it: lr = {} (too large a step diverges), adam_eps = {} (a tiny epsilon \
             divides by almost zero), sigma_begin = {} and sigma_end = {} (the loss scales with sigma^2 and \
             1/sigma^2)",
            show_number(self.lr),
            show_number(self.adam_eps),
            show_number(self.sigma_begin),
            show_number(self.sigma_end)
        )
    }

    /// The data part: which images, their shape, and the batch they must fill.
    pub fn data_spec(&self) -> DataSpec {
        DataSpec {
            dataset: self.dataset,
            data: self.data.clone(),
            test_data: self.test_data.clone(),
            test_fraction: self.test_fraction,
            channels: self.channels,
            image_size: self.image_size,
            batch_size: self.batch_size,
        }
    }

    /// The shape of the score network.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            ngf: self.ngf,
            channels: self.channels,
            image_size: self.image_size,
            num_classes: self.num_levels,
        }
    }
}

/// Smallest and largest noise level accepted. The images lie in `[0, 1]`; the loss computes
/// `1/2 sigma^2 ||s + z/sigma^2 ... ||^2` in `f32`, whose terms `1/sigma^2` and `sigma^2`
/// overflow `f32` (3.4e38) for sigmas far outside this range (at `sigma_end = 1e-30` the loss is
/// `inf * 0 = NaN` from the first step); and noise below 1e-6 is under the `f32` resolution of
/// a pixel near 1 (6e-8) within a few bits.
pub const SIGMA_RANGE: (f64, f64) = (1e-6, 1e6);

fn sigma_in_range(key: &str, v: f64) -> Result<()> {
    let (lo, hi) = SIGMA_RANGE;
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!(
                "expected a noise level between {lo:e} and {hi:e} (the images are in [0, 1]; the loss squares \
                 sigma and 1/sigma in f32), got {}",
                show_number(v)
            ),
        ))
    }
}

/// A positive number that stays positive and finite in `f32`, the dtype of the weights and of
/// Adam's update (`1e-50` is a valid `f64` but 0 in `f32`).
fn positive_f32(key: &str, v: f64) -> Result<()> {
    let single = v as f32;
    if v.is_finite() && v > 0.0 && single.is_finite() && single >= f32::MIN_POSITIVE {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!(
                "expected a positive number that is finite and non-zero in f32, the precision of the weights \
                 (between {:e} and {:e}), got {}",
                f32::MIN_POSITIVE,
                f32::MAX,
                show_number(v)
            ),
        ))
    }
}

/// The shape of a score network, as `train` and `bench` both take it (one validation for both):
/// `ngf` at least 2, `channels` 1 or 3, `image_size` even, at least 4 and at most
/// [`crate::limits::MAX_IMAGE_SIZE`], at least 2 noise levels (`levels_key` names the key that
/// sets them).
pub fn validate_network(model: &ModelConfig, levels_key: &str) -> Result<()> {
    if model.ngf < 2 {
        // CondInstanceNorm++ takes a variance across the ngf channels: it needs two or more.
        return Err(Error::config("ngf", format!("expected at least 2, got {}", model.ngf)));
    }
    if model.channels != 1 && model.channels != 3 {
        return Err(Error::config(
            "channels",
            format!("expected 1 (grayscale) or 3 (RGB), got {}", model.channels),
        ));
    }
    let max = crate::limits::MAX_IMAGE_SIZE;
    if model.image_size < 4 || !model.image_size.is_multiple_of(2) || model.image_size > max {
        return Err(Error::config(
            "image_size",
            format!(
                "expected an even size of at least 4 pixels (the encoder halves it) and at most {max}, got {}",
                model.image_size
            ),
        ));
    }
    if model.num_classes < 2 {
        return Err(Error::config(
            levels_key,
            format!(
                "expected at least 2 noise levels (sigma_begin is the first and sigma_end the last), got {}",
                model.num_classes
            ),
        ));
    }
    model.validate().map_err(|m| Error::config("model", m))
}

/// Keys that a resumed run may change.
pub const RESUMABLE_KEYS: &[&str] = &[
    "name",
    "steps",
    "snapshot_every",
    "keep_every",
    "log_every",
    "test_every",
    "sample_eps",
    "sample_steps_per_level",
    "sample_low_noise_steps",
    "sample_low_noise_below",
    "sample_band_low",
    "sample_band_high",
    "sample_band_factor",
    "sample_denoise",
    "fid_every",
    "fid_samples",
];

impl Overrides {
    /// Reads a TOML config file. Unknown keys and wrong types are errors naming the file,
    /// the key and what was expected.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::data(path, format!("not a valid ncsn config: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order_defaults_file_flags() {
        let file: Overrides = toml::from_str("dataset = \"cifar10\"\nbatch_size = 64\nlr = 2e-4\n").unwrap();
        let flags = Overrides {
            batch_size: Some(16),
            ..Default::default()
        };
        let c = TrainConfig::resolve(&file, &flags).unwrap();
        assert_eq!(c.batch_size, 16, "flags beat the file");
        assert_eq!(c.lr, 2e-4, "the file beats the defaults");
        assert_eq!(c.ngf, 128, "CIFAR-10 defaults where nothing overrides");
        assert!(c.random_flip);
    }

    #[test]
    fn no_data_means_mnist_with_the_reference_settings() {
        let c = TrainConfig::resolve(&Overrides::default(), &Overrides::default()).unwrap();
        assert_eq!(
            (c.dataset, c.ngf, c.channels, c.image_size),
            (DatasetKind::Mnist, 64, 1, 28)
        );
        assert!(!c.random_flip && c.dequantize);
        assert_eq!(
            (c.batch_size, c.steps, c.snapshot_every, c.lr),
            (128, 200_000, 5_000, 1e-3)
        );
        let s = c.sigmas().unwrap();
        assert_eq!(s.len(), 10);
        assert!((s[0] - 1.0).abs() < 1e-12 && (s[9] - 0.01).abs() < 1e-12);
    }

    #[test]
    fn misspelled_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "batch_size = 8\nlearning_rate = 0.1\n").unwrap();
        let err = Overrides::from_toml_file(&path).unwrap_err().to_string();
        assert!(err.contains("learning_rate") && err.contains("run.toml"), "{err}");
        std::fs::write(&path, "level_sampling = \"lognormal\"\n").unwrap();
        let err = Overrides::from_toml_file(&path).unwrap_err().to_string();
        assert!(err.contains("level_sampling") && err.contains("log-normal"), "{err}");
        std::fs::write(&path, "batch_size = \"eight\"\n").unwrap();
        let err = Overrides::from_toml_file(&path).unwrap_err().to_string();
        assert!(err.contains("batch_size"), "{err}");
        let missing = Overrides::from_toml_file(&dir.path().join("nope.toml"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.toml"), "{missing}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (toml_text, key) in [
            ("lr = -1.0", "lr"),
            ("beta2 = 1.0", "beta2"),
            ("batch_size = 0", "batch_size"),
            ("sigma_end = 2.0", "sigma_end"),
            ("channels = 2", "channels"),
            ("dataset = \"cifar10\"\nimage_size = 28", "image_size"),
            ("dataset = \"images\"", "data"),
            ("name = \"../x\"", "name"),
            ("level_center = 0.0", "level_center"),
            ("level_spread = -1.0", "level_spread"),
            ("level_share = 1.5", "level_share"),
        ] {
            let file: Overrides = toml::from_str(toml_text).unwrap();
            match TrainConfig::resolve(&file, &Overrides::default()) {
                Err(Error::Config { key: k, .. }) => assert_eq!(k, key, "{toml_text}"),
                other => panic!("{toml_text}: expected a config error on {key}, got {other:?}"),
            }
        }
    }

    #[test]
    fn resume_accepts_more_steps_and_refuses_other_settings() {
        let saved = TrainConfig::mnist();
        let ckpt = Path::new("runs/mnist");
        let longer = Overrides {
            steps: Some(300_000),
            ..Default::default()
        };
        let c = TrainConfig::resolve_resumed(&saved, &[&Overrides::default(), &longer], ckpt).unwrap();
        assert_eq!(c.steps, 300_000);
        let other = Overrides {
            ngf: Some(32),
            ..Default::default()
        };
        let err = TrainConfig::resolve_resumed(&saved, &[&Overrides::default(), &other], ckpt)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ngf` = 32") && err.contains("64"), "{err}");
    }
    #[test]
    fn every_key_of_a_config_file_is_applied() {
        // A configuration whose every value differs from the MNIST defaults, written as a TOML
        // file (as `train` writes config.toml) and read back: each key must reach the config (a
        // key the layering forgot would silently keep its default).
        let defaults = TrainConfig::mnist();
        let mut all = TrainConfig {
            name: "every-key".into(),
            seed: 99,
            dataset: DatasetKind::Mnist,
            data: Some(PathBuf::from("digits.gz")),
            test_data: Some(PathBuf::from("test.gz")),
            test_fraction: 0.25,
            dequantize: false,
            random_flip: true,
            ngf: 8,
            channels: 1,
            image_size: 16,
            sigma_begin: 2.0,
            sigma_end: 0.05,
            num_levels: 5,
            score_over_sigma: true,
            lr: 2e-4,
            lr_schedule: LrSchedule::Cosine,
            level_sampling: LevelSampling::LogNormal,
            level_center: 0.5,
            level_spread: 0.8,
            level_share: 0.9,
            beta1: 0.5,
            beta2: 0.99,
            adam_eps: 1e-6,
            batch_size: 16,
            steps: 7,
            snapshot_every: 3,
            keep_every: 6,
            log_every: 2,
            test_every: 4,
            test_batch_size: 32,
            ema: true,
            ema_rate: 0.9,
            sample_eps: 3e-5,
            sample_steps_per_level: 7,
            sample_low_noise_steps: 3,
            sample_low_noise_below: 0.25,
            sample_band_low: 0.2,
            sample_band_high: 0.5,
            sample_band_factor: 3.0,
            sample_denoise: true,
            fid_every: 0,
            fid_samples: 100,
        };
        let theirs = serde_json::to_value(&defaults).unwrap();
        for (key, value) in serde_json::to_value(&all).unwrap().as_object().unwrap() {
            // `dataset` and `channels` cannot differ for MNIST data, nor can `fid_every` be on for
            // 16x16 images (`fid_every_needs_digits` sets it); every other key differs.
            if !["dataset", "channels", "fid_every"].contains(&key.as_str()) {
                assert_ne!(Some(value), theirs.get(key), "`{key}` should differ from the default");
            }
        }
        let text = toml::to_string(&all).unwrap();
        let file: Overrides = toml::from_str(&text).unwrap();
        assert_eq!(TrainConfig::resolve(&file, &Overrides::default()).unwrap(), all);
        // The same through flags on top of an empty file.
        all.name = "flags".into();
        let flags: Overrides = toml::from_str(&toml::to_string(&all).unwrap()).unwrap();
        assert_eq!(TrainConfig::resolve(&Overrides::default(), &flags).unwrap(), all);
    }

    #[test]
    fn low_noise_steps_need_both_keys() {
        let base = TrainConfig::mnist();
        assert_eq!(base.sample_low_noise().unwrap(), None);
        let both = TrainConfig {
            sample_low_noise_steps: 3,
            sample_low_noise_below: 0.3,
            ..base.clone()
        };
        both.validate().unwrap();
        assert_eq!(
            both.sample_low_noise().unwrap(),
            Some(LowNoiseSteps { below: 0.3, steps: 3 })
        );
        for (steps, below, key) in [
            (3, 0.0, "`sample_low_noise_below`"),
            (0, 0.3, "`sample_low_noise_steps`"),
            (3, -0.1, "`sample_low_noise_below`"),
            (3, f64::INFINITY, "`sample_low_noise_below`"),
        ] {
            let one = TrainConfig {
                sample_low_noise_steps: steps,
                sample_low_noise_below: below,
                ..base.clone()
            };
            let err = one.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{steps} {below}: {err}");
        }
    }

    #[test]
    fn a_step_band_needs_its_ends_and_names_the_wrong_key() {
        let base = TrainConfig::mnist();
        assert_eq!(base.sample_step_band().unwrap(), None);
        let band = TrainConfig {
            sample_band_low: 0.2,
            sample_band_high: 0.5,
            sample_band_factor: 3.0,
            ..base.clone()
        };
        band.validate().unwrap();
        assert_eq!(
            band.sample_step_band().unwrap(),
            Some(StepBand {
                low: 0.2,
                high: 0.5,
                factor: 3.0
            })
        );
        for (low, high, factor, key) in [
            (0.0, 0.0, 3.0, "`sample_band_factor`"),
            (0.0, 0.5, 3.0, "`sample_band_low`"),
            (0.2, 0.0, 3.0, "`sample_band_high`"),
            (0.6, 0.5, 3.0, "`sample_band_low`"),
            (0.2, 0.5, -1.0, "`sample_band_factor`"),
            (0.2, f64::NAN, 3.0, "`sample_band_high`"),
        ] {
            let one = TrainConfig {
                sample_band_low: low,
                sample_band_high: high,
                sample_band_factor: factor,
                ..base.clone()
            };
            let err = one.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{low} {high} {factor}: {err}");
        }
    }

    #[test]
    fn fid_every_needs_digits_and_more_samples_than_features() {
        let digits = TrainConfig {
            fid_every: 100,
            ..TrainConfig::mnist()
        };
        digits.validate().unwrap();
        let small = TrainConfig {
            image_size: 16,
            ..digits.clone()
        };
        let err = small.validate().unwrap_err().to_string();
        assert!(err.contains("`fid_every`") && err.contains("1x16x16"), "{err}");
        let few = TrainConfig {
            fid_samples: 64,
            ..digits
        };
        let err = few.validate().unwrap_err().to_string();
        assert!(err.contains("`fid_samples`") && err.contains("64"), "{err}");
    }

    #[test]
    fn a_configuration_saved_before_the_sampler_keys_reads_with_their_defaults() {
        let mut old = serde_json::to_value(TrainConfig::mnist()).unwrap();
        let map = old.as_object_mut().unwrap();
        for key in [
            "sample_eps",
            "sample_steps_per_level",
            "sample_low_noise_steps",
            "sample_low_noise_below",
            "sample_denoise",
            "fid_every",
            "fid_samples",
        ] {
            assert!(map.remove(key).is_some(), "{key}");
        }
        let read: TrainConfig = serde_json::from_value(old).unwrap();
        assert_eq!(read, TrainConfig::mnist());
    }

    #[test]
    fn help_shows_the_defaults_of_the_data_sets() {
        // Read from the defaults themselves, so a changed default changes the help.
        assert_eq!(
            flag_help("ngf", "Base width", None),
            "Base width [default: 128 for cifar10 and images, 64 for mnist]"
        );
        assert_eq!(
            flag_help("lr", "Adam learning rate", None),
            "Adam learning rate [default: 0.001]"
        );
        assert_eq!(
            flag_help("name", "Run name", None),
            "Run name [default: cifar10 for cifar10, mnist for mnist, images for images]"
        );
        let mut command = <Overrides as clap::Args>::augment_args(clap::Command::new("train"));
        let help = command.render_help().to_string();
        assert!(
            help.contains("[default: 200000]") && help.contains("--batch-size"),
            "{help}"
        );
    }
}
