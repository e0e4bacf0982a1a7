//! Tries one setting of the 2D NCSN on chosen data sets and prints the relative score error per
//! level and the sample metrics (the measurements behind `ncsn2d`'s defaults):
//!
//! `cargo run --release -p toy2d --example ncsn2d_sweep -- [toy,...] [key=value ...]`
//!
//! keys: `cond` (`embedding`, `divide`, `both`), `steps`, `hidden`, `lr`, `batch`, `sigma_last`,
//! `levels`, `eps_ratio`, `T`, `seed`, `draws` (of the MMD, default 1).
use anyhow::{bail, Context as _, Result};
use candle_core::Device;
use gmm::datasets::Toy;
use toy2d::experiments::ncsn2d::{run_toy, Settings};
use toy2d::experiments::Context;
use toy2d::model::Conditioning;
use toy2d::output::OutDir;
use toy2d::plot::{self, scatter_panel, PALETTE};

fn main() -> Result<()> {
    // one draw for the MMDs unless asked (the experiment's extra draws double the sampling)
    let mut settings = Settings {
        mmd_draws: 1,
        ..Settings::default()
    };
    let mut toys = vec![Toy::Mixture, Toy::Ring, Toy::Moons, Toy::Spiral];
    let mut seed = 0;
    for arg in std::env::args().skip(1) {
        let Some((key, value)) = arg.split_once('=') else {
            toys = arg
                .split(',')
                .map(|name| match name {
                    "mixture" => Ok(Toy::Mixture),
                    "ring" => Ok(Toy::Ring),
                    "moons" => Ok(Toy::Moons),
                    "spiral" => Ok(Toy::Spiral),
                    other => bail!("unknown data set `{other}`"),
                })
                .collect::<Result<_>>()?;
            continue;
        };
        let bad = || format!("bad value `{value}` for `{key}`");
        match key {
            "cond" => {
                settings.conditioning = match value {
                    "embedding" => Conditioning::Embedding,
                    "divide" => Conditioning::DivideBySigma,
                    "both" => Conditioning::EmbeddingOverSigma,
                    _ => bail!(bad()),
                }
            }
            "steps" => settings.steps = value.parse().with_context(bad)?,
            "hidden" => settings.hidden = value.parse().with_context(bad)?,
            "lr" => settings.lr = value.parse().with_context(bad)?,
            "batch" => settings.batch_size = value.parse().with_context(bad)?,
            "sigma_last" => settings.sigma_last = value.parse().with_context(bad)?,
            "levels" => settings.levels = value.parse().with_context(bad)?,
            "eps_ratio" => settings.eps_ratio = value.parse().with_context(bad)?,
            "T" => settings.steps_per_level = value.parse().with_context(bad)?,
            "draws" => settings.mmd_draws = value.parse().with_context(bad)?,
            "seed" => seed = value.parse().with_context(bad)?,
            _ => bail!("unknown key `{key}`"),
        }
    }
    let out = std::env::temp_dir().join("ncsn2d_sweep");
    let ctx = Context {
        out: OutDir::create(&out)?,
        seed,
        steps: None,
        device: Device::Cpu,
        progress: false,
        jobs: std::sync::Arc::new(toy2d::jobs::Slots::new(1)),
    };
    println!("{settings:?}");
    let mut panels = Vec::new();
    for (t, toy) in [Toy::Mixture, Toy::Ring, Toy::Moons, Toy::Spiral]
        .into_iter()
        .enumerate()
    {
        if !toys.contains(&toy) {
            continue;
        }
        let start = std::time::Instant::now();
        let r = run_toy(toy, t, &settings, &ctx)?;
        let errors: Vec<String> = r.score_errors.iter().map(|e| format!("{e:.3}")).collect();
        println!(
            "{:8} sigmas {:.2}->{:.3} loss {:.4} | errors [{}] | MMD {:.4} (floor {:.4}) SW {:.4} (floor {:.4}) | weights {:?} | {:.1} s",
            r.data,
            r.sigmas[0],
            r.sigmas[r.sigmas.len() - 1],
            r.final_loss,
            errors.join(" "),
            r.mmd,
            r.mmd_data_vs_data,
            r.sliced_wasserstein,
            r.sliced_wasserstein_data_vs_data,
            r.mode_weights.as_ref().map(|w| w.iter().map(|v| (v * 1000.0).round() / 1000.0).collect::<Vec<_>>()),
            start.elapsed().as_secs_f64()
        );
        panels.push((toy, r.sample_points));
    }
    let png = plot::save_png(&ctx.out, "sweep.png", (400 * panels.len() as u32, 420), |root| {
        for (area, (toy, x)) in root.split_evenly((1, panels.len())).iter().zip(&panels) {
            scatter_panel(area, toy.name(), toy.bounds(), x, PALETTE[1], None)?;
        }
        Ok(())
    })?;
    println!("samples: {}", png.display());
    Ok(())
}
