//! The MNIST CPU recipe (`configs/mnist-cpu.toml`) stays valid: it parses, its first noise level
//! is NCSNv2's rule for the shipped digits, and its model trains a few steps. (CI does not run
//! the hour of training; the book and crates/ncsn/README.md record what it gives.)
use std::path::Path;

use candle_core::{Device, Tensor};
use ncsn::{data, Overrides, TrainConfig, Trainer};

fn config(name: &str) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs").join(name);
    let file = Overrides::from_toml_file(&path).unwrap();
    TrainConfig::resolve(&file, &Overrides::default()).unwrap()
}

fn recipe() -> TrainConfig {
    config("mnist-cpu.toml")
}

/// The largest Euclidean distance between two of the recipe's training digits (values in [0, 1]),
/// from the Gram matrix: `|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`.
fn largest_distance(config: &TrainConfig) -> f64 {
    let digits = data::idx::load_images(&data::shipped_mnist().unwrap()).unwrap();
    let (train, _) = data::holdout(&digits, config.test_fraction);
    let x = train.to_tensor(&Device::Cpu).unwrap().flatten_from(1).unwrap();
    let norms = x.sqr().unwrap().sum_keepdim(1).unwrap();
    let gram = x.matmul(&x.t().unwrap()).unwrap();
    let d2 = norms.broadcast_add(&norms.t().unwrap()).unwrap() - (gram * 2.0).unwrap();
    let max: f32 = d2.unwrap().max_all().unwrap().to_scalar().unwrap();
    f64::from(max).sqrt()
}

#[test]
fn the_recipe_parses_and_follows_ncsnv2s_first_level() {
    let config = recipe();
    assert_eq!((config.channels, config.image_size), (1, 28));
    assert!(
        config.score_over_sigma,
        "the recipe divides the score by sigma (NCSNv2)"
    );
    // NCSNv2's Technique 1: sigma_1 about the largest distance between training points, so that
    // the first level mixes every class. The Gram-matrix distances carry f32 rounding of about
    // 1e-4 relative; the recipe rounds the distance up to a round number, within 5%.
    let d = largest_distance(&config);
    assert!(
        config.sigma_begin >= d && config.sigma_begin <= 1.05 * d,
        "sigma_begin {} should be the largest distance {d:.3} rounded up",
        config.sigma_begin
    );
}

#[test]
fn the_recipe_model_trains_a_few_steps() {
    let mut config = recipe();
    // Its network and data, on a small batch: the full-size step takes over a second.
    config.batch_size = 4;
    config.test_batch_size = 4;
    let mut trainer = Trainer::new(config.clone(), &Device::Cpu).unwrap();
    let losses: Vec<f64> = (0..3).map(|_| trainer.train_step().unwrap()).collect();
    // The loss per image is 1/2 E|sigma s + z|^2 summed over 784 pixels: about 392 for a network
    // that outputs nothing, and finite and positive whatever it outputs.
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
    let (test, per_level) = trainer.test_loss().unwrap().unwrap();
    assert!(test.is_finite() && per_level.len() == config.num_levels);
    // The model has one output per pixel of a 28x28 digit.
    let x = Tensor::zeros((2, 1, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, config.num_levels as u32 - 1], &Device::Cpu).unwrap();
    let model = ncsn::model::CondRefineNetDilated::new(
        &config.model_config(),
        candle_nn::VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(model.forward(&x, &labels).unwrap().dims(), &[2, 1, 28, 28]);
}

/// The recipe's first edition stays what the book's earlier runs started from: the commands
/// recorded as `--config configs/mnist-cpu-batch64.toml` plus flags. It differs from the recipe
/// in exactly the settings the later editions changed (the batch, the steps, the EMA, how the
/// levels are drawn; then the sampler's step band), so an edit to either file that touches
/// anything else (the network, the levels, the rest of the sampler) fails here.
#[test]
fn the_first_edition_differs_from_the_recipe_only_where_the_second_changed_it() {
    let first = config("mnist-cpu-batch64.toml");
    assert_eq!((first.batch_size, first.steps, first.ema_rate), (64, 4400, 0.99));
    let mut differing: Vec<String> = recipe()
        .differences(&first)
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    differing.sort();
    assert_eq!(
        differing,
        [
            "batch_size",
            "ema_rate",
            "level_sampling",
            "name",
            "sample_band_factor",
            "sample_band_high",
            "sample_band_low",
            "steps",
            "test_batch_size"
        ]
    );
}
