//! What the score network sees at each noise level: real MNIST digits (the 5,000 shipped in
//! `data/`) perturbed as in training, `x~ = x + sigma_i z`, at every `sigma_i` of the MNIST recipe
//! (geometric, `sigma_1 = 1` to `sigma_10 = 0.01`), beside the clean image.
//!
//! ```text
//! cargo run --release -p ncsn --example noise_levels            # -> book/src/figures/
//! cargo run --release -p ncsn --example noise_levels -- --seed 3 --out /tmp/figs
//! ```
//!
//! Writes `mnist_noise.png` (rows: one digit of each of five classes; columns: `sigma_1`, ...,
//! `sigma_L`, clean) and `mnist_noise.json` (per level: `sigma`, `sigma sqrt(D)` and the measured
//! `||sigma z|| / ||x||` averaged over the digits), both atomically.
//!
//! The images come through `ncsn::data` as in training: bytes to `[0, 1]` with the uniform
//! dequantisation `(byte + u) / 256`. Each digit gets one `z ~ N(0, I)`, used at every level, so
//! that along a row only `sigma` changes. The noisy values leave `[0, 1]` (at `sigma_1 = 1` most
//! pixels do); the picture clamps them to `[0, 1]` for display, the network does not.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use ncsn::data::{idx, shipped_mnist, Batcher};
use ncsn::sampling::images::{save_png, to_rgb_images, Figure};
use ncsn::TrainConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The shipped file holds 500 digits of each class, sorted by class: these are the first of
/// classes 0, 2, 4, 7 and 9.
const DIGITS: [usize; 5] = [0, 1000, 2000, 3500, 4500];
/// Each pixel drawn as a `SCALE x SCALE` square.
const SCALE: u32 = 3;

/// One level in `mnist_noise.json`.
#[derive(Debug, Serialize)]
struct Level {
    /// `sigma_i`.
    sigma: f64,
    /// `sigma_i sqrt(D)`: the expected norm of the noise `sigma_i z` (to within 1/(4D) relative).
    expected_noise_norm: f64,
    /// `||sigma_i z|| / ||x||`, averaged over the digits shown.
    noise_to_image_norm: f64,
    /// `sigma_i` in grey levels of 255.
    sigma_in_grey_levels: f64,
}

/// `mnist_noise.json`.
#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    /// Indices of the digits in the shipped file.
    digits: Vec<usize>,
    /// Pixels per image, `D`.
    dimension: usize,
    /// `||x||` averaged over the digits shown.
    mean_image_norm: f64,
    levels: Vec<Level>,
}

fn main() -> Result<()> {
    let (mut seed, mut out) = (
        0u64,
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../book/src/figures"),
    );
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                seed = args
                    .next()
                    .context("--seed: expected a number")?
                    .parse()
                    .context("--seed")?
            }
            "--out" => out = args.next().context("--out: expected a folder")?.into(),
            other => bail!("unknown argument `{other}`; expected --seed N or --out DIR"),
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // The recipe's noise levels: sigma_1 = 1 > ... > sigma_10 = 0.01, geometric.
    let sigmas = TrainConfig::mnist().sigmas()?;
    let set = idx::load_images(&shipped_mnist()?)?.select(&DIGITS);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let device = Device::Cpu;
    // [5, 1, 28, 28] in [0, 1], dequantised as in training.
    let x = Batcher::sequential(set, DIGITS.len(), true)
        .next_batch(&mut rng, &device)?
        .context("no digits")?;
    let (n, c, h, w) = x.dims4()?;
    let d = c * h * w;
    let z = langevin::randn_tensor(&mut rng, &[n, c, h, w], DType::F32, &device)?;

    // Per-digit norms, ||x|| and ||z||.
    let norms = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(t.sqr()?
            .flatten_from(1)?
            .sum(1)?
            .sqrt()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect())
    };
    let (x_norm, z_norm) = (norms(&x)?, norms(&z)?);

    // Columns: x + sigma_i z for each level, then x; tiles[k][digit].
    let mut columns = Vec::new();
    let mut levels = Vec::new();
    for &sigma in &sigmas {
        let noisy = (&x + (&z * sigma)?)?; // x~ = x + sigma z
        columns.push(to_rgb_images(&noisy, SCALE)?);
        let ratio = x_norm.iter().zip(&z_norm).map(|(a, b)| sigma * b / a).sum::<f64>() / n as f64;
        levels.push(Level {
            sigma,
            expected_noise_norm: sigma * (d as f64).sqrt(),
            noise_to_image_norm: ratio,
            sigma_in_grey_levels: 255.0 * sigma,
        });
    }
    columns.push(to_rgb_images(&x, SCALE)?);
    let rows = (0..n)
        .map(|i| columns.iter().map(|col| col[i].clone()).collect())
        .collect();
    let mut column_titles: Vec<String> = sigmas
        .iter()
        .enumerate()
        .map(|(i, s)| format!("σ{} = {}", subscript(i + 1), short(*s)))
        .collect();
    column_titles.push("clean x".into());
    let figure = Figure {
        title:
            "What the network sees: x + σᵢ z at each noise level of the MNIST recipe (clamped to [0, 1] for display)"
                .into(),
        column_titles,
        row_labels: Vec::new(),
        rows,
    };
    save_png(&figure.render()?, &out.join("mnist_noise.png"))?;

    let report = Report {
        seed,
        digits: DIGITS.to_vec(),
        dimension: d,
        mean_image_norm: x_norm.iter().sum::<f64>() / n as f64,
        levels,
    };
    let json = serde_json::to_string_pretty(&report)? + "\n";
    workbench::files::write_atomic(&out.join("mnist_noise.json"), json.as_bytes())?;
    println!(
        "wrote {} and {}",
        out.join("mnist_noise.png").display(),
        out.join("mnist_noise.json").display()
    );
    Ok(())
}

/// `1` -> `₁`, `10` -> `₁₀`.
fn subscript(i: usize) -> String {
    i.to_string()
        .chars()
        .map(|c| char::from_u32(0x2080 + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
        .collect()
}

/// A sigma with three significant digits: `0.599`, `0.0774`, `1`.
fn short(s: f64) -> String {
    let digits = (2 - s.log10().floor() as i32).max(0) as usize;
    let text = format!("{s:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}
