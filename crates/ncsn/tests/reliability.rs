//! The edges of issue 15: absurd sizes are errors naming the flag (not an abort), non-finite
//! numbers are refused or explained, the run folder is checked and cleaned, and messages point
//! the right way.
mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::{assert_clean_error, ncsn, stderr, TINY_TRAIN};

/// A tiny run at step 2 in `dir/run` (steps 2, checkpoint at 2), on `dir/digits.gz`.
fn tiny_run(dir: &Path) {
    common::write_idx(&dir.join("digits.gz"), 12, 8, true);
    let mut args = vec!["train", "--data", "digits.gz", "--steps", "2", "--out", "run"];
    args.extend(TINY_TRAIN);
    let out = ncsn(&args, dir);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `train --data digits.gz --out <out> --steps 2` with the tiny settings, `extra` flags replacing
/// those of the same name.
fn train(dir: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--data", "digits.gz", "--out", out];
    let defaults: Vec<&str> = ["--steps", "2"].iter().chain(TINY_TRAIN).copied().collect();
    for pair in defaults.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend(pair);
        }
    }
    args.extend(extra);
    ncsn(&args, dir)
}

const QUICK: &[&str] = &["--steps-per-level", "2", "--batch-size", "3", "--n", "3"];

fn sample(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sample", "--checkpoint", "run"];
    args.extend(QUICK);
    args.extend(extra);
    ncsn(&args, dir)
}

/// `inpaint --checkpoint run --dataset digits.gz <extra>`.
fn inpaint(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["inpaint", "--checkpoint", "run", "--dataset", "digits.gz"];
    args.extend(extra);
    ncsn(&args, dir)
}

/// Edits `run/checkpoint.json` with `edit` on its JSON value.
fn edit_meta(run: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = run.join("checkpoint.json");
    let mut meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
}

fn write_png(path: &Path) {
    image::RgbImage::from_pixel(6, 6, image::Rgb([10, 200, 30]))
        .save(path)
        .unwrap();
}

#[test]
fn absurd_sizes_are_errors_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    std::fs::create_dir(dir.join("photos")).unwrap();
    write_png(&dir.join("photos/a.png"));
    write_png(&dir.join("photos/b.png"));
    let no_abort = |out: &std::process::Output, needles: &[&str]| {
        assert!(!stderr(out).contains("memory allocation"), "{}", stderr(out));
        assert_clean_error(out, needles);
    };
    // 100000^2 x 3 bytes a picture: 30 GB per image in the folder loader, terabytes for a batch.
    for size in ["100000", "1099511627776"] {
        no_abort(
            &ncsn(
                &[
                    "train",
                    "--data",
                    "photos",
                    "--image-size",
                    size,
                    "--batch-size",
                    "1",
                    "--out",
                    "big",
                ],
                dir,
            ),
            &["`image_size`", size],
        );
    }
    // 36 TB of weights.
    no_abort(&train(dir, "wide", &["--ngf", "1000000"]), &["`ngf`", "TB", "--ngf"]);
    // The picture of 3 samples at 100000 pixels a pixel: refused before sampling.
    let out = sample(dir, &["--scale", "100000"]);
    no_abort(&out, &["`scale`"]);
    assert!(!dir.join("run/samples/samples.safetensors").exists());
    no_abort(
        &ncsn(&["sample", "--checkpoint", "run", "--n", "100000000000"], dir),
        &["`n`"],
    );
    no_abort(
        &ncsn(&["bench", "--image-size", "100000", "--batch", "1"], dir),
        &["`image_size`"],
    );
    // A bare weights file with a model config of image_size = 100000.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference_ngf4_28x28x1.safetensors");
    std::fs::write(
        dir.join("huge.toml"),
        "dataset = \"mnist\"\nngf = 4\nchannels = 1\nimage_size = 100000\n",
    )
    .unwrap();
    no_abort(
        &ncsn(
            &[
                "sample",
                "--checkpoint",
                fixture.to_str().unwrap(),
                "--model-config",
                "huge.toml",
            ],
            dir,
        ),
        &["`image_size`"],
    );
    // A run whose checkpoint.json says image_size = 100000.
    edit_meta(&dir.join("run"), |m| {
        m["config"]["image_size"] = 100000.into();
        m["model"]["image_size"] = 100000.into();
    });
    no_abort(&sample(dir, &[]), &["checkpoint.json", "`image_size`"]);
}

#[test]
fn settings_that_are_not_finite_in_f32_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_idx(&dir.join("digits.gz"), 12, 8, true);
    // Valid f64 values that are 0 (or overflow) in f32, and noise levels the loss cannot square.
    for (flag, value, key) in [
        ("--adam-eps", "1e-50", "`adam_eps`"),
        ("--adam-eps", "1e-300", "`adam_eps`"),
        ("--lr", "1e-50", "`lr`"),
        ("--sigma-end", "1e-30", "`sigma_end`"),
        ("--sigma-begin", "1e30", "`sigma_begin`"),
    ] {
        let out = train(dir, "run", &[flag, value]);
        assert_clean_error(&out, &[key]);
        assert!(
            !dir.join("run/checkpoint.json").exists(),
            "{flag} {value}: nothing saved"
        );
    }
    // A loss that overflows names what was non-finite and the settings that can cause it, not
    // only the learning rate.
    let out = train(dir, "run", &["--lr", "1e30", "--steps", "4", "--snapshot-every", "4"]);
    assert_clean_error(&out, &["non-finite", "adam_eps", "sigma_begin", "sigma_end", "lr = "]);
    assert!(!stderr(&out).contains("try a smaller learning rate"));
}

#[test]
fn a_checkpoint_of_non_finite_weights_is_never_saved_nor_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    // Saving: a trainer whose weights hold a NaN refuses, and writes nothing.
    let config = ncsn::TrainConfig {
        steps: 2,
        image_size: 8,
        ngf: 4,
        ..common::tiny_config(&dir.join("digits.gz"))
    };
    let trainer = ncsn::Trainer::new(config, &Device::Cpu).unwrap();
    let (name, var) = ncsn::vars::named_vars(trainer.varmap()).remove(0);
    var.set(&Tensor::full(f32::NAN, var.dims(), &Device::Cpu).unwrap())
        .unwrap();
    let err = trainer.save(&dir.join("nan-run")).unwrap_err().to_string();
    assert!(
        err.contains(&format!("model.{name}")) && err.contains("non-finite"),
        "{err}"
    );
    assert!(!dir.join("nan-run/checkpoint.json").exists());

    // Loading: a run whose weights hold a NaN is refused by sample, inpaint and resume.
    let weights = dir.join("run/checkpoint-00000002.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let key = tensors.keys().find(|k| k.starts_with("model.")).unwrap().clone();
    let t = &tensors[&key];
    tensors.insert(key.clone(), Tensor::full(f32::NAN, t.dims(), &Device::Cpu).unwrap());
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    assert_clean_error(&sample(dir, &[]), &[&key, "non-finite"]);
    assert_clean_error(
        &inpaint(dir, &["--n", "1", "--steps-per-level", "1"]),
        &[&key, "non-finite"],
    );
    assert_clean_error(
        &ncsn(&["train", "--resume", "run", "--steps", "3"], dir),
        &[&key, "non-finite"],
    );
}

#[test]
fn samples_far_outside_the_data_range_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    // A huge step: the chains end far outside [0, 1] (finite or not, a warning either way).
    let out = sample(dir, &["--eps", "1e30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
    // The paper's step on this barely trained model stays within [-1, 2]: no warning.
    let out = sample(dir, &["--out", "calm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let values = candle_core::safetensors::load(dir.join("calm/samples.safetensors"), &Device::Cpu).unwrap()["samples"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (lo, hi) = ncsn::cli::chains::SENSIBLE_RANGE;
    let inside = values.iter().all(|v| (lo..=hi).contains(v));
    assert_eq!(stderr(&out).contains("warning"), !inside, "{}", stderr(&out));
}

#[test]
fn the_run_folder_is_checked_and_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    let run = dir.join("run");
    // Leftovers of interrupted saves: ours, the safetensors library's, stale weights.
    let junk = [
        ".checkpoint-00000004.safetensors.a1b2c3.tmp",
        ".checkpoint.json.x9y8z7.tmp",
        ".tmpAbC123",
        "checkpoint-00000009.safetensors",
    ];
    for name in junk {
        std::fs::write(run.join(name), b"half").unwrap();
    }
    // Asking for fewer steps than done says so.
    assert_clean_error(
        &ncsn(&["train", "--resume", "run", "--steps", "1"], dir),
        &["already at step 2", "--steps 1"],
    );
    let out = ncsn(&["train", "--resume", "run", "--steps", "3"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in junk {
        assert!(!run.join(name).exists(), "{name} removed");
    }
    // At the step asked for: nothing to do, said.
    let out = ncsn(&["train", "--resume", "run", "--steps", "3"], dir);
    assert!(
        out.status.success() && stderr(&out).contains("nothing to do"),
        "{}",
        stderr(&out)
    );

    // checkpoint.json is checked on resume as for sampling.
    let original = std::fs::read_to_string(run.join("checkpoint.json")).unwrap();
    std::fs::copy(
        run.join("checkpoint-00000003.safetensors"),
        dir.join("outside.safetensors"),
    )
    .unwrap();
    let absolute = dir.join("outside.safetensors").to_string_lossy().into_owned();
    use serde_json::json;
    // (what the error names, the JSON pointer edited, its new value)
    let cases = [
        ("`sigmas`", "/sigmas/1", json!(-0.5)),
        ("`sigmas`", "/sigmas", json!([1.0])),
        ("`train_loader`", "/train_loader/cursor", json!(1000)),
        ("`loss_accumulator`", "/loss_accumulator/level_count", json!([0, 0])),
        ("`weights`", "/weights", json!("../outside.safetensors")),
        ("`weights`", "/weights", json!(absolute)),
    ];
    for (needle, pointer, value) in cases {
        std::fs::write(run.join("checkpoint.json"), &original).unwrap();
        edit_meta(&run, |m| *m.pointer_mut(pointer).unwrap() = value);
        let out = ncsn(&["train", "--resume", "run", "--steps", "4"], dir);
        assert_clean_error(&out, &["checkpoint.json", needle]);
    }
    std::fs::write(run.join("checkpoint.json"), &original).unwrap();

    // A figure that cannot be written is a warning: the run goes on.
    std::fs::create_dir_all(dir.join("plotless/loss.png")).unwrap();
    let out = train(dir, "plotless", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("loss.csv"),
        "{}",
        stderr(&out)
    );
    assert!(dir.join("plotless/checkpoint.json").is_file());

    // --out is checked before any sampling: a file, or a folder that cannot be made.
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    for (out_flag, needle) in [("a-file", "is a file"), ("a-file/sub", "cannot create")] {
        for command in ["sample", "inpaint"] {
            let mut args = vec![command, "--checkpoint", "run", "--out", out_flag];
            if command == "inpaint" {
                args.extend(["--dataset", "digits.gz", "--n", "1", "--per-image", "1"]);
            }
            args.extend(["--steps-per-level", "2", "--batch-size", "3"]);
            let out = ncsn(&args, dir);
            assert_clean_error(&out, &["--out", needle]);
            assert!(!stderr(&out).contains("network evaluations"), "{}", stderr(&out));
        }
    }
}

#[test]
fn messages_name_the_right_flag_and_kind_of_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    std::fs::write(dir.join("batch.bin"), b"x").unwrap();
    std::fs::create_dir(dir.join("folder")).unwrap();
    // A path of the wrong kind says what it is.
    assert_clean_error(
        &ncsn(&["train", "--dataset", "cifar10", "--data", "batch.bin"], dir),
        &["batch.bin", "is a file", "folder"],
    );
    assert_clean_error(
        &ncsn(&["inpaint", "--checkpoint", "run", "--image", "folder"], dir),
        &["folder", "is a folder"],
    );
    assert_clean_error(&inpaint(dir, &["--mask", "folder"]), &["folder", "is a folder"]);
    // Negative numbers after a space are values of their flag.
    assert_clean_error(
        &ncsn(&["train", "--steps", "-1"], dir),
        &["invalid value '-1' for '--steps"],
    );
    assert_clean_error(&ncsn(&["train", "--lr", "-0.1"], dir), &["`lr`", "-0.1"]);
    assert_clean_error(
        &ncsn(&["sample", "--checkpoint", "run", "--eps", "-1"], dir),
        &["`eps`"],
    );
    // Each count names its own flag.
    assert_clean_error(&inpaint(dir, &["--per-image", "0"]), &["`per_image`"]);
    assert_clean_error(
        &train(dir, "one-level", &["--num-levels", "1"]),
        &["`num_levels`", "at least 2 noise levels"],
    );
    assert_clean_error(&sample(dir, &["--scale", "0"]), &["`scale`"]);
    // bench: something to measure (0 skips training or sampling, not both), and the network as
    // train checks it.
    assert_clean_error(
        &ncsn(&["bench", "--ngf", "4", "--steps", "0", "--evals", "0"], dir),
        &["`steps`", "nothing to measure"],
    );
    for (flag, value, key) in [
        ("--channels", "2", "`channels`"),
        ("--image-size", "2", "`image_size`"),
        ("--num-levels", "1", "`num_levels`"),
    ] {
        assert_clean_error(&ncsn(&["bench", "--ngf", "4", flag, value], dir), &[key]);
        let mut args = vec!["train", "--data", "digits.gz", "--ngf", "4", "--out", "x"];
        args.extend([flag, value]);
        if flag != "--steps" && flag != "--evals" {
            assert_clean_error(&ncsn(&args, dir), &[key]);
        }
    }
}
