//! What a command will need (weights, batches, chains, figures, images in memory), checked
//! against what the machine can hold before anything is allocated, so that an absurd size is an
//! error naming the flag instead of an abort of the whole process ("memory allocation of N bytes
//! failed"), possibly after the work is done.
//!
//! The figures are lower bounds (what must certainly be allocated, in `u128` so that no product
//! overflows): a run that passes may still be too large, one that fails cannot work. The
//! budget is the machine's physical memory ([`memory_budget`]).
use crate::error::{Error, Result};
use crate::model::ModelConfig;

/// Largest image side accepted anywhere (`image_size`): far beyond what the network is made for
/// (32 in the paper), and small enough that every pixel count of an image or figure fits the
/// image library's `u32` sides.
pub const MAX_IMAGE_SIZE: usize = 16_384;

/// Bytes of an `f32`.
const F32: u128 = 4;

/// One thing a command will hold in memory.
#[derive(Debug, Clone)]
pub struct Need {
    /// The key (flag without `--`, `_` for `-`) that sets its size.
    pub key: &'static str,
    /// What it is, in words.
    pub what: String,
    /// Its size in bytes.
    pub bytes: u128,
}

/// The machine's physical memory in bytes (`MemTotal` of `/proc/meminfo`), or 1 TiB where that
/// cannot be read.
pub fn memory_budget() -> u128 {
    let from_proc = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u128>().ok()
    });
    from_proc.map_or(1 << 40, |kib| kib * 1024)
}

/// `bytes` in words (`1.5 GB`).
pub fn human(bytes: u128) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Product of `factors` (saturating: an absurd size stays absurd instead of wrapping).
pub fn product(factors: &[u128]) -> u128 {
    factors.iter().fold(1u128, |acc, &f| acc.saturating_mul(f))
}

/// Checks that `needs` fit in the machine's memory; the error names the key of the largest need
/// and lists them all.
pub fn check(command: &str, needs: &[Need]) -> Result<()> {
    check_against(command, needs, memory_budget())
}

/// [`check`] against a given budget in bytes.
pub fn check_against(command: &str, needs: &[Need], budget: u128) -> Result<()> {
    let total = needs.iter().fold(0u128, |acc, n| acc.saturating_add(n.bytes));
    if total <= budget {
        return Ok(());
    }
    let Some(largest) = needs.iter().max_by_key(|n| n.bytes) else {
        return Ok(());
    };
    let items: Vec<String> = needs
        .iter()
        .filter(|n| n.bytes > 0)
        .map(|n| format!("{}: {}", n.what, human(n.bytes)))
        .collect();
    Err(Error::config(
        largest.key,
        format!(
            "{command} would need at least {} of memory ({}), more than this machine's {}: lower --{}",
            human(total),
            items.join("; "),
            human(budget),
            largest.key.replace('_', "-")
        ),
    ))
}

/// The key to blame for `count` items of `per_item` bytes: `size_key` when one item alone is
/// beyond the budget (the size is absurd), else `count_key`.
fn blame(per_item: u128, size_key: &'static str, count_key: &'static str) -> &'static str {
    if per_item > memory_budget() {
        size_key
    } else {
        count_key
    }
}

/// Bytes of the network's weights (`f32`); `ngf` beyond any sensible width is estimated from
/// one of its `ngf x ngf x 3 x 3` convolutions, so that the count cannot overflow.
fn weight_bytes(model: &ModelConfig) -> u128 {
    if model.ngf <= 1 << 16 && model.num_classes <= 1 << 24 && model.channels <= 1 << 16 {
        model.num_parameters() as u128 * F32
    } else {
        let ngf = model.ngf as u128;
        product(&[ngf, ngf, 9, F32]).saturating_add(product(&[model.num_classes as u128, ngf, F32]))
    }
}

/// What a training step holds at least: the weights, their gradients, Adam's two moments (and
/// the EMA), a batch with its noise, and the first layer's output for the batch.
pub fn training_needs(model: &ModelConfig, batch: usize, batch_key: &'static str, ema: bool) -> Vec<Need> {
    let copies = 4 + u128::from(ema);
    let pixels = product(&[
        model.channels as u128,
        model.image_size as u128,
        model.image_size as u128,
    ]);
    let per_image = product(&[pixels, 2, F32]);
    let activation = product(&[
        model.ngf as u128,
        model.image_size as u128,
        model.image_size as u128,
        F32,
    ]);
    let batch = batch as u128;
    vec![
        Need {
            key: "ngf",
            what: format!(
                "the weights, their gradients and Adam's moments{}",
                if ema { " and the EMA" } else { "" }
            ),
            bytes: weight_bytes(model).saturating_mul(copies),
        },
        Need {
            key: blame(per_image, "image_size", batch_key),
            what: format!("a batch of {batch} images and its noise"),
            bytes: per_image.saturating_mul(batch),
        },
        Need {
            key: blame(activation, "image_size", batch_key),
            what: format!("the first layer's output for {batch} images ({} channels)", model.ngf),
            bytes: activation.saturating_mul(batch),
        },
    ]
}

/// What sampling `n` chains in batches of `batch_size` holds at least: every chain's final value
/// (twice: the batches and their concatenation), one batch with the first layer's output, and
/// the kept snapshots.
pub fn sampling_needs(model: &ModelConfig, n: usize, batch_size: usize, snapshots: usize) -> Vec<Need> {
    let image = product(&[
        model.channels as u128,
        model.image_size as u128,
        model.image_size as u128,
        F32,
    ]);
    let activation = product(&[
        model.ngf as u128,
        model.image_size as u128,
        model.image_size as u128,
        F32,
    ]);
    let batch = batch_size.min(n) as u128;
    vec![
        Need {
            key: blame(image, "image_size", "n"),
            what: format!("{n} chains"),
            bytes: product(&[image, n as u128, 2]),
        },
        Need {
            key: blame(image.saturating_add(activation), "image_size", "batch_size"),
            what: format!("a batch of {batch} chains through the network"),
            bytes: image.saturating_add(activation).saturating_mul(batch),
        },
        Need {
            key: "snapshots",
            what: format!("{snapshots} snapshots of every chain"),
            bytes: product(&[image, n as u128, snapshots as u128]),
        },
    ]
}

/// A figure of `rows x columns` tiles of `size x size` pixels, each pixel drawn `scale x scale`:
/// the tiles and the picture, 3 bytes a pixel. Blamed on `scale` when one tile alone is too
/// large, else on `count_key` (the flag that sets the number of tiles).
pub fn figure_need(rows: usize, columns: usize, size: usize, scale: u32, what: &str, count_key: &'static str) -> Need {
    let side = product(&[size as u128, u128::from(scale)]).saturating_add(2);
    let tile = product(&[side, side, 3, 2]);
    let tiles = product(&[rows as u128, columns as u128, side, side, 3]);
    Need {
        key: blame(tile, "scale", count_key),
        what: what.to_string(),
        bytes: tiles.saturating_mul(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_fail_naming_the_key_and_sensible_ones_pass() {
        let budget = 16u128 << 30; // a 16 GiB machine
        let paper = ModelConfig::cifar10();
        // The paper's run: 30.1 M parameters x 4 copies x 4 bytes = 0.48 GB, a batch of 128
        // 3x32x32 images 3 MB, the first layer 67 MB: far below 16 GiB.
        check_against("train", &training_needs(&paper, 128, "batch_size", true), budget).unwrap();
        let wide = ModelConfig {
            ngf: 1_000_000,
            ..paper.clone()
        };
        let err = check_against("train", &training_needs(&wide, 128, "batch_size", false), budget)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ngf`") && err.contains("TB"), "{err}");
        let many = check_against("sample", &sampling_needs(&paper, 100_000_000_000, 64, 0), budget)
            .unwrap_err()
            .to_string();
        assert!(many.contains("`n`"), "{many}");
        let fig = figure_need(8, 8, 32, 100_000, "the grid", "n");
        let err = check_against("sample", &[fig], budget).unwrap_err().to_string();
        assert!(err.contains("`scale`"), "{err}");
        assert_eq!(human(1_500_000_000), "1.5 GB");
        assert_eq!(product(&[u128::MAX, 2]), u128::MAX, "saturates instead of wrapping");
    }
}
