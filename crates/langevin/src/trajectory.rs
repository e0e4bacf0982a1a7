//! What a sampler returns: the final particles and, if asked for, snapshots along the way.
//!
//! Plain Langevin ([`crate::dynamics`]), annealed Langevin ([`crate::annealed`]) and the blocks
//! of independent chains ([`crate::blocks`]) all return a [`Trajectory`].

/// The particles at one moment of a chain.
#[derive(Debug, Clone)]
pub struct Snapshot<X> {
    /// Noise level index (0-based).
    pub level: usize,
    /// Global step count when the snapshot was taken.
    pub step: usize,
    /// The level's sigma (NaN for plain Langevin).
    pub sigma: f64,
    /// The particles.
    pub x: X,
    /// Tweedie's estimate of the clean data from `x`, `x + sigma^2 s(x, sigma)` (the mean of the
    /// data given the noisy `x`), when the sampler was asked for it
    /// ([`crate::AnnealedLangevin::record_denoised`]); `None` otherwise and at the final snapshot.
    pub denoised: Option<X>,
}

/// The result of a sampler: final particles and the recorded snapshots.
#[derive(Debug, Clone)]
pub struct Trajectory<X> {
    /// The particles at the end (after the final denoising step if asked for).
    pub samples: X,
    /// Snapshots, in order, if recording was asked for.
    pub snapshots: Vec<Snapshot<X>>,
}
