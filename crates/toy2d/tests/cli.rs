//! The `toy2d` binary as a user meets it: bad options and folders give clear errors, and a quick
//! run of every experiment (tiny `--steps`) writes every figure and a JSON that parses.
use std::path::Path;
use std::process::{Command, Output};

fn toy2d(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_toy2d"))
        .args(args)
        .output()
        .expect("the toy2d binary starts")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_option_is_rejected_with_its_name() {
    let o = toy2d(&["--no-such-flag"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--no-such-flag") && e.contains("Usage"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn bad_values_are_rejected() {
    for args in [
        &["--steps", "0"][..],
        &["--steps", "many"],
        &["--device", "tpu"],
        &["--seed", "abc"],
    ] {
        let o = toy2d(args);
        assert!(!o.status.success(), "{args:?} should fail");
        let e = stderr(&o);
        assert!(e.contains(args[0]) && !e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn unwritable_out_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // a folder inside a regular file cannot be created, whoever runs the test (even root)
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("figures");
    let o = toy2d(&["--out", out.to_str().unwrap(), "trajectories"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("--out") && e.contains("figures") && !e.contains("panicked"),
        "{e}"
    );
    // the file given as --out
    let o = toy2d(&["--out", file.to_str().unwrap(), "trajectories"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a folder"), "{}", stderr(&o));
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = toy2d(&[
        "--device",
        "cuda",
        "--out",
        dir.path().to_str().unwrap(),
        "trajectories",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("cuda") && e.contains("feature"), "{e}");
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs one experiment with `--steps 3` into a fresh folder; checks its table was printed and
/// that no temporary file was left behind.
fn quick_run(experiment: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figs");
    let o = toy2d(&[
        "--quiet",
        "--steps",
        "3",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
        experiment,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&format!("== {experiment}")), "table missing:\n{stdout}");
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left over: {name}");
    }
    dir
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", path.display());
}

// The two experiments that sample 1,280 / 4 x 1,000 particles with a network (langevin-weights,
// ncsn2d) take tens of seconds even with tiny --steps and run with `all`; the exact-score claim
// of langevin-weights is tested in the workspace's tests/paper_fig3.rs.

#[test]
fn score_field_writes_its_figures_and_json() {
    let dir = quick_run("score-field");
    let out = dir.path().join("figs");
    assert_png(&out.join("score_field.png"));
    assert_png(&out.join("score_error.png"));
    let sf = json(&out.join("score_field.json"));
    assert_eq!(sf["steps"], 3);
    assert_eq!(sf["seed"], 7);
    assert!(sf["error_weighted_by_p"].as_f64().unwrap().is_finite());
    assert!(std::fs::read_to_string(out.join("score_field_loss.csv"))
        .unwrap()
        .starts_with("step,loss\n0,"));
}

#[test]
fn manifold_writes_png_svg_and_four_runs() {
    let dir = quick_run("manifold");
    let out = dir.path().join("figs");
    assert_png(&out.join("manifold_loss.png"));
    assert!(std::fs::read_to_string(out.join("manifold_loss.svg"))
        .unwrap()
        .contains("<svg"));
    let m = json(&out.join("manifold.json"));
    let runs = m["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["loss_history"].as_array().unwrap().len() == 3));
}

#[test]
fn trajectories_writes_a_gif_and_recovers_the_weights() {
    let dir = quick_run("trajectories");
    let out = dir.path().join("figs");
    assert!(std::fs::read(out.join("trajectories.gif"))
        .unwrap()
        .starts_with(b"GIF89a"));
    assert_png(&out.join("trajectories_levels.png"));
    let t = json(&out.join("trajectories.json"));
    let levels = t["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 10);
    // exact scores, 600 particles: after the last level the small mode holds 0.2 within 0.06
    // (binomial sd sqrt(0.16 / 600) = 0.016, plus the small excess noted in tests/paper_fig3.rs)
    let w = levels[9]["mode_weights_at_end"][0].as_f64().unwrap();
    assert!((w - 0.2).abs() < 0.06, "{w}");
}

#[test]
fn scores_writes_its_figure_and_the_landmarks() {
    let dir = quick_run("scores");
    let out = dir.path().join("figs");
    assert_png(&out.join("scores.png"));
    let s = json(&out.join("scores.json"));
    // s(0) = 0.2 (-5, -5) + 0.8 (5, 5) = (3, 3) (the module's tests check the rest)
    assert!(s["score_at_origin"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| (v.as_f64().unwrap() - 3.0).abs() < 1e-9));
}

#[test]
fn ascent_vs_langevin_writes_its_figure_and_both_samplers() {
    let dir = quick_run("ascent-vs-langevin");
    let out = dir.path().join("figs");
    assert_png(&out.join("ascent_vs_langevin.png"));
    let a = json(&out.join("ascent_vs_langevin.json"));
    assert_eq!(a["seed"], 7);
    let samplers = a["samplers"].as_array().unwrap();
    assert_eq!(samplers.len(), 2);
    // the collapse and the spread, for another seed than the module's tests
    assert!(samplers[0]["max_distance_to_mode"].as_f64().unwrap() < 1e-12);
    let v = samplers[1]["within_mode_variance"].as_f64().unwrap();
    assert!((v - 1.0256).abs() < 5.0 * 0.0287, "{v}");
}
