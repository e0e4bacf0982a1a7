//! Independent chains side by side: when the score of a particle depends on that particle alone
//! (an exact score, or a network evaluated row by row), the particles are independent Markov
//! chains, and a batch can be cut into blocks of rows that run to the end on their own, on as many
//! threads as there are cores, with no synchronisation between steps.
//!
//! Each block draws from its own ChaCha8 stream: one key is drawn from the caller's `rng`, and
//! block `b` uses stream `b` of that key. The blocks are cut by a fixed number of rows, never by
//! the number of threads, so the samples depend on the seed and the block size only: one thread
//! or sixteen give the same numbers, bit for bit.
use crate::error::invalid;
use crate::trajectory::{Snapshot, Trajectory};
use crate::Result;
use ndarray::{concatenate, s, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Rows per block for cheap per-particle scores: 20 blocks for the 1,280 particles of Fig. 3,
/// small enough to share out evenly on a busy machine, large enough (1 KB of `f64` pairs) that a
/// block's bookkeeping is nothing next to its 100,000 particle-steps.
pub const BLOCK: usize = 64;

/// Runs `chain(block, rng_b)` on blocks of `block` rows of `x0` on `threads` threads (`0`: every
/// core), each block with its own stream (see the module doc), and puts the rows back together:
/// the final particles and every snapshot, in the order of `x0`. `chain` is typically
/// [`crate::annealed_langevin_into`] or [`crate::langevin_into`] on one block.
pub fn in_blocks<F, R>(
    x0: ArrayView2<'_, f64>,
    block: usize,
    threads: usize,
    rng: &mut R,
    chain: F,
) -> Result<Trajectory<Array2<f64>>>
where
    F: Fn(Array2<f64>, &mut ChaCha8Rng) -> Result<Trajectory<Array2<f64>>> + Sync,
    R: Rng + ?Sized,
{
    if block == 0 {
        return Err(invalid("block", "expected at least one row per block"));
    }
    let n = x0.nrows();
    let n_blocks = n.div_ceil(block).max(1);
    let mut key = <ChaCha8Rng as SeedableRng>::Seed::default();
    rng.fill_bytes(&mut key);
    let run = |b: usize| {
        let mut rng_b = ChaCha8Rng::from_seed(key);
        rng_b.set_stream(b as u64);
        let rows = x0.slice(s![b * block..((b + 1) * block).min(n), ..]);
        chain(rows.to_owned(), &mut rng_b)
    };
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    }
    .min(n_blocks);
    let mut done: Vec<(usize, Result<Trajectory<Array2<f64>>>)> = if threads <= 1 {
        (0..n_blocks).map(|b| (b, run(b))).collect()
    } else {
        // Each thread takes the next block until none is left.
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Vec::with_capacity(n_blocks));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= n_blocks {
                        break;
                    }
                    let out = run(b);
                    done.lock().unwrap_or_else(|e| e.into_inner()).push((b, out));
                });
            }
        });
        done.into_inner().unwrap_or_else(|e| e.into_inner())
    };
    done.sort_by_key(|(b, _)| *b);
    let parts: Vec<Trajectory<Array2<f64>>> = done.into_iter().map(|(_, t)| t).collect::<Result<_>>()?;
    let join = |views: Vec<ArrayView2<'_, f64>>| {
        concatenate(Axis(0), &views).map_err(|e| invalid("blocks", format!("cannot join the blocks: {e}")))
    };
    let samples = join(parts.iter().map(|t| t.samples.view()).collect())?;
    let mut snapshots = Vec::with_capacity(parts[0].snapshots.len());
    for (i, first) in parts[0].snapshots.iter().enumerate() {
        snapshots.push(Snapshot {
            level: first.level,
            step: first.step,
            sigma: first.sigma,
            x: join(parts.iter().map(|t| t.snapshots[i].x.view()).collect())?,
            denoised: match first.denoised {
                Some(_) => Some(join(
                    parts
                        .iter()
                        .map(|t| t.snapshots[i].denoised.as_ref().map(|d| d.view()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| invalid("blocks", "the blocks' snapshots disagree on the estimate"))?,
                )?),
                None => None,
            },
        });
    }
    Ok(Trajectory { samples, snapshots })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{annealed_langevin_into, AnnealedLangevin};

    fn run(threads: usize, block: usize) -> Trajectory<Array2<f64>> {
        let mut c = AnnealedLangevin::paper(vec![2.0, 1.0, 0.5]);
        c.eps = 0.05;
        c.steps_per_level = 20;
        c.record_every = Some(15);
        c.record_denoised = true;
        let x0 = Array2::from_shape_fn((150, 2), |(i, j)| (i as f64 - 75.0) / 10.0 + j as f64);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        in_blocks(x0.view(), block, threads, &mut rng, |xb, r| {
            // N(0, 1) data: the perturbed score is -x / (1 + sigma^2).
            annealed_langevin_into(
                xb,
                |x, _, s, out| {
                    out.zip_mut_with(x, |o, &v| *o = -v / (1.0 + s * s));
                    Ok(())
                },
                &c,
                r,
            )
        })
        .unwrap()
    }

    #[test]
    fn samples_do_not_depend_on_the_thread_count() {
        let one = run(1, 64);
        for threads in [2, 3, 7] {
            let many = run(threads, 64);
            assert_eq!(one.samples, many.samples, "threads = {threads}");
            assert_eq!(one.snapshots.len(), many.snapshots.len());
            for (a, b) in one.snapshots.iter().zip(&many.snapshots) {
                assert_eq!((a.step, &a.x, &a.denoised), (b.step, &b.x, &b.denoised));
            }
        }
        // The blocks' estimates are joined like their particles: x + sigma^2 s = x / (1 + sigma^2)
        // for N(0, 1) data, row for row, at every snapshot but the final one.
        let (last, steps) = one.snapshots.split_last().unwrap();
        assert!(last.denoised.is_none());
        for snap in steps {
            let want = snap.x.mapv(|v| v / (1.0 + snap.sigma * snap.sigma));
            let got = snap.denoised.as_ref().unwrap();
            let worst = (got - &want).mapv(f64::abs).fold(0.0_f64, |a, &b| a.max(b));
            assert!(worst < 1e-12, "step {}: {worst}", snap.step);
        }
        // 150 rows in blocks of 64: 3 blocks, rows in order; 60 steps recorded every 15 -> 4 + 1.
        assert_eq!(one.samples.dim(), (150, 2));
        assert_eq!(one.snapshots.len(), 5);
        // The first snapshot is the start: row 149 of x0.
        assert_eq!(one.snapshots[0].x[[149, 0]], 7.4);
        // A different block size is a different set of streams: other numbers.
        assert_ne!(one.samples, run(1, 50).samples);
    }

    #[test]
    fn blocks_draw_independent_streams() {
        // Two blocks started from the same points must not move identically.
        let x0 = Array2::<f64>::zeros((4, 2));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = in_blocks(x0.view(), 2, 2, &mut rng, |xb, r| {
            crate::langevin_into(
                xb,
                |x, out| {
                    out.zip_mut_with(x, |o, &v| *o = -v);
                    Ok(())
                },
                0.1,
                3,
                crate::StepConvention::Paper,
                None,
                r,
            )
        })
        .unwrap()
        .samples;
        assert_ne!(out.row(0), out.row(2));
        assert!(in_blocks(x0.view(), 0, 1, &mut rng, |xb, _| Ok(Trajectory {
            samples: xb,
            snapshots: vec![]
        }))
        .is_err());
    }
}
