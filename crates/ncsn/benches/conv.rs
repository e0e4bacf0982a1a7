//! Speed of the network's convolution on every shape of the paper's CIFAR-10 model:
//! `cargo bench -p ncsn --bench conv` (a table), or with `-- --json` one JSON object per shape
//! (what `scripts/bench_torch.py` reads when it runs this side by side with PyTorch).
//!
//! Flags after `--`: `--batch N` (16), `--reps N` (timed repetitions, 5; the median is
//! reported), `--candle` (also time candle's own `conv2d` and its backward, the path the model
//! used before), `--only NAME` (one shape), `--mnist` (the MNIST recipe's shapes instead; use
//! `--batch 64`), `--ab` (the passes with and without the direct kernels of
//! `same_conv/direct.rs`, one call of each in turn, `--reps` pairs: the medians and the median
//! of the pairs' ratios, for the forward pass and for forward + backward).
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use ncsn::model::same_conv::{same_conv2d, same_conv2d_backward, set_direct};
use rand::{Rng, SeedableRng};

/// A convolution of the CIFAR-10 model (ngf 128): name, C_in, C_out, H = W, kernel, dilation.
pub const SHAPES: [(&str, usize, usize, usize, usize, usize); 10] = [
    ("stem 3->128 32x32 k3", 3, 128, 32, 3, 1),
    ("128->128 32x32 k3", 128, 128, 32, 3, 1),
    ("128->256 32x32 k3 (down)", 128, 256, 32, 3, 1),
    ("128->256 32x32 k1 (shortcut)", 128, 256, 32, 1, 1),
    ("256->256 16x16 k3", 256, 256, 16, 3, 1),
    ("256->256 16x16 k3 d2", 256, 256, 16, 3, 2),
    ("256->256 16x16 k3 d4", 256, 256, 16, 3, 4),
    ("256->128 16x16 k3", 256, 128, 16, 3, 1),
    ("128->128 32x32 k1", 128, 128, 32, 1, 1),
    ("head 128->3 32x32 k3", 128, 3, 32, 3, 1),
];

/// Convolutions of the MNIST recipe's network (ngf 16, 1x28x28; `--mnist`, batch 64): its 3x3
/// shapes and a 1x1 shortcut.
pub const MNIST_SHAPES: [(&str, usize, usize, usize, usize, usize); 7] = [
    ("mnist 16->16 28x28 k3", 16, 16, 28, 3, 1),
    ("mnist 16->32 28x28 k3", 16, 32, 28, 3, 1),
    ("mnist 32->32 14x14 k3", 32, 32, 14, 3, 1),
    ("mnist 32->32 14x14 k3 d2", 32, 32, 14, 3, 2),
    ("mnist 32->32 14x14 k3 d4", 32, 32, 14, 3, 4),
    ("mnist 32->16 28x28 k3", 32, 16, 28, 3, 1),
    ("mnist 16->16 28x28 k1", 16, 16, 28, 1, 1),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?; // warm-up
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // the allocator setting of `ncsn train` (workbench::alloc), so that a convolution is timed
    // as a training step runs it, without fresh pages for each new tensor
    workbench::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this without it: skip then.
    if !args.iter().any(|a| a == "--bench") {
        return Ok(());
    }
    let batch: usize = flag(&args, "--batch").map_or(Ok(16), |v| v.parse())?;
    let reps: usize = flag(&args, "--reps").map_or(Ok(5), |v| v.parse())?;
    let only = flag(&args, "--only");
    let json = args.iter().any(|a| a == "--json");
    let candle = args.iter().any(|a| a == "--candle");
    let ab = args.iter().any(|a| a == "--ab");
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut rand = |shape: &[usize]| -> candle_core::Result<Tensor> {
        let n = shape.iter().product();
        Tensor::from_vec(
            (0..n).map(|_| rng.random::<f32>() - 0.5).collect::<Vec<_>>(),
            shape,
            &dev,
        )
    };
    if !json {
        println!(
            "batch {batch}, {} threads, median of {reps} (ms)",
            candle_core::utils::get_num_threads()
        );
        println!("{:<30} {:>9} {:>11}", "shape", "forward", "fwd+bwd");
    }
    let shapes: &[_] = if args.iter().any(|a| a == "--mnist") {
        &MNIST_SHAPES
    } else {
        &SHAPES
    };
    for &(name, cin, cout, hw, k, d) in shapes {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let x = Var::from_tensor(&rand(&[batch, cin, hw, hw])?)?;
        let w = Var::from_tensor(&(rand(&[cout, cin, k, k])? * (1.0 / ((cin * k * k) as f64).sqrt()))?)?;
        let dy = rand(&[batch, cout, hw, hw])?;
        // Forward; forward + backward given the output's gradient dy (what autograd runs, as
        // PyTorch's `y.backward(dy)`).
        if ab {
            // the direct passes against im2col + gemm, call by call in turn: the forward pass,
            // and forward + backward
            let both = || -> candle_core::Result<()> {
                let _ = same_conv2d(&x, &w, None, d)?;
                let _ = same_conv2d_backward(&x, &w, &dy, d)?;
                Ok(())
            };
            let mut line = format!("{name:<30}");
            for pass in ["fwd", "fwd+bwd"] {
                let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..reps {
                    let mut pair = [0.0; 2];
                    for (slot, direct) in [(0, true), (1, false)] {
                        set_direct(direct);
                        let run = || {
                            if pass == "fwd" {
                                same_conv2d(&x, &w, None, d).map(|_| ())
                            } else {
                                both()
                            }
                        };
                        run()?; // warm-up of this path
                        pair[slot] = time(1, run)?;
                    }
                    on.push(pair[0]);
                    off.push(pair[1]);
                    ratios.push(pair[0] / pair[1]);
                }
                line += &format!(
                    "  {pass} direct {:>7.2} im2col {:>7.2} ratio {:.3}",
                    median(on),
                    median(off),
                    median(ratios)
                );
            }
            set_direct(true);
            println!("{line}");
            continue;
        }
        let fwd = time(reps, || same_conv2d(&x, &w, None, d).map(|_| ()))?;
        let both = time(reps, || {
            let y = same_conv2d(&x, &w, None, d)?;
            let (dx, dw) = same_conv2d_backward(&x, &w, &dy, d)?;
            assert!(dx.dims() == x.dims() && dw.dims() == w.dims() && y.dims() == dy.dims());
            Ok(())
        })?;
        let p = d * (k - 1) / 2;
        let (cfwd, cboth) = if candle {
            let f = time(reps, || x.conv2d(&w, p, 1, d, 1).map(|_| ()))?;
            let b = time(reps, || {
                // candle differentiates conv2d itself; sum(y * dy) seeds dy (one product and one sum more).
                (x.conv2d(&w, p, 1, d, 1)? * &dy)?.sum_all()?.backward()?;
                Ok(())
            })?;
            (Some(f), Some(b))
        } else {
            (None, None)
        };
        if json {
            let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.4}"));
            println!(
                "{{\"name\": \"{name}\", \"batch\": {batch}, \"cin\": {cin}, \"cout\": {cout}, \"hw\": {hw}, \"k\": {k}, \"d\": {d}, \"fwd_ms\": {fwd:.4}, \"fwdbwd_ms\": {both:.4}, \"candle_fwd_ms\": {}, \"candle_fwdbwd_ms\": {}}}",
                opt(cfwd),
                opt(cboth)
            );
        } else {
            print!("{name:<30} {fwd:>9.2} {both:>11.2}");
            if let (Some(f), Some(b)) = (cfwd, cboth) {
                print!("   candle: {f:>9.2} {b:>11.2}");
            }
            println!();
        }
    }
    Ok(())
}
