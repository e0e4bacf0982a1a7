//! `--device cpu|cuda[:N]`: the one parser both command lines use.
use candle_core::Device;

use crate::{Error, Result};

/// The device named `name`: `cpu`, `cuda` (GPU 0) or `cuda:N`. Asking for CUDA from a build
/// without CUDA support (the `cuda` feature) or without a GPU is an error that says how to get
/// one; `program` (e.g. `ncsn`) names the binary to rebuild.
pub fn parse_device(name: &str, program: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => {
                return Err(Error::Device(format!(
                    "--device: unknown device {name:?}: expected `cpu`, `cuda` or `cuda:N`"
                )))
            }
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::Device(format!(
            "--device {name}: this {program} binary was built without CUDA support. Build it with the \
             `cuda` feature (cargo run --release -p {program} --features cuda -- ...) or use --device cpu"
        )));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| Error::Device(format!("--device {name}: cannot open CUDA device {ordinal}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_device("cpu", "x").unwrap().is_cpu());
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            let err = parse_device(bad, "x").unwrap_err().to_string();
            assert!(err.contains("expected `cpu`, `cuda` or `cuda:N`"), "{bad}: {err}");
        }
        if !candle_core::utils::cuda_is_available() {
            let err = parse_device("cuda:1", "ncsn").unwrap_err().to_string();
            assert!(err.contains("--features cuda") && err.contains("-p ncsn"), "{err}");
        }
    }
}
