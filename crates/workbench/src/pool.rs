//! candle's CPU worker pool, told to sleep between ops instead of spinning.
//!
//! candle 0.11 splits its elementwise CPU ops over a pool of its own threads (`candle-bp-*`,
//! besides rayon's, which the `gemm` crate uses). Between two ops a worker spins up to
//! `CANDLE_BARRIER_POOL_SPIN_LIMIT` times (default 25,000 `pause` instructions, about a
//! millisecond) before it parks. On a machine with as many threads as cores, the spinning worker
//! takes a core from the matrix products that run in between: in `perf` of an MNIST training
//! step on two cores, 16% of the CPU time was that spin.
//!
//! The numbers computed do not change, only who waits how.

/// Sets `CANDLE_BARRIER_POOL_SPIN_LIMIT=0` (a worker parks as soon as it is idle) unless the
/// user set it. Call once, at the start of a program, before candle starts its pool and before
/// other threads exist.
pub fn park_idle_workers() {
    const KEY: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(KEY).is_none() {
        std::env::set_var(KEY, "0");
    }
}
