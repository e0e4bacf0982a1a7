//! `ncsn fid`: the Fréchet distance between two sets of images (or saved statistics) in the
//! feature space of the MNIST classifier or of Inception-v3, with each set's class histogram or
//! Inception score; or, with one set and `--save-stats`, its statistics for later runs. The
//! work is in [`crate::measure`] and the `quality` crate.
use std::path::{Path, PathBuf};

use clap::Args;
use quality::features::FeatureStats;

use crate::error::{Error, Result};
use crate::measure::{measure, read_source, Measurement, Metric, Part, SetSummary, Source, DEFAULT_BATCH};
use crate::progress::Progress;

/// `ncsn fid`.
#[derive(Debug, Clone, Args)]
pub struct FidArgs {
    /// The images to measure: a samples.safetensors of `ncsn sample`, an MNIST IDX file, a
    /// cifar-10-batches-bin folder, a folder of PNG/JPEG images, or statistics saved with
    /// --save-stats
    pub a: PathBuf,
    /// The reference set, in any of the same forms (e.g. the training images, or their saved
    /// statistics); without it, only A is measured
    pub b: Option<PathBuf>,
    /// Measure in the feature space of the MNIST classifier that ships with the project (28x28
    /// grayscale images)
    #[arg(long, conflicts_with = "inception")]
    pub mnist: bool,
    /// Measure with Inception-v3 (the FID and Inception score of the literature): the safetensors
    /// file made by scripts/convert_inception_weights.py from pytorch-fid's weights
    #[arg(long, value_name = "FILE")]
    pub inception: Option<PathBuf>,
    /// Which images of A when it is a data set: all, or the part `ncsn train` trains on (train) or
    /// holds out (test)
    #[arg(long, value_enum, default_value = "all")]
    pub part_a: Part,
    /// Which images of B when it is a data set (the paper's FID: B = the CIFAR-10 folder, train)
    #[arg(long, value_enum, default_value = "all")]
    pub part_b: Part,
    /// Fraction of an MNIST file or image folder that `ncsn train` holds out (its test_fraction)
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
    /// Save the statistics of A (mean, covariance, count, network) to this safetensors file
    #[arg(long, value_name = "FILE")]
    pub save_stats: Option<PathBuf>,
    /// Write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Images per network batch
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch_size: usize,
    /// Splits of the Inception score (the original's 10)
    #[arg(long, default_value_t = quality::inception_score::DEFAULT_SPLITS)]
    pub splits: usize,
    /// cpu, cuda or cuda:N (cuda needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl FidArgs {
    fn metric(&self) -> Result<Metric> {
        match (&self.inception, self.mnist) {
            (Some(path), _) => Ok(Metric::Inception(path.clone())),
            (None, true) => Ok(Metric::Mnist),
            (None, false) => Err(Error::config(
                "metric",
                "choose the feature network: --mnist (the MNIST classifier that ships with the project) or \
                 --inception FILE (Inception-v3 weights converted by scripts/convert_inception_weights.py)",
            )),
        }
    }
}

/// One set, measured or read as statistics.
struct Measured {
    stats: FeatureStats,
    summary: Option<SetSummary>,
}

fn measure_path(
    path: &Path,
    part: Part,
    args: &FidArgs,
    metric: &Metric,
    net: &dyn quality::FeatureNetwork,
    device: &candle_core::Device,
) -> Result<Measured> {
    match read_source(path, part, args.test_fraction)? {
        Source::Stats(stats) => Ok(Measured { stats, summary: None }),
        Source::Images(images) => {
            let what = match part {
                Part::All => path.display().to_string(),
                Part::Train => format!("{} (training part)", path.display()),
                Part::Test => format!("{} (held-out part)", path.display()),
            };
            let m: Measurement = measure(&images, net, args.batch_size, device, Progress::for_stderr(), &what)
                .map_err(|e| name_file(e, path))?;
            let summary = SetSummary::new(what, &m, metric, args.splits)?;
            Ok(Measured {
                stats: m.stats,
                summary: Some(summary),
            })
        }
    }
}

/// Errors about images that the network refused name the file they came from.
fn name_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Quality(q @ (quality::Error::Shape(_) | quality::Error::NonFinite { .. })) => {
            Error::data(path, q.to_string())
        }
        other => other,
    }
}

/// The results of `ncsn fid` as JSON.
#[derive(serde::Serialize)]
struct FidJson<'a> {
    metric: &'static str,
    network: &'a str,
    fid: Option<f64>,
    a: SetJson<'a>,
    b: Option<SetJson<'a>>,
}

#[derive(serde::Serialize)]
struct SetJson<'a> {
    path: String,
    count: usize,
    summary: Option<&'a SetSummary>,
}

/// `ncsn fid`.
pub fn run_fid(args: &FidArgs) -> Result<()> {
    let metric = args.metric()?;
    if args.save_stats.is_some() && args.b.is_some() {
        return Err(Error::config(
            "save_stats",
            "--save-stats saves the statistics of one set: give only A (e.g. the training images)",
        ));
    }
    if args.b.is_none() && args.save_stats.is_none() && args.json.is_none() && metric == Metric::Mnist {
        eprintln!("note: one set given: its class histogram only (give a second set B for a FID)");
    }
    let device = workbench::parse_device(&args.device, "ncsn")?;
    let net = metric.open(&device)?;
    let a = measure_path(&args.a, args.part_a, args, &metric, net.as_ref(), &device)?;
    if let Some(summary) = &a.summary {
        println!("{summary}");
    }
    if let Some(out) = &args.save_stats {
        a.stats.save(out)?;
        println!(
            "wrote {} ({} images, {}-d features of {})",
            out.display(),
            a.stats.count,
            a.stats.dim(),
            a.stats.network
        );
    }
    let mut b = None;
    let mut fid = None;
    if let Some(path) = &args.b {
        let measured = measure_path(path, args.part_b, args, &metric, net.as_ref(), &device)?;
        if let Some(summary) = &measured.summary {
            println!("{summary}");
        }
        let d = quality::frechet::frechet_distance_named(
            &a.stats,
            &args.a.display().to_string(),
            &measured.stats,
            &path.display().to_string(),
        )?;
        println!(
            "FID {d:.4} ({} features; {} images of {} against {} of {})",
            metric.short_name(),
            a.stats.count,
            args.a.display(),
            measured.stats.count,
            path.display()
        );
        fid = Some(d);
        b = Some((path, measured));
    }
    if let Some(out) = &args.json {
        let set = |path: &Path, m: &'_ Measured| SetJson {
            path: path.display().to_string(),
            count: m.stats.count,
            summary: None,
        };
        let mut json = FidJson {
            metric: metric.short_name(),
            network: net.name(),
            fid,
            a: set(&args.a, &a),
            b: b.as_ref().map(|(p, m)| set(p, m)),
        };
        json.a.summary = a.summary.as_ref();
        if let (Some(j), Some((_, m))) = (json.b.as_mut(), b.as_ref()) {
            j.summary = m.summary.as_ref();
        }
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::output(out, e.to_string()))?;
        crate::fsutil::write_atomic(out, format!("{text}\n").as_bytes())?;
    }
    Ok(())
}
