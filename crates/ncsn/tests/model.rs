//! The score network's structure, initialisation and forward pass (CPU).
use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ncsn::model::{reference_shapes, CondInstanceNormPlusPlus, CondRefineNetDilated, ModelConfig};

/// Exact parameter counts of the reference `CondRefineNetDilated` (PyTorch's
/// `sum(p.numel() for p in model.parameters())`, 173 tensors each).
const CIFAR10_PARAMETERS: usize = 30_117_635;
const MNIST_PARAMETERS: usize = 7_638_657;

fn build(cfg: &ModelConfig, dtype: DType) -> (VarMap, CondRefineNetDilated) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
    let model = CondRefineNetDilated::new(cfg, vb).expect("model builds");
    (varmap, model)
}

/// The network with every variable drawn from `seed` (the seeded `VarBuilder`).
fn seeded(cfg: &ModelConfig, dtype: DType, seed: u64) -> (VarMap, CondRefineNetDilated) {
    let varmap = VarMap::new();
    let vb = workbench::init::seeded_var_builder(&varmap, seed, dtype, &Device::Cpu);
    let model = CondRefineNetDilated::new(cfg, vb).expect("model builds");
    (varmap, model)
}

fn var_shapes(varmap: &VarMap) -> BTreeMap<String, Vec<usize>> {
    let data = varmap.data().lock().unwrap();
    data.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect()
}

fn small(channels: usize, image_size: usize) -> ModelConfig {
    ModelConfig {
        ngf: 16,
        channels,
        image_size,
        num_classes: 10,
    }
}

#[test]
fn parameter_counts_match_the_reference() {
    for (cfg, expected) in [
        (ModelConfig::cifar10(), CIFAR10_PARAMETERS),
        (ModelConfig::mnist(), MNIST_PARAMETERS),
    ] {
        let (varmap, _) = build(&cfg, DType::F32);
        let ours = var_shapes(&varmap);
        let count: usize = ours.values().map(|s| s.iter().product::<usize>()).sum();
        assert_eq!(count, expected, "{cfg:?}");
        assert_eq!(cfg.num_parameters(), expected, "{cfg:?}");
        assert_eq!(ours.len(), 173, "{cfg:?}");
    }
}

#[test]
fn variable_names_and_shapes_equal_the_reference_listing() {
    for cfg in [ModelConfig::cifar10(), ModelConfig::mnist(), small(3, 32)] {
        let (varmap, _) = build(&cfg, DType::F32);
        let reference: BTreeMap<String, Vec<usize>> = reference_shapes(&cfg).into_iter().collect();
        assert_eq!(
            reference.len(),
            reference_shapes(&cfg).len(),
            "duplicate names in the listing"
        );
        assert_eq!(var_shapes(&varmap), reference, "{cfg:?}");
    }
}

/// `tests/data/reference_state_dict_cifar10.txt` lists `name dim dim ...` for every entry of the
/// state_dict of the reference PyTorch model built with ngf 128, 3 channels, 10 levels (written
/// by `scripts/make_reference_fixture.py`): our listing must be it, in the same order.
#[test]
fn reference_listing_equals_the_pytorch_state_dict() {
    let text = include_str!("data/reference_state_dict_cifar10.txt");
    let pytorch: Vec<(String, Vec<usize>)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().unwrap().to_string();
            (name, parts.map(|d| d.parse().unwrap()).collect())
        })
        .collect();
    assert_eq!(reference_shapes(&ModelConfig::cifar10()), pytorch);
}

/// One image, two channels of two pixels, embedding row 1 selected (row 0 holds other numbers).
///
/// x_0 = [1, 3]: mu_0 = 2, s_0^2 = 1;  x_1 = [2, 6]: mu_1 = 4, s_1^2 = 4.
/// Across channels m = 3, v = ((2-3)^2 + (4-3)^2) / (2-1) = 2 (unbiased).
/// gamma = [2, 3], alpha = [0.5, -1], beta = [0.1, 0.2]:
/// z_0 = 2 ([-1, 1] / sqrt(1 + eps) + 0.5 (-1) / sqrt(2 + eps)) + 0.1
/// z_1 = 3 ([-2, 2] / sqrt(4 + eps) - 1 (+1) / sqrt(2 + eps)) + 0.2
#[test]
fn cond_instance_norm_plus_plus_by_hand() {
    let dev = Device::Cpu;
    let embed = Tensor::new(
        &[[9.0f64, 9.0, 9.0, 9.0, 9.0, 9.0], [2.0, 3.0, 0.5, -1.0, 0.1, 0.2]],
        &dev,
    )
    .unwrap();
    let vb = VarBuilder::from_tensors([("embed.weight".to_string(), embed)].into(), DType::F64, &dev);
    let norm = CondInstanceNormPlusPlus::new(2, 2, vb).unwrap();
    let x = Tensor::new(&[[[[1.0f64, 3.0]], [[2.0, 6.0]]]], &dev).unwrap();
    let z = norm.forward(&x, &Tensor::new(&[1u32], &dev).unwrap()).unwrap();
    let z = z.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let eps = 1e-5f64;
    let (s0, s1, sv) = ((1.0 + eps).sqrt(), (4.0 + eps).sqrt(), (2.0 + eps).sqrt());
    let expected = [
        2.0 * (-1.0 / s0 - 0.5 / sv) + 0.1,
        2.0 * (1.0 / s0 - 0.5 / sv) + 0.1,
        3.0 * (-2.0 / s1 - 1.0 / sv) + 0.2,
        3.0 * (2.0 / s1 - 1.0 / sv) + 0.2,
    ];
    // f64 arithmetic on four numbers: agreement to 1e-12.
    for (a, b) in z.iter().zip(expected) {
        assert!((a - b).abs() < 1e-12, "{z:?} vs {expected:?}");
    }
}

fn input(cfg: &ModelConfig, batch: usize, seed: u64) -> Tensor {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let shape = [batch, cfg.channels, cfg.image_size, cfg.image_size];
    // Values in (0, 1), the model's input range: the logistic function of normal draws.
    let z = langevin::randn_tensor(&mut rng, &shape, DType::F32, &Device::Cpu).unwrap();
    candle_nn::ops::sigmoid(&z).unwrap()
}

#[test]
fn forward_is_deterministic_shaped_and_conditioned() {
    for cfg in [small(3, 32), small(1, 28)] {
        let (_varmap, model) = seeded(&cfg, DType::F32, 7);
        let x = input(&cfg, 2, 1);
        let labels = Tensor::new(&[0u32, 9], &Device::Cpu).unwrap();
        let a = model.forward(&x, &labels).unwrap();
        let b = model.forward(&x, &labels).unwrap();
        assert_eq!(a.dims(), x.dims());
        let a_v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            a_v,
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "same input, same output"
        );
        assert!(a_v.iter().all(|v| v.is_finite()));

        // The same images under other noise levels: the seeded initialisation draws every level's gamma and alpha
        // separately, so outputs must differ (by far more than rounding).
        let other = model
            .forward(&x, &Tensor::new(&[3u32, 4], &Device::Cpu).unwrap())
            .unwrap();
        let diff = (a - other)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff > 1e-4, "labels change the output (max diff {diff})");

        // The batch is processed image by image: the first image alone gives the first output.
        let single = model
            .forward(&x.narrow(0, 0, 1).unwrap(), &labels.narrow(0, 0, 1).unwrap())
            .unwrap();
        let single = single.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let n = single.len();
        // f32 with a different batch layout: agreement to 1e-5 relative to the output scale.
        let scale = a_v.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (s, f) in single.iter().zip(&a_v[..n]) {
            assert!((s - f).abs() <= 1e-5 * scale.max(1.0), "{s} vs {f}");
        }
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let cfg = small(3, 32);
    let (_varmap, model) = build(&cfg, DType::F32);
    let dev = Device::Cpu;
    let x = input(&cfg, 2, 2);
    let err = model
        .forward(&x, &Tensor::new(&[0u32, 10], &dev).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range") && err.contains("10"), "{err}");
    let err = model
        .forward(&x, &Tensor::new(&[0u32], &dev).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("labels"), "{err}");
    let err = model
        .forward(&x, &Tensor::new(&[0i64, 1], &dev).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("u32"), "{err}");
    let gray = Tensor::zeros((2, 1, 32, 32), DType::F32, &dev).unwrap();
    let err = model
        .forward(&gray, &Tensor::new(&[0u32, 1], &dev).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[B, 3, H, W]"), "{err}");
    let odd = Tensor::zeros((2, 3, 31, 31), DType::F32, &dev).unwrap();
    assert!(model.forward(&odd, &Tensor::new(&[0u32, 1], &dev).unwrap()).is_err());
    let empty = Tensor::zeros((0, 3, 32, 32), DType::F32, &dev).unwrap();
    let no_labels = Tensor::zeros(0, DType::U32, &dev).unwrap();
    assert!(model
        .forward(&empty, &no_labels)
        .unwrap_err()
        .to_string()
        .contains("B >= 1"));
    let flat = Tensor::zeros((2, 3 * 32 * 32), DType::F32, &dev).unwrap();
    assert!(model.forward(&flat, &Tensor::new(&[0u32, 1], &dev).unwrap()).is_err());

    for (bad, field) in [
        (ModelConfig { ngf: 1, ..cfg.clone() }, "ngf"),
        (
            ModelConfig {
                image_size: 27,
                ..cfg.clone()
            },
            "image_size",
        ),
        (
            ModelConfig {
                num_classes: 0,
                ..cfg.clone()
            },
            "num_classes",
        ),
        (
            ModelConfig {
                channels: 0,
                ..cfg.clone()
            },
            "channels",
        ),
    ] {
        let varmap = VarMap::new();
        let err = CondRefineNetDilated::new(&bad, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}

/// Moments of the initial values, per rule (candle's draws in `new` are unseeded, so every bound
/// is 6 or more standard deviations of its statistic): with n draws, the sample mean of
/// U(-b, b) has standard deviation b / sqrt(3 n) and its sample variance a relative one of
/// sqrt(0.8 / n); for N(1, 0.02^2) the mean has 0.02 / sqrt(n) and the sample sd a relative
/// 1 / sqrt(2 n).
fn check_init(varmap: &VarMap) {
    let data = varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        let dims = var.dims().to_vec();
        let v = var
            .as_tensor()
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        if name.ends_with("embed.weight") {
            let c = dims[1] / 3;
            for row in v.chunks(3 * c) {
                assert!(row[2 * c..].iter().all(|&b| b == 0.0), "{name}: beta starts at 0");
                // gamma, alpha ~ N(1, 0.02^2): within 7 sigma of 1.
                assert!(
                    row[..2 * c].iter().all(|&g| (g - 1.0).abs() < 0.14),
                    "{name}: gamma/alpha near 1"
                );
            }
            let n = (2 * c * dims[0]) as f64;
            let scale: Vec<f64> = v.chunks(3 * c).flat_map(|r| r[..2 * c].to_vec()).collect();
            let mean = scale.iter().sum::<f64>() / n;
            let sd = (scale.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!((mean - 1.0).abs() < 6.0 * 0.02 / n.sqrt(), "{name}: mean {mean}");
            assert!((sd / 0.02 - 1.0).abs() < 6.0 / (2.0 * n).sqrt(), "{name}: sd {sd}");
        } else {
            let weight = data.get(&name.replace(".bias", ".weight")).unwrap();
            let fan_in: usize = weight.dims()[1..].iter().product();
            let b = 1.0 / (fan_in as f64).sqrt();
            // The draw lo + (up - lo) u is rounded to f32, which can land one f32 ulp past the
            // f64 bound: allow that ulp (2^-23 relative), nothing more.
            let bound = b * (1.0 + f64::from(f32::EPSILON));
            assert!(v.iter().all(|x| x.abs() <= bound), "{name}: within the fan-in bound");
            if v.len() >= 1000 {
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                assert!(mean.abs() < 6.0 * b / (3.0 * n).sqrt(), "{name}: mean {mean}");
                assert!(
                    (var / (b * b / 3.0) - 1.0).abs() < 6.0 * (0.8 / n).sqrt(),
                    "{name}: variance {var}"
                );
            }
        }
    }
}

#[test]
fn initialisation_follows_the_reference_rules() {
    let cfg = small(3, 32);
    let (varmap, _) = build(&cfg, DType::F32);
    check_init(&varmap); // candle's own draws in `new`
    let (varmap, _) = seeded(&cfg, DType::F32, 3);
    check_init(&varmap);
}

#[test]
fn seeded_initialisation_is_reproducible() {
    let cfg = ModelConfig { ngf: 4, ..small(3, 32) };
    let values = |seed: u64| {
        let (varmap, _) = seeded(&cfg, DType::F32, seed);
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<_> = data.keys().cloned().collect();
        names.sort();
        names
            .iter()
            .flat_map(|n| data[n].flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect::<Vec<f32>>()
    };
    let a = values(11);
    assert_eq!(a, values(11));
    let b = values(12);
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() > a.len() / 2);
}

#[test]
fn checkpoint_round_trip_gives_the_same_output() {
    let cfg = ModelConfig { ngf: 4, ..small(3, 32) };
    let (varmap, model) = seeded(&cfg, DType::F32, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    varmap.save(&path).unwrap();
    // SAFETY: the file was just written by this test and is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
    let loaded = CondRefineNetDilated::new(&cfg, vb).unwrap();
    let x = input(&cfg, 2, 3);
    let labels = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    let a = model
        .forward(&x, &labels)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = loaded
        .forward(&x, &labels)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b, "a loaded checkpoint is not re-initialised");

    // A checkpoint of another width is an error naming a tensor, not a panic.
    let wide = ModelConfig { ngf: 8, ..cfg };
    // SAFETY: as above.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
    let err = CondRefineNetDilated::new(&wide, vb).unwrap_err().to_string();
    assert!(err.contains("begin_conv.weight") || err.contains("shape"), "{err}");
}

/// One forward pass calls each kind of module as often as the reference's structure says:
/// convs: begin + end 2, residual blocks 19 (2 per block, + a shortcut in the 3 "down" blocks),
/// RCUs 40 (adapt: 4 per input, 7 inputs; output: 2, 2, 2, 6), MSF 6, CRP 8 = 75;
/// norms: 1 + 16 + 40 + 6 + 8 = 71; ELUs: 16 + 40 + 4 (CRP entry) + 1 = 61;
/// pools: 8 in the CRPs + 2 mean pools in res2's first block = 10;
/// resizes: 1 (refine4, 16x16 -> 32x32; the other fusions are at equal sizes, no resize).
#[test]
fn profile_counts_every_layer_once_per_call() {
    use ncsn::model::profile::{start_profile, take_profile, LayerKind};
    let cfg = ModelConfig {
        ngf: 2,
        channels: 3,
        image_size: 32,
        num_classes: 10,
    };
    let (_varmap, model) = build(&cfg, DType::F32);
    let x = input(&cfg, 1, 4);
    let labels = Tensor::new(&[5u32], &Device::Cpu).unwrap();
    start_profile();
    model.forward(&x, &labels).unwrap();
    let profile = take_profile().unwrap();
    let calls = |k| profile.get(&k).map(|(_, n)| *n).unwrap_or(0);
    assert_eq!(calls(LayerKind::Conv), 75);
    assert_eq!(calls(LayerKind::Norm), 71);
    assert_eq!(calls(LayerKind::Elu), 61);
    assert_eq!(calls(LayerKind::Pool), 10);
    assert_eq!(calls(LayerKind::Resize), 1);
    assert!(take_profile().is_none(), "recording stopped");
}

#[test]
fn bench_times_the_training_and_sampling_steps_of_a_tiny_run() {
    use ncsn::bench::{run_bench, BenchOptions};
    let opts = BenchOptions {
        train: ncsn::TrainConfig {
            ngf: 2,
            channels: 1,
            image_size: 8,
            num_levels: 4,
            batch_size: 2,
            ema: true,
            ..ncsn::TrainConfig::mnist()
        },
        train_steps: 2,
        sample_evals: 1,
        warmup: 0,
    };
    let report = run_bench(&opts, &Device::Cpu).unwrap();
    assert_eq!(report.train_step.count, 2);
    assert!(report.train_step.median > 0.0 && report.train_images_per_s().is_finite());
    assert_eq!(report.sample_step.count, 1);
    assert!(report.sample_step.median > 0.0 && report.sample_evals_per_s().is_finite());
    // The profiled step is a whole forward pass of the network.
    assert_eq!(
        report.forward_by_kind.iter().map(|k| k.calls).sum::<usize>(),
        75 + 71 + 61 + 10 + 1
    );
    let p = report.phases;
    assert!(p.forward > std::time::Duration::ZERO && p.backward > std::time::Duration::ZERO);
    assert!(report.to_string().contains("images/s"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json(Some(7))).unwrap();
    assert_eq!(json["batch"], 2);
    assert_eq!(json["peak_resident_bytes"], 7);
    // Nothing timed: no figures, no division by zero in the report.
    let none = BenchOptions {
        train_steps: 0,
        sample_evals: 0,
        ..opts.clone()
    };
    let report = run_bench(&none, &Device::Cpu).unwrap();
    assert_eq!((report.train_step.count, report.sample_step.count), (0, 0));
    assert!(!report.to_string().contains("NaN"));
    // An invalid run is refused with the key named, as `ncsn train` refuses it.
    let zero = BenchOptions {
        train: ncsn::TrainConfig {
            batch_size: 0,
            ..opts.train
        },
        ..opts
    };
    let err = run_bench(&zero, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("batch"), "{err}");
}
