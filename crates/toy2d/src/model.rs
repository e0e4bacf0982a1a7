//! The score models of the toys: a small MLP `s(x)` (as the reference toy: 2 -> 128 -> 128 -> 2
//! with softplus) that can also push a tangent through itself, and its noise-conditional
//! variants `s(x, sigma_i)`.
//!
//! Forward-mode tangents (for the Jacobian-vector products of implicit and sliced score
//! matching): for one layer `a = W x + b`, `h = softplus(a)`,
//!
//! `da = W dx`, `dh = softplus'(a) * da = sigmoid(a) * da`,
//!
//! so `J_s(x) v` is the output tangent when the input tangent is `v`.
use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ndarray::{Array2, ArrayView2};
use rand::Rng;
use score_matching::JvpScore;

use crate::folded::{Affine, FoldedMlp};
use crate::linear::{add_bias, matmul_wt, Linear};
use crate::modulate::modulate;
use crate::softplus::{softplus, softplus_tangent};

/// How a noise-conditional MLP is told the noise level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditioning {
    /// A learned embedding of the level index modulates the hidden layers.
    Embedding,
    /// NCSNv2's form: an unconditional network divided by sigma, `s(x, sigma) = f(x) / sigma`.
    DivideBySigma,
    /// Both: the level embedding of [`Conditioning::Embedding`] and NCSNv2's output scaling,
    /// `s(x, sigma_i) = f(c_in(sigma_i) x, i) / sigma_i`. The network then predicts `-z`, a target
    /// of unit size at every level (the weighted DSM term `sigma^2 ||s + z / sigma||^2` becomes
    /// `||f + z||^2`), while the embedding lets the direction of the score change with sigma.
    EmbeddingOverSigma,
}

/// The input gain of [`Conditioning::EmbeddingOverSigma`]: its input is `INPUT_GAIN * c_in(sigma) x`.
/// The toys span about `[-5, 5]`, and with unit-scale inputs the first layer's initial features
/// vary too slowly to resolve structure of width `sigma_L = 0.1` in a few thousand steps; a gain
/// acts like larger first-layer weights (`examples/ncsn2d_sweep.rs` measures the score error per
/// level with and without it).
pub const INPUT_GAIN: f64 = 3.0;

/// Anything that gives a score on a batch of 2D points (`level` for noise-conditional models).
pub trait ScoreModel {
    /// `x`: `[N, 2]` f32; `levels`: `u32` `[N]` (ignored by unconditional models).
    fn score(&self, x: &Tensor, levels: Option<&Tensor>) -> Result<Tensor>;

    /// The dtype of the parameters (inputs are converted to it by [`score_array`]).
    fn dtype(&self) -> DType {
        DType::F32
    }

    /// The number of noise levels of a noise-conditional model, `None` for an unconditional one.
    fn n_levels(&self) -> Option<usize> {
        None
    }
}

/// One hidden layer `h = softplus(W x + b)` and its tangent `dh = sigmoid(W x + b) * (W dx)`.
/// `modulate` is applied to the pre-activation and its tangent alike (it must be affine in `a`
/// with a slope independent of `x`, like the per-level scale and shift below).
fn softplus_layer(
    layer: &Linear,
    x: &Tensor,
    dx: Option<&Tensor>,
    modulate: impl Fn(&Tensor, bool) -> Result<Tensor>,
) -> Result<(Tensor, Option<Tensor>)> {
    let a = modulate(&layer.forward(x)?, false)?; // a = W x + b (then scale/shift)
    let h = softplus(&a)?;
    let dh = match dx {
        Some(dx) => {
            let da = modulate(&matmul_wt(dx, layer.weight())?, true)?; // da = W dx (then scale)
            Some(softplus_tangent(&a, &da)?) // softplus'(a) da = sigmoid(a) da
        }
        None => None,
    };
    Ok((h, dh))
}

/// `s(x)`: 2 -> hidden -> hidden -> 2 with softplus, as the reference toy.
#[derive(Debug, Clone)]
pub struct ScoreMlp {
    lin1: Linear,
    lin2: Linear,
    lin3: Linear,
    dtype: DType,
}

impl ScoreMlp {
    /// New MLP with parameters `lin{1,2,3}.{weight,bias}` under `vb`, initialised as PyTorch
    /// does ([`Linear::new`]); see [`ScoreMlp::seeded`] for a reproducible draw.
    pub fn new(hidden: usize, vb: VarBuilder) -> Result<Self> {
        if hidden == 0 {
            bail!("ScoreMlp: expected a positive number of hidden units, got 0");
        }
        Ok(Self {
            lin1: Linear::new(2, hidden, vb.pp("lin1"))?,
            lin2: Linear::new(hidden, hidden, vb.pp("lin2"))?,
            lin3: Linear::new(hidden, 2, vb.pp("lin3"))?,
            dtype: vb.dtype(),
        })
    }

    /// A new MLP whose parameters are drawn from `rng`: the same seed gives the same model.
    /// Returns the [`VarMap`] holding the trainable parameters.
    pub fn seeded<R: Rng + ?Sized>(
        hidden: usize,
        dtype: DType,
        device: &Device,
        rng: &mut R,
    ) -> Result<(Self, VarMap)> {
        let (varmap, vb) = seeded_builder(rng, dtype, device);
        let model = Self::new(hidden, vb)?;
        Ok((model, varmap))
    }

    /// `s(x)` and, if a tangent `dx` is given, `J_s(x) dx`. `modulate(layer, a, is_tangent)` lets
    /// the noise-conditional model scale and shift the hidden pre-activations.
    fn forward_with(
        &self,
        x: &Tensor,
        dx: Option<&Tensor>,
        modulate: impl Fn(usize, &Tensor, bool) -> Result<Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (h1, dh1) = softplus_layer(&self.lin1, x, dx, |a, t| modulate(0, a, t))?;
        let (h2, dh2) = softplus_layer(&self.lin2, &h1, dh1.as_ref(), |a, t| modulate(1, a, t))?;
        let s = self.lin3.forward(&h2)?; // s = W3 h2 + b3
        let ds = match dh2 {
            Some(dh2) => Some(matmul_wt(&dh2, self.lin3.weight())?), // ds = W3 dh2
            None => None,
        };
        Ok((s, ds))
    }

    /// The three layers' `(weight, bias)`, weights `(out, in)`, for a written-out training step
    /// ([`crate::jvp_step`]): `None` unless the model is in `f32` on the CPU.
    pub(crate) fn layers(&self) -> Option<[(&Tensor, &Tensor); 3]> {
        let on_cpu = self.lin1.weight().device().is_cpu() && self.dtype == DType::F32;
        on_cpu.then(|| [&self.lin1, &self.lin2, &self.lin3].map(|l| (l.weight(), l.bias())))
    }

    /// `s(x)` for `x` of shape `(N, 2)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_points(x)?;
        Ok(self.forward_with(x, None, |_, a, _| Ok(a.clone()))?.0)
    }
}

impl JvpScore for ScoreMlp {
    fn score_and_jvp(&self, x: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        check_points(x)?;
        if v.dims() != x.dims() {
            bail!(
                "ScoreMlp: tangent shape {:?} differs from point shape {:?}",
                v.dims(),
                x.dims()
            );
        }
        let (s, ds) = self.forward_with(x, Some(v), |_, a, _| Ok(a.clone()))?;
        match ds {
            Some(ds) => Ok((s, ds)),
            None => bail!("ScoreMlp: the tangent was lost in the forward pass"),
        }
    }
}

impl ScoreModel for ScoreMlp {
    fn score(&self, x: &Tensor, _levels: Option<&Tensor>) -> Result<Tensor> {
        self.forward(x)
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

/// The level-conditioning parameters of [`Conditioning::Embedding`]: for each hidden layer `k`, a
/// per-level scale `gamma_k[i]` and shift `beta_k[i]` of the pre-activations,
/// `a <- gamma_k[i] * a + beta_k[i]` (like the conditional normalisation of NCSN, without the
/// normalisation), initialised to the identity (`gamma = 1`, `beta = 0`). The input is first
/// scaled by the fixed `c_in(sigma_i) = 1 / sqrt(1 + sigma_i^2)` (Karras et al. 2022's input
/// preconditioning for data of unit scale): `x~ = x + sigma z` spreads like `sqrt(1 + sigma^2)`,
/// and without it the first layer sees points 20 times farther out at `sigma = 20` than at 1.
#[derive(Debug, Clone)]
struct LevelEmbedding {
    gamma: [Tensor; 2],
    beta: [Tensor; 2],
    /// `c_in(sigma_i)`, shape `(L,)`, not trained.
    c_in: Tensor,
    /// The levels `sigma_i`, shape `(L,)`, when the output is divided by them
    /// ([`Conditioning::EmbeddingOverSigma`]).
    over_sigma: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum Conditioner {
    Embedding(LevelEmbedding),
    /// The levels as a `(L,)` tensor of the model's dtype.
    DivideBySigma(Tensor),
}

/// `s(x, sigma_i)`: the MLP told the noise level `i`, in one of three ways (see [`Conditioning`]).
#[derive(Debug, Clone)]
pub struct NoiseConditionalMlp {
    mlp: ScoreMlp,
    conditioner: Conditioner,
    sigmas: Vec<f64>,
    /// Where the parameters live (particles go there to be scored).
    device: Device,
}

impl NoiseConditionalMlp {
    /// New noise-conditional MLP for the given levels. Parameters: `lin{1,2,3}.{weight,bias}`
    /// and, for [`Conditioning::Embedding`] and [`Conditioning::EmbeddingOverSigma`], `gamma{1,2}` and `beta{1,2}` of shape `(L, hidden)`.
    pub fn new(hidden: usize, sigmas: &[f64], conditioning: Conditioning, vb: VarBuilder) -> Result<Self> {
        if sigmas.is_empty() {
            bail!("NoiseConditionalMlp: expected at least one noise level in `sigmas`");
        }
        if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!("NoiseConditionalMlp: expected finite positive `sigmas`, got {s}");
        }
        let levels = sigmas.len();
        let conditioner = match conditioning {
            Conditioning::Embedding | Conditioning::EmbeddingOverSigma => {
                let table =
                    |name: &str, value: f64| vb.get_with_hints((levels, hidden), name, candle_nn::Init::Const(value));
                Conditioner::Embedding(LevelEmbedding {
                    gamma: [table("gamma1", 1.0)?, table("gamma2", 1.0)?],
                    beta: [table("beta1", 0.0)?, table("beta2", 0.0)?],
                    c_in: Tensor::from_vec(
                        sigmas
                            .iter()
                            .map(|s| {
                                let gain = match conditioning {
                                    Conditioning::EmbeddingOverSigma => INPUT_GAIN,
                                    _ => 1.0,
                                };
                                gain / (1.0 + s * s).sqrt()
                            })
                            .collect::<Vec<f64>>(),
                        levels,
                        vb.device(),
                    )?
                    .to_dtype(vb.dtype())?,
                    over_sigma: match conditioning {
                        Conditioning::EmbeddingOverSigma => {
                            Some(score_matching::sigmas_tensor(sigmas, vb.device())?.to_dtype(vb.dtype())?)
                        }
                        _ => None,
                    },
                })
            }
            Conditioning::DivideBySigma => {
                Conditioner::DivideBySigma(score_matching::sigmas_tensor(sigmas, vb.device())?.to_dtype(vb.dtype())?)
            }
        };
        Ok(Self {
            device: vb.device().clone(),
            mlp: ScoreMlp::new(hidden, vb)?,
            conditioner,
            sigmas: sigmas.to_vec(),
        })
    }

    /// A new model whose random parameters are drawn from `rng`.
    pub fn seeded<R: Rng + ?Sized>(
        hidden: usize,
        sigmas: &[f64],
        conditioning: Conditioning,
        dtype: DType,
        device: &Device,
        rng: &mut R,
    ) -> Result<(Self, VarMap)> {
        let (varmap, vb) = seeded_builder(rng, dtype, device);
        let model = Self::new(hidden, sigmas, conditioning, vb)?;
        Ok((model, varmap))
    }

    /// The noise levels the model was built for.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// `s(x, sigma_{levels[n]})` for `x` of shape `(N, 2)` and `u32` level indices of shape `(N,)`.
    pub fn forward(&self, x: &Tensor, levels: &Tensor) -> Result<Tensor> {
        check_points(x)?;
        if levels.dims() != [x.dim(0)?] {
            bail!(
                "NoiseConditionalMlp: expected one level index per point, got levels of shape {:?}",
                levels.dims()
            );
        }
        match &self.conditioner {
            Conditioner::Embedding(e) => {
                let modulate = |k: usize, a: &Tensor, tangent: bool| {
                    if tangent {
                        a * e.gamma[k].index_select(levels, 0)? // gamma_k[i] * da
                    } else {
                        modulate(a, levels, &e.gamma[k], &e.beta[k]) // gamma_k[i] * a + beta_k[i]
                    }
                };
                // x_in = c_in(sigma_i) x: points of comparable spread at every level.
                let x = x.broadcast_mul(&e.c_in.index_select(levels, 0)?.unsqueeze(1)?)?;
                let f = self.mlp.forward_with(&x, None, modulate)?.0;
                match &e.over_sigma {
                    // s(x, sigma_i) = f(c_in x, i) / sigma_i
                    Some(sigmas) => f.broadcast_div(&sigmas.index_select(levels, 0)?.unsqueeze(1)?),
                    None => Ok(f),
                }
            }
            Conditioner::DivideBySigma(sigmas) => {
                let sigma = sigmas.index_select(levels, 0)?.unsqueeze(1)?; // (N, 1)
                self.mlp.forward(x)?.broadcast_div(&sigma) // s(x, sigma) = f(x) / sigma
            }
        }
    }
}

impl NoiseConditionalMlp {
    /// `s(x, sigma_level)` for `x` of shape `(N, 2)`, every point at the same level: the
    /// sampler's call. It computes what [`NoiseConditionalMlp::forward`] computes, with the level
    /// folded into the weights first (as inference code folds a batch norm into the convolution
    /// before it): the per-level scale and shift of a hidden layer,
    /// `gamma (W x + b) + beta = (gamma W) x + (gamma b + beta)`, become one linear layer, as do
    /// the input scale `c_in` (into `W_1`) and the division by sigma (into `W_3`, `b_3`). Each layer
    /// is then a matrix product, a bias and a softplus, where the general path gathers a row of
    /// every table per point and makes four more passes over the `(N, hidden)` activations.
    /// Equal to `forward` up to the rounding of the folded products (a few ulp; tested).
    pub fn forward_at_level(&self, x: &Tensor, level: usize) -> Result<Tensor> {
        check_points(x)?;
        if self.runs_folded() && x.dtype() == DType::F32 {
            let values = x.flatten_all()?.to_vec1::<f32>()?;
            let mut out = vec![0f32; values.len()];
            self.folded(level)?.forward(&values, &mut out);
            return Tensor::from_vec(out, x.dims(), &self.device);
        }
        self.forward_at_level_ops(x, level)
    }

    /// [`Self::forward_at_level`] through candle's ops (any device and dtype).
    fn forward_at_level_ops(&self, x: &Tensor, level: usize) -> Result<Tensor> {
        let [l1, l2, l3] = self.folded_layers(level)?;
        let layer = |x: &Tensor, (w, b): &(Tensor, Tensor)| add_bias(&matmul_wt(x, w)?, b);
        let h1 = softplus(&layer(x, &l1)?)?;
        let h2 = softplus(&layer(&h1, &l2)?)?;
        layer(&h2, &l3)
    }

    /// `(W', b')` of each layer at noise level `level`, `W'` of shape `(out, in)`.
    fn folded_layers(&self, level: usize) -> Result<[(Tensor, Tensor); 3]> {
        if level >= self.sigmas.len() {
            bail!(
                "NoiseConditionalMlp: level {level} out of range, the model has {} noise levels",
                self.sigmas.len()
            );
        }
        let mlp = &self.mlp;
        let (w1, b1) = (mlp.lin1.weight(), mlp.lin1.bias().clone());
        let (w2, b2) = (mlp.lin2.weight(), mlp.lin2.bias().clone());
        let (w3, b3) = (mlp.lin3.weight(), mlp.lin3.bias().clone());
        // (W', b') of each layer at this level, W of shape (out, in).
        let (l1, l2, l3) = match &self.conditioner {
            Conditioner::Embedding(e) => {
                let fold = |k: usize, w: &Tensor, b: &Tensor| -> Result<(Tensor, Tensor)> {
                    let gamma = e.gamma[k].get(level)?; // (hidden,)
                    let w = w.broadcast_mul(&gamma.unsqueeze(1)?)?; // gamma_k[i] W: row j times gamma_j
                    let b = ((b * &gamma)? + e.beta[k].get(level)?)?; // gamma_k[i] b + beta_k[i]
                    Ok((w, b))
                };
                let (w1, b1) = fold(0, w1, &b1)?;
                let w1 = w1.broadcast_mul(&e.c_in.get(level)?)?; // W (c_in x) = (c_in W) x
                let l3 = match &e.over_sigma {
                    // f / sigma_i = (W_3 / sigma_i) h + b_3 / sigma_i
                    Some(sigmas) => {
                        let sigma = sigmas.get(level)?;
                        (w3.broadcast_div(&sigma)?, b3.broadcast_div(&sigma)?)
                    }
                    None => (w3.clone(), b3),
                };
                ((w1, b1), fold(1, w2, &b2)?, l3)
            }
            Conditioner::DivideBySigma(sigmas) => {
                let sigma = sigmas.get(level)?;
                (
                    (w1.clone(), b1),
                    (w2.clone(), b2),
                    (w3.broadcast_div(&sigma)?, b3.broadcast_div(&sigma)?),
                )
            }
        };
        Ok([l1, l2, l3])
    }

    /// The network at noise level `level` as plain `f32` weights for the CPU's block-by-block
    /// evaluation ([`FoldedMlp`]), folded as [`Self::forward_at_level`] folds them.
    pub fn folded(&self, level: usize) -> Result<FoldedMlp> {
        let layers = self.folded_layers(level)?;
        let plain = |(w, b): &(Tensor, Tensor)| -> Result<Affine> {
            Ok(Affine {
                weight_t: w.to_dtype(DType::F32)?.t()?.flatten_all()?.to_vec1()?,
                bias: b.to_dtype(DType::F32)?.to_vec1()?,
            })
        };
        FoldedMlp::new([plain(&layers[0])?, plain(&layers[1])?, plain(&layers[2])?])
    }

    /// Whether [`Self::folded`] evaluates this model (`f32` weights on the CPU).
    fn runs_folded(&self) -> bool {
        self.device.is_cpu() && self.mlp.dtype == DType::F32
    }
}

impl ScoreModel for NoiseConditionalMlp {
    fn score(&self, x: &Tensor, levels: Option<&Tensor>) -> Result<Tensor> {
        match levels {
            Some(levels) => self.forward(x, levels),
            None => bail!("NoiseConditionalMlp: a noise-conditional model needs the level index of every point"),
        }
    }

    fn dtype(&self) -> DType {
        self.mlp.dtype
    }

    fn n_levels(&self) -> Option<usize> {
        Some(self.sigmas.len())
    }
}

/// The network as a score for the samplers: `s_theta(x, sigma_level)` on ndarray particles
/// ([`score_array`] on the model's device).
impl langevin::NoiseConditionalScore<Array2<f64>> for NoiseConditionalMlp {
    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// On the CPU in `f32`, the level is folded on every call; a sampler that calls this for
    /// every step should take [`NoiseConditionalMlp::sampling_scores`], which folds each level
    /// once.
    fn score(&self, x: &Array2<f64>, level: usize) -> langevin::Result<Array2<f64>> {
        if self.runs_folded() {
            return particle_scores(&self.folded(level)?, x);
        }
        let (n, d) = x.dim();
        if d != 2 {
            return Err(candle_core::Error::Msg(format!("expected particles with 2 columns, got {d}")).into());
        }
        let values: Vec<f64> = x.iter().copied().collect(); // row-major, whatever the strides
        let xt = Tensor::from_vec(values, (n, 2), &self.device)?.to_dtype(self.mlp.dtype)?;
        let s = self.forward_at_level(&xt, level)?.to_dtype(DType::F64)?;
        let flat = s.flatten_all()?.to_vec1::<f64>()?;
        Ok(Array2::from_shape_vec((n, 2), flat).map_err(|e| candle_core::Error::Msg(e.to_string()))?)
    }
}

/// The scores of 2D particles under a folded network (`f32` inside, `f64` in and out).
fn particle_scores(f: &FoldedMlp, x: &Array2<f64>) -> langevin::Result<Array2<f64>> {
    let (n, d) = x.dim();
    if d != 2 {
        return Err(candle_core::Error::Msg(format!("expected particles with 2 columns, got {d}")).into());
    }
    let values: Vec<f32> = x.iter().map(|&v| v as f32).collect(); // row-major
    let mut out = vec![0f32; values.len()];
    f.forward(&values, &mut out);
    Ok(Array2::from_shape_vec((n, 2), out.into_iter().map(f64::from).collect())
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?)
}

/// A noise-conditional MLP's scores as a sampler calls them, level after level: on the CPU in
/// `f32` every level folded once, when this is made (so a snapshot of the weights: make it after
/// training), instead of once per Langevin step; elsewhere the model itself.
#[derive(Debug)]
pub struct SamplingScores<'a> {
    model: &'a NoiseConditionalMlp,
    levels: Option<Vec<FoldedMlp>>,
}

/// The parameters a written-out training step reads ([`crate::dsm_step`]): the three layers'
/// weights `(out, in)` and biases, the level embedding's tables `(L, hidden)`, `c_in` `(L,)` and,
/// for [`Conditioning::EmbeddingOverSigma`], the sigmas the output is divided by `(L,)`.
pub(crate) struct DsmParts<'a> {
    pub weights: [&'a Tensor; 3],
    pub biases: [&'a Tensor; 3],
    pub gamma: [&'a Tensor; 2],
    pub beta: [&'a Tensor; 2],
    pub c_in: &'a Tensor,
    pub over_sigma: Option<&'a Tensor>,
}

impl NoiseConditionalMlp {
    /// The parts of a model with a level embedding, in `f32` on the CPU; `None` for any other.
    pub(crate) fn dsm_parts(&self) -> Option<DsmParts<'_>> {
        let Conditioner::Embedding(e) = &self.conditioner else {
            return None;
        };
        if !self.runs_folded() {
            return None;
        }
        let m = &self.mlp;
        Some(DsmParts {
            weights: [m.lin1.weight(), m.lin2.weight(), m.lin3.weight()],
            biases: [m.lin1.bias(), m.lin2.bias(), m.lin3.bias()],
            gamma: [&e.gamma[0], &e.gamma[1]],
            beta: [&e.beta[0], &e.beta[1]],
            c_in: &e.c_in,
            over_sigma: e.over_sigma.as_ref(),
        })
    }

    /// The scores for a sampler ([`SamplingScores`]).
    pub fn sampling_scores(&self) -> Result<SamplingScores<'_>> {
        let levels = match self.runs_folded() {
            true => Some((0..self.sigmas.len()).map(|l| self.folded(l)).collect::<Result<_>>()?),
            false => None,
        };
        Ok(SamplingScores { model: self, levels })
    }
}

impl langevin::NoiseConditionalScore<Array2<f64>> for SamplingScores<'_> {
    fn sigmas(&self) -> &[f64] {
        &self.model.sigmas
    }

    fn score(&self, x: &Array2<f64>, level: usize) -> langevin::Result<Array2<f64>> {
        match &self.levels {
            Some(levels) => match levels.get(level) {
                Some(f) => particle_scores(f, x),
                None => Err(candle_core::Error::Msg(format!(
                    "NoiseConditionalMlp: level {level} out of range, the model has {} noise levels",
                    levels.len()
                ))
                .into()),
            },
            None => langevin::NoiseConditionalScore::score(self.model, x, level),
        }
    }
}

fn check_points(x: &Tensor) -> Result<()> {
    match x.dims() {
        [_, 2] => Ok(()),
        dims => bail!("score model: expected points of shape (N, 2), got {dims:?}"),
    }
}

/// A `VarBuilder` over a fresh `VarMap` whose variables are drawn from a generator seeded by
/// one draw of `rng` ([`workbench::init::SeededVarMap`]): the same `rng` state gives the same
/// model.
fn seeded_builder<R: Rng + ?Sized>(rng: &mut R, dtype: DType, device: &Device) -> (VarMap, VarBuilder<'static>) {
    let varmap = VarMap::new();
    let vb = workbench::init::seeded_var_builder(&varmap, rng.random(), dtype, device);
    (varmap, vb)
}

/// Evaluates a model on ndarray points `x` of shape `(N, 2)` (`level`: the noise index for
/// conditional models, the same for every point). Returns the scores in `f64`.
pub fn score_array(
    model: &dyn ScoreModel,
    x: ArrayView2<f64>,
    level: Option<usize>,
    device: &Device,
) -> Result<Array2<f64>> {
    let (n, d) = x.dim();
    if d != 2 {
        bail!("score_array: expected points with 2 columns, got {d}");
    }
    let levels = match (model.n_levels(), level) {
        (Some(l), Some(i)) if i < l => Some(Tensor::from_vec(vec![i as u32; n], n, device)?),
        (Some(l), Some(i)) => bail!("score_array: level {i} out of range, the model has {l} noise levels"),
        (Some(_), None) => bail!("score_array: a noise-conditional model needs a level"),
        (None, _) => None,
    };
    let values: Vec<f64> = x.iter().copied().collect(); // row-major, whatever the view's strides
    let xt = Tensor::from_vec(values, (n, 2), device)?.to_dtype(model.dtype())?;
    let s = model.score(&xt, levels.as_ref())?;
    if s.dims() != [n, 2] {
        bail!(
            "score_array: the model returned shape {:?}, expected ({n}, 2)",
            s.dims()
        );
    }
    let flat = s.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Array2::from_shape_vec((n, 2), flat).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn folding_the_level_into_the_weights_gives_the_general_forward() {
        let dev = Device::Cpu;
        let sigmas = [5.0, 1.0, 0.2];
        for conditioning in [
            Conditioning::Embedding,
            Conditioning::DivideBySigma,
            Conditioning::EmbeddingOverSigma,
        ] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let (model, varmap) =
                NoiseConditionalMlp::seeded(64, &sigmas, conditioning, DType::F32, &dev, &mut rng).unwrap();
            // Scales and shifts away from their identity start, so that the fold has work to do.
            for (name, var) in varmap.data().lock().unwrap().iter() {
                if name.starts_with("gamma") || name.starts_with("beta") {
                    let noise = langevin::randn_tensor(&mut rng, var.dims(), DType::F32, &dev).unwrap();
                    let start = if name.starts_with("gamma") { 1.0 } else { 0.0 };
                    var.set(&(noise * 0.5).unwrap().affine(1.0, start).unwrap()).unwrap();
                }
            }
            let x = (langevin::randn_tensor(&mut rng, &[300, 2], DType::F32, &dev).unwrap() * 3.0).unwrap();
            for level in 0..sigmas.len() {
                let levels = Tensor::from_vec(vec![level as u32; 300], 300, &dev).unwrap();
                let general = model.forward(&x, &levels).unwrap().to_vec2::<f32>().unwrap();
                let folded = model.forward_at_level(&x, level).unwrap().to_vec2::<f32>().unwrap();
                // The folds reorder a few f32 products per weight; each output is a sum of 64
                // terms of such products, so the two agree to some ulp of the output's scale.
                let scale = general.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
                for (g, f) in general.iter().flatten().zip(folded.iter().flatten()) {
                    assert!(
                        (g - f).abs() <= 64.0 * f32::EPSILON * scale,
                        "{conditioning:?} level {level}: {g} vs {f}"
                    );
                }
            }
            assert!(model.forward_at_level(&x, 3).is_err());
        }
    }

    /// `(s, m)` of the folded network in `f64` at the `f32` point `x`: the score and, per
    /// output, the same sums over absolute values (`|W| |h| + |b|` layer by layer), the scale
    /// of the rounding errors an `f32` evaluation makes.
    fn folded_in_f64(f: &FoldedMlp, x: [f32; 2]) -> ([f64; 2], [f64; 2]) {
        let softplus = |a: f64| a.max(0.0) + (-a.abs()).exp().ln_1p();
        let mut v: Vec<(f64, f64)> = x.iter().map(|&x| (x as f64, (x as f64).abs())).collect();
        for (k, layer) in f.layers.iter().enumerate() {
            let inp = v.len();
            v = layer
                .bias
                .iter()
                .enumerate()
                .map(|(j, &b)| {
                    let out = layer.bias.len();
                    let row = (0..inp).map(|k| layer.weight_t[k * out + j] as f64); // row j of W
                    let a: f64 = row.clone().zip(&v).map(|(w, h)| w * h.0).sum::<f64>() + b as f64;
                    let m: f64 = row.zip(&v).map(|(w, h)| w.abs() * h.1).sum::<f64>() + (b as f64).abs();
                    if k < 2 {
                        (softplus(a), m) // softplus is 1-Lipschitz: the input's error scale goes through
                    } else {
                        (a, m)
                    }
                })
                .collect();
        }
        ([v[0].0, v[1].0], [v[0].1, v[1].1])
    }

    #[test]
    fn the_cpu_blocks_match_the_f64_network_and_do_not_depend_on_the_number_of_points() {
        let dev = Device::Cpu;
        let sigmas = [5.0, 1.0, 0.2];
        let block = crate::folded::BLOCK;
        for (hidden, n) in [(48, 2 * block + 37), (256, 1000), (256, 4 * block + 1), (33, 1)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
            let (model, varmap) = NoiseConditionalMlp::seeded(
                hidden,
                &sigmas,
                Conditioning::EmbeddingOverSigma,
                DType::F32,
                &dev,
                &mut rng,
            )
            .unwrap();
            for (name, var) in varmap.data().lock().unwrap().iter() {
                if name.starts_with("gamma") || name.starts_with("beta") {
                    let noise = langevin::randn_tensor(&mut rng, var.dims(), DType::F32, &dev).unwrap();
                    var.set(&(noise * 0.5).unwrap().affine(1.0, 1.0).unwrap()).unwrap();
                }
            }
            let x = (langevin::randn_tensor(&mut rng, &[n, 2], DType::F64, &dev).unwrap() * 3.0).unwrap();
            let x32 = x.to_dtype(DType::F32).unwrap();
            let xv = x32.to_vec2::<f32>().unwrap();
            let particles = Array2::from_shape_vec((n, 2), x.flatten_all().unwrap().to_vec1::<f64>().unwrap()).unwrap();
            for level in 0..sigmas.len() {
                let case = format!("hidden {hidden}, {n} points, level {level}");
                let f = model.folded(level).unwrap();
                let blocks = model.forward_at_level(&x32, level).unwrap().to_vec2::<f32>().unwrap();
                let ops = model
                    .forward_at_level_ops(&x32, level)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                // Both within the rounding of an f32 evaluation of the f64 network: each layer
                // sums `in + 1` terms (error at most (in + 1) eps of the sum of their absolute
                // values), softplus adds 4 ulp and passes earlier errors with slope <= 1, so the
                // output is off by at most about (2 + 2 hidden + 3 + 8) eps times the absolute
                // sums `m`; twice that as the bound.
                let tol = (4.0 * hidden as f64 + 30.0) * f32::EPSILON as f64;
                for i in 0..n {
                    let (want, m) = folded_in_f64(&f, [xv[i][0], xv[i][1]]);
                    for c in 0..2 {
                        for (name, got) in [("blocks", blocks[i][c]), ("candle", ops[i][c])] {
                            assert!(
                                (got as f64 - want[c]).abs() <= tol * m[c],
                                "{case}, {name}, point {i}: {got} vs {}",
                                want[c]
                            );
                        }
                    }
                }
                // A point's score is the same bits alone, among the first few, and among all.
                for k in [1, 3.min(n), n] {
                    let few = model.forward_at_level(&x32.narrow(0, 0, k).unwrap(), level).unwrap();
                    assert_eq!(
                        few.to_vec2::<f32>().unwrap()[..],
                        blocks[..k],
                        "{case}: the first {k} points"
                    );
                }
                // The samplers' ndarray particles take the same path.
                let from_array = langevin::NoiseConditionalScore::score(&model, &particles, level).unwrap();
                for i in 0..n {
                    assert_eq!(
                        [from_array[[i, 0]] as f32, from_array[[i, 1]] as f32],
                        blocks[i][..],
                        "{case}: ndarray"
                    );
                }
            }
            assert!(langevin::NoiseConditionalScore::score(&model, &particles, 3).is_err());
            // Every level folded once gives the same bits as folding it per call.
            let once = model.sampling_scores().unwrap();
            for level in 0..sigmas.len() {
                let a = langevin::NoiseConditionalScore::score(&once, &particles, level).unwrap();
                let b = langevin::NoiseConditionalScore::score(&model, &particles, level).unwrap();
                assert_eq!(a, b, "hidden {hidden}, {n} points, level {level}: folded once");
            }
            assert!(langevin::NoiseConditionalScore::score(&once, &particles, 3).is_err());
        }
    }
}
