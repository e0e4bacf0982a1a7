//! The score-matching objectives on the toy MLP: tangents against finite differences, the
//! identities between objectives (Monte Carlo on a mixture with an exact score), the minimiser of
//! each objective, and the learned NCSN sampled by annealed Langevin dynamics.
use candle_core::{DType, Device, Tensor, Var};
use gmm::GaussianMixture;
use ndarray::{array, Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use score_matching::{
    denoising, draw_projections, esm_per_example, ism_per_example, score_and_divergence, ssm_per_example, JvpScore,
    ProjectionKind,
};
use toy2d::model::{score_array, Conditioning, NoiseConditionalMlp, ScoreMlp, ScoreModel};
use toy2d::train::{train_ncsn, train_score, Objective, TrainConfig};

const CPU: Device = Device::Cpu;

/// A mixture with moderate separation and an exact score: modes 3.6 apart, variance 0.5.
fn mixture() -> GaussianMixture {
    GaussianMixture::isotropic(&[0.4, 0.6], array![[-1.5, -1.0], [1.5, 1.0]], &[0.5, 0.5]).unwrap()
}

fn tensor(x: &Array2<f64>, dtype: DType) -> Tensor {
    Tensor::from_vec(x.iter().copied().collect::<Vec<f64>>(), x.dim(), &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn to_f64(t: &Tensor) -> Array1<f64> {
    Array1::from(t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap())
}

/// Mean and standard error of the mean.
fn mean_se(v: &Array1<f64>) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.sum() / n;
    let var = v.mapv(|x| (x - m).powi(2)).sum() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn half_sq_rows(a: &Array2<f64>) -> Array1<f64> {
    a.rows().into_iter().map(|r| 0.5 * r.dot(&r)).collect()
}

fn untrained(seed: u64, dtype: DType) -> ScoreMlp {
    ScoreMlp::seeded(128, dtype, &CPU, &mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap()
        .0
}

#[test]
fn mlp_jvp_and_divergence_match_central_differences() {
    // In f64 the central difference (s(x + h v) - s(x - h v)) / 2h has truncation error
    // O(h^2 |s'''|) ~ 1e-10 and rounding error ~ 1e-16 / h ~ 1e-11 for h = 1e-5: a tolerance of
    // 1e-7 (relative to the JVP's scale) leaves room, while a wrong tangent is off by O(1).
    let model = untrained(3, DType::F64);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = Array2::from_shape_fn((16, 2), |_| 3.0 * rng.random::<f64>() - 1.5);
    let v = Array2::from_shape_fn((16, 2), |_| rng.random::<f64>() - 0.5);
    let h = 1e-5;
    let s_at = |p: &Array2<f64>| score_array(&model, p.view(), None, &CPU).unwrap();
    let (s, jv) = model
        .score_and_jvp(&tensor(&x, DType::F64), &tensor(&v, DType::F64))
        .unwrap();
    let jv = Array2::from_shape_vec((16, 2), jv.flatten_all().unwrap().to_vec1::<f64>().unwrap()).unwrap();
    let fd = (s_at(&(&x + &(&v * h))) - s_at(&(&x - &(&v * h)))) / (2.0 * h);
    let scale = fd.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    assert!(scale > 1e-3, "the test needs a non-trivial Jacobian, got scale {scale}");
    let err = (&jv - &fd).iter().fold(0.0f64, |m, e| m.max(e.abs()));
    assert!(
        err < 1e-7 * scale.max(1.0),
        "JVP vs finite differences: max error {err}"
    );
    // The primal output of the tangent pass is the plain forward pass.
    let s = Array2::from_shape_vec((16, 2), s.flatten_all().unwrap().to_vec1::<f64>().unwrap()).unwrap();
    assert!((&s - &s_at(&x)).iter().all(|e| e.abs() < 1e-12));

    // Divergence: sum_d of the finite-difference d s_d / d x_d, same tolerance.
    let (_, div) = score_and_divergence(&model, &tensor(&x, DType::F64)).unwrap();
    let mut fd_div = Array1::<f64>::zeros(16);
    for d in 0..2 {
        let mut e = Array2::<f64>::zeros((16, 2));
        e.column_mut(d).fill(h);
        let diff = (s_at(&(&x + &e)) - s_at(&(&x - &e))) / (2.0 * h);
        fd_div += &diff.column(d);
    }
    let err = (&to_f64(&div) - &fd_div).iter().fold(0.0f64, |m, e| m.max(e.abs()));
    assert!(err < 1e-7, "divergence vs finite differences: max error {err}");
}

#[test]
fn tangent_losses_are_differentiable_in_the_parameters() {
    // The ISM and SSM losses contain the JVP, so their parameter gradients pass through the
    // sigmoid of the tangent. Check d loss / d theta for one weight of each layer against a
    // central difference in f64 (h = 1e-6; tolerance 1e-6 relative, as above).
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (model, varmap) = ScoreMlp::seeded(16, DType::F64, &CPU, &mut rng).unwrap();
    let x = tensor(&mixture().sample(32, &mut rng), DType::F64);
    let v = draw_projections(&mut rng, ProjectionKind::Gaussian, &[32, 2], DType::F64, &CPU).unwrap();
    type Loss<'a> = Box<dyn Fn() -> Tensor + 'a>;
    let losses: [(&str, Loss); 2] = [
        ("ism", Box::new(|| score_matching::ism_loss(&model, &x).unwrap())),
        (
            "ssm",
            Box::new(|| score_matching::ssm_loss(&model, &x, &v, false).unwrap()),
        ),
    ];
    let vars = varmap.data().lock().unwrap();
    for (name, loss) in &losses {
        let grads = loss().backward().unwrap();
        for param in ["lin1.weight", "lin2.weight", "lin3.bias"] {
            let var: &Var = &vars[param];
            let g = grads.get(var).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0];
            let original = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let at = |delta: f64| {
                let mut w = original.clone();
                w[0] += delta;
                var.set(&Tensor::from_vec(w, var.shape(), &CPU).unwrap()).unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let h = 1e-6;
            let fd = (at(h) - at(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(original, var.shape(), &CPU).unwrap())
                .unwrap();
            assert!(
                (g - fd).abs() < 1e-6 * fd.abs().max(1.0),
                "{name} d/d {param}[0]: {g} vs {fd}"
            );
        }
    }
}

#[test]
fn esm_minus_ism_is_half_the_fisher_information_for_any_model() {
    // ESM(theta) - ISM(theta) = 1/2 E||grad log p||^2 whatever theta. Per example,
    // esm - ism - 1/2||g||^2 = -(s.g + tr J_s), whose mean is 0 by integration by parts: checked
    // within 4 standard errors, on two differently seeded models.
    let p = mixture();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    // The constant, from the Fisher identity E||grad log p||^2 = -E[div grad log p], exact per
    // point, averaged over many cheap ndarray samples.
    let big = p.sample(400_000, &mut rng);
    let (neg_div, se_c) = mean_se(&(p.score_divergence(big.view()) * -0.5));
    let mut esms = Vec::new();
    let mut diffs = Vec::new();
    // Model 1 is untrained; model 2 had 200 steps of explicit score matching, so the two give
    // very different ESM values (the check below makes sure the identity is not vacuous).
    let cfg = TrainConfig {
        steps: 200,
        seed: 2,
        ..TrainConfig::default()
    };
    let mut data = |n: usize, rng: &mut ChaCha8Rng| p.sample(n, rng);
    let trained = train_score(&Objective::Explicit(p.clone()), &mut data, &cfg, &CPU)
        .unwrap()
        .0;
    for (seed, model) in [(1, untrained(1, DType::F32)), (2, trained)] {
        let xs = p.sample(100_000, &mut rng);
        let g = p.score(xs.view());
        let x = tensor(&xs, DType::F32);
        let esm = to_f64(&esm_per_example(|x| model.forward(x), &x, &tensor(&g, DType::F32)).unwrap());
        let ism = to_f64(&ism_per_example(&model, &x).unwrap());
        let (d, se_d) = mean_se(&(&esm - &ism));
        let (paired, se_paired) = mean_se(&(&esm - &ism - &half_sq_rows(&g)));
        assert!(
            paired.abs() < 4.0 * se_paired,
            "seed {seed}: E[esm - ism - |g|^2/2] = {paired} +- {se_paired}"
        );
        assert!(
            (d - neg_div).abs() < 4.0 * (se_d * se_d + se_c * se_c).sqrt(),
            "seed {seed}: ESM - ISM = {d} +- {se_d}, 1/2 E|g|^2 = {neg_div} +- {se_c}"
        );
        esms.push(mean_se(&esm));
        diffs.push((d, se_d));
    }
    let ((d1, s1), (d2, s2)) = (diffs[0], diffs[1]);
    assert!(
        (d1 - d2).abs() < 4.0 * (s1 * s1 + s2 * s2).sqrt(),
        "{d1} +- {s1} vs {d2} +- {s2}"
    );
    // Not a vacuous check: the two models' ESM values themselves differ by many standard errors.
    let ((e1, t1), (e2, t2)) = (esms[0], esms[1]);
    assert!((e1 - e2).abs() > 10.0 * (t1 * t1 + t2 * t2).sqrt(), "ESM {e1} vs {e2}");
}

#[test]
fn dsm_minus_esm_on_the_perturbed_mixture_is_a_constant() {
    // DSM(theta; sigma) = 1/2 E_{p_sigma}||s - grad log p_sigma||^2 + C, with
    // C = D/(2 sigma^2) - 1/2 E||grad log p_sigma||^2 (E||z||^2 = D; same Fisher identity as above).
    // Per example the difference is C_i + s(x~).(z/sigma + g_sigma(x~)), whose extra term has mean 0
    // (Tweedie: E[z/sigma | x~] = -g_sigma(x~)): checked within 4 standard errors, two models.
    let p = mixture();
    let sigma = 0.5;
    let p_sigma = p.perturbed(sigma).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let big = p_sigma.sample(400_000, &mut rng);
    let (fisher_half, se_c) = mean_se(&(p_sigma.score_divergence(big.view()) * -0.5));
    let c = 2.0 / (2.0 * sigma * sigma) - fisher_half;
    let mut diffs = Vec::new();
    for seed in [1, 2] {
        let model = untrained(seed, DType::F32);
        let n = 100_000;
        let xs = p.sample(n, &mut rng);
        let zs = Array2::from_shape_fn((n, 2), |_| rng.sample::<f64, _>(rand_distr::StandardNormal));
        let perturbed = &xs + &(&zs * sigma);
        let g = p_sigma.score(perturbed.view());
        let dsm = to_f64(
            &denoising::dsm_per_example(
                |x| model.forward(x),
                &tensor(&xs, DType::F32),
                &tensor(&zs, DType::F32),
                sigma,
            )
            .unwrap(),
        );
        let esm = to_f64(
            &esm_per_example(
                |x| model.forward(x),
                &tensor(&perturbed, DType::F32),
                &tensor(&g, DType::F32),
            )
            .unwrap(),
        );
        let (d, se) = mean_se(&(&dsm - &esm));
        let tol = 4.0 * (se * se + se_c * se_c).sqrt();
        assert!(
            (d - c).abs() < tol,
            "seed {seed}: DSM - ESM = {d} +- {se}, expected C = {c} +- {se_c}"
        );
        diffs.push((d, se));
    }
    let ((d1, s1), (d2, s2)) = (diffs[0], diffs[1]);
    assert!((d1 - d2).abs() < 4.0 * (s1 * s1 + s2 * s2).sqrt());
}

#[test]
fn sliced_equals_implicit_in_expectation_over_projections() {
    // For fixed points and a fixed model, averaging v^T J v + 1/2 (v^T s)^2 (or the variance
    // reduced form) over many v gives tr J + 1/2 ||s||^2 at each point: per point within 5 standard
    // errors of the mean over 4000 draws (128 comparisons; a 5-sigma miss has probability ~6e-7).
    let model = untrained(5, DType::F32);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (points, draws) = (32, 4000);
    let xs = mixture().sample(points, &mut rng);
    let x = tensor(&xs, DType::F32);
    let ism = to_f64(&ism_per_example(&model, &x).unwrap());
    let x_rep = x.repeat((draws, 1)).unwrap(); // row k * points + i holds point i
    for kind in [ProjectionKind::Gaussian, ProjectionKind::Rademacher] {
        for variance_reduced in [false, true] {
            let v = draw_projections(&mut rng, kind, &[draws * points, 2], DType::F32, &CPU).unwrap();
            let ssm = to_f64(&ssm_per_example(&model, &x_rep, &v, variance_reduced).unwrap());
            let ssm = ssm.into_shape_with_order((draws, points)).unwrap();
            for i in 0..points {
                let (m, se) = mean_se(&ssm.column(i).to_owned());
                assert!(
                    (m - ism[i]).abs() < 5.0 * se + 1e-5,
                    "{kind:?} vr={variance_reduced} point {i}: sliced {m} +- {se}, implicit {}",
                    ism[i]
                );
            }
        }
    }
}

/// Relative p-weighted error `E_p||s - grad log p||^2 / E_p||grad log p||^2` of a trained model.
fn relative_error(model: &ScoreMlp, target: &GaussianMixture, seed: u64) -> f64 {
    let xs = target.sample(20_000, &mut ChaCha8Rng::seed_from_u64(seed));
    let s = score_array(model, xs.view(), None, &CPU).unwrap();
    let g = target.score(xs.view());
    (&s - &g).mapv(|e| e * e).sum() / g.mapv(|e| e * e).sum()
}

/// Trains with `objective` on the mixture and returns the relative error against `target`.
fn train_and_measure(objective: Objective, target: &GaussianMixture) -> f64 {
    let p = mixture();
    let cfg = TrainConfig {
        steps: 1500,
        lr: 3e-3,
        seed: 21,
        ..TrainConfig::default()
    };
    let mut data = |n: usize, rng: &mut ChaCha8Rng| p.sample(n, rng);
    let (model, report) = train_score(&objective, &mut data, &cfg, &CPU).unwrap();
    assert_eq!(report.loss_history.len(), 1500);
    relative_error(&model, target, 22)
}

// The minimiser of every objective is the true score (of p, or of p_sigma for DSM). An untrained
// model has relative error about 1 (its outputs are small); 1500 Adam steps of batch 128 bring
// every objective to a few percent or less on this mixture (measured: ESM 0.09%, ISM 0.9%,
// SSM 1.1-1.9%, DSM 2.1%). The bound 0.06 (an RMS error of 25% of the score's size) leaves a
// factor 3 for the noisier estimators and still fails an objective with a wrong sign or term.
const MINIMISER_BOUND: f64 = 0.06;

#[test]
fn explicit_score_matching_learns_the_score() {
    let e = train_and_measure(Objective::Explicit(mixture()), &mixture());
    assert!(e < MINIMISER_BOUND, "ESM relative error {e}");
}

#[test]
fn implicit_score_matching_learns_the_score() {
    let e = train_and_measure(Objective::Implicit, &mixture());
    assert!(e < MINIMISER_BOUND, "ISM relative error {e}");
}

#[test]
fn sliced_score_matching_learns_the_score() {
    for (projection, variance_reduced) in [
        (ProjectionKind::Gaussian, false),
        (ProjectionKind::Rademacher, false),
        (ProjectionKind::Gaussian, true),
    ] {
        let objective = Objective::Sliced {
            projection,
            variance_reduced,
        };
        let e = train_and_measure(objective, &mixture());
        assert!(
            e < MINIMISER_BOUND,
            "SSM {projection:?} vr={variance_reduced} relative error {e}"
        );
    }
}

#[test]
fn denoising_score_matching_learns_the_perturbed_score() {
    // sigma = 0.3 against component variance 0.5: p_sigma is visibly different from p (the
    // comparison is with p_sigma's exact score), and the target -z/sigma is not yet so noisy that
    // 1500 steps cannot average it out.
    let sigma = 0.3;
    let e = train_and_measure(Objective::Denoising { sigma }, &mixture().perturbed(sigma).unwrap());
    assert!(e < MINIMISER_BOUND, "DSM relative error {e}");
}

#[test]
fn learned_ncsn_recovers_the_mode_weights_with_annealed_langevin() {
    // The paper's toy (Fig. 3): p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I), sigmas geometric from 20
    // to 1 (10 levels), annealed Langevin with eps = 0.1 and T = 100 as the reference toy.
    // 1280 particles give the weights a standard error of sqrt(0.2 * 0.8 / 1280) = 0.011; the
    // learned score's own bias measured about 0.02 over three training seeds, so 0.05 holds.
    let p = gmm::datasets::paper_mixture();
    let sigmas = langevin::geometric_sigmas(20.0, 1.0, 10).unwrap();
    let cfg = TrainConfig {
        steps: 3000,
        lr: 3e-3,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut data = |n: usize, rng: &mut ChaCha8Rng| p.sample(n, rng);
    let (model, _) = train_ncsn(&mut data, &sigmas, Conditioning::Embedding, &cfg, &CPU).unwrap();
    let mut config = langevin::AnnealedLangevin::paper(sigmas);
    config.eps = 0.1;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x0 = Array2::from_shape_fn((1280, 2), |_| rng.random_range(-8.0..8.0));
    let score = |x: &Array2<f64>, level: usize, _sigma: f64| Ok(score_array(&model, x.view(), Some(level), &CPU)?);
    let out = langevin::annealed_langevin(x0, score, &config, &mut rng).unwrap();
    let w = p.mode_weights(out.samples.view()).unwrap();
    assert!(
        (w[0] - 0.2).abs() < 0.05 && (w[1] - 0.8).abs() < 0.05,
        "mode weights {w:?}"
    );
}

#[test]
fn same_seed_gives_the_same_model_and_loss_history() {
    let p = mixture();
    let run = |seed: u64, conditioning: Option<Conditioning>| {
        let cfg = TrainConfig {
            steps: 20,
            seed,
            hidden: 16,
            ..TrainConfig::default()
        };
        let mut data = |n: usize, rng: &mut ChaCha8Rng| p.sample(n, rng);
        let probe = array![[0.3, -0.7], [2.0, 1.0]];
        match conditioning {
            None => {
                let objective = Objective::Sliced {
                    projection: ProjectionKind::Rademacher,
                    variance_reduced: false,
                };
                let (m, r) = train_score(&objective, &mut data, &cfg, &CPU).unwrap();
                (r.loss_history, score_array(&m, probe.view(), None, &CPU).unwrap())
            }
            Some(c) => {
                let (m, r) = train_ncsn(&mut data, &[2.0, 1.0, 0.5], c, &cfg, &CPU).unwrap();
                (r.loss_history, score_array(&m, probe.view(), Some(1), &CPU).unwrap())
            }
        }
    };
    for conditioning in [
        None,
        Some(Conditioning::Embedding),
        Some(Conditioning::DivideBySigma),
        Some(Conditioning::EmbeddingOverSigma),
    ] {
        let (a, b, c) = (run(7, conditioning), run(7, conditioning), run(8, conditioning));
        assert_eq!(a, b, "{conditioning:?}: same seed, different run");
        assert_ne!(a.0, c.0, "{conditioning:?}: different seeds, same losses");
    }
}

#[test]
fn divide_by_sigma_is_one_network_scaled_by_the_level() {
    let sigmas = [4.0, 2.0, 0.5];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (m, _) =
        NoiseConditionalMlp::seeded(32, &sigmas, Conditioning::DivideBySigma, DType::F64, &CPU, &mut rng).unwrap();
    let x = array![[0.5, 1.0], [-2.0, 0.0]];
    let s0 = score_array(&m, x.view(), Some(0), &CPU).unwrap();
    let s2 = score_array(&m, x.view(), Some(2), &CPU).unwrap();
    // s(x, sigma_0) sigma_0 = f(x) = s(x, sigma_2) sigma_2, exact up to f64 rounding.
    assert!((&s0 * 4.0 - &s2 * 0.5).iter().all(|e| e.abs() < 1e-12));
    assert_eq!(m.n_levels(), Some(3));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let p = mixture();
    let good = TrainConfig {
        steps: 2,
        hidden: 8,
        ..TrainConfig::default()
    };
    let mut data = |n: usize, rng: &mut ChaCha8Rng| p.sample(n, rng);
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();
    let e = err(train_score(
        &Objective::Implicit,
        &mut data,
        &TrainConfig {
            lr: 0.0,
            ..good.clone()
        },
        &CPU,
    )
    .map(|_| ()));
    assert!(e.contains("lr"), "{e}");
    let e = err(train_score(&Objective::Denoising { sigma: -1.0 }, &mut data, &good, &CPU).map(|_| ()));
    assert!(e.contains("sigma"), "{e}");
    let mut bad_data = |n: usize, _: &mut ChaCha8Rng| Array2::<f64>::zeros((n, 3));
    let e = err(train_score(&Objective::Implicit, &mut bad_data, &good, &CPU).map(|_| ()));
    assert!(e.contains("(2, 3)") || e.contains("expected"), "{e}");
    let e = err(train_ncsn(&mut data, &[], Conditioning::Embedding, &good, &CPU).map(|_| ()));
    assert!(e.contains("sigmas"), "{e}");
    // score_array: wrong columns, missing or out-of-range level.
    let (m, _) = NoiseConditionalMlp::seeded(
        8,
        &[1.0, 0.5],
        Conditioning::Embedding,
        DType::F32,
        &CPU,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    assert!(score_array(&m, Array2::zeros((4, 3)).view(), Some(0), &CPU).is_err());
    assert!(score_array(&m, Array2::zeros((4, 2)).view(), None, &CPU).is_err());
    let e = score_array(&m, Array2::zeros((4, 2)).view(), Some(2), &CPU)
        .unwrap_err()
        .to_string();
    assert!(e.contains("level 2"), "{e}");
    assert!(m
        .score(&Tensor::zeros((4, 2), DType::F32, &CPU).unwrap(), None)
        .is_err());
}

#[test]
fn embedding_over_sigma_learns_the_ring_score_at_every_level() {
    // The ring of 8 modes (variance 0.05, radius 4) is what the unscaled level embedding and
    // f(x)/sigma failed to resolve. With s(x, sigma_i) = f(x, i)/sigma_i, 1500 DSM steps learn
    // the exact perturbed score to relative errors 0.021, 0.027, 0.026, 0.074 at sigma = 8..1.6
    // and 0.39, 0.50 at sigma = 0.6, 0.25 (measured, seed 3); f(x)/sigma has errors of 0.1-0.2
    // at the large levels and a model that ignores the level is off by about 1, so 0.15 on the
    // four large levels and 0.7 on all leave room for the 800 evaluation points' noise.
    let ring = gmm::datasets::ring(8, 4.0, 0.05).unwrap();
    let sigmas = langevin::geometric_sigmas(8.0, 0.25, 6).unwrap();
    let cfg = TrainConfig {
        steps: 1500,
        seed: 3,
        ..TrainConfig::default()
    };
    let mut data = |n: usize, rng: &mut ChaCha8Rng| ring.sample(n, rng);
    let (model, _) = train_ncsn(&mut data, &sigmas, Conditioning::EmbeddingOverSigma, &cfg, &CPU).unwrap();
    let errors = toy2d::experiments::ncsn2d::level_errors(
        &model,
        gmm::datasets::Toy::Ring,
        &sigmas,
        800,
        1,
        &mut ChaCha8Rng::seed_from_u64(4),
        &CPU,
    )
    .unwrap();
    assert!(errors[..4].iter().all(|e| *e < 0.15), "large levels: {errors:?}");
    assert!(errors.iter().all(|e| *e < 0.7), "all levels: {errors:?}");
}

#[test]
fn the_network_is_a_noise_conditional_score() {
    // `NoiseConditionalScore::score(x, i)` is `score_array(x, level i)`, at every level, up to the
    // rounding of the level folded into the weights (`forward_at_level`): a few f32 ulp of the
    // scores' scale (each output sums 8 products of folded weights).
    let sigmas = [2.0, 1.0, 0.5];
    let (m, _) = NoiseConditionalMlp::seeded(
        8,
        &sigmas,
        Conditioning::EmbeddingOverSigma,
        DType::F32,
        &CPU,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    let x = array![[0.3, -0.7], [2.0, 1.0], [-4.0, 0.5]];
    assert_eq!(langevin::NoiseConditionalScore::sigmas(&m), &sigmas);
    for level in 0..3 {
        let s = langevin::NoiseConditionalScore::score(&m, &x, level).unwrap();
        let want = score_array(&m, x.view(), Some(level), &CPU).unwrap();
        let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
        let tol = 16.0 * f32::EPSILON as f64 * scale;
        assert!(s.iter().zip(&want).all(|(a, b)| (a - b).abs() <= tol), "{s} vs {want}");
    }
    assert!(langevin::NoiseConditionalScore::score(&m, &x, 3).is_err());
}

#[test]
fn a_non_finite_loss_is_a_divergence_not_a_config_error() {
    // A batch with coordinates 1e30 (finite in f32) makes the implicit loss overflow at step 2.
    let p = mixture();
    let cfg = TrainConfig {
        steps: 4,
        hidden: 8,
        ..TrainConfig::default()
    };
    let mut calls = 0;
    let mut data = |n: usize, rng: &mut ChaCha8Rng| {
        calls += 1;
        let x = p.sample(n, rng);
        if calls == 3 {
            x * 1e30
        } else {
            x
        }
    };
    let err = train_score(&Objective::Implicit, &mut data, &cfg, &CPU).unwrap_err();
    let d = err.downcast_ref::<toy2d::train::Diverged>().expect("a Diverged error");
    assert_eq!((d.step, d.label.as_str()), (2, "ism"), "{err}");
    assert!(!d.value.is_finite());
}
