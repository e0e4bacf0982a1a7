//! The two kernels of the reader's loop, timed for `scripts/bench_toy2d.py` (which runs this and
//! the same kernels in PyTorch, alternating, and compares): annealed Langevin with exact scores at
//! paper Fig. 3's size (1,280 particles x 1,000 steps, as `langevin-weights` runs it), and one
//! training step (batch 128 from the mixture, loss, backward, Adam) of the 2D MLP
//! (2 -> 128 -> 128 -> 2, softplus): denoising score matching at sigma = 0.1, and the
//! noise-conditional DSM of `langevin-weights` (10 levels, `EmbeddingOverSigma`).
//!
//! `cargo run --release -p toy2d --example kernels -- [REPEATS]` prints one JSON line of medians
//! in milliseconds. Criterion versions: `cargo bench -p toy2d --bench langevin`, `--bench objectives`.
use candle_core::{DType, Device};
use candle_nn::Optimizer;
use gmm::datasets::paper_mixture;
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Instant;
use toy2d::experiments::langevin_weights::{annealed_config, annealed_exact, PARTICLES};
use toy2d::experiments::uniform_square;
use toy2d::model::{Conditioning, NoiseConditionalMlp, ScoreMlp};
use toy2d::train::{adam, ncsn_step, objective_loss, Objective};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds per call of `f`, the median of `repeats` timings of `inner` calls each.
fn time_ms(repeats: usize, inner: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let v = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..inner {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / inner as f64
        })
        .collect();
    median(v)
}

fn main() -> anyhow::Result<()> {
    // As the toy2d CLI: candle's matmuls on one thread, freed memory kept, subnormals flushed.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    workbench::alloc::keep_freed_memory();
    workbench::subnormal::flush_to_zero();
    let repeats: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(7);
    let config = annealed_config()?;
    let exact = toy2d::scores::PerturbedMixture::new(paper_mixture(), &config.sigmas)?;
    let p = exact.mixture();
    let bar = ProgressBar::hidden();
    let annealed = time_ms(repeats, 1, || {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
        black_box(annealed_exact(&x0, &exact, &config, 0, &mut rng, &bar).expect("sampler"));
    });

    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (model, varmap) = ScoreMlp::seeded(128, DType::F32, &dev, &mut rng)?;
    let mut opt = adam(&varmap, 1e-3)?;
    let objective = Objective::Denoising { sigma: 0.1 };
    let dsm = time_ms(repeats, 200, || {
        let x = p.sample(128, &mut rng);
        let loss = objective_loss(&objective, &model, x.view(), &mut rng, &dev).expect("loss");
        opt.backward_step(&loss).expect("step");
    });

    let (model, varmap) = NoiseConditionalMlp::seeded(
        128,
        &config.sigmas,
        Conditioning::EmbeddingOverSigma,
        DType::F32,
        &dev,
        &mut rng,
    )?;
    let sigmas_t = score_matching::sigmas_tensor(&config.sigmas, &dev)?;
    let mut opt = adam(&varmap, 1e-3)?;
    let ncsn = time_ms(repeats, 200, || {
        let x = p.sample(128, &mut rng);
        let step = ncsn_step(&model, x.view(), &sigmas_t, &mut rng, &dev).expect("loss");
        step.update(&mut opt).expect("step");
    });
    println!(
        "{{\"annealed_ms\": {annealed:.3}, \"dsm_step_ms\": {dsm:.4}, \"ncsn_step_ms\": {ncsn:.4}, \"threads\": {}}}",
        std::thread::available_parallelism().map_or(1, |t| t.get())
    );
    Ok(())
}
