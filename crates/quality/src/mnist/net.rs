//! The MNIST classifier: the network, its weights on disk, and the [`FeatureNetwork`] it is to
//! the metrics.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, VarMap};
use workbench::init::seeded_var_builder;
use workbench::vars::{load_named, named_vars};

use crate::{Error, FeatureNetwork, Result};

/// The network's name, stored with feature statistics: statistics of other weights or another
/// architecture are never compared with these. Change it when the weights change.
pub const NAME: &str = "mnist-lenet-v1 (smld)";
/// Length of a feature vector: the width of the penultimate layer.
pub const FEATURE_DIM: usize = 64;
/// Number of classes, the digits 0 to 9.
pub const CLASSES: usize = 10;
/// Channels of the first convolution.
const C1: usize = 8;
/// Channels of the second convolution.
const C2: usize = 16;
/// The input a network measures: one channel of 28x28.
const INPUT_DIMS: (usize, usize, usize) = (1, 28, 28);

/// The committed weights (`crates/quality/weights/mnist-classifier.safetensors`, f32), embedded
/// in the library so that every build measures digits in the same feature space.
pub const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../weights/mnist-classifier.safetensors");
/// Where the embedded weights come from, for error messages.
const SHIPPED_PATH: &str = "crates/quality/weights/mnist-classifier.safetensors (embedded)";

/// A LeNet-like classifier of 28x28 grayscale digits with values in `[0, 1]` (see the module
/// docs of [`crate::mnist`] for the layers and shapes).
#[derive(Debug, Clone)]
pub struct MnistClassifier {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl MnistClassifier {
    /// The network with parameters from `vb`, named after the layers: `conv1.weight`,
    /// `conv1.bias`, `conv2.*`, `fc1.*`, `fc2.*` (candle's default initialisation hints: Kaiming
    /// normal weights, uniform biases; a seeded builder draws them reproducibly).
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let pad2 = Conv2dConfig {
            padding: 2,
            ..Default::default()
        };
        Ok(Self {
            conv1: candle_nn::conv2d(1, C1, 5, pad2, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(C1, C2, 5, Conv2dConfig::default(), vb.pp("conv2"))?,
            fc1: candle_nn::linear(C2 * 5 * 5, FEATURE_DIM, vb.pp("fc1"))?,
            fc2: candle_nn::linear(FEATURE_DIM, CLASSES, vb.pp("fc2"))?,
        })
    }

    /// The weights that ship with the crate ([`SHIPPED_WEIGHTS`]), on `device`.
    pub fn shipped(device: &Device) -> Result<Self> {
        Self::from_safetensors(SHIPPED_WEIGHTS, Path::new(SHIPPED_PATH), device)
    }

    /// Weights from a safetensors file (as [`MnistClassifier::save_weights`] writes it). Errors
    /// name the file and, for a missing, misshapen, non-finite or unexpected tensor, the tensor.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_safetensors(&bytes, path, device)
    }

    /// Weights from the bytes of a safetensors file; `origin` names it in errors.
    pub fn from_safetensors(bytes: &[u8], origin: &Path, device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, device)
            .map_err(|e| Error::file(origin, format!("is not a safetensors file: {e}")))?;
        // Build the network (the initial values do not matter: every one is overwritten), then
        // set each parameter from the tensor of its name.
        let varmap = VarMap::new();
        let net = Self::new(seeded_var_builder(&varmap, 0, DType::F32, device))?;
        let vars = named_vars(&varmap);
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        if let Some(extra) = names.iter().find(|n| !vars.iter().any(|(v, _)| v == **n)) {
            let expected: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::file(
                origin,
                format!(
                    "holds tensor `{extra}`, which {NAME} does not have (expected exactly {})",
                    expected.join(", ")
                ),
            ));
        }
        load_named(&vars, &tensors, "").map_err(|e| Error::file(origin, format!("{e} (network {NAME})")))?;
        Ok(net)
    }

    /// Writes the parameters of `varmap` (a network built by [`MnistClassifier::new`] over it) to
    /// `path` as f32 safetensors, atomically: a reader sees the old file or the new one.
    pub fn save_weights(varmap: &VarMap, path: &Path) -> Result<()> {
        let tensors = named_vars(varmap)
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
            .collect::<candle_core::Result<HashMap<String, Tensor>>>()?;
        workbench::write_atomic_with(path, |tmp| {
            candle_core::safetensors::save(&tensors, tmp)
                .map_err(|e| Error::file(path, format!("cannot write the weights: {e}")))
        })
    }

    /// The device the parameters are on.
    pub fn device(&self) -> &Device {
        self.fc2.weight().device()
    }

    /// Features `(N, 64)` of images `(N, 1, 28, 28)`: the penultimate layer `fc1`, before its
    /// ReLU. (After the ReLU some units are 0 on every real digit, which would make the
    /// covariance of the Fréchet distance singular; before it, every unit varies.)
    pub fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.conv1.forward(x)?.relu()?.max_pool2d(2)?; // (N, 8, 28, 28) -> (N, 8, 14, 14)
        let x = self.conv2.forward(&x)?.relu()?.max_pool2d(2)?; // (N, 16, 10, 10) -> (N, 16, 5, 5)
        let x = x.flatten_from(1)?; // (N, 400)
        self.fc1.forward(&x) // (N, 64) = x W1^T + b1
    }

    /// Logits `(N, 10)` of features `(N, 64)`: `relu(features) W2^T + b2`.
    pub fn logits(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&features.relu()?)
    }

    /// The predicted digit of each image `(N, 1, 28, 28)`, `argmax_k logits_k`, computed
    /// `batch_size` images at a time.
    pub fn predict(&self, images: &Tensor, batch_size: usize) -> Result<Vec<u8>> {
        let n = images.dim(0)?;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(batch_size.max(1)) {
            let batch = images.narrow(0, start, batch_size.min(n - start))?;
            let (_, logits) = self.features_and_logits(&batch)?;
            out.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?.into_iter().map(|k| k as u8));
        }
        Ok(out)
    }
}

impl Module for MnistClassifier {
    /// Logits `(N, 10)` of images `(N, 1, 28, 28)` in `[0, 1]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.logits(&self.features(x)?)
    }
}

impl FeatureNetwork for MnistClassifier {
    fn name(&self) -> &str {
        NAME
    }

    fn feature_dim(&self) -> usize {
        FEATURE_DIM
    }

    fn check_dims(&self, (c, h, w): (usize, usize, usize)) -> Result<()> {
        if (c, h, w) == INPUT_DIMS {
            return Ok(());
        }
        Err(Error::Shape(format!(
            "the MNIST metric needs 28x28 grayscale images (1x28x28), got {c}x{h}x{w}"
        )))
    }

    fn features_and_logits(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, c, h, w) = images.dims4().map_err(|_| {
            Error::Shape(format!(
                "the MNIST metric needs a batch of images (N, 1, 28, 28), got a tensor of shape {:?}",
                images.dims()
            ))
        })?;
        self.check_dims((c, h, w))?;
        let x = images.to_dtype(DType::F32)?.to_device(self.device())?;
        let features = self.features(&x)?;
        let logits = self.logits(&features)?;
        Ok((features, logits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh network's weights, written to a temporary file.
    fn saved(seed: u64) -> (tempfile::TempDir, std::path::PathBuf, VarMap) {
        let varmap = VarMap::new();
        MnistClassifier::new(seeded_var_builder(&varmap, seed, DType::F32, &Device::Cpu)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        MnistClassifier::save_weights(&varmap, &path).unwrap();
        (dir, path, varmap)
    }

    #[test]
    fn weights_round_trip_and_give_the_same_outputs() {
        let (_dir, path, varmap) = saved(3);
        let net = MnistClassifier::new(seeded_var_builder(&varmap, 99, DType::F32, &Device::Cpu)).unwrap();
        let loaded = MnistClassifier::load(&path, &Device::Cpu).unwrap();
        let x = Tensor::rand(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
        let (f, l) = net.features_and_logits(&x).unwrap();
        let (f2, l2) = loaded.features_and_logits(&x).unwrap();
        assert_eq!(f.dims(), [2, FEATURE_DIM]);
        assert_eq!(l.dims(), [2, CLASSES]);
        assert_eq!(f.to_vec2::<f32>().unwrap(), f2.to_vec2::<f32>().unwrap());
        assert_eq!(l.to_vec2::<f32>().unwrap(), l2.to_vec2::<f32>().unwrap());
        // 29,738 parameters: 116 KiB of f32 plus a small header.
        let size = std::fs::metadata(&path).unwrap().len();
        assert!((29_738 * 4..29_738 * 4 + 2048).contains(&size), "{size}");
    }

    #[test]
    fn load_names_the_file_and_the_tensor_that_does_not_fit() {
        let (dir, path, _) = saved(1);
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        tensors.insert(
            "fc1.weight".into(),
            Tensor::zeros((64, 401), DType::F32, &Device::Cpu).unwrap(),
        );
        let bad = dir.path().join("misshapen.safetensors");
        candle_core::safetensors::save(&tensors, &bad).unwrap();
        let err = MnistClassifier::load(&bad, &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("misshapen.safetensors") && err.contains("fc1.weight") && err.contains("401"),
            "{err}"
        );

        tensors.remove("fc1.weight");
        candle_core::safetensors::save(&tensors, &bad).unwrap();
        let err = MnistClassifier::load(&bad, &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("misshapen.safetensors") && err.contains("fc1.weight"),
            "{err}"
        );

        tensors.insert(
            "fc1.weight".into(),
            Tensor::zeros((64, 400), DType::F32, &Device::Cpu).unwrap(),
        );
        tensors.insert("fc3.bias".into(), Tensor::zeros(10, DType::F32, &Device::Cpu).unwrap());
        candle_core::safetensors::save(&tensors, &bad).unwrap();
        let err = MnistClassifier::load(&bad, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("fc3.bias") && err.contains("conv1.weight"), "{err}");

        let missing = dir.path().join("absent.safetensors");
        let err = MnistClassifier::load(&missing, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("absent.safetensors"), "{err}");
        std::fs::write(&bad, b"not safetensors").unwrap();
        let err = MnistClassifier::load(&bad, &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("misshapen.safetensors") && err.contains("safetensors"),
            "{err}"
        );
    }

    #[test]
    fn only_28x28_grayscale_images_are_measured() {
        let net = MnistClassifier::shipped(&Device::Cpu).unwrap();
        assert_eq!((net.name(), net.feature_dim()), (NAME, 64));
        net.check_dims((1, 28, 28)).unwrap();
        for (dims, text) in [
            ((3, 32, 32), "3x32x32"),
            ((1, 32, 32), "1x32x32"),
            ((3, 28, 28), "3x28x28"),
        ] {
            let err = net.check_dims(dims).unwrap_err().to_string();
            assert!(err.contains("28x28 grayscale") && err.contains(text), "{err}");
        }
        let rgb = Tensor::zeros((2, 3, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let err = net.features_and_logits(&rgb).unwrap_err().to_string();
        assert!(err.contains("3x28x28"), "{err}");
        let flat = Tensor::zeros((2, 784), DType::F32, &Device::Cpu).unwrap();
        let err = net.features_and_logits(&flat).unwrap_err().to_string();
        assert!(err.contains("[2, 784]"), "{err}");
    }
}
