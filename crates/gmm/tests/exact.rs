//! The exact mixture's identities, checked numerically.
use gmm::datasets::{paper_mixture, Toy};
use gmm::{empirical, GaussianMixture, GmmError};
use ndarray::{array, Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A 3-component, 3-dimensional mixture with unequal diagonal variances.
fn anisotropic() -> GaussianMixture {
    GaussianMixture::new(
        array![0.5, 0.3, 0.2],
        array![[0.0, 1.0, -1.0], [3.0, -2.0, 0.5], [-4.0, 0.0, 2.0]],
        array![[1.0, 0.5, 2.0], [0.3, 0.3, 0.3], [2.0, 1.0, 0.7]],
    )
    .unwrap()
}

/// Points near the modes, between them, and 20 and 30 standard deviations away from every mode.
fn probe_points(g: &GaussianMixture) -> Array2<f64> {
    let d = g.dim();
    let mut rows = vec![];
    for k in 0..g.n_components() {
        rows.push(g.means().row(k).to_vec());
        rows.push(g.means().row(k).iter().map(|m| m + 0.3).collect());
    }
    let sd_max = g.variances().iter().cloned().fold(0.0, f64::max).sqrt();
    let far_from_all = g.means().iter().cloned().fold(0.0, f64::max) + 20.0 * sd_max;
    rows.push(vec![far_from_all; d]);
    rows.push(
        (0..d)
            .map(|i| if i % 2 == 0 { -far_from_all } else { far_from_all })
            .collect(),
    );
    rows.push(vec![
        -(g.means().iter().cloned().fold(0.0, f64::max) + 30.0 * sd_max);
        d
    ]);
    Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap()
}

/// Central differences of f along each coordinate: (f(x + h e_d) - f(x - h e_d)) / 2h.
fn central_gradient(f: impl Fn(&Array2<f64>) -> Array1<f64>, x: &Array2<f64>, h: f64) -> Array2<f64> {
    let mut g = Array2::zeros(x.raw_dim());
    for d in 0..x.ncols() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.column_mut(d).mapv_inplace(|v| v + h);
        xm.column_mut(d).mapv_inplace(|v| v - h);
        g.column_mut(d).assign(&((f(&xp) - f(&xm)) / (2.0 * h)));
    }
    g
}

#[test]
fn score_equals_finite_differences_of_log_density_near_and_far() {
    for g in [paper_mixture(), anisotropic()] {
        let x = probe_points(&g);
        let exact = g.score(x.view());
        let fd = central_gradient(|p| g.log_density(p.view()), &x, 1e-4);
        for (e, f) in exact.iter().zip(fd.iter()) {
            // Central differences err by h^2/6 |f'''| (~1e-8 here) plus rounding of
            // |log p| (up to ~1e4 at 30 sd) * 1e-16 / h ~ 1e-8: 1e-6 relative is a wide margin
            // that a wrong sign, missing weight or wrong variance would not meet.
            assert!(
                (e - f).abs() <= 1e-6 * (1.0 + e.abs()),
                "score {e} vs finite difference {f}"
            );
        }
        assert!(exact.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn divergence_equals_finite_differences_of_the_score() {
    for g in [paper_mixture(), anisotropic()] {
        let x = probe_points(&g);
        let exact = g.score_divergence(x.view());
        let h = 1e-5;
        let mut fd = Array1::<f64>::zeros(x.nrows());
        for d in 0..x.ncols() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.column_mut(d).mapv_inplace(|v| v + h);
            xm.column_mut(d).mapv_inplace(|v| v - h);
            fd = fd + (&g.score(xp.view()).column(d) - &g.score(xm.view()).column(d)) / (2.0 * h);
        }
        for (e, f) in exact.iter().zip(fd.iter()) {
            // The score is smooth with |s| up to ~1e3 at 30 sd: rounding 1e3 * 1e-16 / 1e-5 ~ 1e-8.
            assert!(
                (e - f).abs() <= 1e-5 * (1.0 + e.abs()),
                "divergence {e} vs finite difference {f}"
            );
        }
    }
}

#[test]
fn single_gaussian_closed_forms() {
    // N(mu, diag v): score -(x - mu)/v, divergence -sum 1/v, log density known.
    let g = GaussianMixture::new(array![1.0], array![[1.0, -2.0]], array![[0.5, 2.0]]).unwrap();
    let x = array![[0.0, 0.0], [3.0, 1.0]];
    let s = g.score(x.view());
    assert!((s[[0, 0]] - 2.0).abs() < 1e-12 && (s[[0, 1]] + 1.0).abs() < 1e-12);
    let div = g.score_divergence(x.view());
    assert!(div.iter().all(|d| (d + 2.5).abs() < 1e-12));
    let lp = g.log_density(x.view());
    let expect = -0.5 * (1.0 / 0.5 + 4.0 / 2.0) - 0.5 * ((2.0 * std::f64::consts::PI).powi(2) * 1.0).ln();
    assert!((lp[0] - expect).abs() < 1e-12);
}

#[test]
fn responsibilities_are_a_partition_of_unity_even_far_away() {
    let g = anisotropic();
    let r = g.responsibilities(probe_points(&g).view());
    for row in r.outer_iter() {
        assert!((row.sum() - 1.0).abs() < 1e-12 && row.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
}

#[test]
fn perturbed_samples_match_noisy_data() {
    // p_sigma's own samples against x + sigma z with x ~ p: means, variances and mode weights.
    let g = paper_mixture();
    let sigma = 2.0;
    let p = g.perturbed(sigma).unwrap();
    let n = 200_000;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let a = p.sample(n, &mut rng);
    let x = g.sample(n, &mut rng);
    let z: Array2<f64> = Array2::from_shape_simple_fn(x.raw_dim(), || {
        rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng)
    });
    let b = &x + &(z * sigma);
    for d in 0..2 {
        let (ma, mb) = (a.column(d).mean().unwrap(), b.column(d).mean().unwrap());
        let (va, vb) = (a.column(d).var(0.0), b.column(d).var(0.0));
        // Exact mean: 0.2*(-5) + 0.8*5 = 3; variance 1 + 4 + 0.16*100 = 21.
        // Standard errors with n = 2e5: mean sqrt(21/n) = 0.01, variance ~ 0.05: 5 sd bounds.
        assert!((ma - 3.0).abs() < 0.05 && (mb - 3.0).abs() < 0.05, "means {ma} {mb}");
        assert!(
            (va - 21.0).abs() < 0.3 && (vb - 21.0).abs() < 0.3,
            "variances {va} {vb}"
        );
    }
    let (wa, wb) = (p.mode_weights(a.view()).unwrap(), p.mode_weights(b.view()).unwrap());
    // At sigma = 2 the modes still barely overlap (10 apart, sd sqrt 5): weights stay 0.2 / 0.8
    // up to misassigned tails (P(|z| > 10/(2 sqrt 5)) ~ 1e-5) and sampling error 0.001.
    assert!(
        (wa[0] - 0.2).abs() < 0.005 && (wb[0] - 0.2).abs() < 0.005,
        "{wa:?} {wb:?}"
    );
}

#[test]
fn perturbed_score_is_the_posterior_mean_of_the_denoising_target() {
    // grad log p_sigma(x~) = E[ grad_x~ log N(x~; x, sigma^2 I) | x~ ] = E[ -(x~ - x)/sigma^2 | x~ ],
    // with x | x~ ~ p(x) N(x~; x, sigma^2) / p_sigma(x~): self-normalised importance sampling with
    // proposal p.
    let g = paper_mixture();
    let sigma = 3.0;
    let p = g.perturbed(sigma).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let xs = g.sample(400_000, &mut rng);
    let probes = array![[0.0, 0.0], [4.0, 6.0], [-6.0, -3.0], [2.0, -1.0]];
    let exact = p.score(probes.view());
    for (i, xt) in probes.outer_iter().enumerate() {
        let mut num = [0.0; 2];
        let mut den = 0.0;
        for x in xs.outer_iter() {
            let d2 = (xt[0] - x[0]).powi(2) + (xt[1] - x[1]).powi(2);
            let w = (-d2 / (2.0 * sigma * sigma)).exp();
            den += w;
            for d in 0..2 {
                num[d] += w * -(xt[d] - x[d]) / (sigma * sigma);
            }
        }
        for d in 0..2 {
            let mc = num[d] / den;
            // The posterior of x has sd <= 1 and the target scale 1/sigma^2 = 0.11; with an
            // effective sample size of >= 1e4 the estimate's sd is ~ 1e-3: tolerance 0.01.
            assert!(
                (mc - exact[[i, d]]).abs() < 0.01,
                "probe {i} dim {d}: MC {mc} vs exact {}",
                exact[[i, d]]
            );
        }
    }
}

#[test]
fn empirical_score_is_the_optimal_denoiser() {
    let points = array![[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]];
    let sigma = 0.7;
    let q = empirical(points.view(), sigma).unwrap();
    let x = array![[0.5, 0.5], [1.9, 0.1], [-3.0, 4.0]];
    // Tweedie: x + sigma^2 grad log q(x) = sum_i softmax_i(-||x - x_i||^2 / 2 sigma^2) x_i.
    let den = &x + &(q.score(x.view()) * (sigma * sigma));
    for (n, xn) in x.outer_iter().enumerate() {
        let logits: Vec<f64> = points
            .outer_iter()
            .map(|p| -((xn[0] - p[0]).powi(2) + (xn[1] - p[1]).powi(2)) / (2.0 * sigma * sigma))
            .collect();
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
        let z: f64 = w.iter().sum();
        for d in 0..2 {
            let avg: f64 = w.iter().zip(points.column(d)).map(|(w, p)| w * p).sum::<f64>() / z;
            assert!((den[[n, d]] - avg).abs() < 1e-12);
        }
    }
    assert!(matches!(empirical(points.view(), 0.0), Err(GmmError::Sigma(_))));
}

#[test]
fn sampling_is_seeded_and_matches_the_weights() {
    let g = paper_mixture();
    let a = g.sample(20_000, &mut ChaCha8Rng::seed_from_u64(5));
    let b = g.sample(20_000, &mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(a, b);
    let w = g.mode_weights(a.view()).unwrap();
    // Binomial sd sqrt(0.16/2e4) = 0.003: tolerance 0.015.
    assert!((w[0] - 0.2).abs() < 0.015, "{w:?}");
}

#[test]
fn mode_weights_refuse_diverged_particles() {
    // A chain that diverged leaves NaN or infinite particles. They belong to no mode: counting
    // them in component 0 (the 0.2 mode of Fig. 3) would let a diverged run pass for a good one.
    let g = paper_mixture();
    let mut x = g.sample(1000, &mut ChaCha8Rng::seed_from_u64(5));
    let good = g.mode_weights(x.view()).unwrap();
    assert!((good.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    x.row_mut(0).fill(f64::NAN);
    x[[1, 1]] = f64::INFINITY;
    x[[2, 0]] = f64::NEG_INFINITY;
    x[[3, 0]] = 1e200; // finite, but its squared distance to every mode overflows
    let e = g.mode_weights(x.view()).unwrap_err();
    assert_eq!(e, GmmError::NonFinite { count: 4, total: 1000 });
    assert!(
        e.to_string().contains("`samples`") && e.to_string().contains("4 of 1000"),
        "{e}"
    );
    // Every particle diverged: still an error, never "all in mode 0".
    let all_nan = Array2::from_elem((10, 2), f64::NAN);
    assert_eq!(
        g.mode_weights(all_nan.view()),
        Err(GmmError::NonFinite { count: 10, total: 10 })
    );
}

#[test]
fn bad_constructor_input_names_the_field() {
    let m = array![[0.0, 0.0], [1.0, 1.0]];
    let v = array![[1.0, 1.0], [1.0, 1.0]];
    let e = GaussianMixture::new(array![0.5, 0.6], m.clone(), v.clone()).unwrap_err();
    assert!(
        matches!(e, GmmError::Weights(_)) && e.to_string().contains("`weights`"),
        "{e}"
    );
    let e = GaussianMixture::new(array![1.5, -0.5], m.clone(), v.clone()).unwrap_err();
    assert!(e.to_string().contains("`weights`"), "{e}");
    let e = GaussianMixture::new(array![0.5, 0.5], m.clone(), array![[1.0, -1.0], [1.0, 1.0]]).unwrap_err();
    assert!(
        matches!(
            e,
            GmmError::Variance {
                component: 0,
                dim: 1,
                ..
            }
        ) && e.to_string().contains("`variances`"),
        "{e}"
    );
    let e = GaussianMixture::new(array![0.5, 0.5], array![[0.0, 0.0]], v.clone()).unwrap_err();
    assert!(
        matches!(e, GmmError::Shape { field: "means", .. }) && e.to_string().contains("`means`"),
        "{e}"
    );
    let e = GaussianMixture::new(array![0.5, 0.5], m.clone(), array![[1.0], [1.0]]).unwrap_err();
    assert!(matches!(e, GmmError::Shape { field: "variances", .. }), "{e}");
    let e = GaussianMixture::isotropic(&[0.5, 0.5], m.clone(), &[1.0]).unwrap_err();
    assert!(e.to_string().contains("`variances`"), "{e}");
    let e = GaussianMixture::new(array![0.5, 0.5], array![[f64::NAN, 0.0], [1.0, 1.0]], v).unwrap_err();
    assert!(e.to_string().contains("`means`"), "{e}");
    assert!(matches!(paper_mixture().perturbed(-1.0), Err(GmmError::Sigma(_))));
    assert!(gmm::datasets::ring(0, 1.0, 1.0).is_err());
}

#[test]
fn toy_data_sets_have_their_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for t in Toy::ALL {
        let x = t.sample(500, &mut rng);
        assert_eq!(x.shape(), &[500, 2]);
        let (lo, hi) = t.bounds();
        let inside = x.iter().filter(|v| **v > lo && **v < hi).count();
        assert!(inside as f64 > 0.99 * 1000.0, "{} leaves its plot bounds", t.name());
        assert_eq!(Toy::from_name(t.name()), Some(t));
    }
    // The curve has zero thickness: every point is exactly on y = 2 sin x.
    let c = gmm::datasets::curve(100, &mut rng);
    assert!(c.outer_iter().all(|p| (p[1] - 2.0 * p[0].sin()).abs() < 1e-15));
    assert!(Toy::Moons.exact().is_none() && Toy::Ring.exact().is_some());
}

#[test]
fn score_into_is_the_responsibility_weighted_score_on_any_layout() {
    // `score` (one pass per point, responsibilities never stored) against its definition
    // sum_k r_k(x) g_k(x) built from `responsibilities`; rounding differs (1e-12 relative allows
    // ~1e4 ulps), a wrong weight or variance does not. Then `score_into` on a strided view (every
    // other row of a column-major array) gives the same bits as on a contiguous copy.
    for g in [paper_mixture(), anisotropic()] {
        let x = probe_points(&g);
        let r = g.responsibilities(x.view());
        let s = g.score(x.view());
        for n in 0..x.nrows() {
            for d in 0..g.dim() {
                let def: f64 = (0..g.n_components())
                    .map(|k| r[[n, k]] * -(x[[n, d]] - g.means()[[k, d]]) / g.variances()[[k, d]])
                    .sum();
                assert!(
                    (s[[n, d]] - def).abs() <= 1e-12 * (1.0 + def.abs()),
                    "{} vs {def}",
                    s[[n, d]]
                );
            }
        }
        let fortran = x.t().as_standard_layout().reversed_axes().to_owned(); // column-major copy
        let strided = fortran.slice(ndarray::s![..;2, ..]);
        let mut out = Array2::from_elem(strided.raw_dim(), f64::NAN);
        g.score_into(strided, out.view_mut());
        assert_eq!(out, g.score(strided.to_owned().view()));
    }
}
