//! Per-layer timing hooks: how much of a forward pass each kind of module takes.
//!
//! Every module of the network wraps its work in [`timed`]. While no profile is being recorded
//! (the normal case) that is one thread-local lookup; between [`start_profile`] and
//! [`take_profile`] the wall time of each call is added to its [`LayerKind`]. Candle's CPU
//! backend runs eagerly, so the time of a call is the time of its ops. (On CUDA kernels run
//! asynchronously and these numbers would only show launch cost.)
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The kinds of module the profile tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerKind {
    /// 3x3 / 1x1 / dilated convolutions (with their bias).
    Conv,
    /// CondInstanceNorm++.
    Norm,
    /// The 5x5 stride-1 average pool of the chained residual pooling and the 2x2 mean pool.
    Pool,
    /// Bilinear resizing in the multi-resolution fusion.
    Resize,
    /// ELU activations.
    Elu,
}

impl LayerKind {
    /// All kinds, in display order.
    pub const ALL: [LayerKind; 5] = [Self::Conv, Self::Norm, Self::Pool, Self::Resize, Self::Elu];

    /// Lower-case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Conv => "conv",
            Self::Norm => "norm",
            Self::Pool => "pool",
            Self::Resize => "resize",
            Self::Elu => "elu",
        }
    }
}

/// Accumulated time and number of calls per kind.
pub type Profile = BTreeMap<LayerKind, (Duration, usize)>;

thread_local! {
    static PROFILE: RefCell<Option<Profile>> = const { RefCell::new(None) };
}

/// Starts recording on this thread (discarding any profile in progress).
pub fn start_profile() {
    PROFILE.with(|p| *p.borrow_mut() = Some(Profile::new()));
}

/// Stops recording on this thread and returns what was recorded (`None` if nothing was started).
pub fn take_profile() -> Option<Profile> {
    PROFILE.with(|p| p.borrow_mut().take())
}

/// Runs `f`, adding its wall time to `kind` when a profile is being recorded.
pub fn timed<T>(kind: LayerKind, f: impl FnOnce() -> T) -> T {
    let recording = PROFILE.with(|p| p.borrow().is_some());
    if !recording {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    PROFILE.with(|p| {
        if let Some(profile) = p.borrow_mut().as_mut() {
            let entry = profile.entry(kind).or_insert((Duration::ZERO, 0));
            entry.0 += elapsed;
            entry.1 += 1;
        }
    });
    out
}
