//! The statistics of a set of feature vectors: mean, covariance, how many samples and which
//! network made them. The Fréchet distance compares two such summaries, so a training set's
//! statistics are computed once, saved, and reused.
//!
//! [`FeatureAccumulator`] builds them in one pass over batches without keeping the features:
//! 50,000 Inception features of length 2,048 are 400 MB in `f64`, their statistics 32 MB.
//! Each batch is centred on its own mean and merged with what came before by the pairwise
//! update of Chan, Golub and LeVeque (1979), so a large common offset in the features costs no
//! digits (the textbook `sum x x^T - N mu mu^T` subtracts two huge, nearly equal numbers).
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::{Error, Result};

/// The value of the metadata field `format` of a statistics file.
pub const FORMAT: &str = "smld-feature-stats-v1";

/// How far a stored covariance may be from symmetric, relative to its largest entry: files
/// written here are exactly symmetric; one converted from numpy (`np.cov`) may differ in the
/// last bits, since `X^T X` need not round the same way on both sides of the diagonal.
pub const SYMMETRY_TOLERANCE: f64 = 1e-9;

/// Mean and covariance of `count` feature vectors of length `dim()` from the network
/// `network`, in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// The mean feature vector (length `d`).
    pub mu: Vec<f64>,
    /// The covariance, `d x d` row-major, unbiased (divided by `count - 1`, as numpy's
    /// `np.cov(features, rowvar=False)`), symmetric.
    pub sigma: Vec<f64>,
    /// How many feature vectors were summarised.
    pub count: usize,
    /// The name of the network that computed the features ([`crate::FeatureNetwork::name`]).
    pub network: String,
}

impl FeatureStats {
    /// The feature dimension `d`.
    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    /// The statistics of `rows.len() / dim` feature vectors stored row after row (a
    /// convenience over [`FeatureAccumulator`] for features already in memory).
    pub fn from_rows(rows: &[f32], dim: usize, network: &str) -> Result<Self> {
        let mut acc = FeatureAccumulator::new(dim, network);
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!(
                "{} feature values are not whole rows of length {dim}",
                rows.len()
            )));
        }
        acc.add_rows(rows, rows.len() / dim)?;
        acc.finish()
    }

    /// `tr(sigma)`, the total variance.
    pub fn trace(&self) -> f64 {
        let d = self.dim();
        (0..d).map(|i| self.sigma[i * d + i]).sum()
    }

    /// Checks the shapes (`sigma` is `d x d`, `d > 0`), that every number is finite, that
    /// `count >= 2` and that `sigma` is symmetric (within [`SYMMETRY_TOLERANCE`]); `what` names
    /// the statistics in the error.
    pub fn validate(&self, what: &str) -> Result<()> {
        let d = self.dim();
        if d == 0 || self.sigma.len() != d * d {
            return Err(Error::Shape(format!(
                "{what}: a mean of length {d} needs a {d} x {d} covariance ({} values), not {}",
                d * d,
                self.sigma.len()
            )));
        }
        let bad = self.mu.iter().chain(&self.sigma).filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::NonFinite {
                what: format!("{what} (mean and covariance)"),
                count: bad,
            });
        }
        if self.count < 2 {
            return Err(Error::Shape(format!(
                "{what}: a covariance needs at least 2 samples, these statistics count {}",
                self.count
            )));
        }
        if let Some((i, j, gap)) = asymmetry(&self.sigma, d) {
            return Err(Error::Shape(format!(
                "{what}: the covariance is not symmetric: sigma[{i},{j}] and sigma[{j},{i}] differ by {gap:e}"
            )));
        }
        Ok(())
    }

    /// Writes the statistics to a safetensors file: tensors `mu` `(d)` and `sigma` `(d, d)` in
    /// `F64`, metadata `format` ([`FORMAT`]), `count` and `network`. The file is written under a
    /// temporary name and renamed, so it is never seen half-written.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate(&path.display().to_string())?;
        let d = self.dim();
        let mu = f64_bytes(&self.mu);
        let sigma = f64_bytes(&self.sigma);
        fn view(shape: Vec<usize>, bytes: &[u8]) -> TensorView<'_> {
            TensorView::new(Dtype::F64, shape, bytes).expect("shape and byte length agree")
        }
        let tensors = [("mu", view(vec![d], &mu)), ("sigma", view(vec![d, d], &sigma))];
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("count".to_string(), self.count.to_string()),
            ("network".to_string(), self.network.clone()),
        ]);
        let bytes = safetensors::serialize(tensors, Some(metadata))
            .map_err(|e| Error::file(path, format!("cannot serialise the statistics: {e}")))?;
        workbench::files::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Reads statistics written by [`FeatureStats::save`], checking the format, the metadata,
    /// the tensors' dtypes and shapes, finiteness and symmetry; errors name the file and the
    /// field.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |message: String| Error::file(path, message);
        let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let empty = HashMap::new();
        let meta = header.metadata().as_ref().unwrap_or(&empty);
        let field = |name: &str| {
            meta.get(name)
                .ok_or_else(|| bad(format!("metadata `{name}` is missing (not a feature statistics file?)")))
        };
        let format = field("format")?;
        if format != FORMAT {
            return Err(bad(format!("metadata `format` is {format:?}, expected {FORMAT:?}")));
        }
        let count: usize = field("count")?
            .parse()
            .map_err(|_| bad(format!("metadata `count` is {:?}, not a whole number", meta["count"])))?;
        let network = field("network")?.clone();

        let read = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
            let t = file
                .tensor(name)
                .map_err(|_| bad(format!("tensor `{name}` is missing")))?;
            if t.dtype() != Dtype::F64 {
                return Err(bad(format!("tensor `{name}` is {:?}, expected F64", t.dtype())));
            }
            let values = t
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")))
                .collect();
            Ok((t.shape().to_vec(), values))
        };
        let (mu_shape, mu) = read("mu")?;
        let (sigma_shape, sigma) = read("sigma")?;
        let d = match mu_shape[..] {
            [d] if d > 0 => d,
            _ => {
                return Err(bad(format!(
                    "tensor `mu` has shape {mu_shape:?}, expected (d) with d > 0"
                )))
            }
        };
        if sigma_shape != [d, d] {
            return Err(bad(format!(
                "tensor `sigma` has shape {sigma_shape:?}, expected ({d}, {d}) to match `mu`"
            )));
        }
        for (name, values) in [("mu", &mu), ("sigma", &sigma)] {
            let bad_values = values.iter().filter(|v| !v.is_finite()).count();
            if bad_values > 0 {
                return Err(bad(format!("tensor `{name}` holds {bad_values} non-finite value(s)")));
            }
        }
        if count < 2 {
            return Err(bad(format!(
                "metadata `count` is {count}; a covariance needs at least 2 samples"
            )));
        }
        if let Some((i, j, gap)) = asymmetry(&sigma, d) {
            return Err(bad(format!(
                "tensor `sigma` is not symmetric: [{i},{j}] and [{j},{i}] differ by {gap:e}"
            )));
        }
        Ok(Self {
            mu,
            sigma,
            count,
            network,
        })
    }

    /// Whether `path` is a safetensors file holding tensors `mu` and `sigma`: a cheap test that
    /// reads only the file's header, for a program that takes either images or statistics.
    /// [`FeatureStats::load`] does the real checks.
    pub fn is_stats_file(path: &Path) -> bool {
        // A safetensors file starts with the header's length (u64, little-endian), then the
        // header: a JSON object whose keys are the tensor names (and `__metadata__`).
        let Ok(mut file) = std::fs::File::open(path) else {
            return false;
        };
        let mut len = [0u8; 8];
        if file.read_exact(&mut len).is_err() {
            return false;
        }
        let len = u64::from_le_bytes(len);
        if len > 1 << 20 {
            return false; // ours are a few hundred bytes; this is not one
        }
        let mut header = vec![0u8; len as usize];
        if file.read_exact(&mut header).is_err() {
            return false;
        }
        match serde_json::from_slice::<serde_json::Value>(&header) {
            Ok(serde_json::Value::Object(map)) => map.contains_key("mu") && map.contains_key("sigma"),
            _ => false,
        }
    }
}

/// The first pair `(i, j)` (with `i < j`) where `sigma` is asymmetric beyond
/// [`SYMMETRY_TOLERANCE`] times its largest entry, and the gap.
fn asymmetry(sigma: &[f64], d: usize) -> Option<(usize, usize, f64)> {
    let scale = sigma.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..d {
        for j in i + 1..d {
            let gap = (sigma[i * d + j] - sigma[j * d + i]).abs();
            if gap > SYMMETRY_TOLERANCE * scale {
                return Some((i, j, gap));
            }
        }
    }
    None
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Rows merged per step: bounds the `f64` copy of a batch (512 x 2048 x 8 bytes = 8 MB) whatever
/// the size of the batch handed to [`FeatureAccumulator::add`].
const CHUNK_ROWS: usize = 512;

/// Builds [`FeatureStats`] from batches of feature vectors, one pass, in `f64`, without keeping
/// the features.
///
/// It holds the count `n`, the mean `m` and the centred scatter matrix
/// `C = sum_i (x_i - m)(x_i - m)^T` of the rows seen so far. A chunk of `n_b` rows with mean
/// `m_b` and scatter `C_b` (about its own mean) merges as (Chan et al.)
///
/// ```text
/// n' = n + n_b,  delta = m_b - m,  m' = m + delta n_b / n',  C' = C + C_b + delta delta^T n n_b / n'
/// ```
///
/// and [`FeatureAccumulator::finish`] divides `C` by `n - 1`.
#[derive(Debug, Clone)]
pub struct FeatureAccumulator {
    dim: usize,
    network: String,
    label: String,
    count: usize,
    mean: Vec<f64>,
    /// `C`, `dim x dim` row-major.
    scatter: Vec<f64>,
}

impl FeatureAccumulator {
    /// An empty accumulator for features of length `dim` computed by `network`.
    pub fn new(dim: usize, network: &str) -> Self {
        Self {
            dim,
            network: network.to_string(),
            label: "features".to_string(),
            count: 0,
            mean: vec![0.0; dim],
            scatter: vec![0.0; dim * dim],
        }
    }

    /// Names the set in error messages (`"generated samples"`, `"MNIST training set"`); the
    /// default is `"features"`.
    pub fn named(mut self, label: &str) -> Self {
        self.label = label.to_string();
        self
    }

    /// How many feature vectors have been added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Adds a batch `(n, dim)` of features of any float dtype on any device (it is copied to
    /// the CPU and converted to `f64`).
    pub fn add(&mut self, batch: &Tensor) -> Result<()> {
        let (n, d) = batch.dims2().map_err(|_| {
            Error::Shape(format!(
                "{}: features must be a (batch, {}) tensor, got shape {:?}",
                self.label,
                self.dim,
                batch.dims()
            ))
        })?;
        if d != self.dim {
            return Err(Error::Shape(format!(
                "{}: features of length {d}, expected {} ({})",
                self.label, self.dim, self.network
            )));
        }
        let values = batch
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        self.add_rows_f64(&values, n)
    }

    /// Adds `n` feature vectors stored row after row in `rows` (`n * dim` values).
    pub fn add_rows(&mut self, rows: &[f32], n: usize) -> Result<()> {
        self.check_len(rows.len(), n)?;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS.min(n) * self.dim);
        for part in rows.chunks(CHUNK_ROWS * self.dim.max(1)) {
            chunk.clear();
            chunk.extend(part.iter().map(|&v| v as f64));
            self.merge_chunk(&chunk)?;
        }
        Ok(())
    }

    /// [`FeatureAccumulator::add_rows`] for features already in `f64`.
    pub fn add_rows_f64(&mut self, rows: &[f64], n: usize) -> Result<()> {
        self.check_len(rows.len(), n)?;
        for part in rows.chunks(CHUNK_ROWS * self.dim.max(1)) {
            self.merge_chunk(part)?;
        }
        Ok(())
    }

    fn check_len(&self, len: usize, n: usize) -> Result<()> {
        if self.dim == 0 {
            return Err(Error::Shape(format!("{}: feature dimension 0", self.label)));
        }
        if len != n * self.dim {
            return Err(Error::Shape(format!(
                "{}: {len} values are not {n} rows of length {}",
                self.label, self.dim
            )));
        }
        Ok(())
    }

    /// Merges one chunk of whole rows (in `f64`) into the running mean and scatter.
    fn merge_chunk(&mut self, rows: &[f64]) -> Result<()> {
        let d = self.dim;
        let n_b = rows.len() / d;
        if n_b == 0 {
            return Ok(());
        }
        let bad = rows.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::NonFinite {
                what: format!(
                    "{} ({}, rows {}..{})",
                    self.label,
                    self.network,
                    self.count,
                    self.count + n_b
                ),
                count: bad,
            });
        }
        // m_b = (1/n_b) sum_i x_i
        let mut m_b = vec![0.0; d];
        for row in rows.chunks_exact(d) {
            for (m, x) in m_b.iter_mut().zip(row) {
                *m += x;
            }
        }
        m_b.iter_mut().for_each(|m| *m /= n_b as f64);
        // X_c = rows - m_b, then C += X_c^T X_c (the chunk's own scatter, C_b, by one product)
        let centred: Vec<f64> = rows
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(&m_b).map(|(x, m)| x - m))
            .collect();
        let xc = MatRef::from_row_major_slice(&centred, n_b, d);
        let scatter = MatMut::from_row_major_slice_mut(&mut self.scatter, d, d);
        matmul(scatter, Accum::Add, xc.transpose(), xc, 1.0, Par::Seq);
        // delta = m_b - m;  C += delta delta^T n n_b / n';  m += delta n_b / n'
        let n_a = self.count as f64;
        let n_new = n_a + n_b as f64;
        let delta: Vec<f64> = m_b.iter().zip(&self.mean).map(|(b, a)| b - a).collect();
        let w = n_a * n_b as f64 / n_new;
        for i in 0..d {
            let wi = w * delta[i];
            let row = &mut self.scatter[i * d..(i + 1) * d];
            for (c, dj) in row.iter_mut().zip(&delta) {
                *c += wi * dj;
            }
        }
        for (m, dl) in self.mean.iter_mut().zip(&delta) {
            *m += dl * (n_b as f64 / n_new);
        }
        self.count += n_b;
        Ok(())
    }

    /// The statistics: the mean and `C / (n - 1)`, made exactly symmetric (the product
    /// `X_c^T X_c` may round its two triangles differently). Fewer than 2 samples is an error.
    pub fn finish(self) -> Result<FeatureStats> {
        if self.count < 2 {
            return Err(Error::Shape(format!(
                "{}: {} feature vector(s) give no covariance; at least 2 are needed",
                self.label, self.count
            )));
        }
        let d = self.dim;
        let denom = (self.count - 1) as f64;
        let mut sigma = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                // sigma_ij = (C_ij + C_ji) / 2 / (n - 1)
                sigma[i * d + j] = 0.5 * (self.scatter[i * d + j] + self.scatter[j * d + i]) / denom;
            }
        }
        Ok(FeatureStats {
            mu: self.mean,
            sigma,
            count: self.count,
            network: self.network,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Mean and unbiased covariance by the two-pass textbook formula in f64 (the reference).
    fn two_pass(rows: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
        let n = rows.len() / d;
        let x: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
        let mut mu = vec![0.0; d];
        for r in x.chunks(d) {
            for j in 0..d {
                mu[j] += r[j] / n as f64;
            }
        }
        let mut s = vec![0.0; d * d];
        for r in x.chunks(d) {
            for i in 0..d {
                for j in 0..d {
                    s[i * d + j] += (r[i] - mu[i]) * (r[j] - mu[j]) / (n - 1) as f64;
                }
            }
        }
        (mu, s)
    }

    fn random_rows(n: usize, d: usize, offset: f32, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|k| offset + (k % d) as f32 * 0.1 + rng.random_range(-1.0f32..1.0))
            .collect()
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn matches_the_two_pass_formula_whatever_the_batching() {
        let (n, d) = (1500, 7);
        let rows = random_rows(n, d, 0.0, 1);
        let (mu, sigma) = two_pass(&rows, d);
        // Uneven batches, one of them crossing the internal chunk size, one empty.
        let mut acc = FeatureAccumulator::new(d, "net");
        let mut start = 0;
        for len in [1, 0, 2, 600, 37, 860] {
            acc.add_rows(&rows[start * d..(start + len) * d], len).unwrap();
            start += len;
        }
        assert_eq!(start, n);
        let stats = acc.finish().unwrap();
        assert_eq!(stats.count, n);
        assert_eq!(stats.network, "net");
        // Sums of 1,500 terms in different orders: agreement to ~1e-13 relative is rounding.
        assert!(max_rel(&stats.mu, &mu) < 1e-12, "{}", max_rel(&stats.mu, &mu));
        assert!(
            max_rel(&stats.sigma, &sigma) < 1e-12,
            "{}",
            max_rel(&stats.sigma, &sigma)
        );
        let whole = FeatureStats::from_rows(&rows, d, "net").unwrap();
        assert!(max_rel(&whole.sigma, &sigma) < 1e-12);
    }

    #[test]
    fn a_large_common_offset_costs_no_digits() {
        // Features 1e4 + noise of size 1: the covariance is the noise's. (The f32 values hold the
        // noise only to ~1e-3 of 1e4's ulp; the reference is computed from the same f32 values,
        // so the comparison measures the accumulation alone.)
        let (n, d) = (3000, 5);
        let rows = random_rows(n, d, 1e4, 2);
        let (_, sigma) = two_pass(&rows, d);
        let mut acc = FeatureAccumulator::new(d, "net");
        for chunk in rows.chunks(100 * d) {
            acc.add_rows(chunk, chunk.len() / d).unwrap();
        }
        let stats = acc.finish().unwrap();
        let rel = max_rel(&stats.sigma, &sigma);
        // For contrast, the one-pass textbook formula (sum x x^T - n mu mu^T) / (n - 1) in f64:
        // both terms are ~3e11 for a difference of ~1e3, so it keeps ~8 fewer digits.
        let x: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
        let mu: Vec<f64> = (0..d)
            .map(|j| x.iter().skip(j).step_by(d).sum::<f64>() / n as f64)
            .collect();
        let naive: Vec<f64> = (0..d * d)
            .map(|ij| {
                let (i, j) = (ij / d, ij % d);
                let sxx: f64 = x.chunks(d).map(|r| r[i] * r[j]).sum();
                (sxx - n as f64 * mu[i] * mu[j]) / (n - 1) as f64
            })
            .collect();
        eprintln!(
            "offset 1e4: Chan merge {rel:.1e} relative, textbook formula {:.1e}",
            max_rel(&naive, &sigma)
        );
        assert!(rel < 1e-9, "relative error {rel:e}");
        // The test tells the two apart: the textbook formula fails it (1.4e-6 measured).
        assert!(max_rel(&naive, &sigma) > 1e-9);
    }

    #[test]
    fn tensor_batches_of_any_float_dtype() {
        let (n, d) = (40, 3);
        let rows = random_rows(n, d, 0.0, 3);
        let t = Tensor::from_vec(rows.clone(), (n, d), &Device::Cpu).unwrap();
        let mut acc = FeatureAccumulator::new(d, "net");
        acc.add(&t.narrow(0, 0, 10).unwrap()).unwrap();
        acc.add(&t.narrow(0, 10, 30).unwrap().to_dtype(DType::F64).unwrap())
            .unwrap();
        let stats = acc.finish().unwrap();
        let (_, sigma) = two_pass(&rows, d);
        assert!(max_rel(&stats.sigma, &sigma) < 1e-12);
        let mut acc = FeatureAccumulator::new(4, "net");
        assert!(matches!(acc.add(&t), Err(Error::Shape(_))));
    }

    #[test]
    fn refuses_non_finite_features_and_too_few_samples() {
        let mut acc = FeatureAccumulator::new(2, "net").named("generated samples");
        let err = acc.add_rows(&[1.0, f32::NAN, f32::INFINITY, 0.0], 2).unwrap_err();
        match err {
            Error::NonFinite { what, count } => {
                assert_eq!(count, 2);
                assert!(what.contains("generated samples"), "{what}");
            }
            e => panic!("{e}"),
        }
        let mut acc = FeatureAccumulator::new(2, "net");
        acc.add_rows(&[1.0, 2.0], 1).unwrap();
        assert!(acc.finish().is_err());
        assert!(FeatureAccumulator::new(2, "net").add_rows(&[1.0, 2.0, 3.0], 1).is_err());
    }

    fn sample_stats() -> FeatureStats {
        FeatureStats::from_rows(&random_rows(20, 3, 0.5, 4), 3, "mnist-classifier").unwrap()
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.safetensors");
        let stats = sample_stats();
        stats.save(&path).unwrap();
        assert!(FeatureStats::is_stats_file(&path));
        assert_eq!(FeatureStats::load(&path).unwrap(), stats);
        // Neither an image nor a missing file is statistics.
        let png = dir.path().join("a.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n0000000000").unwrap();
        assert!(!FeatureStats::is_stats_file(&png));
        assert!(!FeatureStats::is_stats_file(&dir.path().join("none")));
    }

    /// Writes a safetensors file with the given F64 tensors and metadata.
    fn write_raw(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f64>)], meta: &[(&str, &str)]) {
        let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| f64_bytes(v)).collect();
        let views: Vec<_> = tensors
            .iter()
            .zip(&bytes)
            .map(|((name, shape, _), b)| (*name, TensorView::new(Dtype::F64, shape.clone(), b).unwrap()))
            .collect();
        let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        std::fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    }

    #[test]
    fn load_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        let s = sample_stats();
        let meta = [("format", FORMAT), ("count", "20"), ("network", "n")];
        let mu = ("mu", vec![3], s.mu.clone());
        let sigma = ("sigma", vec![3, 3], s.sigma.clone());
        let expect = |tensors: &[(&str, Vec<usize>, Vec<f64>)], meta: &[(&str, &str)], words: &str| {
            write_raw(&path, tensors, meta);
            let err = FeatureStats::load(&path).unwrap_err().to_string();
            assert!(err.contains("bad.safetensors") && err.contains(words), "{err}");
        };
        expect(std::slice::from_ref(&sigma), &meta, "`mu` is missing");
        expect(std::slice::from_ref(&mu), &meta, "`sigma` is missing");
        expect(
            &[mu.clone(), ("sigma", vec![3, 2], s.sigma[..6].to_vec())],
            &meta,
            "`sigma` has shape",
        );
        expect(
            &[("mu", vec![3, 1], s.mu.clone()), sigma.clone()],
            &meta,
            "`mu` has shape",
        );
        let mut asym = s.sigma.clone();
        asym[1] += 1.0;
        expect(&[mu.clone(), ("sigma", vec![3, 3], asym)], &meta, "not symmetric");
        let mut nan = s.sigma.clone();
        nan[4] = f64::NAN;
        expect(&[mu.clone(), ("sigma", vec![3, 3], nan)], &meta, "non-finite");
        let both = [mu.clone(), sigma.clone()];
        expect(&both, &[("format", FORMAT), ("network", "n")], "`count` is missing");
        expect(
            &both,
            &[("format", FORMAT), ("count", "many"), ("network", "n")],
            "`count` is \"many\"",
        );
        expect(
            &both,
            &[("format", FORMAT), ("count", "1"), ("network", "n")],
            "at least 2",
        );
        expect(
            &both,
            &[("format", "other"), ("count", "20"), ("network", "n")],
            "`format`",
        );
        expect(&both, &[("format", FORMAT), ("count", "20")], "`network` is missing");
        write_raw(&path, &both, &meta);
        assert!(FeatureStats::load(&path).is_ok());
    }
}
