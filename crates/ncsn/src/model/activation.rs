//! The network's one nonlinearity.
use candle_core::{Result, Tensor};

use super::profile::{timed, LayerKind};

/// `ELU(x) = x` for `x > 0`, `exp(x) - 1` otherwise (alpha = 1, PyTorch's `nn.ELU()` default).
pub fn elu(x: &Tensor) -> Result<Tensor> {
    timed(LayerKind::Elu, || x.elu(1.0))
}
