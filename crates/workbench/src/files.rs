//! Writing files so that a crash never leaves a half-written one: write a fresh temporary file
//! beside the target, flush it to disk, rename it over the target (atomic on one file system),
//! then flush the folder so that the rename itself survives a power loss. A reader sees the old
//! file or the new one, never a mixture; what a crash leaves is a temporary file that
//! [`remove_temporaries`] recognises.
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Calls `write(tmp)` with the path of a fresh, uniquely named temporary file beside `path`
/// (`.<name>.<random>.tmp.<ext>`: the extension stays last, for writers that choose the format
/// by it, as plotters' image backends do), then fsyncs it, renames it to `path` and fsyncs the folder. If
/// `write` fails, the temporary file is removed and its error returned. `E` is the caller's
/// error type (anything a workbench [`Error`] converts into).
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let suffix = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!(".tmp.{ext}"),
        None => ".tmp".to_string(),
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(&suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    write(tmp.path())?; // on an error, dropping `tmp` removes the file
                        // Temporary files are created private (0600); the result is an ordinary file (0644).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Flushes a folder's entries (the rename) to disk. Folders cannot be opened for syncing on
/// every platform; there the rename is as durable as the system makes it.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Whether `name` is the temporary file of an interrupted atomic write: ours
/// (`.<name>.<random>.tmp[.<ext>]`) or the safetensors library's (`.tmp<random>`).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(".tmp") || name.contains(".tmp.") || name.starts_with(".tmp"))
}

/// Removes the temporary files of interrupted atomic writes in `dir` (see [`is_temporary`]).
/// Only for a folder no other process is writing to (one that this process holds a lock of).
pub fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |tmp| -> Result<()> {
            std::fs::write(tmp, b"half").map_err(|e| Error::io(tmp, e))?;
            Err(Error::Device("stop".into()))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporaries_are_recognised_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".a.json.x1.tmp.json", ".b.x2.tmp", ".tmpabc", "a.json", ".lock"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        remove_temporaries(dir.path());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".lock", "a.json"]);
    }
}
