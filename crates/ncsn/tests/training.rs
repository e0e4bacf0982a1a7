//! Training end to end on generated data (CPU, tiny model): the loss goes down, checkpoints
//! round-trip, a resumed run equals an uninterrupted one, and a run is fixed by its seed.
mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{tiny_config, write_idx};
use ncsn::config::LrSchedule;
use ncsn::training::checkpoint::{Checkpoint, RunState};
use ncsn::training::log::Split;
use ncsn::vars::named_vars;
use ncsn::{load_checkpoint, train_new, train_resume, Overrides, Progress, RunOptions, Trainer};

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        out_dir: dir.to_path_buf(),
        progress: Progress::Quiet,
    }
}

/// A new run folder `dest` whose latest checkpoint is the one `run` kept at `step` (a run
/// interrupted there): its weights, `config.toml` and `loss.csv`.
fn copy_kept_as_latest(run: &Path, step: u64, dest: &Path) {
    std::fs::create_dir(dest).unwrap();
    let weights = format!("checkpoint-{step:08}.safetensors");
    for f in [weights.as_str(), "config.toml", "loss.csv"] {
        std::fs::copy(run.join(f), dest.join(f)).unwrap();
    }
    std::fs::copy(
        run.join(format!("checkpoint-{step:08}.json")),
        dest.join("checkpoint.json"),
    )
    .unwrap();
}

fn checkpoint_tensors(run: &Path) -> HashMap<String, Tensor> {
    Checkpoint::open(run, &Device::Cpu).unwrap().tensors
}

/// Two checkpoints hold the same tensors, bit for bit: same draws and the same CPU kernels in the
/// same order give a difference of exactly 0.
fn assert_same_tensors(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    assert_eq!(a.len(), b.len());
    for (name, ta) in a {
        let d = (ta - &b[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{name} differs by {d}");
    }
}

#[test]
fn fifty_steps_lower_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte.gz");
    // 8x8 images keep 50 steps of the real network at about a second on 2 cores.
    write_idx(&data, 64, 8, true);
    let mut config = tiny_config(&data);
    config.image_size = 8;
    config.steps = 50;
    let mut trainer = Trainer::new(config, &Device::Cpu).unwrap();
    let losses: Vec<f64> = (0..50).map(|_| trainer.train_step().unwrap()).collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..10]), mean(&losses[40..]));
    // At initialisation sigma*s is small, so the loss is near 1/2 E|z|^2 = 0.5*D = 32 for 8x8
    // images; after 50 Adam steps the network predicts part of the noise (measured: 31.2 ->
    // 22.0). Each 10-step mean covers 80 examples of a chi-square/2 loss (sd 5.7 each), so its
    // noise is about 2%: asserting a 20% drop leaves a wide margin on both sides.
    assert!(
        last < 0.8 * first,
        "first 10 steps {first:.2}, last 10 steps {last:.2}: {losses:?}"
    );
    let (test, per_level) = trainer.test_loss().unwrap().unwrap();
    assert!(test.is_finite() && per_level.len() == 4);
}

#[test]
fn checkpoint_round_trip_restores_the_model_and_its_ema() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte");
    write_idx(&data, 40, 16, false);
    let run = tmp.path().join("run");
    let mut config = tiny_config(&data);
    config.ema = true;
    config.ema_rate = 0.5;
    config.steps = 3;
    let summary = train_new(config.clone(), &Device::Cpu, &options(&run)).unwrap();
    assert_eq!(summary.end_step, 3);
    for file in [
        "checkpoint.json",
        "checkpoint-00000003.safetensors",
        "loss.csv",
        "loss.png",
        "config.toml",
    ] {
        assert!(run.join(file).is_file(), "{file} written");
    }
    let loaded = load_checkpoint(&run, &Device::Cpu).unwrap();
    assert_eq!((loaded.step, loaded.run.as_ref()), (3, Some(&config)));
    assert_eq!(loaded.sigmas, config.sigmas().unwrap());
    // The loaded model computes what the saved weights compute: compare with a model built
    // from the checkpoint's raw tensors.
    let tensors = checkpoint_tensors(&run);
    let x = Tensor::rand(0f32, 1f32, (2, 1, 16, 16), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
    let from_prefix = |prefix: &str| {
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect();
        let vb = candle_nn::VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        ncsn::model::CondRefineNetDilated::new(&config.model_config(), vb).unwrap()
    };
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let out = loaded.model.forward(&x, &labels).unwrap();
    // Same weights, same input, same CPU kernels: identical outputs.
    assert_eq!(diff(&out, &from_prefix("model.").forward(&x, &labels).unwrap()), 0.0);
    let ema_out = loaded.sampling_model().forward(&x, &labels).unwrap();
    assert_eq!(diff(&ema_out, &from_prefix("ema.").forward(&x, &labels).unwrap()), 0.0);
    assert!(
        diff(&ema_out, &out) > 0.0,
        "the EMA (rate 0.5 over 3 steps) differs from the last weights"
    );
    // A new run refuses to overwrite the folder.
    let err = train_new(config, &Device::Cpu, &options(&run)).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
}

#[test]
fn keep_every_keeps_loadable_checkpoints_of_the_past() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte");
    write_idx(&data, 24, 8, false);
    let run = tmp.path().join("run");
    let mut config = tiny_config(&data);
    config.image_size = 8;
    config.steps = 7;
    config.snapshot_every = 2;
    config.keep_every = 4;
    train_new(config.clone(), &Device::Cpu, &options(&run)).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint"))
        .collect();
    files.sort();
    // Saves at 2, 4, 6 and 7 (the end); 4 is kept beside the latest, 2 and 6 are pruned.
    assert_eq!(
        files,
        [
            "checkpoint-00000004.json",
            "checkpoint-00000004.safetensors",
            "checkpoint-00000007.safetensors",
            "checkpoint.json"
        ]
    );
    let kept = load_checkpoint(&run.join("checkpoint-00000004.json"), &Device::Cpu).unwrap();
    let latest = load_checkpoint(&run, &Device::Cpu).unwrap();
    assert_eq!((kept.step, latest.step), (4, 7));
    // The kept checkpoint holds step 4's weights: it resumes into step 7's exactly.
    let whole = checkpoint_tensors(&run);
    let again = tmp.path().join("again");
    copy_kept_as_latest(&run, 4, &again);
    train_resume(
        &again,
        &Overrides::default(),
        &Overrides::default(),
        &Device::Cpu,
        Progress::Quiet,
    )
    .unwrap();
    assert_same_tensors(&whole, &checkpoint_tensors(&again));
    // keep_every must name checkpoints that are written.
    config.keep_every = 3;
    let err = train_new(config, &Device::Cpu, &options(&tmp.path().join("bad")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keep_every") && err.contains("snapshot_every = 2"),
        "{err}"
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte.gz");
    // 20 images: 2 epochs of batches of 8 in 6 steps, so resuming crosses an epoch boundary.
    write_idx(&data, 20, 16, true);
    let mut config = tiny_config(&data);
    config.ema = true;
    config.dequantize = true;
    config.random_flip = true;
    config.log_every = 2; // not a divisor of snapshot_every: the loss accumulator is resumed too
    config.snapshot_every = 3;

    let whole = tmp.path().join("whole");
    train_new(config.clone(), &Device::Cpu, &options(&whole)).unwrap();

    let parts = tmp.path().join("parts");
    let mut first = config.clone();
    first.steps = 3;
    train_new(first, &Device::Cpu, &options(&parts)).unwrap();
    let more = Overrides {
        steps: Some(6),
        ..Default::default()
    };
    let summary = train_resume(&parts, &Overrides::default(), &more, &Device::Cpu, Progress::Quiet).unwrap();
    assert_eq!((summary.start_step, summary.end_step), (3, 6));

    assert_same_tensors(&checkpoint_tensors(&whole), &checkpoint_tensors(&parts));
    let (ma, mb) = (RunState::read(&whole).unwrap(), RunState::read(&parts).unwrap());
    assert_eq!((ma.step, ma.adam_steps), (mb.step, mb.adam_steps));
    assert_eq!(ma.rng, mb.rng);
    assert_eq!(ma.train_loader, mb.train_loader);
    assert_eq!(ma.config, mb.config);
    // The logs agree too, except the measured throughput.
    let losses = |dir: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(dir.join("loss.csv"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut cells: Vec<String> = l.split(',').map(String::from).collect();
                cells.remove(3);
                cells
            })
            .collect()
    };
    assert_eq!(losses(&whole), losses(&parts));
    assert_eq!(summary.rows.iter().filter(|r| r.split == Split::Train).count(), 3);
}

#[test]
fn cosine_schedule_resumes_exactly_and_changes_the_run() {
    // A cosine run of 6 steps interrupted after 3 (the kept checkpoint) and resumed equals the
    // uninterrupted run bit for bit: the rate is a function of the step. It differs from the
    // constant-rate run after the first step (step 0 has rate lr in both), and asking a cosine run
    // for more steps on resume is refused (the schedule would change under it).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte");
    write_idx(&data, 20, 16, false);
    let mut config = tiny_config(&data);
    config.steps = 6;
    config.snapshot_every = 3;
    config.keep_every = 3;
    let constant = tmp.path().join("constant");
    train_new(config.clone(), &Device::Cpu, &options(&constant)).unwrap();
    config.lr_schedule = LrSchedule::Cosine;
    let whole = tmp.path().join("whole");
    train_new(config.clone(), &Device::Cpu, &options(&whole)).unwrap();
    let (a, b) = (checkpoint_tensors(&constant), checkpoint_tensors(&whole));
    let values = |t: &Tensor| {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    let differs = a
        .iter()
        .filter(|(name, _)| name.starts_with("model."))
        .any(|(name, t)| values(t) != values(&b[name]));
    assert!(differs, "the cosine schedule must change the weights");

    let again = tmp.path().join("again");
    copy_kept_as_latest(&whole, 3, &again);
    let longer = Overrides {
        steps: Some(8),
        ..Default::default()
    };
    let err = train_resume(&again, &Overrides::default(), &longer, &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cosine") && err.contains("steps = 6"), "{err}");
    train_resume(
        &again,
        &Overrides::default(),
        &Overrides::default(),
        &Device::Cpu,
        Progress::Quiet,
    )
    .unwrap();
    assert_same_tensors(&checkpoint_tensors(&whole), &checkpoint_tensors(&again));
}

#[test]
fn the_seed_fixes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte");
    write_idx(&data, 20, 16, false);
    let run = |seed: u64| {
        let mut config = tiny_config(&data);
        config.seed = seed;
        let mut t = Trainer::new(config, &Device::Cpu).unwrap();
        let losses = [t.train_step().unwrap(), t.train_step().unwrap()];
        let weights: Vec<Vec<f32>> = named_vars(t.varmap())
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect();
        (losses, weights)
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a, b, "same seed, same losses and weights");
    assert_ne!(a.0, c.0, "another seed draws other weights and noise");
}

#[test]
fn checkpoint_of_another_configuration_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte");
    write_idx(&data, 20, 16, false);
    let run = tmp.path().join("run");
    let mut config = tiny_config(&data);
    config.steps = 1;
    train_new(config.clone(), &Device::Cpu, &options(&run)).unwrap();
    // Changing the model on resume is refused, naming the key.
    let wider = Overrides {
        ngf: Some(16),
        ..Default::default()
    };
    let err = train_resume(&run, &Overrides::default(), &wider, &Device::Cpu, Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ngf` = 16") && err.contains("checkpoint.json"), "{err}");
    // A checkpoint.json edited to another model: the weights do not fit and the error names a tensor.
    let json = run.join("checkpoint.json");
    let text = std::fs::read_to_string(&json)
        .unwrap()
        .replace("\"ngf\": 8", "\"ngf\": 4");
    std::fs::write(&json, text).unwrap();
    let err = load_checkpoint(&run, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("shape") && err.contains("model."), "{err}");
    // Not a checkpoint at all.
    std::fs::write(&json, "{\"hello\": 1}").unwrap();
    let err = load_checkpoint(&run, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("not an ncsn checkpoint"), "{err}");
    let err = load_checkpoint(&tmp.path().join("nowhere"), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_loaded_model_is_fine_tuned_from_its_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits-idx3-ubyte");
    write_idx(&data, 20, 16, false);
    let run = tmp.path().join("run");
    let mut config = tiny_config(&data);
    config.steps = 2;
    train_new(config.clone(), &Device::Cpu, &options(&run)).unwrap();
    let loaded = load_checkpoint(&run, &Device::Cpu).unwrap();
    let flat = |vars: &candle_nn::VarMap| -> Vec<Vec<f32>> {
        named_vars(vars)
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let saved = flat(&loaded.params);
    let (train, test) = ncsn::data::load_train_test(&config.data_spec()).unwrap();

    // Another shape than the configuration's is the caller's mistake, named as such.
    let wider = ncsn::TrainConfig {
        ngf: 16,
        ..config.clone()
    };
    let (params, model) = ncsn::model::build_model(&config.model_config(), DType::F32, &Device::Cpu, Some(1)).unwrap();
    match Trainer::from_weights(wider, params, model, train.clone(), test.clone(), &Device::Cpu) {
        Err(ncsn::Error::Argument(message)) => assert!(message.contains("ngf: 16"), "{message}"),
        Err(e) => panic!("expected an argument error, got {e}"),
        Ok(_) => panic!("expected an argument error"),
    }

    // The trainer starts at the loaded weights (its parameters are the loaded model's), and its
    // steps move them.
    let mut trainer = Trainer::from_weights(config, loaded.params, loaded.model, train, test, &Device::Cpu).unwrap();
    assert_eq!((trainer.step(), flat(trainer.varmap())), (0, saved.clone()));
    let loss = trainer.train_step().unwrap();
    assert!(loss.is_finite());
    assert_ne!(flat(trainer.varmap()), saved, "one Adam step changes the weights");
}
