//! The shipped MNIST classifier (the feature space of the MNIST FID) on the 500 digits that every
//! NCSN run holds out: its accuracy is pinned, so that a change of the weights or of the network
//! (which changes every MNIST FID) fails here.
use candle_core::{Device, Tensor};
use ncsn::data::{holdout_indices, idx, shipped_mnist, Batcher, ImageSet};
use quality::mnist::{MnistClassifier, CLASSES, FEATURE_DIM, NAME};
use quality::FeatureNetwork;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Held-out digits the shipped weights classify correctly, of 500 (stated in
/// `crates/quality/README.md`).
const SHIPPED_CORRECT: usize = 490;
/// Units of fc1 that the ReLU zeroes on all 500 held-out digits (why the features are taken
/// before the ReLU).
const DEAD_AFTER_RELU: usize = 19;

/// All images of `set` as `(N, C, H, W)` of `byte / 255`.
fn to_tensor(set: ImageSet) -> Tensor {
    let n = set.len();
    let mut rng = ChaCha8Rng::seed_from_u64(0); // draws nothing: no flips, no dequantisation
    Batcher::sequential(set, n, false)
        .next_batch(&mut rng, &Device::Cpu)
        .unwrap()
        .unwrap()
}

/// The 500 held-out digits `(500, 1, 28, 28)` and their labels.
fn held_out() -> (Tensor, Vec<u8>) {
    let images_path = shipped_mnist().unwrap();
    let images = idx::load_images(&images_path).unwrap();
    let labels = idx::load_labels(&images_path.with_file_name("mnist-5k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.len(), images.len());
    let (_, test) = holdout_indices(images.len(), 0.1);
    let labels = test.iter().map(|&i| labels[i]).collect();
    (to_tensor(images.select(&test)), labels)
}

#[test]
fn shipped_weights_classify_the_held_out_digits() {
    let net = MnistClassifier::shipped(&Device::Cpu).unwrap();
    let (images, labels) = held_out();
    assert_eq!(images.dims(), [500, 1, 28, 28]);
    let predicted = net.predict(&images, 128).unwrap();
    let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert!(
        correct >= SHIPPED_CORRECT,
        "{correct}/500 held-out digits correct, the shipped weights reach {SHIPPED_CORRECT}"
    );
    // Every digit is predicted for some held-out image: no collapsed class.
    for k in 0..CLASSES as u8 {
        assert!(predicted.contains(&k), "digit {k} never predicted");
    }
}

#[test]
fn features_are_64_finite_numbers_that_all_vary() {
    let net = MnistClassifier::shipped(&Device::Cpu).unwrap();
    assert_eq!((net.name(), net.feature_dim()), (NAME, FEATURE_DIM));
    let (images, _) = held_out();
    let (features, logits) = net.features_and_logits(&images).unwrap();
    assert_eq!(features.dims(), [500, FEATURE_DIM]);
    assert_eq!(logits.dims(), [500, CLASSES]);
    let f = features.to_vec2::<f32>().unwrap();
    assert!(f.iter().flatten().all(|x| x.is_finite()));
    // A unit constant on the real digits would make the reference covariance singular. The
    // features are taken before fc1's ReLU because after it some units are: count them.
    let varies = |unit: usize, g: &dyn Fn(f32) -> f32| {
        let first = g(f[0][unit]);
        f.iter().any(|row| g(row[unit]) != first)
    };
    for unit in 0..FEATURE_DIM {
        assert!(
            varies(unit, &|x| x),
            "feature {unit} is constant on the held-out digits"
        );
    }
    let dead = (0..FEATURE_DIM).filter(|&u| !varies(u, &|x| x.max(0.0))).count();
    assert_eq!(
        dead, DEAD_AFTER_RELU,
        "units that are 0 after the ReLU on every held-out digit"
    );
}

#[test]
fn images_of_another_shape_are_refused_naming_what_is_expected() {
    let net = MnistClassifier::shipped(&Device::Cpu).unwrap();
    for dims in [(3, 32, 32), (1, 32, 32)] {
        let err = net.check_dims(dims).unwrap_err().to_string();
        let got = format!("{}x{}x{}", dims.0, dims.1, dims.2);
        assert!(err.contains("28x28 grayscale") && err.contains(&got), "{err}");
        let images = Tensor::zeros((2, dims.0, dims.1, dims.2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = net.features_and_logits(&images).unwrap_err().to_string();
        assert!(err.contains("28x28 grayscale") && err.contains(&got), "{err}");
    }
}
