//! The unit every Inception block is made of: convolution without bias, batch norm with its
//! running statistics (inference form), ReLU.
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// The batch norm's `eps` in the Inception graph (TensorFlow's 0.001, not PyTorch's 1e-5).
pub const BN_EPS: f64 = 1e-3;

/// `ReLU(BN(conv(x)))` with a `kh x kw` kernel, one stride for both axes and a zero padding
/// `(ph, pw)` per axis.
///
/// Parameters, under the block's path: `conv.weight` `[out, in, kh, kw]`, and `bn.weight`,
/// `bn.bias`, `bn.running_mean`, `bn.running_var`, each `[out]`. The norm uses the running
/// statistics only (inference):
///
/// ```text
/// y_c = ReLU( gamma_c * (z_c - mean_c) / sqrt(var_c + eps) + beta_c ),   z = conv(x)
///     = ReLU( s_c * z_c + t_c ),   s_c = gamma_c / sqrt(var_c + eps),   t_c = beta_c - mean_c * s_c
/// ```
///
/// `s` and `t` are recomputed at each call from the stored tensors (a few hundred numbers),
/// so a model whose variables are set after it is built (a `VarMap` being loaded) uses the
/// values set.
#[derive(Debug, Clone)]
pub struct BasicConv2d {
    weight: Tensor,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    stride: usize,
    padding: (usize, usize),
}

impl BasicConv2d {
    /// `in_channels -> out_channels` with a `kernel` of `(kh, kw)`, `stride` on both axes and
    /// `padding` `(ph, pw)` zeros on each side of the height and the width.
    ///
    /// On a fresh `VarMap` the weights start at zero and the norm at the identity
    /// (`gamma = 1`, `beta = 0`, `mean = 0`, `var = 1`): the network is meant to be loaded.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        stride: usize,
        padding: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_channels, in_channels, kernel.0, kernel.1),
            "conv.weight",
            Init::Const(0.0),
        )?;
        let bn = vb.pp("bn");
        let gamma = bn.get_with_hints(out_channels, "weight", Init::Const(1.0))?;
        let beta = bn.get_with_hints(out_channels, "bias", Init::Const(0.0))?;
        let running_mean = bn.get_with_hints(out_channels, "running_mean", Init::Const(0.0))?;
        let running_var = bn.get_with_hints(out_channels, "running_var", Init::Const(1.0))?;
        Ok(Self {
            weight,
            gamma,
            beta,
            running_mean,
            running_var,
            stride,
            padding,
        })
    }

    /// A `k x k` kernel with the same padding `p` on both axes.
    pub fn square(
        in_channels: usize,
        out_channels: usize,
        k: usize,
        stride: usize,
        p: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::new(in_channels, out_channels, (k, k), stride, (p, p), vb)
    }

    /// A 1x1 kernel: a per-pixel linear map of the channels.
    pub fn one_by_one(in_channels: usize, out_channels: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(in_channels, out_channels, (1, 1), 1, (0, 0), vb)
    }
}

impl Module for BasicConv2d {
    /// `[B, in, H, W] -> [B, out, (H + 2 ph - kh) / stride + 1, (W + 2 pw - kw) / stride + 1]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.padding;
        let z = if ph == pw {
            x.conv2d(&self.weight, ph, self.stride, 1, 1)?
        } else {
            // candle pads both axes alike; the 1x7 and 7x1 kernels pad only one: pad by hand.
            let padded = x.pad_with_zeros(2, ph, ph)?.pad_with_zeros(3, pw, pw)?;
            padded.conv2d(&self.weight, 0, self.stride, 1, 1)?
        };
        let s = (&self.gamma / (&self.running_var + BN_EPS)?.sqrt()?)?; // gamma / sqrt(var + eps)
        let t = (&self.beta - (&self.running_mean * &s)?)?; // beta - mean * s
        let c = s.dim(0)?;
        let s = s.reshape((1, c, 1, 1))?;
        let t = t.reshape((1, c, 1, 1))?;
        z.broadcast_mul(&s)?.broadcast_add(&t)?.relu() // ReLU(s z + t)
    }
}

/// `x` through `convs` in order: one branch of a block.
pub fn chain(convs: &[BasicConv2d], x: &Tensor) -> Result<Tensor> {
    convs.iter().try_fold(x.clone(), |x, conv| conv.forward(&x))
}
