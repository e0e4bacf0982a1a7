//! Sampling with annealed Langevin dynamics: shapes, reproducibility from the seed, batching,
//! snapshots, the score the sampler sees, and loading a converted reference checkpoint.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use langevin::StepConvention;
use langevin::{NoiseConditionalScore, Trajectory};
use ncsn::load::{load_model, load_weights_file, model_config};
use ncsn::model::build_model;
use ncsn::model::ScoreNet;
use ncsn::model::{CondRefineNetDilated, ModelConfig};
use ncsn::sampling::{count_non_finite, SampleConfig};
use ncsn::Progress;

/// A tiny network with seeded random weights: ngf 4, one channel, 8x8, 4 noise levels.
fn tiny_model(seed: u64) -> CondRefineNetDilated {
    let cfg = ModelConfig {
        ngf: 4,
        channels: 1,
        image_size: 8,
        num_classes: 4,
    };
    build_model(&cfg, DType::F32, &Device::Cpu, Some(seed)).unwrap().1
}

/// `ncsn::sampling::sample` with `model` at noise levels `sigmas` as the score.
fn sample(
    model: &CondRefineNetDilated,
    sigmas: &[f64],
    config: &SampleConfig,
    device: &Device,
    progress: Progress,
) -> ncsn::Result<Trajectory<Tensor>> {
    let net = ScoreNet::new(model, sigmas)?;
    ncsn::sampling::sample(&net, net.image_dims(), config, device, progress)
}

fn sigmas() -> Vec<f64> {
    langevin::geometric_sigmas(1.0, 0.01, 4).unwrap()
}

/// A few steps per level so that a test takes well under a second.
fn quick(n: usize, batch_size: usize, seed: u64) -> SampleConfig {
    SampleConfig {
        n,
        batch_size,
        seed,
        steps_per_level: 3,
        ..SampleConfig::default()
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn samples_have_the_model_shape_and_are_finite() {
    let model = tiny_model(1);
    let out = sample(&model, &sigmas(), &quick(5, 5, 0), &Device::Cpu, Progress::Quiet).unwrap();
    assert_eq!(out.samples.dims(), [5, 1, 8, 8]);
    assert_eq!(out.samples.dtype(), DType::F32);
    assert_eq!(count_non_finite(&out.samples).unwrap(), 0);
    assert!(!out.samples.track_op(), "samples hold no autograd graph");
    assert!(out.snapshots.is_empty(), "no snapshots unless asked for");
    // The display grid: 3 x 2 tiles of 16x16 pixels (scale 2) with 2-pixel gaps.
    let grid = ncsn::sampling::images::grid(&out.samples, 2).unwrap();
    assert_eq!(grid.dimensions(), (2 + 3 * 18, 2 + 2 * 18));
}

#[test]
fn non_finite_chains_are_counted() {
    let t = Tensor::from_vec(vec![0f32, 1.0, f32::NAN, 0.0, 0.5, f32::INFINITY], (3, 2), &Device::Cpu).unwrap();
    assert_eq!(count_non_finite(&t).unwrap(), 2);
}

#[test]
fn same_seed_same_samples_other_seed_other_samples() {
    let model = tiny_model(2);
    let run = |seed| {
        values(
            &sample(&model, &sigmas(), &quick(3, 3, seed), &Device::Cpu, Progress::Quiet)
                .unwrap()
                .samples,
        )
    };
    let a = run(7);
    assert_eq!(a, run(7), "bit-identical from the same seed");
    let b = run(8);
    assert_ne!(a, b);
    // Not just a few values: the chains start from different noise.
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert!(differing > a.len() / 2, "{differing} of {} differ", a.len());
}

#[test]
fn each_batch_has_its_own_stream() {
    // Batch b draws from stream b of the seed, so the first batch of a larger run is the run
    // of that batch alone.
    let model = tiny_model(3);
    let big = sample(&model, &sigmas(), &quick(5, 2, 11), &Device::Cpu, Progress::Quiet).unwrap();
    let small = sample(&model, &sigmas(), &quick(2, 2, 11), &Device::Cpu, Progress::Quiet).unwrap();
    assert_eq!(big.samples.dims(), [5, 1, 8, 8], "the last batch is short");
    assert_eq!(values(&big.samples.narrow(0, 0, 2).unwrap()), values(&small.samples));
    // Batches differ from each other (streams are not repeated).
    assert_ne!(
        values(&big.samples.narrow(0, 0, 2).unwrap()),
        values(&big.samples.narrow(0, 2, 2).unwrap())
    );
}

#[test]
fn snapshots_every_k_steps_joined_over_batches() {
    let model = tiny_model(4);
    let config = SampleConfig {
        snapshot_every: Some(5),
        denoise: true,
        ..quick(5, 2, 0)
    };
    let out = sample(&model, &sigmas(), &config, &Device::Cpu, Progress::Quiet).unwrap();
    // 4 levels x 3 steps = 12 steps: snapshots before steps 0, 5, 10, and the end.
    let steps: Vec<usize> = out.snapshots.iter().map(|s| s.step).collect();
    assert_eq!(steps, [0, 5, 10, 12]);
    let levels: Vec<usize> = out.snapshots.iter().map(|s| s.level).collect();
    assert_eq!(levels, [0, 1, 3, 3]);
    for s in &out.snapshots {
        assert_eq!(s.x.dims(), [5, 1, 8, 8], "all 3 batches in each snapshot");
    }
    assert_eq!(values(&out.snapshots[3].x), values(&out.samples));
    // The first snapshot is the starting noise, uniform in [0, 1).
    assert!(values(&out.snapshots[0].x).iter().all(|v| (0.0..1.0).contains(v)));
}

#[test]
fn denoised_snapshots_are_tweedies_estimate_of_every_batch() {
    // 5 chains in batches of 2: each snapshot's estimate, joined over the 3 batches, is
    // x + sigma_i^2 s(x, sigma_i) of the snapshot's own chains, with the network's score at that
    // level. Here the network sees all 5 at once, the sampler saw batches of 2 and 1, whose
    // products the kernels may add in another order: 1e-5 allows that f32 rounding on
    // estimates of order 1, where a wrong sigma or level would be off by the estimate's size.
    let model = tiny_model(4);
    let sigmas = sigmas();
    let config = SampleConfig {
        snapshot_every: Some(4),
        denoised_snapshots: true,
        denoise: true,
        ..quick(5, 2, 0)
    };
    let out = sample(&model, &sigmas, &config, &Device::Cpu, Progress::Quiet).unwrap();
    let net = ScoreNet::new(&model, &sigmas).unwrap();
    let (last, steps) = out.snapshots.split_last().unwrap();
    assert_eq!(steps.len(), 3, "12 steps recorded every 4");
    for snap in steps {
        let estimate = snap.denoised.as_ref().expect("an estimate at every step's snapshot");
        assert_eq!(estimate.dims(), [5, 1, 8, 8]);
        let score = net.score(&snap.x, snap.level).unwrap();
        let want = (&snap.x + score.affine(snap.sigma * snap.sigma, 0.0).unwrap()).unwrap();
        let worst = values(&(estimate - want).unwrap().abs().unwrap())
            .into_iter()
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "step {}: {worst}", snap.step);
    }
    assert!(last.denoised.is_none());
    // Keeping the estimates changes no chain.
    let plain = SampleConfig {
        denoised_snapshots: false,
        ..config.clone()
    };
    let again = sample(&model, &sigmas, &plain, &Device::Cpu, Progress::Quiet).unwrap();
    assert_eq!(values(&again.samples), values(&out.samples));
    assert!(again.snapshots.iter().all(|s| s.denoised.is_none()));
    // Without snapshots there is nowhere to keep them: refused, naming the flag.
    let nowhere = SampleConfig {
        snapshot_every: None,
        ..config
    };
    let err = sample(&model, &sigmas, &nowhere, &Device::Cpu, Progress::Quiet).unwrap_err();
    assert!(err.to_string().contains("snapshots"), "{err}");
}

#[test]
fn low_noise_levels_take_their_own_steps() {
    let model = tiny_model(4);
    let sigmas = sigmas(); // 1, 0.215, 0.046, 0.01
    let config = SampleConfig {
        snapshot_every: Some(1),
        denoise: true,
        steps_per_level: 2,
        low_noise: Some(langevin::LowNoiseSteps { below: 0.1, steps: 5 }),
        ..quick(3, 2, 0)
    };
    assert_eq!(config.evaluations(&sigmas), 2 + 2 + 5 + 5 + 1);
    let out = sample(&model, &sigmas, &config, &Device::Cpu, Progress::Quiet).unwrap();
    let per_level: Vec<usize> = (0..4)
        .map(|l| out.snapshots[..14].iter().filter(|s| s.level == l).count())
        .collect();
    assert_eq!(per_level, [2, 2, 5, 5]);
    assert_eq!(out.snapshots.len(), 15);
    // A threshold under every level is the plain sampler, draw for draw.
    let none_below = SampleConfig {
        snapshot_every: None,
        low_noise: Some(langevin::LowNoiseSteps { below: 0.005, steps: 5 }),
        ..config.clone()
    };
    let plain = SampleConfig {
        low_noise: None,
        ..none_below.clone()
    };
    let run = |c: &SampleConfig| {
        values(
            &sample(&model, &sigmas, c, &Device::Cpu, Progress::Quiet)
                .unwrap()
                .samples,
        )
    };
    assert_eq!(run(&none_below), run(&plain));
    assert_ne!(run(&config), run(&plain));
    let zero = SampleConfig {
        low_noise: Some(langevin::LowNoiseSteps { below: 0.1, steps: 0 }),
        ..plain
    };
    let err = sample(&model, &sigmas, &zero, &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`low_noise_steps`"), "{err}");
}

#[test]
fn a_step_band_lengthens_the_steps_of_its_levels() {
    let model = tiny_model(5);
    let sigmas = sigmas(); // 1, 0.215, 0.046, 0.01
    let plain = SampleConfig {
        eps: 1e-5,
        ..quick(3, 3, 2)
    };
    let with = |low: f64, high: f64, factor: f64| SampleConfig {
        step_band: Some(langevin::StepBand { low, high, factor }),
        ..plain.clone()
    };
    let run = |c: &SampleConfig| {
        values(
            &sample(&model, &sigmas, c, &Device::Cpu, Progress::Quiet)
                .unwrap()
                .samples,
        )
    };
    // A band around every level with factor 2 is the sampler at eps 2e-5, draw for draw (doubling
    // is exact in floating point, so the steps are the same numbers).
    let doubled = SampleConfig {
        eps: 2e-5,
        ..plain.clone()
    };
    assert_eq!(run(&with(0.005, 2.0, 2.0)), run(&doubled));
    // A band between two levels holds none: the plain sampler. One that holds 0.215 is not.
    assert_eq!(run(&with(0.05, 0.2, 2.0)), run(&plain));
    assert_ne!(run(&with(0.1, 0.3, 2.0)), run(&plain));
    assert_eq!(with(0.1, 0.3, 2.0).evaluations(&sigmas), plain.evaluations(&sigmas));
    assert_eq!(with(0.1, 0.3, 2.0).eps_text(), "eps 0.00001 (x2 at sigma 0.1 to 0.3)");
    let err = sample(&model, &sigmas, &with(0.1, 0.3, 0.0), &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`step_band.factor`"), "{err}");
}

#[test]
fn matched_noise_changes_the_noise_and_refuses_a_step_of_four_sigma_squared() {
    let model = tiny_model(5);
    let sigmas = sigmas(); // 1, 0.215, 0.046, 0.01: alpha_i / sigma_i^2 = eps / 0.01^2
    let plain = SampleConfig {
        eps: 1.2e-4,
        ..quick(3, 3, 2)
    };
    let matched = SampleConfig {
        matched_noise: true,
        ..plain.clone()
    };
    let run = |c: &SampleConfig| sample(&model, &sigmas, c, &Device::Cpu, Progress::Quiet).map(|t| values(&t.samples));
    assert_ne!(run(&matched).unwrap(), run(&plain).unwrap());
    assert_eq!(matched.eps_text(), "eps 0.00012, matched noise");
    assert_eq!(
        matched.evaluations(&sigmas),
        plain.evaluations(&sigmas),
        "no extra evaluation"
    );
    // eps 5e-4 is a step of 5 sigma_i^2 at every level, past the edge of 4: the plain sampler
    // takes it, the matched noise has no variance left to give and refuses, naming eps.
    let edge = |matched_noise| SampleConfig {
        eps: 5e-4,
        matched_noise,
        ..plain.clone()
    };
    run(&edge(false)).unwrap();
    let (sigma, ratio) = edge(false).unstable_step(&sigmas).unwrap();
    assert_eq!(sigma, 1.0, "the first level past the edge");
    assert!((ratio - 5.0).abs() < 1e-9, "{ratio}");
    assert_eq!(plain.unstable_step(&sigmas), None, "1.2 sigma^2 everywhere");
    // A band of 4 times the step at 0.215 only: 4.8 sigma^2 there.
    let band = SampleConfig {
        step_band: Some(langevin::StepBand {
            low: 0.1,
            high: 0.3,
            factor: 4.0,
        }),
        ..plain.clone()
    };
    let (sigma, ratio) = band.unstable_step(&sigmas).unwrap();
    assert!(
        (sigma - sigmas[1]).abs() < 1e-15 && (ratio - 4.8).abs() < 1e-9,
        "{sigma} {ratio}"
    );
    let err = run(&edge(true)).unwrap_err().to_string();
    assert!(err.contains("`eps`") && err.contains("5.000 sigma^2"), "{err}");
}

#[test]
fn the_score_is_the_network_at_the_level_index() {
    let model = tiny_model(5);
    let x = Tensor::rand(0f32, 1f32, (3, 1, 8, 8), &Device::Cpu).unwrap();
    let sigmas = sigmas();
    let score = ScoreNet::new(&model, &sigmas).unwrap();
    assert_eq!(score.sigmas(), &sigmas[..]);
    for level in 0..4u32 {
        let labels = Tensor::full(level, 3, &Device::Cpu).unwrap();
        let expected = values(&model.forward(&x, &labels).unwrap());
        assert_eq!(values(&score.score(&x, level as usize).unwrap()), expected);
    }
    // Detached from the weights' autograd graph, so a long chain does not keep every step's
    // activations alive.
    assert!(!score.score(&x, 0).unwrap().track_op());
    // Levels give different scores (the network is conditioned on them).
    assert_ne!(
        values(&score.score(&x, 0).unwrap()),
        values(&score.score(&x, 3).unwrap())
    );
}

#[test]
fn the_two_step_conventions_give_different_chains() {
    // Same eps, same noise: the reference form takes twice the paper's step.
    let model = tiny_model(6);
    let run = |convention| {
        let config = SampleConfig {
            convention,
            ..quick(2, 2, 0)
        };
        values(
            &sample(&model, &sigmas(), &config, &Device::Cpu, Progress::Quiet)
                .unwrap()
                .samples,
        )
    };
    assert_ne!(run(StepConvention::Paper), run(StepConvention::Reference));
}

#[test]
fn bad_settings_are_errors_naming_the_setting() {
    let model = tiny_model(7);
    let err = sample(&model, &sigmas(), &quick(0, 2, 0), &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`n`"), "{err}");
    let err = sample(&model, &sigmas()[..3], &quick(2, 2, 0), &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("4 noise levels") && err.contains("3 sigmas"), "{err}");
    let bad_eps = SampleConfig {
        eps: -1.0,
        ..quick(2, 2, 0)
    };
    let err = sample(&model, &sigmas(), &bad_eps, &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`eps`"), "{err}");
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_converted_reference_checkpoint_loads_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = write(tmp.path(), "ngf4.toml", "dataset = \"mnist\"\nngf = 4\n");
    let weights = fixture("reference_ngf4_28x28x1.safetensors");
    let loaded = load_model(&weights, Some(toml.to_str().unwrap()), &Device::Cpu).unwrap();
    assert_eq!(loaded.sigmas.len(), 10);
    assert!((loaded.sigmas[0] - 1.0).abs() < 1e-12 && (loaded.sigmas[9] - 0.01).abs() < 1e-12);
    // The loaded network is the reference's: its output on the fixture's batch matches PyTorch's
    // (1e-4 absolute, as tests/model_reference.rs).
    let io = candle_core::safetensors::load(fixture("reference_ngf4_28x28x1_io.safetensors"), &Device::Cpu).unwrap();
    let labels = io["labels"].to_dtype(DType::U32).unwrap();
    let ours = values(&loaded.sampling_model().forward(&io["x"], &labels).unwrap());
    let theirs = values(&io["score"]);
    let max_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-4, "max diff {max_diff}");
    let out = sample(
        loaded.sampling_model(),
        &loaded.sigmas,
        &SampleConfig {
            steps_per_level: 2,
            ..quick(2, 2, 0)
        },
        &Device::Cpu,
        Progress::Quiet,
    )
    .unwrap();
    assert_eq!(out.samples.dims(), [2, 1, 28, 28]);
    assert_eq!(count_non_finite(&out.samples).unwrap(), 0);
}

#[test]
fn checkpoints_that_do_not_fit_give_errors_naming_the_file() {
    // LoadedModel is not Debug, so no unwrap_err.
    fn message<T>(r: ncsn::Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let weights = fixture("reference_ngf4_28x28x1.safetensors");
    // Another configuration: the reference MNIST model is ngf 64.
    let mnist = model_config("mnist").unwrap();
    let err = message(load_weights_file(
        &weights,
        &mnist.model_config(),
        mnist.sigmas().unwrap(),
        DType::F32,
        &Device::Cpu,
    ));
    assert!(
        err.contains("reference_ngf4_28x28x1.safetensors") && err.contains("shape"),
        "{err}"
    );
    // A bare weights file needs its configuration.
    let err = message(load_model(&weights, None, &Device::Cpu));
    assert!(err.contains("--model-config"), "{err}");
    // A missing run folder.
    let missing = tmp.path().join("no-such-run");
    let err = message(load_model(&missing, None, &Device::Cpu));
    assert!(err.contains("no-such-run"), "{err}");
    // A file that is not safetensors.
    let fake = write(tmp.path(), "fake.safetensors", "not tensors");
    let err = message(load_model(&fake, Some("mnist"), &Device::Cpu));
    assert!(err.contains("fake.safetensors") && err.contains("safetensors"), "{err}");
    // A config name that is neither a preset nor a file.
    let err = message(load_model(&weights, Some("svhn"), &Device::Cpu));
    assert!(err.contains("svhn") && err.contains("cifar10"), "{err}");
    // --model-config with a run folder.
    let err = message(load_model(tmp.path(), Some("mnist"), &Device::Cpu));
    assert!(err.contains("--model-config is only for"), "{err}");
}
