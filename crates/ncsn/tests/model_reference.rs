//! The port against the reference PyTorch model itself.
//!
//! `tests/data/reference_<name>.safetensors` are weights of the reference `CondRefineNetDilated`
//! (ermongroup/ncsn), saved as the reference saves checkpoints (DataParallel,
//! `[state_dict, optimizer]`) and converted by `scripts/convert_reference_checkpoint.py`;
//! `reference_<name>_io.safetensors` hold an input batch and PyTorch's output for it. Every
//! parameter was redrawn (gamma, alpha, beta with different means) so that a mix-up of the
//! embedding blocks, of a layer order or of a padding shows. `scripts/make_reference_fixture.py`
//! wrote them.
use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ncsn::model::{CondRefineNetDilated, ModelConfig};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn check(name: &str, cfg: ModelConfig) {
    let dev = Device::Cpu;
    // SAFETY: fixture files of the repository, not modified while mapped.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[data(&format!("reference_{name}.safetensors"))], DType::F32, &dev)
    }
    .unwrap();
    let model = CondRefineNetDilated::new(&cfg, vb).unwrap();
    let io = candle_core::safetensors::load(data(&format!("reference_{name}_io.safetensors")), &dev).unwrap();
    let labels = io["labels"].to_dtype(DType::U32).unwrap();
    let ours = model.forward(&io["x"], &labels).unwrap();
    let theirs = &io["score"];
    assert_eq!(ours.dims(), theirs.dims());
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let max_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    // Both are f32 on CPU; outputs are O(1) (max |score| about 2.5), and the two libraries sum
    // convolutions in different orders: 1e-4 absolute, the target of the port.
    eprintln!("{name}: max diff {max_diff}");
    assert!(max_diff < 1e-4, "{name}: max |ours - reference| = {max_diff}");
}

#[test]
fn matches_the_reference_on_32x32x3() {
    check(
        "ngf8_32x32x3",
        ModelConfig {
            ngf: 8,
            channels: 3,
            image_size: 32,
            num_classes: 10,
        },
    );
}

#[test]
fn matches_the_reference_on_28x28x1() {
    check(
        "ngf4_28x28x1",
        ModelConfig {
            ngf: 4,
            channels: 1,
            image_size: 28,
            num_classes: 10,
        },
    );
}
