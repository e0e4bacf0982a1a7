//! Convolutions with PyTorch's default initialisation, and the reference's `ConvMeanPool`.
use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::pool::mean_pool2;
use super::profile::{timed, LayerKind};
use super::same_conv::same_conv2d;

/// The bound of PyTorch's default `nn.Conv2d` initialisation: weights and biases are drawn from
/// `U(-b, b)` with `b = 1 / sqrt(fan_in)`, `fan_in = in_channels * k * k`
/// (kaiming_uniform with `a = sqrt(5)`: `b = sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(fan_in)`).
pub fn pytorch_conv_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}

/// A 2D convolution, stride 1, "same" padding (`padding = dilation * (k - 1) / 2`), with or
/// without bias: `y[o] = b[o] + sum_{i, u, v} w[o, i, u, v] x[i, . + d u - p, . + d v - p]`.
///
/// Parameters `weight` `[out, in, k, k]` and (optionally) `bias` `[out]`, as PyTorch names them.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    dilation: usize,
}

impl Conv2d {
    /// `in_channels -> out_channels` with a `kernel x kernel` window (odd) and the given dilation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        dilation: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bound = pytorch_conv_bound(in_channels * kernel * kernel);
        let init = Init::Uniform { lo: -bound, up: bound };
        let weight = vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_channels, "bias", init)?)
        } else {
            None
        };
        Ok(Self { weight, bias, dilation })
    }

    /// Applies the convolution to `x` `[B, in, H, W]`, giving `[B, out, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        timed(LayerKind::Conv, || {
            // y[b, o, h, w] = bias[o] + sum_{i, u, v} w[o, i, u, v] x[b, i, h + d u - p, w + d v - p]
            same_conv2d(x, &self.weight, self.bias.as_ref(), self.dilation)
        })
    }
}

/// The reference's `conv3x3`: 3x3, padding 1, no bias unless asked.
pub fn conv3x3(in_channels: usize, out_channels: usize, bias: bool, vb: VarBuilder) -> Result<Conv2d> {
    Conv2d::new(in_channels, out_channels, 3, 1, bias, vb)
}

/// The reference's `dilated_conv3x3`: 3x3 with dilation `d` and padding `d`, with bias.
pub fn dilated_conv3x3(in_channels: usize, out_channels: usize, dilation: usize, vb: VarBuilder) -> Result<Conv2d> {
    Conv2d::new(in_channels, out_channels, 3, dilation, true, vb)
}

/// Convolution, then the mean of each 2x2 block (halves height and width):
/// `y = (c[::2, ::2] + c[1::2, ::2] + c[::2, 1::2] + c[1::2, 1::2]) / 4` with `c = conv(x)`.
/// The convolution is stored under `conv.` (`conv.weight`, `conv.bias`), as in the reference.
#[derive(Debug, Clone)]
pub struct ConvMeanPool {
    conv: Conv2d,
}

impl ConvMeanPool {
    /// `kernel` is 3 for the main path and 1 for the shortcut of a downsampling block.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(in_channels, out_channels, kernel, 1, true, vb.pp("conv"))?,
        })
    }

    /// `[B, in, H, W] -> [B, out, H/2, W/2]` (H and W even).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        mean_pool2(&self.conv.forward(x)?)
    }
}
