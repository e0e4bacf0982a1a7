//! Annealed Langevin dynamics with exact scores, at the size of paper Fig. 3: 1,280 particles,
//! 10 levels x 100 steps = 1,000 score evaluations of the perturbed mixture. Plain Langevin
//! (1,000 steps) for comparison. `cargo bench -p toy2d --bench langevin`.
use criterion::{criterion_group, criterion_main, Criterion};
use gmm::datasets::paper_mixture;
use langevin::{annealed_langevin, langevin, StepConvention};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use toy2d::experiments::langevin_weights::{annealed_config, PARTICLES};
use toy2d::experiments::uniform_square;

fn bench(c: &mut Criterion) {
    let p = paper_mixture();
    let config = annealed_config().expect("valid settings");
    let perturbed: Vec<_> = config
        .sigmas
        .iter()
        .map(|&s| p.perturbed(s).expect("valid sigma"))
        .collect();
    let mut group = c.benchmark_group("langevin_1280x1000");
    group.sample_size(10);
    group.bench_function("annealed_exact", |b| {
        b.iter(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
            let out = annealed_langevin(
                x0,
                |x, level, _| Ok(perturbed[level].score(x.view())),
                &config,
                &mut rng,
            )
            .expect("sampler runs");
            black_box(out.samples)
        })
    });
    group.bench_function("plain_exact", |b| {
        b.iter(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = uniform_square(PARTICLES, (-8.0, 8.0), &mut rng);
            let out = langevin(
                x0,
                |x| Ok(p.score(x.view())),
                0.1,
                1000,
                StepConvention::Paper,
                None,
                &mut rng,
            )
            .expect("sampler runs");
            black_box(out.samples)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
