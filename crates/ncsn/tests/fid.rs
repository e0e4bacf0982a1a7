//! `ncsn fid`, `ncsn sample --fid` and `fid_every` from the command line, on the shipped MNIST
//! digits with the shipped classifier: what the numbers mean (a set against itself, held-out
//! digits, noise), the forms a set can take (IDX, samples file, image folder, saved
//! statistics), and a clear error for each bad input.
mod common;

use common::{assert_clean_error, ncsn, stderr};

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-5k-images-idx3-ubyte.gz")
}

/// Runs `ncsn fid ARGS --mnist --json out.json` in `dir` and returns the JSON.
fn fid_json(args: &[&str], dir: &Path) -> serde_json::Value {
    let json = dir.join("out.json");
    let mut all = vec!["fid", "--mnist", "--json", json.to_str().unwrap()];
    all.extend(args);
    let out = ncsn(&all, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn fid_of(v: &serde_json::Value) -> f64 {
    v["fid"].as_f64().expect("a FID")
}

/// `n` digits of the shipped set's held-out part as a samples file `(n, 1, 28, 28)` in [0, 1].
fn held_out_as_samples(n: usize, path: &Path) {
    let all = ncsn::data::idx::load_images(&digits()).unwrap();
    let (_, test) = ncsn::data::holdout(&all, 0.1);
    let x = test
        .select(&(0..n).collect::<Vec<_>>())
        .to_tensor(&Device::Cpu)
        .unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("samples".to_string(), x)]), path).unwrap();
}

#[test]
fn the_scale_of_the_mnist_fid_from_itself_to_held_out_digits_to_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = digits();
    let d = d.to_str().unwrap();
    // A set against itself: the same mean and covariance, so 0 up to the rounding of the matrix
    // square root (1e-6 of a FID whose floor below is ~1).
    let same = fid_json(&[d, d, "--part-a", "test", "--part-b", "test"], dir);
    assert!(fid_of(&same).abs() < 1e-6, "{same}");
    assert_eq!(same["a"]["count"], 500);
    // Held-out digits against the training digits: the floor of the metric, small but not 0.
    let floor = fid_json(&[d, d, "--part-a", "test", "--part-b", "train"], dir);
    assert_eq!(
        (floor["a"]["count"].as_u64(), floor["b"]["count"].as_u64()),
        (Some(500), Some(4500))
    );
    let floor = fid_of(&floor);
    assert!(floor > 0.0, "{floor}");
    // Uniform noise against the training digits: far above the floor.
    let noise: Vec<f32> = (0..500 * 784)
        .map(|i| ((i * 2_654_435_761usize) % 1000) as f32 / 1000.0)
        .collect();
    let noise = Tensor::from_vec(noise, (500, 1, 28, 28), &Device::Cpu).unwrap();
    let noise_file = dir.join("noise.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("samples".to_string(), noise)]),
        &noise_file,
    )
    .unwrap();
    let ceiling = fid_of(&fid_json(&[noise_file.to_str().unwrap(), d, "--part-b", "train"], dir));
    assert!(ceiling > 20.0 * floor, "noise {ceiling} vs held-out digits {floor}");
}

#[test]
fn samples_files_image_folders_and_saved_statistics_measure_the_same_images_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = digits();
    let d = d.to_str().unwrap();
    // The held-out digits as a samples file: bytes / 255 quantise back to the same bytes.
    let samples = dir.join("samples.safetensors");
    held_out_as_samples(500, &samples);
    let s = samples.to_str().unwrap();
    let direct = fid_json(&[d, d, "--part-a", "test", "--part-b", "train"], dir);
    let from_samples = fid_json(&[s, d, "--part-b", "train"], dir);
    assert_eq!(fid_of(&direct), fid_of(&from_samples));
    assert_eq!(direct["a"]["summary"], {
        let mut summary = from_samples["a"]["summary"].clone();
        summary["source"] = direct["a"]["summary"]["source"].clone();
        summary
    });
    // The same digits as PNG files in a folder.
    let folder = dir.join("pngs");
    std::fs::create_dir(&folder).unwrap();
    let all = ncsn::data::idx::load_images(&digits()).unwrap();
    let (_, test) = ncsn::data::holdout(&all, 0.1);
    for i in 0..test.len() {
        image::GrayImage::from_raw(28, 28, test.image(i).to_vec())
            .unwrap()
            .save(folder.join(format!("{i:04}.png")))
            .unwrap();
    }
    let from_folder = fid_json(&[folder.to_str().unwrap(), d, "--part-b", "train"], dir);
    assert_eq!(fid_of(&direct), fid_of(&from_folder));
    // The training digits' statistics saved once, then used as the reference.
    let stats = dir.join("train-stats.safetensors");
    let out = ncsn(
        &[
            "fid",
            "--mnist",
            d,
            "--part-a",
            "train",
            "--save-stats",
            stats.to_str().unwrap(),
        ],
        dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let from_stats = fid_json(&[s, stats.to_str().unwrap()], dir);
    // Saved in f64: the same numbers as measuring again.
    assert_eq!(fid_of(&direct), fid_of(&from_stats));
    assert_eq!(from_stats["b"]["count"], 4500);
    // The class summary says the held-out digits are digits of every class.
    let shares = direct["a"]["summary"]["class_shares"].as_array().unwrap();
    assert_eq!(shares.len(), 10);
    for share in shares {
        let share = share.as_f64().unwrap();
        assert!((0.06..0.14).contains(&share), "{shares:?}");
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = digits();
    let d = d.to_str().unwrap();
    // No metric.
    assert_clean_error(&ncsn(&["fid", d, d], dir), &["--mnist", "--inception"]);
    // Images of another size for the MNIST classifier.
    common::write_idx(&dir.join("small.gz"), 100, 16, true);
    assert_clean_error(
        &ncsn(&["fid", "--mnist", "small.gz", d], dir),
        &["small.gz", "28x28", "1x16x16"],
    );
    // RGB images.
    common::write_cifar_dir(dir, 20);
    assert_clean_error(
        &ncsn(&["fid", "--mnist", "cifar-10-batches-bin", d], dir),
        &["cifar-10-batches-bin", "28x28", "3x32x32"],
    );
    // Fewer samples than the classifier's 64 features: a singular covariance.
    held_out_as_samples(40, &dir.join("few.safetensors"));
    assert_clean_error(&ncsn(&["fid", "--mnist", "few.safetensors", d], dir), &["40", "65"]);
    // NaN samples.
    let mut values = vec![0.5f32; 100 * 784];
    values[784 * 3 + 5] = f32::NAN;
    let nan = Tensor::from_vec(values, (100, 1, 28, 28), &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("samples".to_string(), nan)]),
        dir.join("nan.safetensors"),
    )
    .unwrap();
    assert_clean_error(
        &ncsn(&["fid", "--mnist", "nan.safetensors", d], dir),
        &["nan.safetensors", "NaN"],
    );
    // A safetensors file that holds neither images nor statistics.
    let odd = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("w".to_string(), odd)]),
        dir.join("odd.safetensors"),
    )
    .unwrap();
    assert_clean_error(
        &ncsn(&["fid", "--mnist", "odd.safetensors", d], dir),
        &["odd.safetensors", "samples"],
    );
    // An Inception weights file that is not one.
    std::fs::write(dir.join("inception.safetensors"), b"not weights").unwrap();
    assert_clean_error(
        &ncsn(&["fid", "--inception", "inception.safetensors", d, d], dir),
        &["inception.safetensors"],
    );
    // A missing path, and --save-stats with two sets.
    assert_clean_error(&ncsn(&["fid", "--mnist", "nowhere.gz", d], dir), &["nowhere.gz"]);
    assert_clean_error(
        &ncsn(&["fid", "--mnist", d, d, "--save-stats", "s.safetensors"], dir),
        &["--save-stats"],
    );
}

/// A 28x28 run of a few steps, with `fid_every` as given.
fn digits_run(dir: &Path, name: &str, fid_every: u64) -> ncsn::training::RunSummary {
    let config = ncsn::TrainConfig {
        name: name.into(),
        ngf: 4,
        num_levels: 3,
        batch_size: 8,
        test_batch_size: 8,
        steps: 2,
        snapshot_every: 2,
        log_every: 1,
        test_every: 2,
        sample_steps_per_level: 1,
        fid_every,
        fid_samples: 70,
        ..ncsn::TrainConfig::mnist()
    };
    let options = ncsn::training::RunOptions {
        out_dir: dir.join(name),
        progress: ncsn::Progress::Quiet,
    };
    ncsn::training::train_new(config, &Device::Cpu, &options).unwrap()
}

#[test]
fn training_logs_the_fid_without_changing_the_run_and_sample_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let with = digits_run(dir, "with", 2);
    let without = digits_run(dir, "without", 0);
    let losses = |rows: &[ncsn::training::log::LogRow]| -> Vec<f64> {
        rows.iter()
            .filter(|r| !r.split.is_sample_measure())
            .map(|r| r.loss)
            .collect()
    };
    assert_eq!(
        losses(&with.rows),
        losses(&without.rows),
        "measuring does not touch the training stream"
    );
    let fid_rows: Vec<_> = with
        .rows
        .iter()
        .filter(|r| r.split == ncsn::training::log::Split::Fid)
        .collect();
    assert_eq!(fid_rows.len(), 1);
    assert!(
        fid_rows[0].loss.is_finite() && fid_rows[0].loss > 0.0,
        "{:?}",
        fid_rows[0]
    );
    // With the FID, what the classifier says of the same samples: the share it is sure of, and
    // the share of each of the 10 digits, which sum to 1 (each is a count over 70 samples: the
    // sum is exact to a few units in the last place).
    let measured = |split| {
        with.rows
            .iter()
            .filter(|r| r.split == split)
            .map(|r| (r.step, r.loss))
            .collect::<Vec<_>>()
    };
    let sure = measured(ncsn::training::log::Split::Sure);
    assert!(
        sure.len() == 1 && sure[0].0 == 2 && (0.0..=1.0).contains(&sure[0].1),
        "{sure:?}"
    );
    let shares: Vec<f64> = (0..10)
        .map(|k| {
            let rows = measured(ncsn::training::log::Split::Class(k));
            assert_eq!(rows.len(), 1, "class {k}: {rows:?}");
            let share = rows[0].1;
            assert!(
                (share * 70.0 - (share * 70.0).round()).abs() < 1e-9,
                "{share}: not a count over 70"
            );
            share
        })
        .collect();
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{shares:?}");
    assert!(measured(ncsn::training::log::Split::Class(10)).is_empty());
    let csv = std::fs::read_to_string(dir.join("with/loss.csv")).unwrap();
    for start in ["2,fid,", "2,sure,", "2,class_0,", "2,class_9,"] {
        assert!(csv.lines().any(|l| l.starts_with(start)), "{start}: {csv}");
    }
    let picture = image::open(dir.join("with/fid-samples/step-000002.png")).unwrap();
    // 64 of the 70 samples: 8 x 8 tiles of 56x56 pixels (28 x scale 2) with 2-pixel gaps.
    assert_eq!((picture.width(), picture.height()), (2 + 8 * 58, 2 + 8 * 58));

    // 70 samples of the run, one step per level, measured; `extra` flags after these.
    let sample_fid = |extra: &[&str]| {
        let mut args = vec![
            "sample",
            "--checkpoint",
            "with",
            "--n",
            "70",
            "--steps-per-level",
            "1",
            "--fid",
        ];
        args.extend(extra);
        ncsn(&args, dir)
    };
    let out = sample_fid(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FID") && stdout.contains("70 samples against 4500"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("with/samples/fid.json")).unwrap()).unwrap();
    assert!(json["fid"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(json["samples"]["count"], 70);
    // fid.json says what drew the samples.
    let sampler = &json["sampler"];
    assert_eq!(
        (sampler["steps_per_level"].as_u64(), sampler["training_step"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(sampler["levels"].as_u64(), Some(3));
    assert!(sampler["seconds"].as_f64().unwrap() > 0.0, "{sampler}");
    assert!(json.get("decisions").is_none(), "no estimates were kept: {json}");
    assert!(sampler["step_band"].is_null(), "{sampler}");

    // With Tweedie's estimates at every step: the same chains (keeping the estimates evaluates
    // nothing more), their pictures, and one decision per level (3 levels, 1 step each).
    let out = sample_fid(&["--snapshots", "1", "--denoised", "--out", "decided"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A step band is recorded with the rest of the sampler.
    let banded = sample_fid(&["--step-band", "0.2,0.5,3", "--out", "banded"]);
    assert!(banded.status.success(), "{}", stderr(&banded));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("banded/fid.json")).unwrap()).unwrap();
    assert_eq!(
        json["sampler"]["step_band"],
        serde_json::json!({"low": 0.2, "high": 0.5, "factor": 3.0})
    );
    let samples = |folder: &str| {
        let t = candle_core::safetensors::load(dir.join(folder).join("samples.safetensors"), &Device::Cpu).unwrap();
        t["samples"].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(samples("decided"), samples("with/samples"));
    for file in [
        "denoised.png",
        "denoised.gif",
        "denoised/step-000000.png",
        "chain.png",
        "decisions.png",
    ] {
        assert!(dir.join("decided").join(file).is_file(), "{file}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("decided/fid.json")).unwrap()).unwrap();
    let decisions = json["decisions"].as_array().unwrap();
    let levels: Vec<u64> = decisions.iter().map(|d| d["level"].as_u64().unwrap()).collect();
    assert_eq!(levels, [1, 2, 3]);
    for d in decisions {
        // Shares of 70 chains.
        for key in ["agreement", "confident_share"] {
            let share = d[key].as_f64().unwrap();
            assert!((share * 70.0 - (share * 70.0).round()).abs() < 1e-9, "{key} {share}");
        }
        assert!(d["fid"].as_f64().unwrap() > 0.0, "{d}");
    }
    // The estimates need snapshots to be kept at.
    assert_clean_error(&sample_fid(&["--out", "nosnap", "--denoised"]), &["--snapshots"]);
    assert!(!dir.join("nosnap").exists(), "refused before anything is written");

    // Too few samples for the classifier's 64 features: refused before sampling.
    let out = ncsn(
        &["sample", "--checkpoint", "with", "--n", "64", "--out", "few", "--fid"],
        dir,
    );
    assert_clean_error(&out, &["--n 65", "64 features"]);
    assert!(!dir.join("few/samples.png").exists(), "nothing was sampled");
}

#[test]
fn sample_fid_on_rgb_images_asks_for_inception_before_sampling() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_idx(&dir.join("digits.gz"), 20, 16, true);
    let config = ncsn::TrainConfig {
        steps: 1,
        ..common::tiny_config(&dir.join("digits.gz"))
    };
    let options = ncsn::training::RunOptions {
        out_dir: dir.join("run"),
        progress: ncsn::Progress::Quiet,
    };
    ncsn::training::train_new(config, &Device::Cpu, &options).unwrap();
    let out = ncsn(&["sample", "--checkpoint", "run", "--n", "4", "--fid"], dir);
    assert_clean_error(&out, &["--inception", "1x16x16"]);
    assert!(!dir.join("run/samples/samples.png").exists(), "nothing was sampled");
}
