//! Training NCSN: noise-conditional denoising score matching with Adam (Song & Ermon 2019,
//! Section 4.2), reproducible from the seed and resumable from any checkpoint.
//!
//! One step:
//!
//! ```text
//! x      <- next batch (shuffled every epoch; dequantised, flipped)     [B, C, H, W] in [0, 1]
//! i      <- a level index per example (uniform unless level_sampling)   [B]
//! z      <- N(0, I)                                                     [B, C, H, W]
//! loss   =  1/B sum_b 1/2 sigma_{i_b}^2 || s(x_b + sigma_{i_b} z_b, i_b) + z_b / sigma_{i_b} ||^2
//! theta  <- Adam(theta, grad loss) at rate lr_t;  ema <- mu ema + (1 - mu) theta
//! ```
//!
//! with `lr_t = lr` (the paper's) or a cosine from `lr` to 0 over the run (`lr_schedule`).
//! The levels are drawn uniformly as in the paper, or more often near a level `level_center`
//! (`level_sampling = "log-normal"`, [`score_matching::levels`]); the test loss always draws
//! them uniformly, so that runs of either kind report the same quantity.
//!
//! Every random draw (data order, dequantisation, flips, levels, noise, initial weights) comes
//! from ChaCha8 generators seeded from `seed`, and a checkpoint stores their positions, so a
//! resumed run computes exactly what the uninterrupted run would have.
//!
//! - [`checkpoint`]: the run state and the files of a checkpoint (one save, one read);
//! - [`ema`]: the moving average of the weights;
//! - [`fid`]: the FID of samples every `fid_every` steps;
//! - [`log`], [`plot`]: `loss.csv` and `loss.png` (losses, and the FID when it is measured).
pub mod checkpoint;
pub mod ema;
pub mod fid;
pub mod log;
pub mod plot;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use score_matching::anneal_dsm::{anneal_dsm_per_example, draw_levels, per_level_means, sigmas_tensor};

use crate::config::{Overrides, TrainConfig};
use crate::data::{load_train_test, Batcher, ImageSet};
use crate::error::{Error, Result};
use crate::fsutil::{remove_temporaries, write_atomic, RunLock};
use crate::model::{build_model, score_of, CondRefineNetDilated};
use crate::progress::Progress;
use crate::training::ema::Ema;
use crate::training::log::{LogRow, LossLog, Split};
use crate::training::plot::plot_losses;
use crate::vars::{load_into, named_vars, stored_tensor_error};
use checkpoint::{Checkpoint, LossAccumulator, RunState, FORMAT};
use workbench::{Adam, AdamConfig};

/// Stream of the test generator (the training generator uses stream 0, epoch `e`'s data order
/// stream `e + 1`).
const TEST_STREAM: u64 = u64::MAX;
/// Stream from which the seed of the initial weights is drawn.
const INIT_STREAM: u64 = u64::MAX - 1;

/// File names in a run folder.
pub const LOSS_CSV: &str = "loss.csv";
/// The loss figure.
pub const LOSS_PNG: &str = "loss.png";
/// Folder of the samples of each `fid_every` evaluation (`step-<k>.png`, the first 64).
pub const FID_SAMPLES: &str = "fid-samples";
/// The resolved configuration, usable again as `--config`.
pub const CONFIG_TOML: &str = "config.toml";

/// A model being trained, with its optimizer, data and random generators. Its [`RunState`]
/// (step, generators, loader positions, loss since the last log row, configuration) is what
/// `checkpoint.json` holds; the tensors (weights, Adam's moments, EMA) go to the weights file.
pub struct Trainer {
    state: RunState,
    sigmas_t: Tensor,
    device: Device,
    varmap: VarMap,
    model: CondRefineNetDilated,
    adam: Adam,
    ema: Option<Ema>,
    train: Batcher,
    test: Batcher,
    phases: StepPhases,
}

/// Where the last training step spent its time (host wall time: on a GPU, kernels still
/// running at the end of a phase are counted in a later one).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepPhases {
    /// Drawing the batch, the levels and the noise, and moving them to the device.
    pub data: Duration,
    /// The forward pass and the loss (up to reading the loss back).
    pub forward: Duration,
    /// The backward pass.
    pub backward: Duration,
    /// Adam and the EMA update.
    pub update: Duration,
}

impl Trainer {
    /// A fresh run: loads the data and builds the model with weights drawn from the seed.
    pub fn new(config: TrainConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let needs = crate::limits::training_needs(&config.model_config(), config.batch_size, "batch_size", config.ema);
        crate::limits::check("ncsn train", &needs)?;
        let (train, test) = load_train_test(&config.data_spec())?;
        Self::with_data(config, train, test, device)
    }

    /// A fresh run on images already in memory (`config`'s data fields are not read), with
    /// weights drawn from the seed.
    pub fn with_data(config: TrainConfig, train: ImageSet, test: ImageSet, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
        init_rng.set_stream(INIT_STREAM);
        let (varmap, model) = build_model(&config.model_config(), DType::F32, device, Some(init_rng.next_u64()))?;
        Self::from_weights(config, varmap, model, train, test, device)
    }

    /// A fresh run (step 0, a new Adam, the EMA starting at these weights) from given weights:
    /// `model` and its variables `varmap`, e.g. a loaded model to fine-tune
    /// ([`crate::load::LoadedModel`]'s `model` and `params`). The network must have the shape
    /// of `config`.
    pub fn from_weights(
        config: TrainConfig,
        varmap: VarMap,
        model: CondRefineNetDilated,
        train: ImageSet,
        test: ImageSet,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        if *model.config() != config.model_config() {
            return Err(Error::Argument(format!(
                "Trainer::from_weights: the network is {:?}, the configuration asks for {:?}",
                model.config(),
                config.model_config()
            )));
        }
        let sigmas = config.sigmas()?;
        let vars = named_vars(&varmap);
        let adam = Adam::new(
            vars.clone(),
            AdamConfig {
                lr: config.lr,
                beta1: config.beta1,
                beta2: config.beta2,
                eps: config.adam_eps,
            },
        )?;
        let ema = if config.ema {
            Some(Ema::new(vars, config.ema_rate)?)
        } else {
            None
        };
        let mut test_rng = ChaCha8Rng::seed_from_u64(config.seed);
        test_rng.set_stream(TEST_STREAM);
        let train = Batcher::shuffled(
            train,
            config.batch_size,
            config.seed,
            config.random_flip,
            config.dequantize,
        );
        let test = Batcher::sequential(test, config.test_batch_size, config.dequantize);
        let state = RunState {
            format: FORMAT.into(),
            step: 0,
            weights: checkpoint::weights_name(0),
            model: config.model_config(),
            adam_steps: adam.steps(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            test_rng,
            train_loader: train.state(),
            test_loader: test.state(),
            loss_accumulator: LossAccumulator::new(sigmas.len()),
            sigmas,
            config,
        };
        Ok(Self {
            sigmas_t: sigmas_tensor(&state.sigmas, device)?,
            state,
            device: device.clone(),
            varmap,
            model,
            adam,
            ema,
            train,
            test,
            phases: StepPhases::default(),
        })
    }

    /// Continues the run of `checkpoint` with its configuration, changed by the layers
    /// `overrides` (a file, then flags) in the keys [`crate::config::RESUMABLE_KEYS`] only: loads
    /// its data, and sets the weights, Adam's state, the EMA, the generators and the loaders'
    /// positions from it, so that the run goes on exactly as if it had not stopped.
    pub fn resume(checkpoint: Checkpoint, overrides: &[&Overrides], device: &Device) -> Result<Self> {
        let Checkpoint {
            json,
            weights,
            state,
            tensors,
        } = checkpoint;
        let config = TrainConfig::resolve_resumed(&state.config, overrides, &json)?;
        if config.steps < state.step {
            return Err(Error::config(
                "steps",
                format!(
                    "the run in {} is already at step {}, past --steps {}: give a larger --steps to train longer",
                    json.parent().unwrap_or(Path::new(".")).display(),
                    state.step,
                    config.steps
                ),
            ));
        }
        let needs = crate::limits::training_needs(&config.model_config(), config.batch_size, "batch_size", config.ema);
        crate::limits::check("ncsn train", &needs)?;
        let (train, test) = load_train_test(&config.data_spec())?;
        let (varmap, model) = build_model(&config.model_config(), DType::F32, device, None)?;
        load_into(&named_vars(&varmap), &tensors, "model.", &weights)?;
        let mut t = Self::from_weights(config.clone(), varmap, model, train, test, device)?;
        t.adam
            .load_state(&tensors, state.adam_steps)
            .map_err(|e| stored_tensor_error(&weights, e))?;
        if let Some(ema) = &mut t.ema {
            ema.load_state(&tensors, &weights)?;
        }
        for (key, loader, position) in [
            ("train_loader", &mut t.train, state.train_loader),
            ("test_loader", &mut t.test, state.test_loader),
        ] {
            if position.cursor > loader.len() {
                return Err(Error::checkpoint(
                    &json,
                    format!(
                        "its `{key}` is at image {} of an epoch, past the {} images of the data",
                        position.cursor,
                        loader.len()
                    ),
                ));
            }
            loader.restore(position);
        }
        t.state = RunState { config, ..state };
        Ok(t)
    }

    /// Where the last [`Trainer::train_step`] spent its time.
    pub fn last_step_phases(&self) -> StepPhases {
        self.phases
    }

    /// Steps done.
    pub fn step(&self) -> u64 {
        self.state.step
    }
    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.state.config
    }
    /// The run state, as the next checkpoint will store it.
    pub fn state(&self) -> &RunState {
        &self.state
    }
    /// The noise levels.
    pub fn sigmas(&self) -> &[f64] {
        &self.state.sigmas
    }
    /// The device the run trains on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The EMA weights as named tensors `ema.<param>`, when the run keeps an EMA.
    pub fn ema_tensors(&self) -> Option<std::collections::HashMap<String, Tensor>> {
        self.ema.as_ref().map(|ema| ema.state_tensors().into_iter().collect())
    }

    /// The model's variables, the parameters Adam updates.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }
    /// The score network.
    pub fn model(&self) -> &CondRefineNetDilated {
        &self.model
    }
    /// Number of training and test images.
    pub fn data_sizes(&self) -> (usize, usize) {
        (self.train.len(), self.test.len())
    }

    /// One optimisation step on the next batch, with levels and noise drawn from the run's
    /// generator ([`Trainer::train_step_on`]); returns the batch's mean loss.
    pub fn train_step(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        let x = self
            .train
            .next_batch(&mut self.state.rng, &self.device)?
            .ok_or_else(|| Error::Argument("Trainer: the training set is empty".into()))?;
        self.state.train_loader = self.train.state();
        let b = x.dim(0)?;
        let distribution = self.state.config.level_distribution();
        let levels = distribution.draw(&mut self.state.rng, b, &self.state.sigmas, &self.device)?;
        let z = langevin::randn_tensor(&mut self.state.rng, x.dims(), DType::F32, &self.device)?;
        let data = t0.elapsed();
        let value = self.train_step_on(&x, &levels, &z)?;
        self.phases.data = data;
        Ok(value)
    }

    /// One optimisation step on a given batch: images `x` `[B, C, H, W]` in `[0, 1]`, level
    /// indices `levels` (`u32` `[B]`) and noise `z` (the shape of `x`); Adam on the loss's
    /// gradient, then the EMA. Returns the batch's mean loss; a non-finite loss is an error and
    /// leaves the weights as they were.
    pub fn train_step_on(&mut self, x: &Tensor, levels: &Tensor, z: &Tensor) -> Result<f64> {
        let t1 = Instant::now();
        let (model, sigmas, over) = (&self.model, &self.sigmas_t, self.state.config.score_over_sigma);
        let per = anneal_dsm_per_example(|xt, l| score_of(model, xt, l, sigmas, over), x, z, levels, sigmas)?;
        let loss = per.mean_all()?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        let t2 = Instant::now();
        let grads = loss.backward()?;
        let t3 = Instant::now();
        if !value.is_finite() {
            return Err(self.diverged(value));
        }
        let config = &self.state.config;
        let lr = config.lr_schedule.rate(config.lr, self.state.step, config.steps);
        self.adam.set_learning_rate(lr);
        self.adam.step(&grads)?;
        if let Some(ema) = &mut self.ema {
            ema.update()?;
        }
        self.phases = StepPhases {
            data: Duration::ZERO,
            forward: t2 - t1,
            backward: t3 - t2,
            update: t3.elapsed(),
        };
        let state = &mut self.state;
        state.step += 1;
        state.adam_steps = self.adam.steps();
        state.weights = checkpoint::weights_name(state.step);
        let losses = per.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        state.loss_accumulator.add(&losses, &levels.to_vec1::<u32>()?);
        Ok(value)
    }

    /// The error for a non-finite training loss: what was already non-finite (weights, Adam's
    /// state) and the settings that can cause it.
    fn diverged(&self, value: f64) -> Error {
        let state: Vec<(String, Tensor)> = self.state_tensors();
        let culprit = match crate::vars::first_non_finite(state.iter().map(|(n, t)| (n.as_str(), t))) {
            Ok(Some((name, count))) => format!(
                "tensor `{name}` already held {count} non-finite value(s) before it, so an earlier update diverged"
            ),
            Ok(None) => "no weight and no value of Adam's state was non-finite before it, so this step's \
                         computation overflowed"
                .to_string(),
            Err(e) => format!("the weights could not be checked: {e}"),
        };
        Error::NonFinite(format!(
            "the training loss became {value} at step {}; {culprit}. {}",
            self.state.step + 1,
            self.state.config.non_finite_suspects()
        ))
    }

    /// The weights (`model.*`), Adam's moments and the EMA as named tensors.
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<(String, Tensor)> = named_vars(&self.varmap)
            .into_iter()
            .map(|(n, v)| (format!("model.{n}"), v.as_tensor().clone()))
            .collect();
        tensors.extend(self.adam.state_tensors());
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state_tensors());
        }
        tensors
    }

    /// The loss on the next test batch (its own generator, so testing does not change training),
    /// overall and per level, with levels drawn uniformly whatever `level_sampling` is (the
    /// paper's objective, comparable between runs); `None` without test images.
    pub fn test_loss(&mut self) -> Result<Option<(f64, Vec<Option<f64>>)>> {
        let Some(x) = self.test.next_batch(&mut self.state.test_rng, &self.device)? else {
            return Ok(None);
        };
        self.state.test_loader = self.test.state();
        let b = x.dim(0)?;
        let levels = draw_levels(&mut self.state.test_rng, b, self.state.sigmas.len(), &self.device)?;
        let z = langevin::randn_tensor(&mut self.state.test_rng, x.dims(), DType::F32, &self.device)?;
        let (model, sigmas, over) = (&self.model, &self.sigmas_t, self.state.config.score_over_sigma);
        let per =
            anneal_dsm_per_example(|xt, l| score_of(model, xt, l, sigmas, over), &x, &z, &levels, sigmas)?.detach();
        let mean = f64::from(per.mean_all()?.to_scalar::<f32>()?);
        Ok(Some((mean, per_level_means(&per, &levels, self.state.sigmas.len())?)))
    }

    /// Takes the training loss accumulated since the last call (mean, per-level means).
    pub fn take_train_loss(&mut self) -> (f64, Vec<Option<f64>>) {
        let levels = self.state.sigmas.len();
        std::mem::replace(&mut self.state.loss_accumulator, LossAccumulator::new(levels)).means()
    }

    /// Writes a checkpoint (the run state and the tensors) into the run folder `dir`; returns the
    /// path of its `checkpoint.json`.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        checkpoint::save(dir, &self.state, self.state_tensors())
    }
}

/// Where and how a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder (checkpoints, `loss.csv`, `loss.png`, `config.toml`).
    pub out_dir: PathBuf,
    /// Progress reporting.
    pub progress: Progress,
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The step the run started at (0, or the checkpoint's).
    pub start_step: u64,
    /// The step it ended at.
    pub end_step: u64,
    /// Every row of the log (including those before a resume).
    pub rows: Vec<LogRow>,
    /// The last checkpoint's `checkpoint.json`.
    pub checkpoint: PathBuf,
    /// Wall time of the training loop, seconds.
    pub seconds: f64,
}

/// Starts a new run in `options.out_dir`, which must not hold a checkpoint already, nor be in
/// use by another process.
pub fn train_new(config: TrainConfig, device: &Device, options: &RunOptions) -> Result<RunSummary> {
    let dir = &options.out_dir;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::config(
            "out",
            format!("the run folder {} is a file; expected a folder", dir.display()),
        ));
    }
    let _lock = RunLock::acquire(dir)?;
    let existing = dir.join(checkpoint::CHECKPOINT_JSON);
    if existing.exists() {
        return Err(Error::checkpoint(
            &existing,
            format!(
                "the run folder {} already holds a checkpoint; continue it with --resume {} or choose another \
                 --name or --out",
                dir.display(),
                dir.display()
            ),
        ));
    }
    remove_temporaries(dir);
    checkpoint::remove_stale_weights(dir, None);
    write_config_toml(dir, &config)?;
    let mut trainer = Trainer::new(config, device)?;
    let mut log = LossLog::create(&dir.join(LOSS_CSV), trainer.sigmas())?;
    run(&mut trainer, &mut log, options)
}

/// Writes the run's resolved settings to `dir/config.toml` (atomically), the file that
/// `--config runs/<name>/config.toml` repeats the run from.
fn write_config_toml(dir: &Path, config: &TrainConfig) -> Result<()> {
    let text = toml::to_string(config).map_err(|e| Error::config("config", e.to_string()))?;
    Ok(write_atomic(&dir.join(CONFIG_TOML), text.as_bytes())?)
}

/// Continues the run of the checkpoint at `path` (a run folder or its `checkpoint.json`) in its
/// folder; `file` and `flags` may change only [`crate::config::RESUMABLE_KEYS`].
pub fn train_resume(
    path: &Path,
    file: &Overrides,
    flags: &Overrides,
    device: &Device,
    progress: Progress,
) -> Result<RunSummary> {
    let json = checkpoint::meta_path(path);
    let dir = json.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Locked before reading: another writer could be between two files of a save.
    let _lock = if dir.is_dir() {
        Some(RunLock::acquire(&dir)?)
    } else {
        None
    };
    let checkpoint = Checkpoint::open(&json, device)?;
    let keep = checkpoint.state.weights.clone();
    let recorded = checkpoint.state.config.clone();
    let mut trainer = Trainer::resume(checkpoint, &[file, flags], device)?;
    remove_temporaries(&dir);
    checkpoint::remove_stale_weights(&dir, Some(&keep));
    let changed: Vec<String> = recorded
        .differences(trainer.config())
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    if !changed.is_empty() {
        // The changed settings are the run's from now on: config.toml says so at once, and
        // checkpoint.json at the next save, or now for a run already at its last step (which
        // saves no more), e.g. one whose sampler is being set.
        write_config_toml(&dir, trainer.config())?;
        if trainer.step() == trainer.config().steps {
            trainer.save(&dir)?;
            if progress != Progress::Quiet {
                eprintln!(
                    "recorded the run's new {} in {} and {}",
                    changed.join(", "),
                    CONFIG_TOML,
                    checkpoint::CHECKPOINT_JSON
                );
            }
        }
    }
    let mut log = LossLog::resume(&dir.join(LOSS_CSV), trainer.sigmas(), trainer.step())?;
    run(&mut trainer, &mut log, &RunOptions { out_dir: dir, progress })
}

/// The training loop: steps until `config.steps`, logging, testing, plotting and checkpointing.
pub fn run(trainer: &mut Trainer, log: &mut LossLog, options: &RunOptions) -> Result<RunSummary> {
    let dir = options.out_dir.clone();
    let total = trainer.config().steps;
    let start_step = trainer.step();
    let c = trainer.config();
    let title = format!(
        "NCSN run \"{}\": {}, ngf {}, batch {}, L = {}",
        c.name,
        c.dataset.name(),
        c.ngf,
        c.batch_size,
        c.num_levels
    );
    let bar = crate::progress::bar(options.progress, total);
    bar.set_position(start_step);
    // Every log row as a line when not on a terminal; on a terminal the bar shows the training
    // loss, and only test losses and checkpoints get a line above it.
    let say = |line: String| {
        if options.progress == Progress::Lines {
            eprintln!("{line}");
        }
    };
    let announce = |line: String| match options.progress {
        Progress::Lines => eprintln!("{line}"),
        Progress::Bar => bar.println(line),
        Progress::Quiet => {}
    };
    let (n_train, n_test) = trainer.data_sizes();
    announce(format!(
        "ncsn train: {} training and {} test images, steps {start_step} -> {total}, run folder {}",
        n_train,
        n_test,
        dir.display()
    ));
    let started = Instant::now();
    let mut interval_start = Instant::now();
    let mut interval_images = 0usize;
    // Time spent measuring samples (`fid_every`) since `interval_start`: not training time.
    let mut interval_measuring = Duration::ZERO;
    let mut last_rate = 0.0;
    let mut measure_seconds = 0.0; // the last evaluation's, for the time left
    let mut checkpoint = dir.join(checkpoint::CHECKPOINT_JSON);
    let fid_every = trainer.config().fid_every;
    let probe = if fid_every > 0 && start_step < total {
        announce(format!(
            "measuring the training images for the FID of {} samples every {fid_every} steps",
            trainer.config().fid_samples
        ));
        Some(fid::FidProbe::new(trainer.config(), trainer.device())?)
    } else {
        None
    };
    let levels = trainer.sigmas().len();
    while trainer.step() < total {
        let loss = trainer.train_step()?;
        let step = trainer.step();
        interval_images += trainer.train.batch_size();
        bar.set_position(step);
        // Rows only at multiples of log_every / test_every, so that where a run was stopped and
        // resumed leaves no trace in the log.
        let log_now = step.is_multiple_of(trainer.config().log_every);
        if log_now {
            let training = interval_start.elapsed().saturating_sub(interval_measuring);
            let rate = interval_images as f64 / training.as_secs_f64().max(1e-9);
            let (mean, per_level) = trainer.take_train_loss();
            bar.set_message(format!("loss {mean:.4} | {rate:.1} img/s"));
            // Time left at the current rate: the remaining steps' images over images per second,
            // and the evaluations still to come at the last one's time.
            let evaluations_left = if probe.is_some() {
                total / fid_every - step / fid_every
            } else {
                0
            };
            let left = (total - step) as f64 * trainer.train.batch_size() as f64 / rate.max(1e-9)
                + evaluations_left as f64 * measure_seconds;
            say(format!(
                "step {step:>7}/{total}  train loss {mean:.5}  {rate:.1} img/s  eta {}",
                clock(left)
            ));
            log.push(LogRow {
                step,
                split: Split::Train,
                loss: mean,
                images_per_s: Some(rate),
                per_level,
            })?;
            interval_start = Instant::now();
            interval_images = 0;
            interval_measuring = Duration::ZERO;
            last_rate = rate;
        } else if options.progress == Progress::Bar {
            bar.set_message(format!("loss {loss:.4} | {last_rate:.1} img/s"));
        }
        if step.is_multiple_of(trainer.config().test_every) {
            if let Some((mean, per_level)) = trainer.test_loss()? {
                announce(format!("step {step:>7}  test loss  {mean:.5}"));
                log.push(LogRow {
                    step,
                    split: Split::Test,
                    loss: mean,
                    images_per_s: None,
                    per_level,
                })?;
            }
            plot_or_warn(log.rows(), trainer.sigmas(), &title, &dir.join(LOSS_PNG), &announce);
        }
        if let Some(probe) = probe.as_ref().filter(|_| step.is_multiple_of(fid_every)) {
            // A failed measurement (e.g. chains that diverged this early) is a warning: training goes on.
            let measuring = Instant::now();
            let evaluated = probe.evaluate(trainer);
            let took = measuring.elapsed();
            interval_measuring += took;
            measure_seconds = took.as_secs_f64();
            match evaluated {
                Ok(point) => {
                    announce(format!(
                        "step {step:>7}  FID {:.3} ({} samples, {:.0}% confident digits, {})",
                        point.fid,
                        trainer.config().fid_samples,
                        100.0 * point.confident_share,
                        point.class_range()
                    ));
                    let measures = [(Split::Fid, point.fid), (Split::Sure, point.confident_share)]
                        .into_iter()
                        .chain(
                            point
                                .class_shares
                                .iter()
                                .enumerate()
                                .map(|(k, &share)| (Split::Class(k), share)),
                        );
                    for (split, value) in measures {
                        log.push(LogRow {
                            step,
                            split,
                            loss: value,
                            images_per_s: None,
                            per_level: vec![None; levels],
                        })?;
                    }
                    plot_or_warn(log.rows(), trainer.sigmas(), &title, &dir.join(LOSS_PNG), &announce);
                    if let Err(e) = save_fid_samples(&point.shown, &dir, step) {
                        announce(format!(
                            "warning: the samples' picture was not written ({e}); training goes on"
                        ));
                    }
                }
                Err(e) => announce(format!("step {step:>7}  warning: no FID this time: {e}")),
            }
        }
        if step.is_multiple_of(trainer.config().snapshot_every) || step == total {
            checkpoint = trainer.save(&dir)?;
            announce(format!("step {step:>7}  checkpoint {}", checkpoint.display()));
        }
    }
    bar.finish_and_clear();
    plot_or_warn(log.rows(), trainer.sigmas(), &title, &dir.join(LOSS_PNG), &announce);
    if start_step == total {
        announce(format!(
            "the run is already at step {total} = --steps: nothing to do (give a larger --steps to train longer)"
        ));
    }
    Ok(RunSummary {
        start_step,
        end_step: trainer.step(),
        rows: log.rows().to_vec(),
        checkpoint,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes the samples of the FID at `step` as `<dir>/fid-samples/step-<step>.png`.
fn save_fid_samples(shown: &Tensor, dir: &Path, step: u64) -> Result<()> {
    let folder = dir.join(FID_SAMPLES);
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let picture = crate::sampling::images::grid(shown, 2)?;
    crate::sampling::images::save_png(&picture, &folder.join(format!("step-{step:06}.png")))
}

/// Seconds as `h:mm:ss` (or `m:ss` under an hour), for the time left.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Draws `loss.png`; a failure is a warning, not the end of the run (`loss.csv` holds the data).
fn plot_or_warn(rows: &[LogRow], sigmas: &[f64], title: &str, path: &Path, announce: &impl Fn(String)) {
    if let Err(e) = plot_losses(rows, sigmas, title, path) {
        announce(format!(
            "warning: the loss figure was not written ({e}); training goes on, the losses are in {LOSS_CSV}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn training_draws_its_levels_from_level_sampling() {
        use crate::config::{LevelSampling, TrainConfig};
        use crate::data::ImageSet;
        use crate::model::build_model;
        use candle_core::{DType, Device};

        // The levels each step trained on, as the loss log sees them: which levels drew an
        // example over six steps of four images.
        fn trained_levels(config: TrainConfig) -> Vec<usize> {
            let (params, net) = build_model(&config.model_config(), DType::F32, &Device::Cpu, Some(3)).unwrap();
            let images = ImageSet::new((0..8 * 64).map(|i| (i * 37 % 256) as u8).collect(), 1, 8, 8).unwrap();
            let empty = ImageSet::new(Vec::new(), 1, 8, 8).unwrap();
            let mut trainer = super::Trainer::from_weights(config, params, net, images, empty, &Device::Cpu).unwrap();
            for _ in 0..6 {
                trainer.train_step().unwrap();
            }
            let (_, per_level) = trainer.take_train_loss();
            (0..per_level.len()).filter(|&i| per_level[i].is_some()).collect()
        }
        let uniform = TrainConfig {
            ngf: 4,
            image_size: 8,
            num_levels: 4,
            batch_size: 4,
            ..TrainConfig::mnist()
        };
        // 24 uniform draws miss a given level with probability (3/4)^24 = 0.1%; this seed's hit all.
        assert_eq!(trained_levels(uniform.clone()), vec![0, 1, 2, 3]);
        // A log-normal this narrow around the third level (0.046 of 1, 0.22, 0.046, 0.01) puts
        // the others at least ln(0.22 / 0.046) / 0.01 = 154 standard deviations of ln sigma away:
        // only the third level is ever drawn.
        let narrow = TrainConfig {
            level_sampling: LevelSampling::LogNormal,
            level_center: uniform.sigmas().unwrap()[2],
            level_spread: 0.01,
            level_share: 1.0,
            ..uniform
        };
        assert_eq!(trained_levels(narrow), vec![2]);
    }

    #[test]
    fn time_left_reads_as_a_clock() {
        assert_eq!(clock(0.4), "0:00");
        assert_eq!(clock(59.6), "1:00");
        assert_eq!(clock(3599.0), "59:59");
        assert_eq!(clock(3600.0 * 2.0 + 61.0), "2:01:01");
    }
}
