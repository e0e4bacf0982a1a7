//! Keeping freed tensor memory for reuse instead of returning it to the system.
//!
//! Every candle op on the CPU allocates its output, and a training step frees and reallocates
//! many blocks of the same sizes (the toys' small batches and the RefineNet's large
//! activations alike). With glibc's defaults, blocks above a (dynamic) threshold come from
//! `mmap` and are unmapped on `free`, and the top of the heap is trimmed, so each new tensor is
//! fresh memory whose every page faults, zero-filled, on first touch. Raising the thresholds
//! keeps freed blocks in the heap, where the next step's allocations of the same sizes find them.
//! The numbers computed do not change; `perf stat -e page-faults` shows the effect.

/// Asks glibc's `malloc` to keep freed memory: blocks up to 32 MiB (glibc's largest accepted
/// mmap threshold on 64-bit) come from the heap, and the heap keeps up to 2 GiB of free memory
/// untrimmed, growing 64 MiB at a time. A no-op on other C libraries. Call once, at the start of
/// a program, before other threads exist.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
