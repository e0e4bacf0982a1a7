//! Small data sets in the real file formats, generated in a temporary folder.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ncsn::{DatasetKind, TrainConfig};

/// A smooth random-looking byte image: a blob whose position depends on `i`, plus a gradient,
/// so that images share structure (a model can learn something in a few steps).
pub fn pixel(i: usize, c: usize, y: usize, x: usize, size: usize) -> u8 {
    let cx = (i * 7 % size) as f64;
    let cy = (i * 3 % size) as f64;
    let d2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
    let blob = 200.0 * (-d2 / (size as f64)).exp();
    (blob + 40.0 * c as f64 + 10.0 * (y as f64) / size as f64).min(255.0) as u8
}

/// An MNIST-style IDX images file of `n` grayscale `size x size` images (gzip when `gz`).
pub fn write_idx(path: &Path, n: usize, size: usize, gz: bool) {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [n, size, size] {
        bytes.extend((d as u32).to_be_bytes());
    }
    for i in 0..n {
        for y in 0..size {
            for x in 0..size {
                bytes.push(pixel(i, 0, y, x, size));
            }
        }
    }
    if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        bytes = enc.finish().unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// One CIFAR-10 record: a label byte, then 3 x 32 x 32 pixels channel-major.
pub fn cifar_record(i: usize) -> Vec<u8> {
    let mut r = vec![(i % 10) as u8];
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                r.push(pixel(i, c, y, x, 32));
            }
        }
    }
    r
}

/// A `cifar-10-batches-bin` folder with `per_file` records in each of the six files.
pub fn write_cifar_dir(root: &Path, per_file: usize) -> PathBuf {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (f, name) in names.iter().enumerate() {
        let bytes: Vec<u8> = (0..per_file).flat_map(|k| cifar_record(f * per_file + k)).collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

/// A tiny, fast training configuration on an IDX file of 16x16 images.
pub fn tiny_config(data: &Path) -> TrainConfig {
    TrainConfig {
        name: "tiny".into(),
        dataset: DatasetKind::Mnist,
        data: Some(data.to_path_buf()),
        ngf: 8,
        image_size: 16,
        num_levels: 4,
        sigma_begin: 1.0,
        sigma_end: 0.05,
        batch_size: 8,
        test_batch_size: 8,
        steps: 6,
        snapshot_every: 3,
        log_every: 1,
        test_every: 2,
        ..TrainConfig::mnist()
    }
}

/// Runs the built `ncsn` binary with `args` in `cwd`.
pub fn ncsn(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ncsn"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the ncsn binary runs")
}

/// The command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with the command's stderr unless it exited with an error message and no panic.
pub fn assert_clean_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// Flags of a tiny, fast `ncsn train` run on an IDX file of 8x8 images (ngf 4, 4 levels).
pub const TINY_TRAIN: &[&str] = &[
    "--image-size",
    "8",
    "--ngf",
    "4",
    "--num-levels",
    "4",
    "--batch-size",
    "4",
    "--test-batch-size",
    "4",
    "--log-every",
    "1",
    "--test-every",
    "2",
    "--snapshot-every",
    "2",
];

/// Starts `ncsn args` in `cwd` with the test hook `NCSN_TEST_PAUSE_IN_SAVE=pause` and waits
/// until it reports that it paused there; the process then sleeps until killed.
pub fn spawn_paused(args: &[&str], cwd: &Path, pause: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ncsn"))
        .args(args)
        .current_dir(cwd)
        .env(ncsn::fsutil::TEST_PAUSE_VAR, pause)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the ncsn binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut seen = String::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.expect("stderr is text");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("paused at") {
            return child;
        }
    }
    let status = child.wait().expect("waits");
    panic!("ncsn exited ({status}) without pausing at {pause}: {seen}");
}
