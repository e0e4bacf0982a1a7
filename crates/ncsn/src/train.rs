//! Training NCSN: noise-conditional denoising score matching with Adam (Song & Ermon 2019,
//! Section 4.2), reproducible from the seed and resumable from any checkpoint.
//!
//! One step:
//!
//! ```text
//! x      <- next batch (shuffled every epoch; dequantised, flipped)     [B, C, H, W] in [0, 1]
//! i      <- uniform level index per example                             [B]
//! z      <- N(0, I)                                                     [B, C, H, W]
//! loss   =  1/B sum_b 1/2 sigma_{i_b}^2 || s(x_b + sigma_{i_b} z_b, i_b) + z_b / sigma_{i_b} ||^2
//! theta  <- Adam(theta, grad loss);  ema <- mu ema + (1 - mu) theta
//! ```
//!
//! Every random draw (data order, dequantisation, flips, levels, noise, initial weights) comes
//! from ChaCha8 generators seeded from `seed`, and a checkpoint stores their positions, so a
//! resumed run computes exactly what the uninterrupted run would have.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use indicatif::ProgressBar;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use score_matching::anneal_dsm::{anneal_dsm_per_example, draw_levels, per_level_means, sigmas_tensor};

use crate::checkpoint::{self, CheckpointMeta, LossAccumulator, FORMAT};
use crate::config::{Overrides, TrainConfig};
use crate::data::{load_train_test, Batcher, ImageSet};
use crate::ema::Ema;
use crate::error::{Error, Result};
use crate::fsutil::{remove_temporaries, write_atomic, RunLock};
use crate::log::{LogRow, LossLog, Split};
use crate::model::CondRefineNetDilated;
use crate::plot::plot_losses;
use crate::vars::{load_into, named_vars, stored_tensor_error};
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
/// The resolved configuration, usable again as `--config`.
pub const CONFIG_TOML: &str = "config.toml";

/// A model being trained, with its optimizer, data and random generators.
pub struct Trainer {
    config: TrainConfig,
    sigmas: Vec<f64>,
    sigmas_t: Tensor,
    device: Device,
    varmap: VarMap,
    model: CondRefineNetDilated,
    adam: Adam,
    ema: Option<Ema>,
    rng: ChaCha8Rng,
    test_rng: ChaCha8Rng,
    train: Batcher,
    test: Batcher,
    step: u64,
    acc: LossAccumulator,
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
        let (train, test) = load_train_test(&config)?;
        Self::with_data(config, train, test, device)
    }

    /// A fresh run on images already in memory (`config`'s data fields are not read).
    pub fn with_data(config: TrainConfig, train: ImageSet, test: ImageSet, device: &Device) -> Result<Self> {
        config.validate()?;
        let sigmas = config.sigmas()?;
        let mut init_rng = ChaCha8Rng::seed_from_u64(config.seed);
        init_rng.set_stream(INIT_STREAM);
        let (varmap, model) = checkpoint::build_model(&config.model_config(), device, Some(init_rng.next_u64()))?;
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
        Ok(Self {
            sigmas_t: sigmas_tensor(&sigmas, device)?,
            acc: LossAccumulator::new(sigmas.len()),
            sigmas,
            device: device.clone(),
            varmap,
            model,
            adam,
            ema,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            test_rng,
            train: Batcher::shuffled(
                train,
                config.batch_size,
                config.seed,
                config.random_flip,
                config.dequantize,
            ),
            test: Batcher::sequential(test, config.test_batch_size, config.dequantize),
            step: 0,
            phases: StepPhases::default(),
            config,
        })
    }

    /// Continues the run of the checkpoint at `path` (a run folder or its `checkpoint.json`)
    /// with `config` (the checkpoint's, possibly with more steps: see
    /// [`TrainConfig::resolve_resumed`]).
    pub fn from_checkpoint(path: &Path, config: TrainConfig, device: &Device) -> Result<Self> {
        let json = checkpoint::meta_path(path);
        let meta = checkpoint::read_meta(&json)?;
        let changed: Vec<String> = config
            .differences(&meta.config)
            .into_iter()
            .filter(|(k, _, _)| !crate::config::RESUMABLE_KEYS.contains(&k.as_str()))
            .map(|(k, ours, theirs)| format!("`{k}` = {ours} (the checkpoint has {theirs})"))
            .collect();
        if !changed.is_empty() {
            return Err(Error::checkpoint(
                &json,
                format!("was made with another configuration: {}", changed.join(", ")),
            ));
        }
        let tensors = checkpoint::read_tensors(&json, &meta, device)?;
        let weights = json.parent().unwrap_or(Path::new(".")).join(&meta.weights);
        let mut t = Self::new(config, device)?;
        let vars = named_vars(&t.varmap);
        checkpoint::check_no_extra(&tensors, &vars, t.config.ema, &weights)?;
        load_into(&vars, &tensors, "model.", &weights)?;
        t.adam
            .load_state(&tensors, meta.adam_steps)
            .map_err(|e| stored_tensor_error(&weights, e))?;
        if let Some(ema) = &mut t.ema {
            ema.load_state(&tensors, &weights)?;
        }
        t.rng = meta.rng;
        t.test_rng = meta.test_rng;
        for (key, loader, state) in [
            ("train_loader", &mut t.train, meta.train_loader),
            ("test_loader", &mut t.test, meta.test_loader),
        ] {
            if state.cursor > loader.len() {
                return Err(Error::checkpoint(
                    &json,
                    format!(
                        "its `{key}` is at image {} of an epoch, past the {} images of the data",
                        state.cursor,
                        loader.len()
                    ),
                ));
            }
            loader.restore(state);
        }
        t.step = meta.step;
        t.acc = meta.loss_accumulator;
        Ok(t)
    }

    /// Where the last [`Trainer::train_step`] spent its time.
    pub fn last_step_phases(&self) -> StepPhases {
        self.phases
    }

    /// Steps done.
    pub fn step(&self) -> u64 {
        self.step
    }
    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// The noise levels.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
    /// The model's variables (for tests and tools).
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

    /// One optimisation step; returns the batch's mean loss.
    pub fn train_step(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        let x = self
            .train
            .next_batch(&mut self.rng, &self.device)?
            .ok_or_else(|| Error::config("data", "the training set is empty"))?;
        let b = x.dim(0)?;
        let levels = draw_levels(&mut self.rng, b, self.sigmas.len(), &self.device)?;
        let z = langevin::randn_tensor(&mut self.rng, x.dims(), DType::F32, &self.device)?;
        let t1 = Instant::now();
        let model = &self.model;
        let per = anneal_dsm_per_example(|xt, l| model.forward(xt, l), &x, &z, &levels, &self.sigmas_t)?;
        let loss = per.mean_all()?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        let t2 = Instant::now();
        let grads = loss.backward()?;
        let t3 = Instant::now();
        if !value.is_finite() {
            return Err(self.diverged(value));
        }
        self.adam.step(&grads)?;
        if let Some(ema) = &mut self.ema {
            ema.update()?;
        }
        self.phases = StepPhases {
            data: t1 - t0,
            forward: t2 - t1,
            backward: t3 - t2,
            update: t3.elapsed(),
        };
        self.step += 1;
        let losses = per.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        self.acc.add(&losses, &levels.to_vec1::<u32>()?);
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
            self.step + 1,
            self.config.non_finite_suspects()
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
    /// overall and per level; `None` without test images.
    pub fn test_loss(&mut self) -> Result<Option<(f64, Vec<Option<f64>>)>> {
        let Some(x) = self.test.next_batch(&mut self.test_rng, &self.device)? else {
            return Ok(None);
        };
        let b = x.dim(0)?;
        let levels = draw_levels(&mut self.test_rng, b, self.sigmas.len(), &self.device)?;
        let z = langevin::randn_tensor(&mut self.test_rng, x.dims(), DType::F32, &self.device)?;
        let model = &self.model;
        let per = anneal_dsm_per_example(|xt, l| model.forward(xt, l), &x, &z, &levels, &self.sigmas_t)?.detach();
        let mean = f64::from(per.mean_all()?.to_scalar::<f32>()?);
        Ok(Some((mean, per_level_means(&per, &levels, self.sigmas.len())?)))
    }

    /// Takes the training loss accumulated since the last call (mean, per-level means).
    pub fn take_train_loss(&mut self) -> (f64, Vec<Option<f64>>) {
        let means = self.acc.means();
        self.acc = LossAccumulator::new(self.sigmas.len());
        means
    }

    /// Writes a checkpoint into the run folder `dir`; returns the path of its `checkpoint.json`.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let tensors = self.state_tensors();
        let meta = CheckpointMeta {
            format: FORMAT.into(),
            step: self.step,
            weights: checkpoint::weights_name(self.step),
            config: self.config.clone(),
            model: self.config.model_config(),
            sigmas: self.sigmas.clone(),
            adam_steps: self.adam.steps(),
            rng: self.rng.clone(),
            test_rng: self.test_rng.clone(),
            train_loader: self.train.state(),
            test_loader: self.test.state(),
            loss_accumulator: self.acc.clone(),
        };
        checkpoint::save(dir, &meta, tensors)
    }
}

/// How a run reports its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif progress bar with the loss and images/s (for a terminal).
    Bar,
    /// One line per log row on stderr (for logs and pipes).
    Lines,
    /// Nothing (tests).
    Quiet,
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
    let toml_text = toml::to_string(&config).map_err(|e| Error::config("config", e.to_string()))?;
    write_atomic(&dir.join(CONFIG_TOML), toml_text.as_bytes())?;
    let mut trainer = Trainer::new(config, device)?;
    let mut log = LossLog::create(&dir.join(LOSS_CSV), trainer.sigmas())?;
    run(&mut trainer, &mut log, options)
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
    let meta = checkpoint::read_meta(&json)?;
    let config = TrainConfig::resolve_resumed(&meta.config, file, flags, &json)?;
    if config.steps < meta.step {
        return Err(Error::config(
            "steps",
            format!(
                "the run in {} is already at step {}, past --steps {}: give a larger --steps to train longer",
                dir.display(),
                meta.step,
                config.steps
            ),
        ));
    }
    remove_temporaries(&dir);
    checkpoint::remove_stale_weights(&dir, Some(&meta.weights));
    let mut trainer = Trainer::from_checkpoint(&json, config, device)?;
    let mut log = LossLog::resume(&dir.join(LOSS_CSV), trainer.sigmas(), trainer.step())?;
    run(&mut trainer, &mut log, &RunOptions { out_dir: dir, progress })
}

/// The training loop: steps until `config.steps`, logging, testing, plotting and checkpointing.
pub fn run(trainer: &mut Trainer, log: &mut LossLog, options: &RunOptions) -> Result<RunSummary> {
    let dir = options.out_dir.clone();
    let total = trainer.config.steps;
    let start_step = trainer.step();
    let c = &trainer.config;
    let title = format!(
        "NCSN run \"{}\": {}, ngf {}, batch {}, L = {}",
        c.name,
        c.dataset.name(),
        c.ngf,
        c.batch_size,
        c.num_levels
    );
    let bar = match options.progress {
        Progress::Bar => workbench::progress::run_bar(total, start_step),
        _ => ProgressBar::hidden(),
    };
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
    let mut last_rate = 0.0;
    let mut checkpoint = dir.join(checkpoint::CHECKPOINT_JSON);
    while trainer.step() < total {
        let loss = trainer.train_step()?;
        let step = trainer.step();
        interval_images += trainer.train.batch_size();
        bar.set_position(step);
        // Rows only at multiples of log_every / test_every, so that where a run was stopped and
        // resumed leaves no trace in the log.
        let log_now = step.is_multiple_of(trainer.config.log_every);
        if log_now {
            let rate = interval_images as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
            let (mean, per_level) = trainer.take_train_loss();
            bar.set_message(format!("loss {mean:.4} | {rate:.1} img/s"));
            say(format!("step {step:>7}  train loss {mean:.5}  {rate:.1} img/s"));
            log.push(LogRow {
                step,
                split: Split::Train,
                loss: mean,
                images_per_s: Some(rate),
                per_level,
            })?;
            interval_start = Instant::now();
            interval_images = 0;
            last_rate = rate;
        } else if options.progress == Progress::Bar {
            bar.set_message(format!("loss {loss:.4} | {last_rate:.1} img/s"));
        }
        if step.is_multiple_of(trainer.config.test_every) {
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
        if step.is_multiple_of(trainer.config.snapshot_every) || step == total {
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

/// Draws `loss.png`; a failure is a warning, not the end of the run (`loss.csv` holds the data).
fn plot_or_warn(rows: &[LogRow], sigmas: &[f64], title: &str, path: &Path, announce: &impl Fn(String)) {
    if let Err(e) = plot_losses(rows, sigmas, title, path) {
        announce(format!(
            "warning: the loss figure was not written ({e}); training goes on, the losses are in {LOSS_CSV}"
        ));
    }
}
