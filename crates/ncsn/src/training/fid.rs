//! Sample quality during training (`fid_every`): every N steps, draw `fid_samples` images with
//! the run's sampler (`sample_eps`, `sample_steps_per_level`, `sample_low_noise_*`, `sample_band_*`,
//! `sample_denoise`) from the weights
//! `ncsn sample` would use (the EMA when the run keeps one), and log their FID against the
//! training images in the MNIST classifier's features, the share of them the classifier is sure
//! of and the share of each class, so that a run shows its quality over time and not only its
//! loss (a network that favours one class shows it here long before its final samples); the first
//! samples of each evaluation are kept as a picture (`fid-samples/step-<k>.png` in the run
//! folder).
//!
//! The chains draw from their own seeded stream, the same at every evaluation (so the curve
//! follows the model, not the noise), and never from the training generator: a run with
//! `fid_every` trains exactly as one without.
use candle_core::{DType, Device};
use langevin::StepConvention;
use quality::features::FeatureStats;
use quality::FeatureNetwork;

use crate::error::Result;
use crate::measure::{measure, quantize, Metric, DEFAULT_BATCH};
use crate::model::{build_model, frozen_model, ScoreNet};
use crate::progress::Progress;
use crate::sampling::{sample, SampleConfig};
use crate::training::Trainer;
use crate::TrainConfig;

/// Stream of the run's seed that the FID's chains draw from.
const FID_STREAM: u64 = u64::MAX - 2;

/// The classifier and the training images' statistics, made once per run.
pub struct FidProbe {
    net: Box<dyn FeatureNetwork>,
    reference: FeatureStats,
}

/// Samples shown per evaluation in `fid-samples/step-<k>.png`.
pub const SHOWN: usize = 64;

/// One evaluation: the FID, what the classifier says of the samples, and the first
/// [`SHOWN`] samples.
#[derive(Debug, Clone)]
pub struct FidPoint {
    /// FID of the samples against the training images.
    pub fid: f64,
    /// Share of samples whose top-class probability is at least `quality::classes::CONFIDENT_THRESHOLD`.
    pub confident_share: f64,
    /// Share of samples in each class (the classifier's most probable one); sums to 1.
    pub class_shares: Vec<f64>,
    /// The first samples, `(n, C, H, W)`, unclamped.
    pub shown: candle_core::Tensor,
}

impl FidPoint {
    /// The smallest and largest class shares, and which class is largest:
    /// `classes 5.2% to 16.8% (most: 9)`.
    pub fn class_range(&self) -> String {
        let (mut small, mut large) = (0, 0);
        for (k, &share) in self.class_shares.iter().enumerate() {
            if share < self.class_shares[small] {
                small = k;
            }
            if share > self.class_shares[large] {
                large = k;
            }
        }
        match (self.class_shares.get(small), self.class_shares.get(large)) {
            (Some(lo), Some(hi)) => format!("classes {:.1}% to {:.1}% (most: {large})", 100.0 * lo, 100.0 * hi),
            _ => "no classes".into(),
        }
    }
}

impl FidProbe {
    /// Opens the MNIST classifier and measures the run's training images.
    pub fn new(config: &TrainConfig, device: &Device) -> Result<Self> {
        let net = Metric::Mnist.open(device)?;
        let reference = crate::measure::training_reference(config, net.as_ref(), device, Progress::Quiet)?;
        Ok(Self { net, reference })
    }

    /// Samples from `trainer`'s current weights (its EMA when it keeps one) and measures them.
    pub fn evaluate(&self, trainer: &Trainer) -> Result<FidPoint> {
        let config = trainer.config();
        let sampler = SampleConfig {
            n: config.fid_samples,
            batch_size: config.fid_samples.min(DEFAULT_BATCH.max(config.batch_size)),
            seed: config.seed.wrapping_add(FID_STREAM),
            eps: config.sample_eps,
            steps_per_level: config.sample_steps_per_level,
            low_noise: config.sample_low_noise()?,
            step_band: config.sample_step_band()?,
            convention: StepConvention::Paper,
            matched_noise: false,
            denoise: config.sample_denoise,
            predictor: None,
            snapshot_every: None,
            denoised_snapshots: false,
        };
        let device = trainer.device();
        // The sampling network's weights as constants (no graph is recorded while sampling).
        let model = match trainer.ema_tensors() {
            Some(tensors) => {
                let (vars, _) = build_model(&config.model_config(), DType::F32, device, None)?;
                let named = workbench::vars::named_vars(&vars);
                workbench::vars::load_named(&named, &tensors, "ema.")?;
                frozen_model(&config.model_config(), &vars, DType::F32, device)?
            }
            None => frozen_model(&config.model_config(), trainer.varmap(), DType::F32, device)?,
        };
        let score = ScoreNet::new(&model, trainer.sigmas())?.over_sigma(config.score_over_sigma);
        let samples = sample(&score, score.image_dims(), &sampler, device, Progress::Quiet)?.samples;
        let images = quantize(&samples)?;
        let m = measure(
            &images,
            self.net.as_ref(),
            DEFAULT_BATCH,
            device,
            Progress::Quiet,
            "samples",
        )?;
        let fid = quality::frechet::frechet_distance(&m.stats, &self.reference)?;
        let classes = quality::classes::ClassSummary::from_logits(&m.logits, m.classes)?;
        Ok(FidPoint {
            fid,
            confident_share: classes.confident_share(quality::classes::CONFIDENT_THRESHOLD),
            class_shares: classes.shares(),
            shown: samples.narrow(0, 0, samples.dim(0)?.min(SHOWN))?,
        })
    }
}
