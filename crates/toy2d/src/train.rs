//! Training loops of the toy score models: Adam on fresh batches with a cosine learning-rate
//! decay, every random draw (initial weights, data, noise, projections, levels) from one
//! `ChaCha8Rng` (the config's seed and stream), so the same config gives the same model and loss
//! history.
//!
//! Errors: a bad configuration or data sampler is an `anyhow` error naming the field; a loss that
//! stops being finite is a [`Diverged`] (inside the `anyhow` error, so a caller can
//! `downcast_ref` it), unless the config asks to skip such steps ([`NonFinite::Skip`]).
use crate::model::{Conditioning, NoiseConditionalMlp, ScoreMlp, ScoreModel};
use anyhow::bail;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use gmm::GaussianMixture;
use indicatif::ProgressBar;
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use score_matching::{anneal_dsm, denoising, explicit, implicit, sliced};
use workbench::adam::cosine_lr;
use workbench::{Adam, AdamConfig};

/// Distribution of the random projections of sliced score matching.
pub use score_matching::ProjectionKind;

/// The objective a [`ScoreMlp`] is trained with.
// Only a handful of these exist per run: boxing the mixture would only make them harder to write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Objective {
    /// Explicit score matching against the exact score of a known mixture (an oracle, for teaching).
    Explicit(GaussianMixture),
    /// Implicit score matching (Hyvarinen): 1/2 ||s||^2 + tr(grad s).
    Implicit,
    /// Sliced score matching: v^T grad(v^T s) + 1/2 (v^T s)^2, or with `variance_reduced` 1/2 ||s||^2.
    Sliced {
        projection: ProjectionKind,
        variance_reduced: bool,
    },
    /// Denoising score matching at one noise level.
    Denoising { sigma: f64 },
}

impl Objective {
    /// A short name for logs and figure legends: `esm`, `ism`, `ssm-gauss`, `ssm-rademacher`,
    /// `ssm-vr-gauss`, `ssm-vr-rademacher`, `dsm`.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Explicit(_) => "esm",
            Objective::Implicit => "ism",
            Objective::Sliced {
                projection: ProjectionKind::Gaussian,
                variance_reduced: false,
            } => "ssm-gauss",
            Objective::Sliced {
                projection: ProjectionKind::Rademacher,
                variance_reduced: false,
            } => "ssm-rademacher",
            Objective::Sliced {
                projection: ProjectionKind::Gaussian,
                variance_reduced: true,
            } => "ssm-vr-gauss",
            Objective::Sliced {
                projection: ProjectionKind::Rademacher,
                variance_reduced: true,
            } => "ssm-vr-rademacher",
            Objective::Denoising { .. } => "dsm",
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        match self {
            Objective::Explicit(p) if p.dim() != 2 => {
                bail!("objective `esm`: expected a 2D mixture, got dimension {}", p.dim())
            }
            Objective::Denoising { sigma } if !(sigma.is_finite() && *sigma > 0.0) => {
                bail!("objective `dsm`: expected a finite positive `sigma`, got {sigma}")
            }
            _ => Ok(()),
        }
    }
}

/// What training does at a step whose loss is not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Stop with a [`Diverged`] error.
    #[default]
    Fail,
    /// Record the loss, leave the parameters as they are and go on with the next batch (for
    /// experiments about instability, which count such steps).
    Skip,
}

/// The loss of a training run stopped being finite.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{label}: the loss became {value} at step {step} (learning rate {lr}; a smaller `lr` may help)")]
pub struct Diverged {
    /// The objective or model being trained.
    pub label: String,
    /// The 0-based step.
    pub step: usize,
    /// The loss at that step.
    pub value: f64,
    /// The peak learning rate of the run.
    pub lr: f64,
}

/// Settings of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// The key of the run's generator.
    pub seed: u64,
    /// The ChaCha stream of the run's generator: runs of one command share `seed` and differ
    /// here (as [`crate::experiments::Context::rng`]).
    pub stream: u64,
    pub hidden: usize,
    /// What a non-finite loss does.
    pub non_finite: NonFinite,
    /// Show an indicatif progress bar.
    pub progress: bool,
}

impl Default for TrainConfig {
    /// The reference toy: 10,000 Adam steps at learning rate 1e-3, batch 128, 128 hidden units.
    fn default() -> Self {
        Self {
            steps: 10_000,
            batch_size: 128,
            lr: 1e-3,
            seed: 0,
            stream: 0,
            hidden: 128,
            non_finite: NonFinite::Fail,
            progress: false,
        }
    }
}

impl TrainConfig {
    /// Checks every field; the training functions call this first.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.steps == 0 {
            bail!("train config: `steps` must be at least 1");
        }
        if self.batch_size == 0 {
            bail!("train config: `batch_size` must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("train config: `lr` must be a finite positive number, got {}", self.lr);
        }
        if self.hidden == 0 {
            bail!("train config: `hidden` must be at least 1");
        }
        Ok(())
    }

    /// The run's generator: key `seed`, stream `stream`.
    pub fn rng(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.stream);
        rng
    }
}

/// What a run recorded.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    /// Loss at every step (with [`NonFinite::Skip`], the non-finite ones too).
    pub loss_history: Vec<f64>,
}

/// A sampler of training data: `n` points from `rng`.
pub type DataSampler<'a> = dyn FnMut(usize, &mut ChaCha8Rng) -> Array2<f64> + 'a;

/// Adam (PyTorch's, betas 0.9 and 0.999, eps 1e-8) over every variable of `varmap`, in the
/// sorted order of their names.
pub fn adam(varmap: &VarMap, lr: f64) -> candle_core::Result<Adam> {
    Adam::new(
        workbench::vars::named_vars(varmap),
        AdamConfig {
            lr,
            ..AdamConfig::default()
        },
    )
}

/// Draws a batch of `n` points from `data` and checks it: shape `(n, 2)`, finite values.
pub fn draw_batch(data: &mut DataSampler<'_>, n: usize, rng: &mut ChaCha8Rng) -> anyhow::Result<Array2<f64>> {
    let x = data(n, rng);
    if x.dim() != (n, 2) {
        bail!(
            "data sampler: asked for {n} points, got an array of shape {:?}, expected ({n}, 2)",
            x.dim()
        );
    }
    if x.iter().any(|v| !v.is_finite()) {
        bail!("data sampler: returned a non-finite coordinate");
    }
    Ok(x)
}

/// `x` as an `(N, 2)` tensor of `dtype` on `device`.
pub fn to_tensor(x: ArrayView2<f64>, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f64> = x.iter().copied().collect();
    Tensor::from_vec(values, x.dim(), device)?.to_dtype(dtype)
}

/// The loss of `objective` on the batch `x` for `model`, drawing noise or projections from `rng`.
pub fn objective_loss(
    objective: &Objective,
    model: &ScoreMlp,
    x: ArrayView2<f64>,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let dtype = ScoreModel::dtype(model);
    let xt = to_tensor(x, dtype, device)?;
    match objective {
        Objective::Explicit(p) => {
            let target = to_tensor(p.score(x).view(), dtype, device)?; // grad log p(x), exact
            explicit::esm_loss(|x| model.forward(x), &xt, &target)
        }
        Objective::Implicit => implicit::ism_loss(model, &xt),
        Objective::Sliced {
            projection,
            variance_reduced,
        } => {
            let v = sliced::draw_projections(rng, *projection, xt.dims(), dtype, device)?;
            sliced::ssm_loss(model, &xt, &v, *variance_reduced)
        }
        Objective::Denoising { sigma } => {
            let z = langevin::randn_tensor(rng, xt.dims(), dtype, device)?;
            denoising::dsm_loss(|x| model.forward(x), &xt, &z, *sigma)
        }
    }
}

/// [`objective_loss`] with its gradients: from the written-out step ([`crate::jvp_step`]) for
/// sliced and implicit score matching where it applies (the same draws, the same bits), else a
/// loss for candle's autograd.
pub fn objective_step(
    objective: &Objective,
    model: &ScoreMlp,
    x: ArrayView2<f64>,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> candle_core::Result<StepLoss> {
    use crate::jvp_step::{jvp_step, JvpObjective};
    let written = match objective {
        Objective::Implicit => Some(JvpObjective::Implicit),
        Objective::Sliced { variance_reduced, .. } => Some(JvpObjective::Sliced {
            variance_reduced: *variance_reduced,
        }),
        _ => None,
    };
    let (Some(which), Some(_)) = (written, model.layers()) else {
        return Ok(StepLoss::Graph(objective_loss(objective, model, x, rng, device)?));
    };
    let xt = to_tensor(x, DType::F32, device)?;
    let v = match objective {
        Objective::Sliced { projection, .. } => {
            sliced::draw_projections(rng, *projection, xt.dims(), DType::F32, device)?
                .flatten_all()?
                .to_vec1::<f32>()?
        }
        _ => Vec::new(),
    };
    match jvp_step(model, which, &xt.flatten_all()?.to_vec1::<f32>()?, &v)? {
        Some((loss, grads)) => Ok(StepLoss::Computed(loss, grads)),
        None => candle_core::bail!("objective_step: the written-out step declined a model it accepted"),
    }
}

/// The noise-conditional DSM loss (lambda = sigma^2, one random level per example) on the batch
/// `x`, drawing levels and noise from `rng`. `sigmas` is the `(L,)` tensor of the levels.
pub fn ncsn_loss(
    model: &NoiseConditionalMlp,
    x: ArrayView2<f64>,
    sigmas: &Tensor,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let (xt, levels, z) = ncsn_batch(model, x, rng, device)?;
    anneal_dsm::anneal_dsm_loss(|xt, lv| model.forward(xt, lv), &xt, &z, &levels, sigmas)
}

/// [`ncsn_loss`] with its gradients: from the written-out step ([`crate::dsm_step`]) where it
/// applies (the same draws, the same bits), else a loss for candle's autograd.
pub fn ncsn_step(
    model: &NoiseConditionalMlp,
    x: ArrayView2<f64>,
    sigmas: &Tensor,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> candle_core::Result<StepLoss> {
    if model.dsm_parts().is_none() {
        return Ok(StepLoss::Graph(ncsn_loss(model, x, sigmas, rng, device)?));
    }
    let (xt, levels, z) = ncsn_batch(model, x, rng, device)?;
    let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let step = crate::dsm_step::dsm_step(model, &values(&xt)?, &values(&z)?, &levels.to_vec1()?, sigmas)?;
    match step {
        Some((loss, grads)) => Ok(StepLoss::Computed(loss, grads)),
        None => {
            anneal_dsm::anneal_dsm_loss(|xt, lv| model.forward(xt, lv), &xt, &z, &levels, sigmas).map(StepLoss::Graph)
        }
    }
}

/// The batch of a noise-conditional DSM step: the points as a tensor of the model's dtype, then
/// a level per point and the noise, drawn from `rng` in this order.
fn ncsn_batch(
    model: &NoiseConditionalMlp,
    x: ArrayView2<f64>,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let dtype = ScoreModel::dtype(model);
    let xt = to_tensor(x, dtype, device)?;
    let levels = anneal_dsm::draw_levels(rng, x.nrows(), model.sigmas().len(), device)?;
    let z = langevin::randn_tensor(rng, xt.dims(), dtype, device)?;
    Ok((xt, levels, z))
}

/// What a training step's loss hands the optimizer: a loss for candle's autograd to
/// differentiate, or one whose gradients are already computed.
pub enum StepLoss {
    /// A loss with its graph.
    Graph(Tensor),
    /// A loss and the gradients of the parameters.
    Computed(Tensor, candle_core::backprop::GradStore),
}

impl StepLoss {
    /// The loss, a scalar tensor.
    pub fn loss(&self) -> &Tensor {
        match self {
            StepLoss::Graph(l) | StepLoss::Computed(l, _) => l,
        }
    }

    /// One update of `opt` with this step's gradients (computed now for [`StepLoss::Graph`]).
    pub fn update(&self, opt: &mut Adam) -> candle_core::Result<()> {
        match self {
            StepLoss::Graph(l) => opt.backward_step(l),
            StepLoss::Computed(_, grads) => opt.step(grads),
        }
    }
}

/// The optimisation loop shared by both trainers: `cfg.steps` Adam steps on `loss(rng)` with the
/// [`cosine_lr`] schedule, a progress bar when asked for, the loss history. A non-finite loss
/// is never stepped on: it ends the run with [`Diverged`] or, with [`NonFinite::Skip`], is
/// recorded and its batch dropped. `after_step(step)` runs after each step.
fn optimise(
    label: &str,
    cfg: &TrainConfig,
    varmap: &VarMap,
    rng: &mut ChaCha8Rng,
    mut loss: impl FnMut(&mut ChaCha8Rng) -> anyhow::Result<StepLoss>,
    mut after_step: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<TrainReport> {
    let mut opt = adam(varmap, cfg.lr)?;
    let bar = if cfg.progress {
        let bar = crate::jobs::bar(cfg.steps as u64);
        bar.set_style(workbench::progress::task_style());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut history = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        opt.set_learning_rate(cosine_lr(cfg.lr, step as u64, cfg.steps as u64));
        let this = loss(rng)?;
        let value = this.loss().to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if value.is_finite() {
            this.update(&mut opt)?;
        } else if cfg.non_finite == NonFinite::Fail {
            bar.abandon();
            return Err(Diverged {
                label: label.to_string(),
                step,
                value,
                lr: cfg.lr,
            }
            .into());
        }
        history.push(value);
        after_step(step)?;
        if step % 50 == 0 || step + 1 == cfg.steps {
            let recent = &history[history.len().saturating_sub(50)..];
            bar.set_message(format!(
                "{label} loss {:.4}",
                recent.iter().sum::<f64>() / recent.len() as f64
            ));
            bar.set_position(step as u64 + 1);
        }
    }
    bar.finish();
    Ok(TrainReport { loss_history: history })
}

/// Trains an unconditional [`ScoreMlp`] with `objective` on data from `data`.
pub fn train_score(
    objective: &Objective,
    data: &mut DataSampler<'_>,
    cfg: &TrainConfig,
    device: &Device,
) -> anyhow::Result<(ScoreMlp, TrainReport)> {
    train_score_observed(objective, data, cfg, device, |_, _| Ok(()))
}

/// [`train_score`], calling `observe(step, model)` after every step (0-based, after its update),
/// to measure the model while it trains.
pub fn train_score_observed(
    objective: &Objective,
    data: &mut DataSampler<'_>,
    cfg: &TrainConfig,
    device: &Device,
    mut observe: impl FnMut(usize, &ScoreMlp) -> anyhow::Result<()>,
) -> anyhow::Result<(ScoreMlp, TrainReport)> {
    cfg.validate()?;
    objective.validate()?;
    let mut rng = cfg.rng();
    let (model, varmap) = ScoreMlp::seeded(cfg.hidden, DType::F32, device, &mut rng)?;
    let report = optimise(
        objective.name(),
        cfg,
        &varmap,
        &mut rng,
        |rng| {
            let x = draw_batch(data, cfg.batch_size, rng)?;
            Ok(objective_step(objective, &model, x.view(), rng, device)?)
        },
        |step| observe(step, &model),
    )?;
    Ok((model, report))
}

/// Trains a [`NoiseConditionalMlp`] with noise-conditional DSM (lambda = sigma^2) over `sigmas`.
pub fn train_ncsn(
    data: &mut DataSampler<'_>,
    sigmas: &[f64],
    conditioning: Conditioning,
    cfg: &TrainConfig,
    device: &Device,
) -> anyhow::Result<(NoiseConditionalMlp, TrainReport)> {
    cfg.validate()?;
    let mut rng = cfg.rng();
    let (model, varmap) = NoiseConditionalMlp::seeded(cfg.hidden, sigmas, conditioning, DType::F32, device, &mut rng)?;
    let sigmas_t = score_matching::sigmas_tensor(sigmas, device)?;
    let label = match conditioning {
        Conditioning::Embedding => "ncsn (embedding)",
        Conditioning::DivideBySigma => "ncsn (s/sigma)",
        Conditioning::EmbeddingOverSigma => "ncsn (embedding, s/sigma)",
    };
    let report = optimise(
        label,
        cfg,
        &varmap,
        &mut rng,
        |rng| {
            let x = draw_batch(data, cfg.batch_size, rng)?;
            Ok(ncsn_step(&model, x.view(), &sigmas_t, rng, device)?)
        },
        |_| Ok(()),
    )?;
    Ok((model, report))
}
