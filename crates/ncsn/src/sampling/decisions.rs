//! Where a chain decides its digit. A snapshot of annealed Langevin at level `i` holds the
//! chains `x` and, with `--denoised`, Tweedie's estimate of the clean image they are heading to,
//!
//! ```text
//! x0_hat = x + sigma_i^2 s(x, sigma_i)          (= E[x_0 | x] for the perturbed data)
//! ```
//!
//! At the first levels the estimate is close to the mean of the data whatever `x` is; at the
//! last it is the sample. The MNIST classifier on the estimates, set beside its verdict on the
//! final samples, says at which noise level each chain's class is settled:
//!
//! ```text
//! agreement_i = #{chains whose estimate at snapshot i has their final sample's top class} / n
//! sure_i      = #{chains whose estimate at snapshot i has a top-class probability >= 0.9} / n
//! ```
//!
//! `ncsn sample --snapshots K --denoised --fid` writes them, with the FID of each snapshot's
//! estimates, to `fid.json` (`decisions`) and draws them in `decisions.png`.
use std::path::Path;

use candle_core::{Device, Tensor};
use langevin::Snapshot;
use plotters::prelude::*;
use quality::classes::{ClassSummary, CONFIDENT_THRESHOLD};
use quality::features::FeatureStats;
use quality::FeatureNetwork;

use crate::error::{Error, Result};
use crate::measure::{measure, quantize, DEFAULT_BATCH};
use crate::progress::Progress;
use crate::sampling::images::{save_chart, DrawResult};

/// What the classifier says of one snapshot's estimates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    /// The sampler's step count at the snapshot.
    pub step: usize,
    /// The noise level, numbered from 1 as in the paper.
    pub level: usize,
    /// Its sigma.
    pub sigma: f64,
    /// Share of chains whose estimate has the final sample's top class.
    pub agreement: f64,
    /// Share of estimates with a top-class probability of at least 0.9.
    pub confident_share: f64,
    /// Mean top-class probability of the estimates.
    pub mean_top_probability: f64,
    /// Share of the estimates in each class (their top class).
    pub class_shares: Vec<f64>,
    /// FID of the estimates against the reference of the final samples.
    pub fid: f64,
}

/// The [`Decision`] of every snapshot that holds an estimate, in order. `last` is the
/// classifier's summary of the final samples (the same chains, in the same order), `net` the
/// classifier and `reference` the FID's reference statistics.
pub fn decisions(
    snapshots: &[Snapshot<Tensor>],
    last: &ClassSummary,
    net: &dyn FeatureNetwork,
    reference: &FeatureStats,
    device: &Device,
) -> Result<Vec<Decision>> {
    snapshots
        .iter()
        .filter_map(|s| s.denoised.as_ref().map(|estimate| (s, estimate)))
        .map(|(s, estimate)| {
            let what = format!("the estimates at step {}", s.step);
            let m = measure(&quantize(estimate)?, net, DEFAULT_BATCH, device, Progress::Quiet, &what)?;
            let classes = ClassSummary::from_logits(&m.logits, m.classes)?;
            let agreement = classes.agreement(last).ok_or_else(|| {
                Error::Argument(format!(
                    "{what} are {} images, the final samples {}",
                    classes.count(),
                    last.count()
                ))
            })?;
            Ok(Decision {
                step: s.step,
                level: s.level + 1,
                sigma: s.sigma,
                agreement,
                confident_share: classes.confident_share(CONFIDENT_THRESHOLD),
                mean_top_probability: classes.mean_top_probability,
                class_shares: classes.shares(),
                fid: quality::frechet::frechet_distance(&m.stats, reference)?,
            })
        })
        .collect()
}

/// Figure size in pixels.
const SIZE: (u32, u32) = (900, 520);

/// Draws the agreement and the sureness of `decisions` against the noise level (the levels
/// evenly spaced, as the sampler visits them, labelled with their sigma) and writes a PNG to
/// `path` atomically. `final_sure` is the share of final samples the classifier is sure of.
pub fn plot(decisions: &[Decision], final_sure: f64, title: &str, path: &Path) -> Result<()> {
    save_chart(SIZE, path, "the decisions", |buf| {
        draw(buf, decisions, final_sure, title)
    })
}

fn draw(buf: &mut [u8], decisions: &[Decision], final_sure: f64, title: &str) -> DrawResult {
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    // x: the step, so that the levels sit as the sampler spends its evaluations on them.
    let last_step = decisions.iter().map(|d| d.step).max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..last_step, 0.0..1.0)?;
    // Each tick is labelled with the sigma of the snapshot nearest to it.
    let sigma_at = |x: &f64| {
        decisions
            .iter()
            .min_by(|a, b| (a.step as f64 - x).abs().total_cmp(&(b.step as f64 - x).abs()))
            .map_or(String::new(), |d| format!("{:.2}", d.sigma))
    };
    chart
        .configure_mesh()
        .x_desc("noise level σ of the snapshot (the sampler's steps run left to right)")
        .y_desc("share of the chains")
        .x_label_formatter(&sigma_at)
        .x_labels(12)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let grey = RGBColor(120, 120, 120);
    let green = RGBColor(44, 160, 44);
    let agreement: Vec<(f64, f64)> = decisions.iter().map(|d| (d.step as f64, d.agreement)).collect();
    let sure: Vec<(f64, f64)> = decisions.iter().map(|d| (d.step as f64, d.confident_share)).collect();
    let largest: Vec<(f64, f64)> = decisions
        .iter()
        .map(|d| (d.step as f64, d.class_shares.iter().copied().fold(0.0, f64::max)))
        .collect();
    chart
        .draw_series(LineSeries::new(agreement.iter().copied(), blue.stroke_width(2)))?
        .label("the estimate's class is the chain's final class")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(sure.iter().copied(), orange.stroke_width(2)))?
        .label("the classifier is sure of the estimate (p ≥ 0.9)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            [(0.0, final_sure), (last_step, final_sure)],
            grey.stroke_width(1),
        ))?
        .label("sure of the final samples")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    chart
        .draw_series(DashedLineSeries::new(largest, 6, 4, green.stroke_width(2)))?
        .label("the estimates' most common class (its share)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::MiddleRight)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Metric;

    /// 100 real digits, ten of each class (the shipped file is sorted by class, 500 each), as
    /// a tensor in [0, 1].
    fn digits(device: &Device) -> Tensor {
        let set = crate::data::idx::load_images(&crate::data::shipped_mnist().unwrap()).unwrap();
        let picked: Vec<usize> = (0..100).map(|k| k * 50).collect();
        set.select(&picked).to_tensor(device).unwrap()
    }

    fn snapshot(step: usize, estimate: Tensor) -> Snapshot<Tensor> {
        Snapshot {
            level: step,
            step,
            sigma: 1.0 / (step + 1) as f64,
            x: estimate.zeros_like().unwrap(),
            denoised: Some(estimate),
        }
    }

    #[test]
    fn estimates_are_compared_with_the_same_chains_final_class() {
        let device = Device::Cpu;
        let net = Metric::Mnist.open(&device).unwrap();
        let real = digits(&device);
        let m = measure(
            &quantize(&real).unwrap(),
            net.as_ref(),
            50,
            &device,
            Progress::Quiet,
            "real",
        )
        .unwrap();
        let last = ClassSummary::from_logits(&m.logits, m.classes).unwrap();
        // Estimates that are the final images: every chain agrees, as sure as the final images,
        // and the FID against the same images' statistics is zero up to the square root of a
        // 64 x 64 covariance product (1e-6 allows its f64 rounding many times over).
        // The same images in reverse order: chain i (class i / 10) is compared with an image of
        // class 9 - i / 10, never the same class, so only the classifier's mistakes agree.
        let backwards: Vec<u32> = (0..100).rev().collect();
        let reversed = real.index_select(&Tensor::new(backwards, &device).unwrap(), 0).unwrap();
        let snapshots = vec![
            snapshot(0, reversed),
            snapshot(1, real.clone()),
            // The final snapshot, without an estimate, is not a decision.
            Snapshot {
                denoised: None,
                ..snapshot(2, real.clone())
            },
        ];
        let rows = decisions(&snapshots, &last, net.as_ref(), &m.stats, &device).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].step, rows[0].level, rows[1].level), (0, 1, 2));
        assert_eq!(rows[1].agreement, 1.0);
        assert_eq!(rows[1].confident_share, last.confident_share(CONFIDENT_THRESHOLD));
        assert_eq!(rows[1].class_shares, last.shares());
        // Reversed, the same images in another order: the same class shares.
        assert_eq!(rows[0].class_shares, last.shares());
        assert!(rows[1].fid.abs() < 1e-6, "{}", rows[1].fid);
        // The classifier is sure of 95% of held-out digits: a reversed pair agrees only where it
        // errs on one of the two, well under 20 of 100.
        assert!(rows[0].agreement < 0.2, "{}", rows[0].agreement);
        assert!(
            (rows[0].confident_share - rows[1].confident_share).abs() < 1e-12,
            "the same images"
        );
        // More chains in the estimates than in the final samples: an error, not a wrong share.
        let more = vec![snapshot(0, Tensor::cat(&[&real, &real], 0).unwrap())];
        assert!(decisions(&more, &last, net.as_ref(), &m.stats, &device).is_err());
    }

    #[test]
    fn the_figure_is_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Decision> = (0..5)
            .map(|i| Decision {
                step: 3 * i,
                level: i + 1,
                sigma: 16.0 / 2f64.powi(i as i32),
                agreement: 0.1 + 0.2 * i as f64,
                confident_share: 0.15 * i as f64,
                mean_top_probability: 0.5,
                class_shares: vec![0.1; 10],
                fid: 100.0,
            })
            .collect();
        let path = dir.path().join("decisions.png");
        plot(&rows, 0.7, "test", &path).unwrap();
        let picture = image::open(&path).unwrap();
        assert_eq!((picture.width(), picture.height()), SIZE);
    }
}
