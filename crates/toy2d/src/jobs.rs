//! Independent experiments (and the four data sets of `ncsn2d`) at once, on the available cores.
//!
//! Every part of every experiment draws from its own seeded stream ([`crate::experiments::Context::rng`])
//! and writes its own files, so the parts can run in any order and side by side: the files are the
//! same, byte for byte, as those of a sequential run (`--jobs 1`). Each part runs on its own
//! thread but computes only while it holds one of `jobs` [`Slots`]; waiting parts get a free slot
//! longest-first (by an estimate of their cost in seconds), which keeps both cores busy to the end.
//!
//! Progress bars of parts running together share one [`indicatif::MultiProgress`] ([`bar`]).
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, OnceLock};

/// At most `n` parts compute at once; a freed slot goes to the waiting part of largest cost.
#[derive(Debug)]
pub struct Slots {
    n: usize,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    busy: usize,
    /// Waiting parts as `(u64::MAX - cost, ticket)`: the first is the next to run.
    waiting: BTreeSet<(u64, u64)>,
    next_ticket: u64,
}

impl Slots {
    /// `n` slots (at least 1).
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// As many slots as the machine has cores.
    pub fn all_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The number of slots.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Runs `f` once a slot is free and no waiting part has a larger `cost`, with subnormal floats
    /// flushed to zero on this thread.
    pub fn run<T>(&self, cost: u64, f: impl FnOnce() -> T) -> T {
        let lock = || self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = lock();
        let key = (u64::MAX - cost, st.next_ticket);
        st.next_ticket += 1;
        st.waiting.insert(key);
        while st.busy >= self.n || st.waiting.first() != Some(&key) {
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting.remove(&key);
        st.busy += 1;
        self.freed.notify_all(); // the next waiting part may take another free slot
        drop(st);
        // Release on the way out, also when `f` panics.
        struct Release<'a>(&'a Slots);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
                st.busy -= 1;
                self.0.freed.notify_all();
            }
        }
        let _release = Release(self);
        // Every part computes with subnormals flushed to zero (`workbench::subnormal`: saturated
        // softplus units make them, and each costs the CPU a microcode assist). Each part runs on
        // its own thread, so the mode is set where it computes, whatever thread that is.
        workbench::subnormal::flush_to_zero();
        f()
    }
}

/// `f(item)` for every item, each on its own thread inside a slot of `slots` with its cost; the
/// results in the order of `items`.
pub fn map_parallel<I: Send, T: Send>(slots: &Slots, items: Vec<(u64, I)>, f: impl Fn(I) -> T + Sync) -> Vec<T> {
    if slots.count() == 1 {
        // One at a time anyway: in order, on this thread (still inside the slot).
        return items
            .into_iter()
            .map(|(cost, item)| slots.run(cost, || f(item)))
            .collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|(cost, item)| {
                let f = &f;
                scope.spawn(move || slots.run(cost, || f(item)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The one [`MultiProgress`] of the process (drawn on stderr when it is a terminal).
pub fn progress() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A progress bar of `len` ticks among the others.
pub fn bar(len: u64) -> ProgressBar {
    progress().add(ProgressBar::new(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_than_n_at_once_and_results_in_order() {
        let slots = Slots::new(2);
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let out = map_parallel(&slots, (0..8u64).map(|i| (i % 3, i)).collect(), |i| {
            let k = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(k, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
            i * 10
        });
        assert_eq!(out, (0..8).map(|i| i * 10).collect::<Vec<_>>());
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "{} at once",
            most.load(Ordering::SeqCst)
        );
    }
}
