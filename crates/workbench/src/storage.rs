//! The elements of a contiguous tensor inside a custom op's CPU kernel (candle hands a
//! `CpuStorage` and a `Layout`; the kernels here work on plain slices).
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result};

/// The elements of a contiguous tensor's storage `data`; `op` names the kernel in the error.
pub fn slice<'a, T>(op: &str, data: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// [`slice()`], writable.
pub fn slice_mut<'a, T>(op: &str, data: &'a mut [T], l: &Layout) -> Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// The elements of a contiguous `f32` tensor; any other dtype is an error naming `op`.
pub fn f32_slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => slice(op, v, l),
        other => bail!("{op}: expected an f32 tensor, got {:?}", other.dtype()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn contiguous_tensors_give_their_elements_others_an_error() {
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let narrow = t.narrow(1, 1, 2).unwrap(); // not contiguous
        let row = t.narrow(0, 1, 1).unwrap(); // contiguous, at an offset
        let (s, l) = row.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*s else {
            panic!("cpu")
        };
        assert_eq!(f32_slice("test", cpu, l).unwrap(), &[3.0, 4.0, 5.0]);
        let (s, l) = narrow.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*s else {
            panic!("cpu")
        };
        let e = f32_slice("test", cpu, l).unwrap_err().to_string();
        assert!(e.contains("test: expected a contiguous tensor"), "{e}");
        let f64s = t.to_dtype(candle_core::DType::F64).unwrap();
        let (s, l) = f64s.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*s else {
            panic!("cpu")
        };
        assert!(f32_slice("test", cpu, l)
            .unwrap_err()
            .to_string()
            .contains("expected an f32 tensor"));
    }
}
