//! `ncsn sample`, `ncsn inpaint` and `ncsn bench` from the command line: the files they write,
//! reproducibility, and clear errors (never a panic) for bad checkpoints, masks and images.
mod common;

use common::{assert_clean_error, ncsn, stderr};

use std::path::Path;

use candle_core::Device;
use ncsn::training::{train_new, RunOptions};
use ncsn::Progress;

/// A tiny trained run (ngf 8, 16x16, 4 levels, 2 steps, with an EMA) in `dir/run`, and its data.
fn tiny_run(dir: &Path) {
    common::write_idx(&dir.join("digits.gz"), 20, 16, true);
    let config = ncsn::TrainConfig {
        steps: 2,
        snapshot_every: 2,
        ema: true,
        ..common::tiny_config(&dir.join("digits.gz"))
    };
    let options = RunOptions {
        out_dir: dir.join("run"),
        progress: Progress::Quiet,
    };
    train_new(config, &Device::Cpu, &options).unwrap();
}

/// A one-step run of the tiny network (4 levels: 1, 0.368, 0.136, 0.05) in `dir/run`, its data
/// beside it, with the run's sampler set by `sampler` (the settings `ncsn sample` takes by default).
fn one_step_run(dir: &Path, sampler: impl FnOnce(ncsn::TrainConfig) -> ncsn::TrainConfig) {
    common::write_idx(&dir.join("digits.gz"), 20, 16, true);
    let config = ncsn::TrainConfig {
        steps: 1,
        snapshot_every: 1,
        ..common::tiny_config(&dir.join("digits.gz"))
    };
    let options = RunOptions {
        out_dir: dir.join("run"),
        progress: Progress::Quiet,
    };
    train_new(sampler(config), &Device::Cpu, &options).unwrap();
}

const QUICK: &[&str] = &["--steps-per-level", "2", "--batch-size", "3"];

/// `ncsn sample` of two chains in one batch from the run in folder `run`; a test adds its flags.
const TWO_CHAINS: [&str; 7] = ["sample", "--checkpoint", "run", "--n", "2", "--batch-size", "2"];

fn tensor(path: &Path, name: &str) -> Vec<f32> {
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    t[name].flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn sample_writes_grid_tensors_snapshots_and_gif_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    let mut args = vec![
        "sample",
        "--checkpoint",
        "run",
        "--n",
        "5",
        "--snapshots",
        "4",
        "--denoise",
    ];
    args.extend(QUICK);
    let out = ncsn(&args, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("EMA weights"), "{}", stderr(&out));
    let samples = dir.join("run/samples");
    let grid = image::open(samples.join("samples.png")).unwrap();
    // 5 images: 3 x 2 tiles of 32x32 pixels (16 x scale 2) with 2-pixel gaps.
    assert_eq!((grid.width(), grid.height()), (2 + 3 * 34, 2 + 2 * 34));
    let first = tensor(&samples.join("samples.safetensors"), "samples");
    assert_eq!(first.len(), 5 * 16 * 16);
    assert!(first.iter().all(|v| v.is_finite()));
    // 4 levels x 2 steps = 8 steps: snapshots at 0, 4 and the end (8).
    for step in [0, 4, 8] {
        assert!(
            samples.join(format!("snapshots/step-{step:06}.png")).is_file(),
            "step {step}"
        );
    }
    assert!(samples.join("chain.png").is_file());
    let gif = std::fs::read(samples.join("chain.gif")).unwrap();
    assert!(gif.starts_with(b"GIF89a"));
    // Same seed: the same tensor; another seed (into another folder): a different one.
    let again = ncsn(&args, dir);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(tensor(&samples.join("samples.safetensors"), "samples"), first);
    let mut other = args.clone();
    other.extend(["--seed", "1", "--out", "other", "--no-ema"]);
    let out = ncsn(&other, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(tensor(&dir.join("other/samples.safetensors"), "samples"), first);
}

#[test]
fn the_low_noise_levels_take_the_runs_steps_or_the_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Levels 1, 0.368, 0.136, 0.05: the last two below 0.2 take 3 steps each, the others 1.
    one_step_run(dir, |c| ncsn::TrainConfig {
        sample_steps_per_level: 1,
        sample_low_noise_steps: 3,
        sample_low_noise_below: 0.2,
        ..c
    });
    let snapshots = |out: &str| std::fs::read_dir(dir.join(out).join("snapshots")).unwrap().count();
    let base = [&TWO_CHAINS[..], &["--snapshots", "1"]].concat();
    // Samples with `base` and `extra`, and returns what it printed.
    let sample_with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        let out = ncsn(&args, dir);
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    // The run's sampler: 1 + 1 + 3 + 3 steps, a snapshot before each and one at the end.
    let printed = sample_with(&["--out", "run-sampler"]);
    assert!(printed.contains("1 step per level (3 below sigma 0.2)"), "{printed}");
    assert!(printed.contains("8 network evaluations per chain"), "{printed}");
    assert_eq!(snapshots("run-sampler"), 9);
    // The flags replace the run's: 2 steps below 0.5 (the last three levels).
    sample_with(&["--out", "flags", "--low-noise-steps", "2", "--low-noise-below", "0.5"]);
    assert_eq!(snapshots("flags"), 1 + 2 + 2 + 2 + 1);
    // A predictor adds one evaluation between each two of the 4 levels, each kept as a snapshot.
    let printed = sample_with(&["--out", "predictor", "--predictor", "ancestral"]);
    assert!(printed.contains("(3 below sigma 0.2) + ancestral"), "{printed}");
    assert!(printed.contains("11 network evaluations per chain"), "{printed}");
    assert_eq!(snapshots("predictor"), 12);
    // One flag without the other is refused before anything runs.
    let mut args = base.to_vec();
    args.extend(["--out", "half", "--low-noise-steps", "2"]);
    assert_clean_error(&ncsn(&args, dir), &["--low-noise-below"]);
    assert!(!dir.join("half").exists());
    let mut args = base.to_vec();
    args.extend(["--out", "zero", "--low-noise-steps", "0", "--low-noise-below", "0.5"]);
    assert_clean_error(&ncsn(&args, dir), &["low_noise_steps"]);
}

#[test]
fn the_step_band_is_the_runs_or_the_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Levels 1, 0.368, 0.136, 0.05: the run's band [0.1, 0.4] holds the middle two.
    one_step_run(dir, |c| ncsn::TrainConfig {
        sample_steps_per_level: 2,
        sample_band_low: 0.1,
        sample_band_high: 0.4,
        sample_band_factor: 3.0,
        ..c
    });
    let base = TWO_CHAINS;
    let sample_with = |out: &str, extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(["--out", out]);
        args.extend(extra);
        let run = ncsn(&args, dir);
        assert!(run.status.success(), "{}", stderr(&run));
        (
            stderr(&run),
            tensor(&dir.join(out).join("samples.safetensors"), "samples"),
        )
    };
    let (printed, runs) = sample_with("run-sampler", &[]);
    assert!(printed.contains("(x3 at sigma 0.1 to 0.4)"), "{printed}");
    // The flag with the same band gives the same chains; `none` and another band other ones.
    let (_, same) = sample_with("same", &["--step-band", "0.1,0.4,3"]);
    assert_eq!(same, runs);
    let (printed, plain) = sample_with("none", &["--step-band", "none"]);
    assert!(!printed.contains("at sigma"), "{printed}");
    assert_ne!(plain, runs);
    let (_, other) = sample_with("other", &["--step-band", "0.1,0.4,2"]);
    assert_ne!(other, runs);
    assert_ne!(other, plain);
    // Malformed or invalid bands are refused before anything runs, naming what is wrong.
    for (out, band, names) in [
        ("two", "0.1,0.4", &["--step-band", "LOW,HIGH,FACTOR"][..]),
        ("word", "0.1,high,3", &["--step-band", "HIGH"][..]),
        ("upside-down", "0.4,0.1,3", &["step_band.low"][..]),
        ("zero", "0.1,0.4,0", &["step_band.factor"][..]),
    ] {
        let mut args = base.to_vec();
        args.extend(["--out", out, "--step-band", band]);
        assert_clean_error(&ncsn(&args, dir), names);
        assert!(!dir.join(out).exists(), "{out}");
    }
}

#[test]
fn matched_noise_and_the_four_sigma_squared_edge_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Levels 1, 0.368, 0.136, 0.05: eps 0.0025 = sigma_L^2 is a step of 1 sigma_i^2 everywhere.
    one_step_run(dir, |c| c);
    let base = [&TWO_CHAINS[..], &["--steps-per-level", "2", "--eps", "0.0025"]].concat();
    let sample_with = |out: &str, extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(["--out", out]);
        args.extend(extra);
        ncsn(&args, dir)
    };
    let run = sample_with("matched", &["--step-band", "none", "--matched-noise"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("eps 0.0025, matched noise"), "{}", stderr(&run));
    assert!(!stderr(&run).contains("warning: the step"), "{}", stderr(&run));
    // Five times the step at 0.368 and 0.136: the paper's noise runs, with a warning naming the
    // first such level; the matched noise refuses, naming the band's factor, and writes nothing.
    let run = sample_with("band", &["--step-band", "0.1,0.4,5"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("warning: the step at sigma 0.3684 is 5.00 sigma^2"),
        "{}",
        stderr(&run)
    );
    assert_clean_error(
        &sample_with("band-matched", &["--step-band", "0.1,0.4,5", "--matched-noise"]),
        &["step_band.factor", "4 sigma^2"],
    );
    assert!(!dir.join("band-matched").exists());
}

#[test]
fn inpaint_writes_the_figure_from_a_dataset_or_image_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    let mut args = vec![
        "inpaint",
        "--checkpoint",
        "run",
        "--dataset",
        "digits.gz",
        "--n",
        "2",
        "--per-image",
        "2",
        "--mask",
        "center",
    ];
    args.extend(QUICK);
    let out = ncsn(&args, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let folder = dir.join("run/inpainting");
    let fig = image::open(folder.join("inpainting.png")).unwrap();
    // Columns: input, 2 completions, original: 4 tiles of 32 pixels wide.
    assert!(fig.width() >= 2 + 4 * 34, "{}", fig.width());
    let completions = tensor(&folder.join("inpainting.safetensors"), "completions");
    assert_eq!(completions.len(), 4 * 16 * 16);

    // From image files, with a mask PNG.
    image::GrayImage::from_fn(16, 16, |x, _| image::Luma([if x < 8 { 255 } else { 0 }]))
        .save(dir.join("mask.png"))
        .unwrap();
    image::GrayImage::from_fn(40, 30, |x, y| image::Luma([((x + y) * 4) as u8]))
        .save(dir.join("photo.png"))
        .unwrap();
    let mut args = vec![
        "inpaint",
        "--checkpoint",
        "run/checkpoint.json",
        "--image",
        "photo.png",
        "--image",
        "photo.png",
        "--mask",
        "mask.png",
        "--per-image",
        "1",
        "--out",
        "from-files",
    ];
    args.extend(QUICK);
    let out = ncsn(&args, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let observed = tensor(&dir.join("from-files/inpainting.safetensors"), "observed");
    assert_eq!(observed.len(), 2 * 16 * 16);
}

#[test]
fn bad_inputs_give_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_run(dir);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference_ngf4_28x28x1.safetensors");
    let fixture = fixture.to_str().unwrap();
    // Missing checkpoint.
    assert_clean_error(&ncsn(&["sample", "--checkpoint", "nowhere"], dir), &["nowhere"]);
    // A checkpoint of another configuration (ngf 4 weights, the reference MNIST model is ngf 64).
    assert_clean_error(
        &ncsn(&["sample", "--checkpoint", fixture, "--model-config", "mnist"], dir),
        &["reference_ngf4_28x28x1.safetensors", "shape"],
    );
    assert_clean_error(&ncsn(&["sample", "--checkpoint", fixture], dir), &["--model-config"]);
    // A mask of the wrong size.
    image::GrayImage::new(10, 10).save(dir.join("small.png")).unwrap();
    assert_clean_error(
        &ncsn(
            &[
                "inpaint",
                "--checkpoint",
                "run",
                "--dataset",
                "digits.gz",
                "--mask",
                "small.png",
            ],
            dir,
        ),
        &["small.png", "10x10", "16x16"],
    );
    // An image file that is not an image.
    std::fs::write(dir.join("notes.png"), "plain text").unwrap();
    assert_clean_error(
        &ncsn(&["inpaint", "--checkpoint", "run", "--image", "notes.png"], dir),
        &["notes.png", "decoded"],
    );
    assert_clean_error(
        &ncsn(&["inpaint", "--checkpoint", "run"], dir),
        &["--image", "--dataset"],
    );
    assert_clean_error(
        &ncsn(&["sample", "--checkpoint", "run", "--step-convention", "fast"], dir),
        &["step_convention", "reference"],
    );
    assert_clean_error(
        &ncsn(&["sample", "--checkpoint", "run", "--predictor", "euler"], dir),
        &["predictor", "euler", "ancestral"],
    );
    assert_clean_error(&ncsn(&["sample", "--checkpoint", "run", "--n", "0"], dir), &["`n`"]);
    #[cfg(not(feature = "cuda"))]
    assert_clean_error(
        &ncsn(&["sample", "--checkpoint", "run", "--device", "cuda"], dir),
        &["--features cuda"],
    );
}

#[test]
fn bench_reports_speed_memory_and_the_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--ngf",
        "4",
        "--channels",
        "1",
        "--image-size",
        "8",
        "--num-levels",
        "4",
        "--batch",
        "2",
        "--steps",
        "1",
        "--evals",
        "1",
        "--warmup",
        "0",
    ];
    let out = ncsn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["images/s", "network evaluations/s", "peak resident memory", "conv"] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    assert_clean_error(&ncsn(&["bench", "--ngf", "1"], tmp.path()), &["ngf"]);
}

#[test]
fn extra_tensors_of_a_weights_file_are_ignored_and_reported() {
    // A converted training checkpoint may hold more than the network: the network's tensors are
    // loaded, the others ignored, and the command says so. The samples are those of the file
    // without them.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference_ngf4_28x28x1.safetensors");
    let mut tensors = candle_core::safetensors::load(&fixture, &Device::Cpu).unwrap();
    std::fs::copy(&fixture, dir.join("plain.safetensors")).unwrap();
    tensors.insert(
        "optimizer.state.0.exp_avg".into(),
        candle_core::Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, dir.join("extra.safetensors")).unwrap();
    std::fs::write(dir.join("ngf4.toml"), "dataset = \"mnist\"\nngf = 4\n").unwrap();
    let run = |name: &str| {
        let out = ncsn(
            &[
                "sample",
                "--checkpoint",
                &format!("{name}.safetensors"),
                "--model-config",
                "ngf4.toml",
                "--n",
                "2",
                "--steps-per-level",
                "1",
                "--out",
                name,
            ],
            dir,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        (
            stderr(&out),
            tensor(&dir.join(name).join("samples.safetensors"), "samples"),
        )
    };
    let (said, with_extra) = run("extra");
    assert!(
        said.contains("1 tensor(s) that are not parameters") && said.contains("optimizer.state.0.exp_avg"),
        "{said}"
    );
    let (said, plain) = run("plain");
    assert!(!said.contains("not parameters"), "{said}");
    assert_eq!(with_extra, plain);
}
