//! The exact world in one screen: scores of the paper's mixture `1/5 N((-5,-5), I) + 4/5 N((5,5), I)`
//! at a few points, and the mode weights that plain and annealed Langevin dynamics reach with the
//! exact scores (paper Fig. 3).
//!
//! ```text
//! cargo run --release --example exact_scores
//! ```
use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smld::gmm::datasets::paper_mixture;
use smld::langevin::{annealed_langevin, geometric_sigmas, langevin, AnnealedLangevin, StepConvention};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let p = paper_mixture();
    println!("Exact score of p = 0.2 N((-5,-5), I) + 0.8 N((5,5), I)\n");
    println!(
        "{:>16} | {:>10} | {:>22} | {:>10}",
        "x", "log p(x)", "score grad log p(x)", "div score"
    );
    println!("{:-<16}-+-{:-<10}-+-{:-<22}-+-{:-<10}", "", "", "", "");
    let points = array![
        [-5.0, -5.0],
        [5.0, 5.0],
        [0.0, 0.0],
        [-4.0, -6.0],
        [6.0, 4.0],
        [20.0, -20.0]
    ];
    let (lp, s, div) = (
        p.log_density(points.view()),
        p.score(points.view()),
        p.score_divergence(points.view()),
    );
    for (i, x) in points.outer_iter().enumerate() {
        let at = format!("({:.0}, {:.0})", x[0], x[1]);
        let score = format!("({:.3}, {:.3})", s[[i, 0]], s[[i, 1]]);
        println!("{at:>16} | {:>10.3} | {score:>22} | {:>10.3}", lp[i], div[i]);
    }

    // Paper Fig. 3: 1,280 particles uniform in [-8, 8]^2.
    let seed = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x0 = Array2::from_shape_simple_fn((1280, 2), || rng.random_range(-8.0..8.0));

    let plain = langevin(
        x0.clone(),
        |x| Ok(p.score(x.view())),
        0.1,
        1000,
        StepConvention::Paper,
        None,
        &mut rng,
    )?;

    let sigmas = geometric_sigmas(20.0, 1.0, 10)?;
    let perturbed: Vec<_> = sigmas.iter().map(|&s| p.perturbed(s)).collect::<Result<_, _>>()?;
    let mut config = AnnealedLangevin::paper(sigmas);
    config.eps = 0.1;
    config.steps_per_level = 100;
    let annealed = annealed_langevin(
        x0,
        |x, level, _| Ok(perturbed[level].score(x.view())),
        &config,
        &mut rng,
    )?;

    println!("\nMode weights reached from 1,280 uniform particles (seed {seed})\n");
    println!("{:<44} | {:>8} | {:>8}", "sampler", "w(-5,-5)", "w(5,5)");
    println!("{:-<44}-+-{:-<8}-+-{:-<8}", "", "", "");
    println!("{:<44} | {:>8.3} | {:>8.3}", "true mixture", 0.2, 0.8);
    for (name, x) in [
        ("Langevin, eps = 0.1, 1,000 steps", &plain.samples),
        ("annealed, sigma 20 -> 1 (L = 10), T = 100", &annealed.samples),
    ] {
        let w = p.mode_weights(x.view())?;
        println!("{name:<44} | {:>8.3} | {:>8.3}", w[0], w[1]);
    }
    Ok(())
}
