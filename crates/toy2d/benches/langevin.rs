//! Annealed Langevin dynamics with exact scores, at the size of paper Fig. 3: 1,280 particles,
//! 10 levels x 100 steps = 1,000 score evaluations of the perturbed mixture, exactly as the
//! `langevin-weights` experiment runs it (blocks of 64 particles on every core). Plain Langevin
//! (1,000 steps) for comparison, and the annealed sampler on one thread. Then one step of a learned
//! sampler: `ncsn2d`'s network scoring 1,000 particles at one level.
//! `cargo bench -p toy2d --bench langevin`; the PyTorch peer is `scripts/bench_toy2d_torch.py`.
use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use gmm::datasets::paper_mixture;
use indicatif::ProgressBar;
use langevin::blocks::BLOCK;
use langevin::NoiseConditionalScore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use toy2d::experiments::langevin_weights::{annealed_config, annealed_exact, sample_plain, PARTICLES};
use toy2d::experiments::uniform_square;
use toy2d::model::{Conditioning, NoiseConditionalMlp};
use toy2d::scores::PerturbedMixture;

fn bench(c: &mut Criterion) {
    let config = annealed_config().expect("valid settings");
    let exact = PerturbedMixture::new(paper_mixture(), &config.sigmas).expect("valid sigmas");
    let plain_score = |x: &ndarray::Array2<f64>, out: &mut ndarray::Array2<f64>| {
        exact.mixture().score_into(x.view(), out.view_mut());
        Ok(())
    };
    let bar = ProgressBar::hidden();
    let mut group = c.benchmark_group("langevin_1280x1000");
    group.sample_size(20);
    group.bench_function("annealed_exact", |b| {
        b.iter(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
            black_box(annealed_exact(&x0, &exact, &config, 0, &mut rng, &bar).expect("sampler runs"))
        })
    });
    group.bench_function("annealed_exact_1_thread", |b| {
        b.iter(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
            let out = annealed_exact(&x0, &exact, &config, 1, &mut rng, &bar).expect("sampler runs");
            black_box(out.samples)
        })
    });
    group.bench_function("plain_exact", |b| {
        b.iter(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
            black_box(sample_plain(&x0, &plain_score, Some(BLOCK), &mut rng, &bar).expect("sampler runs"))
        })
    });
    group.finish();

    // One score evaluation of a learned sampler: `ncsn2d`'s network (2 -> 256 -> 256 -> 2) at
    // one level on 1,000 particles, as each of its Langevin steps calls it.
    let sigmas = langevin::geometric_sigmas(20.0, 0.1, 10).expect("sigmas");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (model, _varmap) = NoiseConditionalMlp::seeded(
        256,
        &sigmas,
        Conditioning::EmbeddingOverSigma,
        DType::F32,
        &Device::Cpu,
        &mut rng,
    )
    .expect("model");
    let x = uniform_square(1000, (-8.0, 8.0), &mut rng);
    let mut group = c.benchmark_group("learned_score");
    group.bench_function("ncsn2d_model_1000_particles", |b| {
        b.iter(|| black_box(NoiseConditionalScore::score(&model, &x, 5).expect("score")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
