//! One training step (batch of 128 from the mixture, loss, backward, Adam update) of the toy MLP
//! (2 -> 128 -> 128 -> 2, softplus) for each score-matching objective, and of the
//! noise-conditional MLP with the NCSN loss over 10 levels (also at `ncsn2d`'s 256 units).
//!
//! `cargo bench -p toy2d --bench objectives -- --quick`
use candle_core::{DType, Device};
use candle_nn::Optimizer;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use toy2d::model::{Conditioning, NoiseConditionalMlp, ScoreMlp};
use toy2d::train::{adam, ncsn_loss, ncsn_step, objective_loss, objective_step, Objective, ProjectionKind};

fn training_steps(c: &mut Criterion) {
    // As the toy2d CLI computes: its parts run with subnormals flushed (see `toy2d::jobs`) and
    // glibc keeping freed memory (`toy2d::cli::run`).
    workbench::subnormal::flush_to_zero();
    workbench::alloc::keep_freed_memory();
    let dev = Device::Cpu;
    let p = gmm::datasets::paper_mixture();
    let objectives = [
        Objective::Explicit(p.clone()),
        Objective::Implicit,
        Objective::Sliced {
            projection: ProjectionKind::Gaussian,
            variance_reduced: false,
        },
        Objective::Sliced {
            projection: ProjectionKind::Rademacher,
            variance_reduced: false,
        },
        Objective::Sliced {
            projection: ProjectionKind::Gaussian,
            variance_reduced: true,
        },
        Objective::Denoising { sigma: 0.1 },
    ];
    let mut group = c.benchmark_group("train_step_batch128");
    for objective in &objectives {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (model, varmap) = ScoreMlp::seeded(128, DType::F32, &dev, &mut rng).expect("model");
        let mut opt = adam(&varmap, 1e-3).expect("optimizer");
        group.bench_function(objective.name(), |b| {
            b.iter(|| {
                let x = p.sample(128, &mut rng);
                let step = objective_step(objective, &model, x.view(), &mut rng, &dev).expect("loss");
                step.update(&mut opt).expect("step");
            })
        });
        if matches!(objective, Objective::Implicit | Objective::Sliced { .. }) {
            // The same step through candle's autograd (the path `objective_step` takes where
            // its written-out step does not apply), for comparison.
            group.bench_function(format!("{}-autograd", objective.name()), |b| {
                b.iter(|| {
                    let x = p.sample(128, &mut rng);
                    let loss = objective_loss(objective, &model, x.view(), &mut rng, &dev).expect("loss");
                    opt.backward_step(&loss).expect("step");
                })
            });
        }
    }
    // The three conditionings at 128 units, and `ncsn2d`'s model (256 units).
    for (conditioning, hidden) in [
        (Conditioning::Embedding, 128),
        (Conditioning::DivideBySigma, 128),
        (Conditioning::EmbeddingOverSigma, 128),
        (Conditioning::EmbeddingOverSigma, 256),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let sigmas = langevin::geometric_sigmas(20.0, 1.0, 10).expect("sigmas");
        let (model, varmap) =
            NoiseConditionalMlp::seeded(hidden, &sigmas, conditioning, DType::F32, &dev, &mut rng).expect("model");
        let sigmas_t = score_matching::sigmas_tensor(&sigmas, &dev).expect("sigmas");
        let mut opt = adam(&varmap, 1e-3).expect("optimizer");
        let name = match (conditioning, hidden) {
            (Conditioning::Embedding, _) => "ncsn-embedding",
            (Conditioning::DivideBySigma, _) => "ncsn-divide-by-sigma",
            (Conditioning::EmbeddingOverSigma, 128) => "ncsn-embedding-over-sigma",
            (Conditioning::EmbeddingOverSigma, _) => "ncsn2d-model-256",
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let x = p.sample(128, &mut rng);
                let step = ncsn_step(&model, x.view(), &sigmas_t, &mut rng, &dev).expect("loss");
                step.update(&mut opt).expect("step");
            })
        });
        if hidden == 256 {
            // The same step through candle's autograd (what `ncsn_step` computes when the
            // written-out step does not apply), for comparison.
            group.bench_function("ncsn2d-model-256-autograd", |b| {
                b.iter(|| {
                    let x = p.sample(128, &mut rng);
                    let loss = ncsn_loss(&model, x.view(), &sigmas_t, &mut rng, &dev).expect("loss");
                    opt.backward_step(&loss).expect("step");
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, training_steps);
criterion_main!(benches);
