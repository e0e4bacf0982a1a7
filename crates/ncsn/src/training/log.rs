//! The training log: one CSV row per logged step, for the training loss (mean since the
//! previous row) and the test loss (one test batch), overall and per noise level. With
//! `fid_every`, each evaluation of samples adds rows whose `loss` column holds what was measured:
//! the FID (split `fid`), the share of samples the MNIST classifier is sure of (`sure`), and the
//! share of samples in each class (`class_0`, `class_1`, ...).
//!
//! ```text
//! step,split,loss,images_per_s,loss_sigma=1.0000,...,loss_sigma=0.0100
//! 25,train,0.8123,41.7,0.95,...,0.61
//! 100,test,0.7012,,0.88,,...
//! 100,fid,312.1,,,,...
//! 100,sure,0.29,,,,...
//! 100,class_0,0.104,,,,...
//! ```
//!
//! Rows are appended as training goes; on resume, rows after the checkpoint's step (and a
//! torn last line) are dropped, so the log continues exactly where the checkpoint was taken.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Which data a row's loss is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training batches.
    Train,
    /// A test batch.
    Test,
    /// The FID of samples against the training images (`fid_every`), in the `loss` column.
    Fid,
    /// The share of those samples whose top class probability under the MNIST classifier is at
    /// least `quality::classes::CONFIDENT_THRESHOLD` (the classifier is sure of them).
    Sure,
    /// The share of those samples that the classifier puts in class `k` (its most probable one).
    Class(usize),
}

impl Split {
    fn name(self) -> String {
        match self {
            Split::Train => "train".into(),
            Split::Test => "test".into(),
            Split::Fid => "fid".into(),
            Split::Sure => "sure".into(),
            Split::Class(k) => format!("class_{k}"),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "train" => Split::Train,
            "test" => Split::Test,
            "fid" => Split::Fid,
            "sure" => Split::Sure,
            other => Split::Class(other.strip_prefix("class_")?.parse().ok()?),
        })
    }

    /// Whether the row measures samples (`fid_every`) rather than the loss on a batch.
    pub fn is_sample_measure(self) -> bool {
        matches!(self, Split::Fid | Split::Sure | Split::Class(_))
    }
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// Training steps done.
    pub step: u64,
    /// Train or test.
    pub split: Split,
    /// Mean DSM loss.
    pub loss: f64,
    /// Training throughput since the previous row (train rows only).
    pub images_per_s: Option<f64>,
    /// Mean loss per noise level, `None` where no example had that level.
    pub per_level: Vec<Option<f64>>,
}

impl LogRow {
    fn to_csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut cells = vec![
            self.step.to_string(),
            self.split.name(),
            self.loss.to_string(),
            self.images_per_s.map(|x| format!("{x:.2}")).unwrap_or_default(),
        ];
        cells.extend(self.per_level.iter().map(|&v| opt(v)));
        cells.join(",")
    }

    fn parse(line: &str, levels: usize) -> Option<Self> {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != 4 + levels {
            return None;
        }
        let opt = |s: &str| -> Option<Option<f64>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        Some(Self {
            step: cells[0].parse().ok()?,
            split: Split::parse(cells[1])?,
            loss: cells[2].parse().ok()?,
            images_per_s: opt(cells[3])?,
            per_level: cells[4..].iter().map(|s| opt(s)).collect::<Option<Vec<_>>>()?,
        })
    }
}

/// The CSV file and the rows written so far.
#[derive(Debug)]
pub struct LossLog {
    path: PathBuf,
    header: String,
    levels: usize,
    rows: Vec<LogRow>,
}

impl LossLog {
    /// The CSV header for these noise levels.
    pub fn header(sigmas: &[f64]) -> String {
        let mut h = String::from("step,split,loss,images_per_s");
        for s in sigmas {
            h.push_str(&format!(",loss_sigma={s:.4}"));
        }
        h
    }

    /// Starts a new log at `path` (replacing any file there).
    pub fn create(path: &Path, sigmas: &[f64]) -> Result<Self> {
        let log = Self {
            path: path.to_path_buf(),
            header: Self::header(sigmas),
            levels: sigmas.len(),
            rows: Vec::new(),
        };
        log.rewrite()?;
        Ok(log)
    }

    /// Continues the log at `path` from `step`: keeps its rows up to `step` and rewrites the file
    /// with them (a missing file starts a new log). A log of other noise levels is an error.
    pub fn resume(path: &Path, sigmas: &[f64], step: u64) -> Result<Self> {
        if !path.exists() {
            return Self::create(path, sigmas);
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let header = Self::header(sigmas);
        let mut lines = text.lines();
        if lines.next() != Some(header.as_str()) {
            return Err(Error::data(
                path,
                format!("expected the log header `{header}` of this run's noise levels"),
            ));
        }
        let rows = lines
            .filter_map(|l| LogRow::parse(l, sigmas.len()))
            .filter(|r| r.step <= step)
            .collect();
        let log = Self {
            path: path.to_path_buf(),
            header,
            levels: sigmas.len(),
            rows,
        };
        log.rewrite()?;
        Ok(log)
    }

    fn rewrite(&self) -> Result<()> {
        let mut text = self.header.clone();
        text.push('\n');
        for r in &self.rows {
            text.push_str(&r.to_csv());
            text.push('\n');
        }
        Ok(write_atomic(&self.path, text.as_bytes())?)
    }

    /// Appends a row to the file.
    pub fn push(&mut self, row: LogRow) -> Result<()> {
        debug_assert_eq!(row.per_level.len(), self.levels);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        writeln!(f, "{}", row.to_csv()).map_err(|e| Error::io(&self.path, e))?;
        self.rows.push(row);
        Ok(())
    }

    /// The rows so far.
    pub fn rows(&self) -> &[LogRow] {
        &self.rows
    }

    /// The CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, split: Split, loss: f64) -> LogRow {
        LogRow {
            step,
            split,
            loss,
            images_per_s: (split == Split::Train).then_some(12.5),
            per_level: vec![Some(loss), None],
        }
    }

    #[test]
    fn rows_round_trip_and_resume_drops_later_and_torn_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.csv");
        let sigmas = [1.0, 0.1];
        let mut log = LossLog::create(&path, &sigmas).unwrap();
        for (s, split) in [
            (10, Split::Train),
            (20, Split::Train),
            (20, Split::Test),
            (20, Split::Fid),
            (20, Split::Sure),
            (20, Split::Class(0)),
            (20, Split::Class(9)),
            (30, Split::Train),
        ] {
            log.push(row(s, split, 0.1 + s as f64 / 7.0)).unwrap();
        }
        // A crash in the middle of a row leaves a torn line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"40,tra")
            .unwrap();
        let resumed = LossLog::resume(&path, &sigmas, 20).unwrap();
        assert_eq!(resumed.rows(), &log.rows()[..7], "values parse back exactly");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 8, "{text}");
        assert!(text.contains("\n20,sure,") && text.contains("\n20,class_9,"), "{text}");
        assert!(text.starts_with("step,split,loss,images_per_s,loss_sigma=1.0000,loss_sigma=0.1000\n"));
        let err = LossLog::resume(&path, &[2.0, 0.1], 20).unwrap_err().to_string();
        assert!(err.contains("loss.csv"), "{err}");
    }
}
