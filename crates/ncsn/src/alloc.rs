//! Keeping freed tensor memory for reuse instead of returning it to the OS.
//!
//! Every candle op on the CPU allocates its output, and a training step of the RefineNet frees
//! and reallocates gigabytes of same-sized activations. glibc's `malloc` serves blocks above a
//! (dynamic) threshold with `mmap` and unmaps them on `free`, and trims the top of the heap, so
//! each new activation is fresh memory whose every page faults on first touch (millions of page
//! faults per step, and TLB shootdowns between the threads). Raising the thresholds keeps freed
//! blocks in the heap, where the next step's allocations of the same sizes find them.
//! `ncsn bench` shows the effect (`perf stat -e page-faults`).

/// Asks glibc's allocator to keep freed memory (blocks up to 32 MiB, glibc's maximum mmap
/// threshold, come from the heap; the heap is not trimmed below 2 GiB of free memory). Called
/// once at the start of the `ncsn` binary; a no-op on other C libraries.
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
