//! Batches for training and testing, drawn reproducibly from the project's seeded RNG.
//!
//! The training order is a fresh random permutation every epoch (the shipped MNIST file is
//! sorted by class, so this matters); epoch `e`'s permutation comes from its own ChaCha8
//! stream of the run's seed, so the loader's whole state is two numbers ([`LoaderState`]) that a
//! checkpoint stores. An epoch's last partial batch is skipped, so every batch is full.
//!
//! Each image becomes floats in `[0, 1]`. As the reference implementation does, pixels are
//! dequantised: `x = byte/255` becomes `x * 255/256 + u/256 = (byte + u)/256` with
//! `u ~ U[0, 1)`, which turns the 256 pixel values into a continuous density on `[0, 1]`; and
//! training images are flipped left-right with probability 1/2. Both are switchable.
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ImageSet;
use crate::error::Result;

/// Where a loader is in its data: epoch number and position in the epoch's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Epochs completed.
    pub epoch: u64,
    /// Images of the current epoch already used.
    pub cursor: usize,
}

/// Draws batches of an [`ImageSet`] as `f32` tensors `[B, C, H, W]` in `[0, 1]`.
pub struct Batcher {
    set: ImageSet,
    batch_size: usize,
    /// `Some(seed)`: shuffle every epoch; `None`: go through the images in order, wrapping around.
    shuffle_seed: Option<u64>,
    order: Vec<usize>,
    state: LoaderState,
    flip: bool,
    dequantize: bool,
}

impl Batcher {
    /// A training loader: a new permutation of `set` every epoch, full batches of `batch_size`
    /// (at most the set's size).
    pub fn shuffled(set: ImageSet, batch_size: usize, seed: u64, flip: bool, dequantize: bool) -> Self {
        let batch_size = batch_size.min(set.len()).max(1);
        let mut b = Self {
            order: Vec::new(),
            set,
            batch_size,
            shuffle_seed: Some(seed),
            state: LoaderState::default(),
            flip,
            dequantize,
        };
        b.restore(LoaderState::default());
        b
    }

    /// A test loader: the images in order, `batch_size` at a time (at most the set's size),
    /// wrapping around; never flipped.
    pub fn sequential(set: ImageSet, batch_size: usize, dequantize: bool) -> Self {
        let order = (0..set.len()).collect();
        Self {
            batch_size: batch_size.min(set.len()).max(1),
            set,
            shuffle_seed: None,
            order,
            state: LoaderState::default(),
            flip: false,
            dequantize,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.set.len()
    }
    /// Whether the set is empty (then [`Batcher::next_batch`] returns `None`).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    /// The position to store in a checkpoint.
    pub fn state(&self) -> LoaderState {
        self.state
    }

    /// Continues from a stored position (rebuilding that epoch's permutation).
    pub fn restore(&mut self, state: LoaderState) {
        self.state = state;
        if let Some(seed) = self.shuffle_seed {
            self.order = epoch_order(self.set.len(), seed, state.epoch);
        }
    }

    /// The next batch, with flips and dequantisation noise drawn from `rng`; `None` for an
    /// empty set.
    pub fn next_batch<R: Rng + ?Sized>(&mut self, rng: &mut R, device: &Device) -> Result<Option<Tensor>> {
        let n = self.set.len();
        if n == 0 {
            return Ok(None);
        }
        let indices: Vec<usize> = match self.shuffle_seed {
            Some(_) => {
                if self.state.cursor + self.batch_size > n {
                    self.restore(LoaderState {
                        epoch: self.state.epoch + 1,
                        cursor: 0,
                    });
                }
                self.order[self.state.cursor..self.state.cursor + self.batch_size].to_vec()
            }
            None => (0..self.batch_size)
                .map(|k| self.order[(self.state.cursor + k) % n])
                .collect(),
        };
        self.state.cursor += self.batch_size;
        if self.shuffle_seed.is_none() {
            self.state.cursor %= n;
        }
        let (c, h, w) = self.set.dims();
        let mut data = Vec::with_capacity(indices.len() * self.set.image_len());
        for &i in &indices {
            let flip = self.flip && rng.random::<bool>();
            let img = self.set.image(i);
            for row in img.chunks_exact(w) {
                for x in 0..w {
                    let byte = f32::from(row[if flip { w - 1 - x } else { x }]);
                    data.push(if self.dequantize {
                        // x * 255/256 + u/256 with x = byte/255, u ~ U[0, 1).
                        (byte + rng.random::<f32>()) / 256.0
                    } else {
                        byte / 255.0
                    });
                }
            }
        }
        Ok(Some(Tensor::from_vec(data, (indices.len(), c, h, w), device)?))
    }
}

/// Epoch `epoch`'s permutation of `0..n`: ChaCha8 seeded with `seed`, stream `epoch + 1`
/// (stream 0 is the training RNG's).
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch.wrapping_add(1));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 one-pixel-wide images whose bytes are their index times 10.
    fn tiny() -> ImageSet {
        ImageSet::new((0..10u8).flat_map(|i| [i * 10, i * 10 + 1]).collect(), 1, 1, 2).unwrap()
    }

    fn firsts(batch: &Tensor) -> Vec<f32> {
        batch
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .step_by(2)
            .collect()
    }

    #[test]
    fn every_epoch_is_a_new_permutation_of_full_batches() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut b = Batcher::shuffled(tiny(), 3, 7, false, false);
        let dev = Device::Cpu;
        let mut epoch0 = Vec::new();
        for _ in 0..3 {
            epoch0.extend(firsts(&b.next_batch(&mut rng, &dev).unwrap().unwrap()));
        }
        // 10 images, batches of 3: 3 batches an epoch, the 10th image waits for the next epoch.
        let fourth = b.next_batch(&mut rng, &dev).unwrap().unwrap();
        assert_eq!(b.state(), LoaderState { epoch: 1, cursor: 3 });
        let mut seen: Vec<u32> = epoch0.iter().map(|v| (v * 255.0).round() as u32).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "no image twice in an epoch: {epoch0:?}");
        assert_ne!(epoch_order(10, 7, 0), epoch_order(10, 7, 1), "each epoch reshuffles");
        assert_ne!(epoch_order(10, 7, 0), (0..10).collect::<Vec<_>>());
        // Restoring the state gives the same next batch.
        let mut again = Batcher::shuffled(tiny(), 3, 7, false, false);
        again.restore(LoaderState { epoch: 1, cursor: 0 });
        assert_eq!(
            firsts(&again.next_batch(&mut rng, &dev).unwrap().unwrap()),
            firsts(&fourth)
        );
    }

    #[test]
    fn dequantisation_stays_in_the_pixel_bin_and_flips_mirror() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let dev = Device::Cpu;
        let set = ImageSet::new(vec![0, 255, 0, 255], 1, 1, 2).unwrap();
        let mut b = Batcher::sequential(set.clone(), 2, true);
        let v = b.next_batch(&mut rng, &dev).unwrap().unwrap().flatten_all().unwrap();
        // byte 0 -> [0, 1/256), byte 255 -> [255/256, 1): exact bins, nothing outside [0, 1].
        for (i, x) in v.to_vec1::<f32>().unwrap().into_iter().enumerate() {
            let lo = if i % 2 == 0 { 0.0 } else { 255.0 / 256.0 };
            assert!(x >= lo && x < lo + 1.0 / 256.0, "pixel {i} = {x}");
        }
        // Without dequantisation, byte/255 exactly; with flips (p = 1/2), some images mirror.
        let mut flips = Batcher::shuffled(set, 2, 0, true, false);
        let mut mirrored = 0;
        for _ in 0..50 {
            let v = flips.next_batch(&mut rng, &dev).unwrap().unwrap();
            for px in v.flatten_all().unwrap().to_vec1::<f32>().unwrap().chunks(2) {
                assert!(px == [0.0, 1.0] || px == [1.0, 0.0], "{px:?}");
                mirrored += usize::from(px[0] == 1.0);
            }
        }
        // 100 fair coin flips: 50 +- 5 standard deviations is 25..75.
        assert!((25..=75).contains(&mirrored), "{mirrored} of 100 mirrored");
    }

    #[test]
    fn sequential_wraps_around() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut b = Batcher::sequential(tiny(), 4, false);
        let dev = Device::Cpu;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.extend(firsts(&b.next_batch(&mut rng, &dev).unwrap().unwrap()));
        }
        let idx: Vec<u32> = got.iter().map(|v| (v * 255.0 / 10.0).round() as u32).collect();
        assert_eq!(idx, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    }
}
