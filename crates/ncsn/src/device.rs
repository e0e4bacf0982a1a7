//! `--device cpu|cuda[:N]`.
use candle_core::Device;

use crate::error::{Error, Result};

/// The device named `name`: `cpu`, `cuda` (GPU 0) or `cuda:N`. Asking for CUDA from a build
/// without the `cuda` feature (or without a GPU) is an error that says how to get one.
pub fn parse_device(name: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => {
                return Err(Error::Device(format!(
                    "unknown device {name:?}: expected `cpu`, `cuda` or `cuda:N`"
                )))
            }
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::Device(
            "--device cuda: this ncsn binary was built without CUDA support. Build it with the `cuda` \
             feature: cargo run --release -p ncsn --features cuda -- train --device cuda ..."
                .into(),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open CUDA device {ordinal}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_bad_names_are_errors() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        let err = parse_device("gpu").unwrap_err().to_string();
        assert!(err.contains("\"gpu\"") && err.contains("cuda"), "{err}");
        #[cfg(not(feature = "cuda"))]
        {
            let err = parse_device("cuda").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
