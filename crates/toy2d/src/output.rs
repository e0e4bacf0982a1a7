//! The output folder of the experiments. Every file is written atomically
//! ([`workbench::files::write_atomic_with`]): nothing a reader made is ever half-written.
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// The folder an experiment writes its figures and numbers into.
#[derive(Debug, Clone)]
pub struct OutDir {
    root: PathBuf,
}

impl OutDir {
    /// Creates `root` if needed and checks that a file can be written there, so that a wrong
    /// `--out` fails before minutes of training instead of after.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if root.exists() && !root.is_dir() {
            bail!(
                "output folder `{}` exists and is not a folder; expected a folder (or a path to create)",
                root.display()
            );
        }
        fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the output folder `{}` (--out)", root.display()))?;
        let probe = root.join(".toy2d-write-test.tmp");
        fs::write(&probe, b"ok")
            .with_context(|| format!("the output folder `{}` (--out) is not writable", root.display()))?;
        // The probe has served its purpose; failing to remove it is harmless.
        let _ = fs::remove_file(&probe);
        Ok(Self { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The final path of a file `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes the file `name` atomically: `write(tmp)` fills a temporary file (whose name keeps
    /// the extension, from which plotters picks the image format) that then replaces `name`.
    pub fn write_with(&self, name: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        let target = self.path(name);
        workbench::files::write_atomic_with(&target, write)
            .with_context(|| format!("while writing `{}`", target.display()))?;
        Ok(target)
    }

    /// Writes `value` as pretty JSON to `name`, atomically.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf> {
        let text = serde_json::to_string_pretty(value).context("cannot serialise the report to JSON")?;
        self.write_with(name, |tmp| {
            fs::write(tmp, text + "\n").with_context(|| format!("cannot write `{}`", tmp.display()))
        })
    }

    /// Writes CSV text (header line + rows) to `name`, atomically.
    pub fn write_csv(&self, name: &str, header: &str, rows: &[Vec<f64>]) -> Result<PathBuf> {
        let mut text = String::with_capacity(rows.len() * 24 + header.len() + 1);
        text.push_str(header);
        text.push('\n');
        for row in rows {
            let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        self.write_with(name, |tmp| {
            fs::write(tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_is_atomic_and_failed_writes_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path().join("new")).unwrap();
        out.write_json("r.json", &vec![1, 2]).unwrap();
        let back: Vec<i32> = serde_json::from_str(&fs::read_to_string(out.path("r.json")).unwrap()).unwrap();
        assert_eq!(back, vec![1, 2]);
        let err = out
            .write_with("bad.png", |tmp| {
                fs::write(tmp, b"half")?;
                bail!("drawing failed")
            })
            .unwrap_err();
        assert!(format!("{err:#}").contains("bad.png"));
        assert!(!out.path("bad.png").exists());
        assert_eq!(
            fs::read_dir(out.root()).unwrap().count(),
            1,
            "only r.json: no temporary left"
        );
    }

    #[test]
    fn a_file_in_place_of_the_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = OutDir::create(&file).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
    }
}
