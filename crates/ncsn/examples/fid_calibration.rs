//! What an MNIST FID means: the metric's floor (held-out real digits against the training
//! digits, at several sample counts: FID is biased upwards by few samples) and its ceilings
//! (uniform noise; and, given `--samples FILE`, the samples of a model, e.g. the undertrained
//! run the README shows), with the classifier's class shares and confidence for each. Writes
//! the numbers the README and the book quote:
//!
//! ```sh
//! cargo run --release -p ncsn --example fid_calibration -- \
//!     [--samples runs/mnist-docs/samples/samples.safetensors] [--out book/src/figures/mnist_fid_calibration.json]
//! ```
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use ncsn::measure::{measure, quantize, read_source, Measurement, Metric, Part, SetSummary, Source, DEFAULT_BATCH};
use ncsn::Progress;

/// Seed of the uniform-noise images.
const NOISE_SEED: u64 = 0;
/// Images per measured set: the held-out part of the shipped digits.
const COUNT: usize = 500;

fn main() -> Result<()> {
    let mut samples: Option<PathBuf> = None;
    let mut out = PathBuf::from("book/src/figures/mnist_fid_calibration.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--samples" => samples = Some(args.next().context("--samples needs a file")?.into()),
            "--out" => out = args.next().context("--out needs a file")?.into(),
            other => bail!("unknown argument {other:?}; expected --samples FILE or --out FILE"),
        }
    }
    let device = Device::Cpu;
    let metric = Metric::Mnist;
    let net = metric.open(&device)?;
    let digits = ncsn::data::shipped_mnist()?;
    let images = |part| -> Result<ncsn::data::ImageSet> {
        match read_source(&digits, part, 0.1)? {
            Source::Images(set) => Ok(set),
            Source::Stats(_) => bail!("{} holds statistics", digits.display()),
        }
    };
    let run = |set: &ncsn::data::ImageSet, what: &str| -> Result<Measurement> {
        Ok(measure(
            set,
            net.as_ref(),
            DEFAULT_BATCH,
            &device,
            Progress::Quiet,
            what,
        )?)
    };
    let train = run(&images(Part::Train)?, "training digits")?;
    let test = images(Part::Test)?;
    let mut rows = Vec::new();
    let mut entry = |name: &str, m: &Measurement| -> Result<()> {
        let fid = quality::frechet::frechet_distance(&m.stats, &train.stats)?;
        let summary = SetSummary::new(name, m, &metric, 10)?;
        println!("FID {fid:8.3}  {summary}");
        rows.push(serde_json::json!({ "set": name, "fid": fid, "summary": summary }));
        Ok(())
    };
    // The floor: held-out real digits, at several counts.
    for n in [100, 250, COUNT] {
        let subset = test.select(&(0..n).collect::<Vec<_>>());
        entry(&format!("held-out digits ({n})"), &run(&subset, "held-out digits")?)?;
    }
    // A ceiling: uniform noise U[0, 1], what the sampler starts from.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(NOISE_SEED);
    let noise: Vec<f32> = (0..COUNT * 784).map(|_| rng.random::<f32>()).collect();
    let noise = quantize(&Tensor::from_vec(noise, (COUNT, 1, 28, 28), &device)?)?;
    entry(&format!("uniform noise ({COUNT})"), &run(&noise, "uniform noise")?)?;
    // The samples of a model, if given.
    if let Some(path) = &samples {
        let Source::Images(set) = read_source(path, Part::All, 0.1)? else {
            bail!("{} holds statistics; expected samples", path.display())
        };
        entry(&format!("samples ({})", set.len()), &run(&set, "samples")?)?;
    }
    let json = serde_json::json!({
        "command": "cargo run --release -p ncsn --example fid_calibration",
        "network": net.name(),
        "reference": { "set": "training part of the shipped digits", "count": train.stats.count },
        "rows": rows,
    });
    workbench::write_atomic(&out, format!("{}\n", serde_json::to_string_pretty(&json)?).as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
