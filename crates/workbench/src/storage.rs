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

/// A copy of `y`, a value computed by candle (a fresh op output, contiguous from offset 0), as
/// the forward result of a custom op that only supplies the backward pass for it (the pattern of
/// `ncsn`'s convolution on GPUs and `toy2d`'s `matmul_wt`); `op` names the op in the error.
pub fn copy_fresh<S: BackendStorage>(op: &str, y: &S, ly: &Layout) -> Result<S> {
    if !ly.is_contiguous() || ly.start_offset() != 0 {
        bail!("{op}: the precomputed value must be contiguous")
    }
    y.try_clone(ly)
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
    #[test]
    fn a_fresh_value_is_copied_and_a_view_refused() {
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap();
        let (storage, layout) = t.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            panic!("cpu")
        };
        let copy = copy_fresh("test", cpu, layout).unwrap();
        assert_eq!(f32_slice("test", &copy, layout).unwrap(), &[0., 1., 2., 3., 4., 5.]);
        let view = t.narrow(0, 1, 3).unwrap();
        let (storage, layout) = view.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            panic!("cpu")
        };
        let err = copy_fresh("test", cpu, layout).unwrap_err().to_string();
        assert!(err.contains("test: the precomputed value must be contiguous"), "{err}");
    }
}
