//! What a classifier says about a set of samples: how many fall in each class and how sure it
//! is. For generated digits this tells whether every class appears (mode collapse leaves some
//! empty) and whether the samples look like digits at all (a classifier is rarely confident
//! about noise or smudges).

use crate::{Error, Result};

/// The top probability from which [`ClassSummary::confident`] counts a sample as confidently
/// classified.
pub const CONFIDENT_THRESHOLD: f64 = 0.9;

/// The class histogram and the confidence of a classifier over a set of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSummary {
    /// How many samples have each class as their most probable one (`argmax` of the logits;
    /// a tie goes to the lower class, as numpy's `argmax`). Length `k`.
    pub histogram: Vec<usize>,
    /// The mean over samples of the largest class probability `max_y p(y|x)`.
    pub mean_top_probability: f64,
    /// `max_y p(y|x)` of every sample, in input order (kept so that any threshold can be asked).
    pub top_probabilities: Vec<f64>,
    /// `argmax_y p(y|x)` of every sample, in input order (to compare two sets sample by sample).
    pub top_classes: Vec<usize>,
}

impl ClassSummary {
    /// Summarises `n = logits.len() / k` samples whose logits are stored row after row
    /// (`n x k`); probabilities are the softmax of each row, in `f64`. Errors: `k == 0`, a
    /// length that is not whole rows, no samples ([`Error::Shape`]); non-finite logits
    /// ([`Error::NonFinite`]).
    pub fn from_logits(logits: &[f32], k: usize) -> Result<Self> {
        if k == 0 || !logits.len().is_multiple_of(k) || logits.is_empty() {
            return Err(Error::Shape(format!(
                "class summary: {} logits are not one or more rows of {k} classes",
                logits.len()
            )));
        }
        let bad = logits.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::NonFinite {
                what: "logits for the class summary".into(),
                count: bad,
            });
        }
        let mut histogram = vec![0; k];
        let mut top_classes = Vec::with_capacity(logits.len() / k);
        let top_probabilities: Vec<f64> = logits
            .chunks_exact(k)
            .map(|row| {
                // argmax, the first of equal maxima
                let (top, max) =
                    row.iter().enumerate().fold(
                        (0, f32::NEG_INFINITY),
                        |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
                    );
                histogram[top] += 1;
                top_classes.push(top);
                // max_y softmax(z)_y = 1 / sum_j exp(z_j - max z)
                1.0 / row.iter().map(|&v| (v as f64 - max as f64).exp()).sum::<f64>()
            })
            .collect();
        let mean_top_probability = top_probabilities.iter().sum::<f64>() / top_probabilities.len() as f64;
        Ok(Self {
            histogram,
            mean_top_probability,
            top_probabilities,
            top_classes,
        })
    }

    /// The number of samples.
    pub fn count(&self) -> usize {
        self.top_probabilities.len()
    }

    /// The number of classes `k`.
    pub fn classes(&self) -> usize {
        self.histogram.len()
    }

    /// The fraction of samples in each class (sums to 1).
    pub fn shares(&self) -> Vec<f64> {
        let n = self.count() as f64;
        self.histogram.iter().map(|&c| c as f64 / n).collect()
    }

    /// The classes no sample falls in.
    pub fn missing_classes(&self) -> Vec<usize> {
        (0..self.classes()).filter(|&c| self.histogram[c] == 0).collect()
    }

    /// How many samples have a top probability of `threshold` or more (the book's bound reads
    /// "top-class probability 0.9 or more").
    pub fn confident_count(&self, threshold: f64) -> usize {
        self.top_probabilities.iter().filter(|&&p| p >= threshold).count()
    }

    /// The fraction of samples with a top probability of `threshold` or more.
    pub fn confident_share(&self, threshold: f64) -> f64 {
        self.confident_count(threshold) as f64 / self.count() as f64
    }

    /// The fraction of samples whose top class is the same as in `other`, a summary of as many
    /// samples in the same order (e.g. the same chains earlier on); `None` when the counts differ.
    pub fn agreement(&self, other: &ClassSummary) -> Option<f64> {
        (self.count() == other.count()).then(|| {
            let same = self
                .top_classes
                .iter()
                .zip(&other.top_classes)
                .filter(|(a, b)| a == b)
                .count();
            same as f64 / self.count() as f64
        })
    }

    /// [`ClassSummary::confident_count`] at [`CONFIDENT_THRESHOLD`] (0.9).
    pub fn confident(&self) -> usize {
        self.confident_count(CONFIDENT_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_classes_and_confidence() {
        // 3 classes, 4 samples: two confident 0s, an unsure 2, a tie between 1 and 2 (goes to 1).
        let logits = [
            10.0, 0.0, 0.0, //
            8.0, 1.0, 1.0, //
            0.0, 0.0, 0.5, //
            0.0, 3.0, 3.0,
        ];
        let s = ClassSummary::from_logits(&logits, 3).unwrap();
        assert_eq!(s.histogram, [2, 1, 1]);
        assert_eq!(s.top_classes, [0, 0, 2, 1]);
        assert_eq!(s.shares(), [0.5, 0.25, 0.25]);
        assert!(s.missing_classes().is_empty());
        // Top probabilities by hand: 1/(1 + 2e^-10), 1/(1 + 2e^-7), e^.5/(2 + e^.5), 1/(2 + e^-3).
        let want = [
            1.0 / (1.0 + 2.0 * (-10f64).exp()),
            1.0 / (1.0 + 2.0 * (-7f64).exp()),
            0.5f64.exp() / (2.0 + 0.5f64.exp()),
            1.0 / (2.0 + (-3f64).exp()),
        ];
        for (got, want) in s.top_probabilities.iter().zip(want) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        assert!((s.mean_top_probability - want.iter().sum::<f64>() / 4.0).abs() < 1e-15);
        assert_eq!(s.confident(), 2);
        assert_eq!(s.confident_share(0.9), 0.5);
        assert_eq!(s.confident_count(0.4), 4);
        // The threshold itself counts: a tie of two classes has a top probability of exactly 1/2.
        let tie = ClassSummary::from_logits(&[0.0, 0.0], 2).unwrap();
        assert_eq!(tie.top_probabilities, [0.5]);
        assert_eq!((tie.confident_count(0.5), tie.confident_count(0.5 + 1e-12)), (1, 0));
    }

    #[test]
    fn agreement_compares_sample_by_sample() {
        // Top classes (0, 1, 2) against (1, 2, 2): they agree at the last sample only, though
        // the two histograms share two of their three samples (a class 1 and a class 2).
        let a = ClassSummary::from_logits(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 3).unwrap();
        let b = ClassSummary::from_logits(&[0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0], 3).unwrap();
        assert_eq!(a.agreement(&b), Some(1.0 / 3.0));
        assert_eq!(a.agreement(&a), Some(1.0));
        let one = ClassSummary::from_logits(&[1.0, 0.0, 0.0], 3).unwrap();
        assert_eq!(a.agreement(&one), None);
    }

    #[test]
    fn reports_missing_classes() {
        let s = ClassSummary::from_logits(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 3).unwrap();
        assert_eq!(s.histogram, [1, 1, 0]);
        assert_eq!(s.missing_classes(), [2]);
        assert_eq!(s.classes(), 3);
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(ClassSummary::from_logits(&[], 3).is_err());
        assert!(ClassSummary::from_logits(&[1.0], 0).is_err());
        assert!(ClassSummary::from_logits(&[1.0, 2.0], 3).is_err());
        assert!(matches!(
            ClassSummary::from_logits(&[1.0, f32::NAN, 0.0], 3),
            Err(Error::NonFinite { count: 1, .. })
        ));
    }
}
