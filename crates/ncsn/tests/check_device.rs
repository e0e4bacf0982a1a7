//! `ncsn check-device`: it passes on the CPU (the dry run), each of its checks fails when the
//! numbers it compares are off by more than its tolerance, its loss is the trainer's, and a
//! missing or misshapen fixture stops with an error naming the file.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{assert_clean_error, ncsn, stderr};
use ncsn::data::ImageSet;
use ncsn::device_check::{
    check_device, compare, dsm_batch, evaluate, Fixture, DEVICE_FORWARD_TOL, DEVICE_GRADIENT_TOL, FIXTURE_IO,
    FIXTURE_WEIGHTS, GRADIENT_PARAMS,
};
use ncsn::load::load_weights_file;
use ncsn::{TrainConfig, Trainer};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fixture folder in `tmp` holding copies of the given files under the ngf-8 fixture's names.
fn fixture_dir(tmp: &Path, weights: Option<&str>, io: Option<&str>) -> PathBuf {
    let dir = tmp.join("fixture");
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(name) = weights {
        std::fs::copy(data_dir().join(name), dir.join(FIXTURE_WEIGHTS)).unwrap();
    }
    if let Some(name) = io {
        std::fs::copy(data_dir().join(name), dir.join(FIXTURE_IO)).unwrap();
    }
    dir
}

#[test]
fn passes_on_the_cpu_against_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir();
    let out = ncsn(
        &[
            "check-device",
            "--device",
            "cpu",
            "--fixture-dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    // 3 forward checks, the loss, one per gradient; each line with its number and tolerance.
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("PASS")).collect();
    assert_eq!(lines.len(), 4 + GRADIENT_PARAMS.len(), "{text}");
    assert!(lines.iter().all(|l| l.contains("(tolerance ")), "{text}");
    for name in GRADIENT_PARAMS {
        assert!(text.contains(&format!("gradient of {name}, cpu vs cpu")), "{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("all 7 checks passed on cpu"), "{text}");
}

#[test]
fn an_output_off_from_pytorch_fails_with_a_non_zero_exit() {
    // PyTorch's stored output moved by 1e-3 at one element: 10x the tolerance of 1e-4.
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_dir(tmp.path(), Some(FIXTURE_WEIGHTS), None);
    let mut io: HashMap<String, Tensor> =
        candle_core::safetensors::load(data_dir().join(FIXTURE_IO), &Device::Cpu).unwrap();
    let mut score = io["score"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    score[17] += 1e-3;
    let dims = io["score"].dims().to_vec();
    io.insert("score".into(), Tensor::from_vec(score, dims, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&io, dir.join(FIXTURE_IO)).unwrap();

    let out = ncsn(
        &[
            "check-device",
            "--device",
            "cpu",
            "--fixture-dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let text = stdout(&out);
    assert!(text.contains("FAIL  forward, cpu vs PyTorch's stored output"), "{text}");
    // The device-against-cpu checks still pass: only the comparison with PyTorch moved.
    assert!(text.contains("PASS  forward, cpu vs cpu"), "{text}");
    assert_clean_error(&out, &["2 of 7 checks failed on cpu", "forward, cpu vs PyTorch"]);
}

#[test]
fn each_device_check_fails_beyond_its_tolerance_and_passes_within_it() {
    let fixture = Fixture::load(&data_dir()).unwrap();
    let cpu = evaluate(&fixture, &Device::Cpu, 3).unwrap();
    let all_pass = compare(&fixture, &cpu, &cpu.clone(), "dev");
    assert!(all_pass.iter().all(|c| c.passed()), "{all_pass:?}");

    // Move one element of what "the device" computed by `factor` times the check's tolerance
    // (on the scale of the values, as the checks measure); 0.5 passes, 2 fails only that check.
    let scale = |v: &[f32]| v.iter().fold(0f32, |a, x| a.max(x.abs()));
    for factor in [0.5f32, 2.0] {
        let mut perturbed: Vec<(String, ncsn::device_check::Evaluation)> = Vec::new();
        let mut dev = cpu.clone();
        dev.output[5] += factor * DEVICE_FORWARD_TOL as f32 * scale(&cpu.output);
        perturbed.push(("forward, dev vs cpu".into(), dev));
        let mut dev = cpu.clone();
        dev.loss *= 1.0 + f64::from(factor) * DEVICE_GRADIENT_TOL;
        perturbed.push(("DSM loss".into(), dev));
        for (i, name) in GRADIENT_PARAMS.iter().enumerate() {
            let mut dev = cpu.clone();
            let g = &mut dev.gradients[i].1;
            let s = scale(g);
            g[0] += factor * DEVICE_GRADIENT_TOL as f32 * s;
            perturbed.push((format!("gradient of {name}"), dev));
        }
        for (which, dev) in perturbed {
            let checks = compare(&fixture, &cpu, &dev, "dev");
            for c in &checks {
                if which.starts_with("forward") && c.name == "forward, dev vs PyTorch's stored output" {
                    // That check is absolute (1e-4) and sees the same move (a fraction of 2.5e-4).
                    continue;
                }
                let expect = factor < 1.0 || !c.name.starts_with(which.as_str());
                assert_eq!(c.passed(), expect, "{which} moved by {factor} x tolerance: {c}");
            }
        }
    }
    // A NaN the device computed fails, though every other element agrees.
    let mut dev = cpu.clone();
    dev.gradients[1].1[3] = f32::NAN;
    let checks = compare(&fixture, &cpu, &dev, "dev");
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed()).map(|c| c.name.clone()).collect();
    assert_eq!(failed, [format!("gradient of {}, dev vs cpu", GRADIENT_PARAMS[1])]);
}

#[test]
fn the_checked_loss_is_the_trainers_and_the_seed_changes_it() {
    let fixture = Fixture::load(&data_dir()).unwrap();
    let sigmas = fixture.sigmas().unwrap();
    let ours = evaluate(&fixture, &Device::Cpu, 11).unwrap();
    let loaded = load_weights_file(&fixture.weights, &fixture.config, sigmas, DType::F32, &Device::Cpu).unwrap();
    let config = TrainConfig {
        ngf: 8,
        channels: 3,
        image_size: 32,
        num_levels: fixture.config.num_classes,
        batch_size: 4,
        ..TrainConfig::cifar10()
    };
    let images = ImageSet::new(vec![128; 4 * 3 * 32 * 32], 3, 32, 32).unwrap();
    let empty = ImageSet::new(Vec::new(), 3, 32, 32).unwrap();
    let mut trainer = Trainer::from_weights(config, loaded.params, loaded.model, images, empty, &Device::Cpu).unwrap();
    let (x, levels, z) = dsm_batch(11, fixture.config.num_classes, &Device::Cpu).unwrap();
    let theirs = trainer.train_step_on(&x, &levels, &z).unwrap();
    // The same ops on the same numbers in the same order: equal to the bit.
    assert_eq!(ours.loss, theirs);
    let other = evaluate(&fixture, &Device::Cpu, 12).unwrap();
    assert_ne!(other.loss, ours.loss, "the seed draws the batch");
    assert_eq!(other.output, ours.output, "the forward pass is the fixture's input");
}

#[test]
fn a_missing_fixture_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = fixture_dir(tmp.path(), None, None);
    let out = ncsn(
        &[
            "check-device",
            "--device",
            "cpu",
            "--fixture-dir",
            empty.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_clean_error(&out, &[FIXTURE_WEIGHTS, "not found", "--fixture-dir"]);
    // The default folder is the checkout's, relative to the working directory.
    let out = ncsn(&["check-device", "--device", "cpu"], tmp.path());
    assert_clean_error(&out, &["crates/ncsn/tests/data/reference_ngf8_32x32x3.safetensors"]);
    let half = fixture_dir(tmp.path(), Some(FIXTURE_WEIGHTS), None);
    let out = ncsn(
        &[
            "check-device",
            "--device",
            "cpu",
            "--fixture-dir",
            half.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_clean_error(&out, &[FIXTURE_IO, "not found"]);
}

#[test]
fn a_fixture_of_other_shapes_names_the_file_and_what_was_expected() {
    // The ngf-4, 28x28x1 fixture under the ngf-8 names: the weights are refused first...
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_dir(
        tmp.path(),
        Some("reference_ngf4_28x28x1.safetensors"),
        Some("reference_ngf4_28x28x1_io.safetensors"),
    );
    let err = check_device(&dir, &Device::Cpu, "cpu", 0)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains(FIXTURE_WEIGHTS), "{err}");
    assert!(
        err.contains("[10, 12]") && err.contains("expected [num_classes, 24]"),
        "{err}"
    );
    // ... and with the right weights, the input batch of another image shape.
    std::fs::copy(data_dir().join(FIXTURE_WEIGHTS), dir.join(FIXTURE_WEIGHTS)).unwrap();
    let out = ncsn(
        &[
            "check-device",
            "--device",
            "cpu",
            "--fixture-dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_clean_error(
        &out,
        &[FIXTURE_IO, "tensor `x` has shape [", "expected [batch, 3, 32, 32]"],
    );
    // A file that is not safetensors at all.
    std::fs::write(dir.join(FIXTURE_WEIGHTS), b"not a safetensors file").unwrap();
    let out = ncsn(
        &[
            "check-device",
            "--device",
            "cpu",
            "--fixture-dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_clean_error(&out, &[FIXTURE_WEIGHTS, "not a readable safetensors file"]);
}

/// `scripts/gpu-check.sh --dry-run` with this build's binary: every step of the GPU check runs on
/// the CPU, the report and the grid are written, and the resumed run continued.
#[test]
fn the_gpu_check_script_passes_its_dry_run() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .args(["--dry-run", "--bin", env!("CARGO_BIN_EXE_ncsn"), "--out"])
        .arg(&out_dir)
        .current_dir(tmp.path())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = std::fs::read_to_string(out_dir.join("report.txt")).unwrap();
    for needle in [
        "mode: DRY RUN",
        "all 7 checks passed on cpu",
        "-- bench: exit 0",
        "checkpoint.json: step 4 (expected 4)",
        "checkpoint.json: step 6 (expected 6): the run continued",
        "gpu-check: all steps passed on cpu (dry run)",
    ] {
        assert!(report.contains(needle), "{needle:?} not in the report:\n{report}");
    }
    let png = std::fs::read(out_dir.join("grid.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "grid.png is a PNG");
    // A second check into the same folder refuses to start a run over the first one.
    let again = std::process::Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .args(["--dry-run", "--bin", env!("CARGO_BIN_EXE_ncsn"), "--out"])
        .arg(&out_dir)
        .output()
        .expect("bash runs");
    assert!(!again.status.success());
    assert!(stderr(&again).contains("run exists"), "{}", stderr(&again));
    assert!(
        std::fs::read_to_string(out_dir.join("report.txt")).unwrap() == report,
        "the first report is kept"
    );
}
