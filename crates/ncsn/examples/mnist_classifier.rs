//! Trains the MNIST classifier whose features the project's MNIST FID uses, on the 4,500
//! training digits of the shipped data, and writes its weights.
//!
//! ```text
//! cargo run --release -p ncsn --example mnist_classifier                 # the shipped weights
//! cargo run --release -p ncsn --example mnist_classifier -- --seed 3 --out /tmp/w.safetensors
//! ```
//!
//! The digits and labels are `data/mnist-5k-*-idx*-ubyte.gz`, split as every NCSN run splits
//! them (`ncsn::data::holdout_indices(5000, 0.1)`: 4,500 train, 500 held out), the pixels
//! mapped to `byte / 255`. Prints each epoch's loss, the accuracy on the 500 held-out digits and
//! their confusion counts, then writes the weights atomically (f32 safetensors). The committed
//! weights are this command's output with the defaults; changing them changes every MNIST FID
//! (see `crates/quality/README.md`).
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use clap::Parser;
use ncsn::data::{holdout_indices, idx, shipped_mnist, Batcher, ImageSet};
use quality::mnist::{train, MnistClassifier, TrainClassifier, CLASSES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The shipped labels, beside the shipped images.
const LABELS_FILE: &str = "mnist-5k-labels-idx1-ubyte.gz";
/// Fraction of the digits held out, as NCSN runs hold them out (`test_fraction`).
const TEST_FRACTION: f64 = 0.1;

#[derive(Parser)]
#[command(about = "Train the MNIST classifier of the MNIST FID on the shipped digits")]
struct Args {
    /// Seed of the weights, the batch order and the shifts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the weights.
    #[arg(long, default_value = "crates/quality/weights/mnist-classifier.safetensors")]
    out: PathBuf,
    /// Passes over the 4,500 training digits.
    #[arg(long, default_value_t = TrainClassifier::default().epochs)]
    epochs: usize,
    /// Digits per step.
    #[arg(long, default_value_t = TrainClassifier::default().batch_size)]
    batch_size: usize,
    /// Adam's initial learning rate (a cosine takes it to 0).
    #[arg(long, default_value_t = TrainClassifier::default().lr)]
    lr: f64,
    /// Largest random shift of a training digit, in pixels, each direction.
    #[arg(long, default_value_t = TrainClassifier::default().max_shift)]
    max_shift: usize,
}

/// All images of `set` as one tensor `(N, C, H, W)` of `byte / 255`.
fn to_tensor(set: ImageSet) -> Result<Tensor> {
    let n = set.len();
    let mut batches = Batcher::sequential(set, n, false);
    let mut rng = ChaCha8Rng::seed_from_u64(0); // draws nothing: no flips, no dequantisation
    batches.next_batch(&mut rng, &Device::Cpu)?.context("no images")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let images_path = shipped_mnist()?;
    let labels_path = images_path.with_file_name(LABELS_FILE);
    let images = idx::load_images(&images_path)?;
    let labels = idx::load_labels(&labels_path)?;
    ensure!(
        images.len() == labels.len() && images.dims() == (1, 28, 28),
        "{} holds {} images of {:?}, {} holds {} labels: expected as many 1x28x28 images as labels",
        images_path.display(),
        images.len(),
        images.dims(),
        labels_path.display(),
        labels.len()
    );
    let (train_idx, test_idx) = holdout_indices(images.len(), TEST_FRACTION);
    let pick = |idx: &[usize]| idx.iter().map(|&i| labels[i]).collect::<Vec<u8>>();
    let (train_labels, test_labels) = (pick(&train_idx), pick(&test_idx));
    let train_x = to_tensor(images.select(&train_idx))?;
    let test_x = to_tensor(images.select(&test_idx))?;

    let config = TrainClassifier {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        max_shift: args.max_shift,
    };
    println!(
        "training on {} digits, testing on {} (seed {}, {config:?})",
        train_idx.len(),
        test_idx.len(),
        args.seed
    );
    let start = Instant::now();
    let trained = train(&train_x, &train_labels, &config, args.seed, |r| {
        println!(
            "epoch {:>2}: loss {:.4}, train accuracy {:.4} (shifted digits), lr {:.2e}, {:.0} s",
            r.epoch,
            r.mean_loss,
            r.train_accuracy,
            r.lr,
            start.elapsed().as_secs_f64()
        );
    })?;
    let seconds = start.elapsed().as_secs_f64();

    let predicted = trained.net.predict(&test_x, 250)?;
    // confusion[true][predicted]
    let mut confusion = [[0usize; CLASSES]; CLASSES];
    for (&t, &p) in test_labels.iter().zip(&predicted) {
        confusion[usize::from(t)][usize::from(p)] += 1;
    }
    let correct: usize = (0..CLASSES).map(|k| confusion[k][k]).sum();
    println!(
        "held-out accuracy: {correct}/{} = {:.4} after {seconds:.0} s of training",
        test_labels.len(),
        correct as f64 / test_labels.len() as f64
    );
    println!("confusion counts (rows: true digit, columns: predicted):");
    println!(
        "      {}   total",
        (0..CLASSES).map(|k| format!("{k:>4}")).collect::<String>()
    );
    for (k, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let cells: String = row.iter().map(|c| format!("{c:>4}")).collect();
        println!("   {k}: {cells}   {total:>4}  ({} correct)", row[k]);
    }

    MnistClassifier::save_weights(&trained.varmap, &args.out)?;
    // Read back what was written: the file must give the same predictions.
    let reloaded = MnistClassifier::load(&args.out, &Device::Cpu)?;
    ensure!(
        reloaded.predict(&test_x, 250)? == predicted,
        "{}: the written weights predict differently",
        args.out.display()
    );
    println!("wrote {}", args.out.display());
    Ok(())
}
