//! The C allocator's settings for many small tensors.
//!
//! Every candle op allocates its output (64 KB for a 128 x 128 batch of `f32`). With glibc's
//! defaults, freeing the top of the heap gives the memory back to the system (`brk`) and the next
//! op faults it in again, page by page, zero-filled: on the toys' training steps that was about a
//! sixth of the CPU time (perf: `__brk`, `exc_page_fault`, `clear_page_erms`). Keeping freed memory
//! (a trim threshold and a top pad of a few tens of MB, no `mmap` for blocks under that) removes it.
//! The numbers computed do not change.

/// Tells glibc's `malloc` to keep freed memory for reuse (no-op elsewhere). Call once, early.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before the worker threads
    // start. glibc refuses an mmap threshold above 32 MiB (its maximum on 64-bit), so that one is
    // 32 MiB; the trim threshold and top pad keep 64 MiB.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}
