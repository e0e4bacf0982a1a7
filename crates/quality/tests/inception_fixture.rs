//! `quality::InceptionV3` against pytorch-fid's FID Inception, without the real weights.
//!
//! `scripts/make_inception_fixture.py` fills every tensor of pytorch-fid's network from a formula
//! of the tensor's name and the element's index (version `inception-fill-v1`, below), runs a few
//! images through it in float64 and stores the images and the outputs in
//! `tests/fixtures/inception_random.safetensors`. Here the same formula fills the Rust model.
//!
//! Tolerance, per image: `max_j |ours_j - ref_j| <= 1e-4 * max_j |ref_j|`, for the 2048 pool
//! features and for the 1008 logits. The reference carries no float32 rounding; ours is f32
//! through 48 convolutions (sums of up to 3,456 products), batch norms, pools and the resize,
//! so it differs by rounding only: about 5e-7 by that measure, as PyTorch's own float32 run
//! (7e-7; the fixture's metadata records it). 1e-4 leaves room for other summation orders and
//! devices, and stays far below what a wrong network gives: a border-counting average pool moves
//! the features by 4e-2 of their scale, an `align_corners = true` resize by 1e-2, an average
//! pool in `Mixed_7c` by 0.25 (each tried once by editing the model).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use quality::{Error, FeatureNetwork, InceptionV3};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/inception_random.safetensors"
);
const FORMULA: &str = "inception-fill-v1";
const TOLERANCE: f32 = 1e-4;

// ---- the fill formula (must match scripts/make_inception_fixture.py) ----

/// FNV-1a, 64 bits, of `bytes`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The splitmix64 finaliser.
fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Element values of tensor `name` of shape `dims`: `u in [-1, 1)` from the hash, scaled by the
/// tensor's role, in f64, rounded to f32.
fn formula(name: &str, dims: &[usize]) -> Vec<f32> {
    let seed = fnv1a64(name.as_bytes());
    let count: usize = dims.iter().product();
    let role: Box<dyn Fn(f64) -> f64> = if name.ends_with("conv.weight") {
        let fan_in: usize = dims[1..].iter().product();
        let bound = (6.0 / fan_in as f64).sqrt(); // He uniform
        Box::new(move |u| u * bound)
    } else if name.ends_with("bn.weight") {
        Box::new(|u| 1.0 + 0.1 * u)
    } else if name.ends_with("bn.running_var") {
        Box::new(|u| 0.75 + 0.25 * (u + 1.0))
    } else if name.ends_with("bn.bias") || name.ends_with("bn.running_mean") || name.ends_with("fc.bias") {
        Box::new(|u| 0.1 * u)
    } else if name == "fc.weight" {
        Box::new(|u| u / 2048f64.sqrt())
    } else {
        panic!("no fill rule for {name}")
    };
    (0..count as u64)
        .map(|i| {
            let h = splitmix64(seed ^ i);
            let u = (h >> 11) as f64 * 2f64.powi(-53) * 2.0 - 1.0;
            role(u) as f32
        })
        .collect()
}

/// Every variable of `varmap` set by the formula.
fn fill(varmap: &VarMap) {
    for (name, var) in workbench::vars::named_vars(varmap) {
        let values = formula(&name, var.dims());
        var.set(&Tensor::from_vec(values, var.dims(), var.device()).unwrap())
            .unwrap();
    }
}

/// The model on a `VarMap` filled by the formula, and the map.
fn formula_model() -> (InceptionV3, VarMap) {
    let varmap = VarMap::new();
    let model = InceptionV3::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    fill(&varmap);
    (model, varmap)
}

// ---- the fixture ----

struct Fixture {
    tensors: HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
}

fn fixture() -> Fixture {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = meta.metadata().clone().expect("the fixture has metadata");
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    assert_eq!(
        metadata.get("formula").map(String::as_str),
        Some(FORMULA),
        "regenerate the fixture or update the formula"
    );
    Fixture { tensors, metadata }
}

/// Rows of a `[N, D]` tensor.
fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

/// `max |a - b| / max |b|` of each row.
fn relative_errors(ours: &Tensor, reference: &Tensor) -> Vec<f32> {
    assert_eq!(ours.dims(), reference.dims());
    rows(ours)
        .iter()
        .zip(rows(reference))
        .map(|(a, b)| {
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
            diff / scale
        })
        .collect()
}

/// Runs batch `key` of the fixture through `model` and checks both outputs.
fn check_batch(model: &InceptionV3, fx: &Fixture, key: &str) -> (f32, f32) {
    let images = &fx.tensors[&format!("{key}_images")];
    let (pool, logits) = model.features_and_logits(images).unwrap();
    let pool_err = relative_errors(&pool, &fx.tensors[&format!("{key}_pool")]);
    let logit_err = relative_errors(&logits, &fx.tensors[&format!("{key}_logits")]);
    for (i, (p, l)) in pool_err.iter().zip(&logit_err).enumerate() {
        assert!(
            *p <= TOLERANCE,
            "{key} image {i}: pool features off by {p:e} of their scale"
        );
        assert!(*l <= TOLERANCE, "{key} image {i}: logits off by {l:e} of their scale");
    }
    let worst = |v: &[f32]| v.iter().cloned().fold(0f32, f32::max);
    (worst(&pool_err), worst(&logit_err))
}

#[test]
fn parameters_are_exactly_pytorch_fids_state_dict() {
    let fx = fixture();
    let (_, varmap) = formula_model();
    let mut ours: Vec<String> = workbench::vars::named_vars(&varmap)
        .into_iter()
        .map(|(name, var)| {
            format!(
                "{name} {}",
                var.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    let mut theirs: Vec<String> = fx.metadata["state_dict"].lines().map(str::to_string).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(theirs.len(), 472);
    assert_eq!(ours, theirs);
}

#[test]
fn matches_pytorch_fid_on_formula_weights() {
    let fx = fixture();
    let (model, _varmap) = formula_model();
    let start = std::time::Instant::now();
    for key in ["rgb", "gray", "odd"] {
        let (pool, logits) = check_batch(&model, &fx, key);
        eprintln!("{key}: worst relative error pool {pool:.2e}, logits {logits:.2e}");
    }
    eprintln!("5 images through the network in {:.2} s", start.elapsed().as_secs_f64());
}

/// A temporary file path unique to this test process and `tag`.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("quality-inception-{}-{tag}.safetensors", std::process::id()))
}

/// Saves `tensors` to a temporary file, loads it, removes it.
fn load_from(tag: &str, tensors: &HashMap<String, Tensor>) -> (PathBuf, quality::Result<InceptionV3>) {
    let path = temp_path(tag);
    candle_core::safetensors::save(tensors, &path).unwrap();
    let result = InceptionV3::load(&path, &Device::Cpu);
    std::fs::remove_file(&path).unwrap();
    (path, result)
}

/// The formula's tensors of every parameter, by name (computed once per test binary).
fn formula_tensors() -> HashMap<String, Tensor> {
    static TENSORS: std::sync::OnceLock<HashMap<String, Tensor>> = std::sync::OnceLock::new();
    TENSORS
        .get_or_init(|| {
            let (_, varmap) = formula_model();
            workbench::vars::named_vars(&varmap)
                .into_iter()
                .map(|(name, var)| (name, var.as_tensor().copy().unwrap()))
                .collect()
        })
        .clone()
}

#[test]
fn loads_a_converted_file_ignoring_extra_tensors() {
    let fx = fixture();
    let mut tensors = formula_tensors();
    // What the converter drops, and a stray tensor: both ignored.
    let count = Tensor::new(&[0i64], &Device::Cpu).unwrap().reshape(()).unwrap();
    tensors.insert("Mixed_5b.branch1x1.bn.num_batches_tracked".into(), count);
    tensors.insert(
        "AuxLogits.fc.weight".into(),
        Tensor::zeros((1008, 768), DType::F32, &Device::Cpu).unwrap(),
    );
    let (_, model) = load_from("complete", &tensors);
    let model = model.unwrap();
    check_batch(&model, &fx, "gray");
}

fn message(result: quality::Result<InceptionV3>) -> String {
    match result {
        Ok(_) => panic!("the file was accepted"),
        Err(e @ Error::File { .. }) => e.to_string(),
        Err(e) => panic!("expected Error::File, got {e:?}"),
    }
}

#[test]
fn refuses_a_tensor_of_another_shape_naming_it_and_both_shapes() {
    let mut tensors = formula_tensors();
    let name = "Mixed_6c.branch7x7_2.conv.weight"; // [160, 160, 1, 7]; stored as the 7x1 kernel
    tensors.insert(
        name.into(),
        Tensor::zeros((160, 160, 7, 1), DType::F32, &Device::Cpu).unwrap(),
    );
    let (path, result) = load_from("shape", &tensors);
    let msg = message(result);
    for part in [
        &path.display().to_string(),
        name,
        "[160, 160, 7, 1]",
        "[160, 160, 1, 7]",
    ] {
        assert!(msg.contains(part), "{msg:?} does not name {part:?}");
    }
}

#[test]
fn refuses_a_missing_tensor_naming_it() {
    let mut tensors = formula_tensors();
    let name = "Mixed_7c.branch_pool.bn.running_var";
    tensors.remove(name);
    let (path, result) = load_from("missing", &tensors);
    let msg = message(result);
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains(name),
        "{msg:?}"
    );
}

#[test]
fn refuses_non_finite_weights_naming_the_tensor() {
    let mut tensors = formula_tensors();
    let name = "fc.bias";
    let mut bias = vec![0f32; 1008];
    bias[7] = f32::NAN;
    tensors.insert(name.into(), Tensor::from_vec(bias, 1008, &Device::Cpu).unwrap());
    let (_, result) = load_from("nan", &tensors);
    let msg = message(result);
    assert!(msg.contains(name) && msg.contains("non-finite"), "{msg:?}");
}

#[test]
fn refuses_a_file_that_is_not_safetensors_naming_it() {
    let path = temp_path("not-safetensors");
    std::fs::write(&path, b"PK\x03\x04 this is a zip archive, as torch.save writes a .pth").unwrap();
    let result = InceptionV3::load(&path, &Device::Cpu);
    std::fs::remove_file(&path).unwrap();
    let msg = message(result);
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("not a safetensors file"),
        "{msg:?}"
    );
    assert!(msg.contains("convert_inception_weights.py"), "{msg:?}");

    let absent = Path::new("/nonexistent/pt_inception.safetensors");
    let err = InceptionV3::load(absent, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("/nonexistent/pt_inception"),
        "{err}"
    );
}

#[test]
fn check_dims_takes_gray_and_rgb_of_any_size() {
    let varmap = VarMap::new();
    let model = InceptionV3::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(model.name(), "inception-v3-fid (pytorch-fid pt_inception-2015-12-05)");
    assert_eq!(model.feature_dim(), 2048);
    for dims in [(1, 28, 28), (3, 32, 32), (3, 1, 1), (1, 500, 7)] {
        model.check_dims(dims).unwrap();
    }
    for dims in [(2, 28, 28), (4, 32, 32), (0, 32, 32), (3, 0, 32), (3, 32, 0)] {
        let err = model.check_dims(dims).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Shape(_)), "{dims:?}: {err:?}");
        assert!(msg.contains("3 channels") && msg.contains("1 (grayscale"), "{msg}");
        assert!(
            msg.contains(&format!("got {} channel(s) of {}x{}", dims.0, dims.1, dims.2)),
            "{msg}"
        );
    }
    // The same check guards features_and_logits, and a tensor that is not a batch of images.
    let four = Tensor::zeros((1, 4, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(model.features_and_logits(&four), Err(Error::Shape(_))));
    let flat = Tensor::zeros((3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(model.features_and_logits(&flat), Err(Error::Shape(m)) if m.contains("(N, C, H, W)")));
    // An empty batch gives empty outputs of the right widths.
    let none = Tensor::zeros((0, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let (pool, logits) = model.features_and_logits(&none).unwrap();
    assert_eq!((pool.dims(), logits.dims()), (&[0, 2048][..], &[0, 1008][..]));
}
