//! The `ncsn` binary: a tiny run and its resumption, and clear errors (never a panic) for bad
//! flags, config files, devices and paths.
mod common;

use common::{assert_clean_error, ncsn, stderr};

use std::path::Path;

use ncsn::{Overrides, TrainConfig};

const TINY: &[&str] = &[
    "--image-size",
    "16",
    "--ngf",
    "8",
    "--num-levels",
    "4",
    "--batch-size",
    "8",
    "--test-batch-size",
    "8",
    "--log-every",
    "1",
    "--test-every",
    "1",
];

#[test]
fn train_then_resume_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_idx(&tmp.path().join("digits.gz"), 20, 16, true);
    let mut args = vec!["train", "--data", "digits.gz", "--steps", "2", "--out", "run"];
    args.extend(TINY);
    let out = ncsn(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("run");
    assert!(run.join("checkpoint-00000002.safetensors").is_file());
    // The resolved config.toml is a valid config file again.
    let saved = Overrides::from_toml_file(&run.join("config.toml")).unwrap();
    assert_eq!(saved.ngf, Some(8));
    let out = ncsn(&["train", "--resume", "run", "--steps", "3"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("steps 2 -> 3"), "{}", stderr(&out));
    assert!(run.join("checkpoint-00000003.safetensors").is_file());
    assert!(
        !run.join("checkpoint-00000002.safetensors").exists(),
        "old weights removed"
    );
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.contains(",train,")).count(), 3, "{csv}");
    // Setting the sampler of a finished run records it (checkpoint.json, config.toml) and
    // leaves the weights as they were.
    let weights = std::fs::read(run.join("checkpoint-00000003.safetensors")).unwrap();
    let out = ncsn(&["train", "--resume", "run", "--sample-eps", "5e-5"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("sample_eps"), "{}", stderr(&out));
    let saved = Overrides::from_toml_file(&run.join("config.toml")).unwrap();
    assert_eq!(saved.sample_eps, Some(5e-5));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(meta["config"]["sample_eps"].as_f64(), Some(5e-5), "{meta}");
    assert_eq!(
        std::fs::read(run.join("checkpoint-00000003.safetensors")).unwrap(),
        weights
    );
    // Changing the model on resume is refused.
    let out = ncsn(&["train", "--resume", "run", "--ngf", "16"], tmp.path());
    assert_clean_error(&out, &["`ngf` = 16"]);
    // A resumed run stays in its folder.
    assert_clean_error(
        &ncsn(&["train", "--resume", "run", "--out", "elsewhere"], tmp.path()),
        &["--out"],
    );
    // Starting a new run over it is refused.
    let mut again = vec!["train", "--data", "digits.gz", "--steps", "2", "--out", "run"];
    again.extend(TINY);
    assert_clean_error(&ncsn(&again, tmp.path()), &["--resume"]);
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("bad.toml"), "batch_size = 8\nlearning_rate = 0.1\n").unwrap();
    assert_clean_error(
        &ncsn(&["train", "--config", "bad.toml"], dir),
        &["bad.toml", "learning_rate"],
    );
    assert_clean_error(&ncsn(&["train", "--config", "missing.toml"], dir), &["missing.toml"]);
    assert_clean_error(&ncsn(&["train", "--lr=-1"], dir), &["`lr`", "positive"]);
    assert_clean_error(
        &ncsn(&["train", "--data", "no/such/dir"], dir),
        &["no/such/dir", "does not exist"],
    );
    assert_clean_error(&ncsn(&["train", "--resume", "nowhere"], dir), &["nowhere"]);
    assert_clean_error(&ncsn(&["train", "--device", "tpu"], dir), &["\"tpu\""]);
    #[cfg(not(feature = "cuda"))]
    assert_clean_error(&ncsn(&["train", "--device", "cuda"], dir), &["--features cuda"]);
    // clap's own errors for malformed flags.
    assert_clean_error(&ncsn(&["train", "--batch-size", "many"], dir), &["--batch-size"]);
    assert_clean_error(&ncsn(&["train", "--dataset", "svhn"], dir), &["svhn"]);
}

#[test]
fn example_configs_parse_and_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for name in ["cifar10.toml", "mnist.toml", "mnist-smoke.toml"] {
        let file = Overrides::from_toml_file(&root.join(name)).unwrap();
        let config = TrainConfig::resolve(&file, &Overrides::default()).unwrap();
        if name == "cifar10.toml" {
            assert_eq!(
                config,
                TrainConfig {
                    data: config.data.clone(),
                    ..TrainConfig::cifar10()
                },
                "the paper's values"
            );
        }
    }
}
