//! Flushing subnormal floats to zero, for the calling thread.
//!
//! A subnormal (denormal) float is one smaller in magnitude than the smallest normal number,
//! `f32::MIN_POSITIVE` ~ 1.2e-38. x86 CPUs handle arithmetic on them in microcode, tens to
//! hundreds of times slower than on normal numbers, and small networks produce them all the time:
//! a softplus unit far on its flat side has `softplus'(a) = sigmoid(a) ~ e^a`, and the gradients
//! that flow through it are products of such factors. A training run whose units saturate slows
//! down step by step as they appear (`toy2d`'s README measures it).
//!
//! Setting the CPU's flush-to-zero (results) and denormals-are-zero (inputs) modes replaces every
//! subnormal by a zero of the same sign. That changes numbers only below 1.2e-38, where they
//! carry no information for these models; TensorFlow sets the same modes on its CPU threads,
//! and PyTorch offers them as `torch.set_flush_denormal(True)`.
//!
//! The modes belong to a thread (x86's MXCSR register, aarch64's FPCR): call [`flush_to_zero`] on
//! every thread that computes, before it computes. Results are reproducible as long as the same
//! threads flush; a computation split between flushing and non-flushing threads may differ in
//! its subnormal results. Compile-time constant folding is not affected by the modes, so flush
//! only where values are computed at run time, as here (numbers are never folded from data).

/// Flush-to-zero (bit 15) and denormals-are-zero (bit 6) of x86's MXCSR.
#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

/// Turns on flush-to-zero for the calling thread; returns whether this CPU architecture has it
/// (x86-64 and aarch64; elsewhere nothing changes and subnormals stay).
pub fn flush_to_zero() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR into `csr`; ldmxcsr loads it back with two
        // mode bits set. Both touch only this thread's floating-point control state and the
        // 4 bytes given.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= MXCSR_FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
        }
        true
    }
    #[cfg(target_arch = "aarch64")]
    {
        // FPCR bit 24 (FZ) flushes subnormal inputs and results of single and double precision.
        let mut fpcr: u64;
        // SAFETY: reads and writes this thread's FPCR, setting only the FZ bit.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
            fpcr |= 1 << 24;
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack, preserves_flags));
        }
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// Half of the smallest normal f32, computed at run time: a subnormal unless flushed.
    fn half_smallest_normal() -> f32 {
        black_box(f32::MIN_POSITIVE) * black_box(0.5f32)
    }

    #[test]
    fn a_flushing_thread_gets_zero_where_others_get_a_subnormal() {
        // Each on its own thread: the mode is per thread and must not leak into other tests.
        let plain = std::thread::spawn(half_smallest_normal).join().unwrap();
        assert!(plain > 0.0 && !plain.is_normal(), "{plain:e}");
        let scaled = std::thread::spawn(|| black_box(f32::from_bits(1)) * black_box(16_777_216.0f32))
            .join()
            .unwrap();
        assert_eq!(scaled, 2.0f32.powi(-125));
        let (supported, flushed, input) = std::thread::spawn(|| {
            let supported = flush_to_zero();
            // Results: MIN_POSITIVE / 2 is flushed. Inputs: a subnormal operand counts as zero,
            // so the smallest subnormal 2^-149 times 2^24 is 0, not the normal 2^-125.
            let tiny = black_box(f32::from_bits(1));
            (supported, half_smallest_normal(), tiny * black_box(16_777_216.0f32))
        })
        .join()
        .unwrap();
        if supported {
            assert_eq!((flushed, input), (0.0, 0.0));
        } else {
            assert_eq!(flushed, plain);
        }
        // Normal numbers are untouched.
        let normal = std::thread::spawn(|| {
            flush_to_zero();
            black_box(3.0f32) * black_box(f32::MIN_POSITIVE)
        })
        .join()
        .unwrap();
        assert_eq!(normal, 3.0 * f32::MIN_POSITIVE);
        assert!(cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))) || supported);
    }
}
