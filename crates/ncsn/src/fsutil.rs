//! Files and folders: atomic writes and the removal of the temporaries a crash left (the
//! workbench's, re-exported); safetensors files written atomically; the lock that makes one
//! process the only writer of a run folder; checks of user-given paths (file or folder, writable output); the test-only
//! pause hook of the fault tests.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Error, Result};

pub use workbench::files::{is_temporary, remove_temporaries, write_atomic, write_atomic_with};

/// Writes named tensors as a safetensors file at `path` atomically (through
/// [`write_atomic`]: the safetensors library's own file writer would leave its own temporary
/// files behind when the process is killed).
pub fn write_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    Ok(write_atomic(path, &safetensors_bytes(path, tensors)?)?)
}

/// The bytes of a safetensors file of `tensors` (to be written at `path`, named in errors).
pub fn safetensors_bytes(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    safetensors::serialize(tensors, None).map_err(|e| Error::data(path, format!("cannot serialise the tensors: {e}")))
}

/// File name of the lock of a run folder.
pub const LOCK_FILE: &str = ".lock";

/// An advisory lock on a run folder (`<dir>/.lock`, `std::fs::File::try_lock`), held until
/// dropped: one writer per run folder (on a file system without locks, a warning instead). The file holds the holder's process id and start time,
/// for the message another process gets; it stays after the run (an unlocked file is free).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Locks `dir` (created if missing), or fails naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::data(
                    dir,
                    format!(
                        "the run folder is in use by another ncsn process ({}); one process at a time may \
                         write a run folder: wait for it to finish or stop it",
                        if holder.is_empty() {
                            "its lock file is empty"
                        } else {
                            holder
                        }
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                // Some network file systems have no locks: run unguarded rather than not at all.
                eprintln!(
                    "warning: {}: this file system does not support file locks; make sure no other ncsn process \
                     writes this run folder",
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = format!("process {} since unix time {since}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// Checks that `path` is an existing file (`want_dir` false) or folder (`want_dir` true); the
/// error names it, says what it is instead, and what was `expected`.
pub fn require_kind(path: &Path, want_dir: bool, expected: &str) -> Result<()> {
    let found = match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if m.is_dir() == want_dir => return Ok(()),
        Ok(m) if m.is_dir() => "is a folder",
        Ok(_) => "is a file",
    };
    Err(Error::data(path, format!("{found}; expected {expected}")))
}

/// Makes `dir` ready to receive the output of a command given by `--<flag>`: creates it, and
/// checks that it is a folder that can be written, before any work is done.
pub fn prepare_output_dir(dir: &Path, flag: &str) -> Result<()> {
    let key = flag.replace('-', "_");
    if dir.exists() && !dir.is_dir() {
        return Err(Error::config(
            key,
            format!(
                "--{flag} {} is a file; expected a folder (it is created if missing)",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::config(
            &key,
            format!("--{flag} {}: cannot create the folder: {e}", dir.display()),
        )
    })?;
    tempfile::Builder::new()
        .prefix(".write-test.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            Error::config(
                &key,
                format!("--{flag} {}: cannot write in the folder: {e}", dir.display()),
            )
        })
}

/// Environment variable of the test-only hook of [`test_pause`]: `POINT` or `POINT@STEP`.
pub const TEST_PAUSE_VAR: &str = "NCSN_TEST_PAUSE_IN_SAVE";

/// Test-only hook, for the fault tests (`tests/faults.rs`): when the environment variable
/// [`TEST_PAUSE_VAR`] is `point` (or `point@step` with this `step`), prints
/// `NCSN_TEST_PAUSE_IN_SAVE: paused at <point>` on stderr and sleeps until the process is
/// killed, so that a test can kill it at exactly that point of a save. Unset, it does nothing.
pub fn test_pause(point: &str, step: u64) {
    let Ok(value) = std::env::var(TEST_PAUSE_VAR) else {
        return;
    };
    let (name, at) = match value.split_once('@') {
        Some((name, s)) => (name, s.parse::<u64>().ok()),
        None => (value.as_str(), None),
    };
    if name != point || at.is_some_and(|s| s != step) {
        return;
    }
    eprintln!("{TEST_PAUSE_VAR}: paused at {point}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
