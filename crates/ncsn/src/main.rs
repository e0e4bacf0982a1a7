//! `ncsn`: train the NCSN score network on images, sample and inpaint with it, measure its speed.
//!
//! ```text
//! cargo run --release -p ncsn -- train                         # the shipped MNIST digits
//! cargo run --release -p ncsn -- train --data data/cifar-10-batches-bin
//! cargo run --release -p ncsn -- train --config configs/cifar10.toml --device cuda
//! cargo run --release -p ncsn -- train --resume runs/cifar10
//! cargo run --release -p ncsn -- sample --checkpoint runs/mnist --n 64 --snapshots 100
//! cargo run --release -p ncsn -- inpaint --checkpoint runs/mnist --dataset data/mnist-5k-images-idx3-ubyte.gz
//! cargo run --release -p ncsn -- bench --ngf 128 --batch 16
//! ```
use std::process::ExitCode;

fn main() -> ExitCode {
    workbench::alloc::keep_freed_memory();
    workbench::pool::park_idle_workers();
    ncsn::cli::main()
}
