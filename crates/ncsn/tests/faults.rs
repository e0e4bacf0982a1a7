//! Faults: a run killed (SIGKILL) at each point of a save resumes to exactly the files of an
//! uninterrupted run, leaving no temporary file; a second writer of a run folder is refused.
//! The kill points come from the test-only hook `NCSN_TEST_PAUSE_IN_SAVE` (`ncsn::fsutil::test_pause`).
mod common;

use std::path::Path;

use common::{assert_clean_error, ncsn, spawn_paused, stderr, TINY_TRAIN};

/// `train --data digits.gz --steps 4 --out <out>` with the tiny settings (checkpoints at 2 and 4).
fn train_args(out: &str) -> Vec<&str> {
    let mut args = vec!["train", "--data", "digits.gz", "--steps", "4", "--out", out];
    args.extend(TINY_TRAIN);
    args
}

/// The names in `dir`, sorted, without the lock file.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ncsn::fsutil::LOCK_FILE)
        .collect();
    names.sort();
    names
}

#[test]
fn killed_at_any_point_of_a_save_the_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_idx(&dir.join("digits.gz"), 12, 8, true);
    let out = ncsn(&train_args("whole"), dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let whole = dir.join("whole");
    let weights = "checkpoint-00000004.safetensors";
    for point in ["weights-tmp", "weights", "json-tmp", "json"] {
        let name = format!("killed-{point}");
        let mut child = spawn_paused(&train_args(&name), dir, &format!("{point}@4"));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let run = dir.join(&name);
        let out = ncsn(&["train", "--resume", &name], dir);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        // Same draws, same kernels, same order: the resumed files equal the uninterrupted run's.
        for file in [weights, "checkpoint.json"] {
            assert_eq!(
                std::fs::read(run.join(file)).unwrap(),
                std::fs::read(whole.join(file)).unwrap(),
                "{point}: {file}"
            );
        }
        // No temporary or stale file is left (loss.png's content depends on nothing checked here).
        assert_eq!(listing(&run), listing(&whole), "{point}");
    }
}

#[test]
fn a_second_writer_of_a_run_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_idx(&dir.join("digits.gz"), 12, 8, true);
    // The first run holds the folder, paused in its second save.
    let mut first = spawn_paused(&train_args("run"), dir, "weights@4");
    let pid = first.id().to_string();
    // A resume and a new run on the same folder are refused, naming the holder.
    let resumed = ncsn(&["train", "--resume", "run", "--steps", "6"], dir);
    let fresh = ncsn(&train_args("run"), dir);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_clean_error(&resumed, &["in use", &format!("process {pid}")]);
    assert_clean_error(&fresh, &["in use", &format!("process {pid}")]);
    // Once it is gone, the folder is free again.
    let out = ncsn(&["train", "--resume", "run"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
}
