//! The MNIST CPU recipe's record: collects what `scripts/mnist_recipe.sh` measured into the JSON
//! the book and the READMEs quote, and draws the FID of each run against its minutes of training.
//!
//! ```sh
//! cargo run --release -p ncsn --example mnist_recipe -- \
//!     --recipe configs/mnist-cpu.toml \
//!     --run "NCSNv2 settings (the recipe)=runs/mnist-cpu" --run "the paper's settings=runs/mnist-cpu-paper" \
//!     [--out book/src/figures/mnist_recipe.json] [--png book/src/figures/mnist_recipe_fid.png]
//! ```
//!
//! With `--recipe`, the first run must have been trained with that configuration file (resolved as
//! `ncsn train --config` resolves it; only `keep_every`, which decides which checkpoints are kept,
//! may differ): the book's figures then come from the committed recipe, not from a folder that
//! holds an older run.
//!
//! The runs must share the network, the image size and the batch, so that a step costs the same in
//! each: the minutes of every run are its steps times the first run's measured seconds per step
//! (each run's own figure is recorded too; it is off when the run shared the CPU).
//!
//! Each run folder is read for:
//! - `loss.csv`: the training throughput of every logged interval, hence the seconds per step;
//! - `train-seconds.txt` (written by the script): the wall time of the whole `ncsn train`;
//! - `samples-<step>/fid.json`: `ncsn sample --fid` of the checkpoint kept at that step
//!   (`keep_every`): the FID over training;
//! - any other `<folder>/fid.json`: a sampler setting measured on the run's last weights (the
//!   sweep of step size, steps per level, EMA, and the final 1,000 samples).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use serde_json::{json, Value};

const SIZE: (u32, u32) = (900, 520);

fn main() -> Result<()> {
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    let mut out = PathBuf::from("book/src/figures/mnist_recipe.json");
    let mut png = PathBuf::from("book/src/figures/mnist_recipe_fid.png");
    let mut recipe: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--run" => {
                let v = args.next().context("--run needs LABEL=FOLDER")?;
                let (label, dir) = v.split_once('=').context("--run needs LABEL=FOLDER")?;
                runs.push((label.to_string(), dir.into()));
            }
            "--out" => out = args.next().context("--out needs a file")?.into(),
            "--png" => png = args.next().context("--png needs a file")?.into(),
            "--recipe" => recipe = Some(args.next().context("--recipe needs a TOML file")?.into()),
            other => {
                bail!("unknown argument {other:?}; expected --run LABEL=FOLDER, --recipe FILE, --out FILE, --png FILE")
            }
        }
    }
    if runs.is_empty() {
        bail!("give at least one --run LABEL=FOLDER");
    }
    let first = read_json(&runs[0].1.join("checkpoint.json"))?;
    if let Some(recipe) = &recipe {
        check_recipe(recipe, &runs[0].1, &first)?;
    }
    let cost = |state: &Value| {
        let c = &state["config"];
        [&c["ngf"], &c["batch_size"], &c["channels"], &c["image_size"]].map(Value::to_string)
    };
    for (label, dir) in &runs[1..] {
        if cost(&read_json(&dir.join("checkpoint.json"))?) != cost(&first) {
            bail!("{label}: ngf, batch_size, channels and image_size must be the first run's, so that a step costs the same");
        }
    }
    let batch = first["config"]["batch_size"]
        .as_f64()
        .context("checkpoint.json: config.batch_size")?;
    let clock = median_seconds_per_step(&runs[0].1.join("loss.csv"), batch)?;
    // The confident share of held-out real digits (500 of them), the yardstick of the samples'.
    let calibration = read_json(&out.with_file_name("mnist_fid_calibration.json"))?;
    let real = calibration["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["set"].as_str() == Some("held-out digits (500)"))
        .and_then(|r| r["summary"]["confident_share"].as_f64())
        .context("mnist_fid_calibration.json: the confident share of `held-out digits (500)`")?;
    let records = runs
        .iter()
        .map(|(label, dir)| read_run(label, dir, clock, real))
        .collect::<Result<Vec<_>>>()?;
    draw(&records, &png)?;
    let text = serde_json::to_string_pretty(&json!({ "runs": records }))?;
    ncsn::fsutil::write_atomic(&out, format!("{text}\n").as_bytes())?;
    println!("wrote {} and {}", out.display(), png.display());
    Ok(())
}

/// One run: its settings, its speed, its FID over training (minutes at `clock` seconds per step)
/// and its sampler evaluations.
fn read_run(label: &str, dir: &Path, clock: f64, real_confident: f64) -> Result<Value> {
    let state: Value = read_json(&dir.join("checkpoint.json"))?;
    let config = &state["config"];
    let batch = config["batch_size"]
        .as_f64()
        .context("checkpoint.json: config.batch_size")?;
    let seconds_per_step = median_seconds_per_step(&dir.join("loss.csv"), batch)?;
    let wall = std::fs::read_to_string(dir.join("train-seconds.txt"))
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok());
    let mut curve = Vec::new();
    let mut evaluations = serde_json::Map::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("fid.json").is_file())
        .collect();
    entries.sort();
    for folder in entries {
        let fid = read_json(&folder.join("fid.json"))?;
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let confident = fid["samples"]["confident_share"].as_f64();
        let row = json!({
            "folder": name,
            "fid": fid["fid"],
            "confident_share": confident,
            "confident_share_over_real": confident.map(|c| c / real_confident),
            "smallest_class_share": min_max(&fid["samples"]["class_shares"]).map(|m| m.0),
            "largest_class_share": min_max(&fid["samples"]["class_shares"]).map(|m| m.1),
            "class_shares": fid["samples"]["class_shares"],
            "count": fid["samples"]["count"],
            "sampler": fid["sampler"],
        });
        match name.strip_prefix("samples-").and_then(|s| s.parse::<u64>().ok()) {
            Some(step) => {
                let mut row = row;
                row["step"] = json!(step);
                row["minutes"] = json!(step as f64 * clock / 60.0);
                curve.push(row);
            }
            // Keyed by folder, with `p` for `.` (`sweep-eps-1p8e-4`): the book's number markers
            // split their paths at dots.
            None => {
                evaluations.insert(name.replace('.', "p"), row);
            }
        }
    }
    curve.sort_by_key(|r| r["step"].as_u64());
    Ok(json!({
        "label": label,
        "folder": dir.display().to_string(),
        "steps": state["step"],
        "settings": {
            "ngf": config["ngf"], "batch_size": config["batch_size"], "lr": config["lr"],
            "sigma_begin": config["sigma_begin"], "sigma_end": config["sigma_end"],
            "num_levels": config["num_levels"], "score_over_sigma": config["score_over_sigma"],
            "ema": config["ema"], "ema_rate": config["ema_rate"], "seed": config["seed"],
            "sample_eps": config["sample_eps"], "sample_steps_per_level": config["sample_steps_per_level"],
            "sample_band_low": config["sample_band_low"], "sample_band_high": config["sample_band_high"],
            "sample_band_factor": config["sample_band_factor"], "sample_denoise": config["sample_denoise"],
        },
        "seconds_per_step": seconds_per_step,
        "minutes_per_step_used": clock / 60.0,
        "train_wall_minutes": wall.map(|s| s / 60.0),
        "real_digits_confident_share": real_confident,
        "curve": curve,
        "evaluations": evaluations,
    }))
}

/// Checks that the run in `dir` (its `checkpoint.json` is `state`) was trained with the
/// configuration file `recipe`, but for `keep_every`.
fn check_recipe(recipe: &Path, dir: &Path, state: &Value) -> Result<()> {
    let file = ncsn::Overrides::from_toml_file(recipe)?;
    let wanted = ncsn::TrainConfig::resolve(&file, &ncsn::Overrides::default())?;
    let trained: ncsn::TrainConfig = serde_json::from_value(state["config"].clone())
        .with_context(|| format!("{}: config", dir.join("checkpoint.json").display()))?;
    let differ: Vec<String> = wanted
        .differences(&trained)
        .into_iter()
        .filter(|(key, _, _)| key != "keep_every")
        .map(|(key, ours, theirs)| format!("`{key}` = {ours} in the recipe, {theirs} in the run"))
        .collect();
    if !differ.is_empty() {
        bail!(
            "{} was not trained with {}: {}. Train it again (delete the folder and rerun scripts/mnist_recipe.sh)",
            dir.display(),
            recipe.display(),
            differ.join(", ")
        );
    }
    Ok(())
}

/// The smallest and largest of an array of numbers.
fn min_max(values: &Value) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.as_array()?.iter().filter_map(Value::as_f64).collect();
    let min = v.iter().copied().reduce(f64::min)?;
    Some((min, v.iter().copied().fold(min, f64::max)))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The median over the training rows of `loss.csv` of the seconds per step, `batch /
/// images_per_s` (columns `step,split,loss,images_per_s,...`).
fn median_seconds_per_step(path: &Path, batch: f64) -> Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut values: Vec<f64> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells.get(1) == Some(&"train"))
                .then(|| cells.get(3)?.parse::<f64>().ok())
                .flatten()
        })
        .filter(|v| *v > 0.0)
        .map(|ips| batch / ips)
        .collect();
    if values.is_empty() {
        bail!("{} has no training rows with a throughput", path.display());
    }
    values.sort_by(f64::total_cmp);
    Ok(values[values.len() / 2])
}

/// FID against minutes of training, one line per run.
fn draw(runs: &[Value], path: &Path) -> Result<()> {
    workbench::font::register();
    let (w, h) = SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let points: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            r["curve"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["minutes"].as_f64()?, p["fid"].as_f64()?)))
                .collect()
        })
        .collect();
    let all = points.iter().flatten();
    let x_max = all.clone().map(|p| p.0).fold(1.0f64, f64::max) * 1.05;
    let y_max = all.map(|p| p.1).fold(10.0f64, f64::max) * 1.1;
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "MNIST FID of samples against minutes of training (2-core CPU)",
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("minutes of training (steps x measured seconds per step)")
            .y_desc("FID (lower is better)")
            .y_labels(12)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let colours = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];
        for (i, (run, pts)) in runs.iter().zip(&points).enumerate() {
            let c = colours[i % colours.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(run["label"].as_str().unwrap_or("run"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).context("plot buffer size")?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageOutputFormat::Png)?;
    ncsn::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}
