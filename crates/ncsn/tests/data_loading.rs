//! The data loaders on generated files in the real formats, and a clear error (naming the
//! file and what was expected) for every kind of bad input.
mod common;

use std::path::Path;

use common::{cifar_record, pixel, tiny_config, write_cifar_dir, write_idx};
use ncsn::data::{cifar10, folder, idx, load_train_test};
use ncsn::{DatasetKind, Error, TrainConfig};

fn err_text<T: std::fmt::Debug>(r: ncsn::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn cifar10_records_load_channel_major_and_split_train_test() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar_dir(tmp.path(), 4);
    let one = cifar10::load_file(&dir.join("data_batch_2.bin")).unwrap();
    assert_eq!((one.len(), one.dims()), (4, (3, 32, 32)));
    // Image 1 of file 2 is record 5; its pixels are the record's bytes after the label.
    assert_eq!(one.image(1), &cifar_record(5)[1..]);
    assert_eq!(
        one.image(1)[1024 + 32 * 3 + 7],
        pixel(5, 1, 3, 7, 32),
        "green, row 3, column 7"
    );
    let config = TrainConfig {
        data: Some(dir.clone()),
        batch_size: 4,
        ..TrainConfig::cifar10()
    };
    let (train, test) = load_train_test(&config.data_spec()).unwrap();
    assert_eq!(
        (train.len(), test.len()),
        (20, 4),
        "five training files, test_batch.bin"
    );
    assert_eq!(ncsn::data::detect_kind(&dir).unwrap(), DatasetKind::Cifar10);
}

#[test]
fn cifar10_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar_dir(tmp.path(), 2);
    // A file that is not a whole number of records.
    let bad = dir.join("data_batch_3.bin");
    std::fs::write(&bad, vec![1u8; 3073 * 2 + 100]).unwrap();
    let e = err_text(cifar10::load_train(&dir));
    assert!(
        e.contains("data_batch_3.bin") && e.contains("3073") && e.contains("6246 bytes"),
        "{e}"
    );
    // A missing training file.
    std::fs::remove_file(&bad).unwrap();
    let e = err_text(cifar10::load_train(&dir));
    assert!(e.contains("data_batch_3.bin") && e.contains("missing"), "{e}");
    // A label byte out of range: not CIFAR-10.
    let mut rec = cifar_record(0);
    rec[0] = 200;
    std::fs::write(&bad, rec).unwrap();
    let e = err_text(cifar10::load_file(&bad));
    assert!(e.contains("label byte 200"), "{e}");
    // A missing folder says where to get CIFAR-10.
    let e = err_text(cifar10::load_train(&tmp.path().join("no-such-folder")));
    assert!(
        e.contains("no-such-folder") && e.contains("cifar-10-binary.tar.gz"),
        "{e}"
    );
    // A missing test file with the default layout.
    let dir2 = write_cifar_dir(&tmp.path().join("other"), 2);
    std::fs::remove_file(dir2.join("test_batch.bin")).unwrap();
    let config = TrainConfig {
        data: Some(dir2),
        batch_size: 2,
        ..TrainConfig::cifar10()
    };
    let e = err_text(load_train_test(&config.data_spec()));
    assert!(e.contains("test_batch.bin"), "{e}");
}

#[test]
fn idx_gzip_and_plain_load_the_same_images() {
    let tmp = tempfile::tempdir().unwrap();
    let (gz, plain) = (tmp.path().join("a.gz"), tmp.path().join("a"));
    write_idx(&gz, 5, 12, true);
    write_idx(&plain, 5, 12, false);
    let (a, b) = (idx::load_images(&gz).unwrap(), idx::load_images(&plain).unwrap());
    assert_eq!(a, b);
    assert_eq!((a.len(), a.dims()), (5, (1, 12, 12)));
    assert_eq!(a.image(3)[12 * 4 + 9], pixel(3, 0, 4, 9, 12));
}

#[test]
fn the_shipped_mnist_digits_load() {
    let path = ncsn::data::shipped_mnist().unwrap();
    let set = idx::load_images(&path).unwrap();
    assert_eq!((set.len(), set.dims()), (5000, (1, 28, 28)));
    let (train, test) = load_train_test(&TrainConfig::mnist().data_spec()).unwrap();
    assert_eq!((train.len(), test.len()), (4500, 500), "10% held out");
}

#[test]
fn idx_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("images.idx");
    // Wrong magic.
    std::fs::write(&path, [0u8, 0, 8, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7]).unwrap();
    let e = err_text(idx::load_images(&path));
    assert!(
        e.contains("images.idx") && e.contains("0x00000809") && e.contains("0x00000803"),
        "{e}"
    );
    // A labels file where images were expected.
    std::fs::write(&path, [0u8, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
    let e = err_text(idx::load_images(&path));
    assert!(e.contains("labels file"), "{e}");
    // Truncated data.
    write_idx(&path, 4, 8, false);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let e = err_text(idx::load_images(&path));
    assert!(e.contains("4 images of 8x8") && e.contains("262 bytes"), "{e}");
    // Too short for a header.
    std::fs::write(&path, [0u8, 0]).unwrap();
    assert!(err_text(idx::load_images(&path)).contains("too short"));
    // Corrupt gzip.
    std::fs::write(&path, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]).unwrap();
    let e = err_text(idx::load_images(&path));
    assert!(e.contains("images.idx") && e.contains("gzip"), "{e}");
    // Missing file.
    let e = err_text(idx::load_images(&tmp.path().join("missing.gz")));
    assert!(e.contains("missing.gz") && e.contains("does not exist"), "{e}");
}

fn write_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).unwrap();
}

#[test]
fn image_folders_are_resized_cropped_and_channel_major() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write_png(&dir.join("a.png"), 40, 20, [255, 0, 0]);
    write_png(&dir.join("sub/b.PNG"), 9, 13, [0, 0, 255]);
    image::RgbImage::from_pixel(30, 30, image::Rgb([0, 255, 0]))
        .save(dir.join("c.jpg"))
        .unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image, ignored").unwrap();
    let set = folder::load_folder(&dir, 8, 3).unwrap();
    assert_eq!((set.len(), set.dims()), (3, (3, 8, 8)));
    // Sorted order a.png, c.jpg, sub/b.PNG. A red image is 255 in channel 0, 0 in channel 2.
    assert!(set.image(0)[..64].iter().all(|&v| v == 255) && set.image(0)[128..].iter().all(|&v| v == 0));
    // JPEG is lossy: green within a few levels.
    assert!(set.image(1)[64..128].iter().all(|&v| v > 240));
    assert!(set.image(2)[128..].iter().all(|&v| v == 255), "blue");
    let gray = folder::load_folder(&dir, 6, 1).unwrap();
    assert_eq!(gray.dims(), (1, 6, 6));
    let config = TrainConfig {
        data: Some(dir.clone()),
        image_size: 8,
        batch_size: 2,
        test_fraction: 0.3,
        ..TrainConfig::images()
    };
    let (train, test) = load_train_test(&config.data_spec()).unwrap();
    assert_eq!((train.len(), test.len()), (2, 1));
    assert_eq!(ncsn::data::detect_kind(&dir).unwrap(), DatasetKind::Images);
}

#[test]
fn corrupt_or_missing_images_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    let e = err_text(folder::load_folder(&dir, 8, 3));
    assert!(e.contains("photos") && e.contains("no .png"), "{e}");
    write_png(&dir.join("good.png"), 8, 8, [1, 2, 3]);
    std::fs::write(dir.join("broken.png"), b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    let e = err_text(folder::load_folder(&dir, 8, 3));
    assert!(e.contains("broken.png") && e.contains("cannot be decoded"), "{e}");
    let e = err_text(folder::load_folder(&tmp.path().join("nope"), 8, 3));
    assert!(e.contains("nope") && e.contains("does not exist"), "{e}");
}

#[test]
fn data_that_does_not_fit_the_model_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("small-idx3-ubyte");
    write_idx(&data, 10, 16, false);
    let mut config = tiny_config(&data);
    config.image_size = 28;
    let e = err_text(load_train_test(&config.data_spec()));
    assert!(e.contains("16x16") && e.contains("image_size = 16"), "{e}");
    let mut config = tiny_config(&data);
    config.batch_size = 64;
    match load_train_test(&config.data_spec()) {
        Err(Error::Config { key, message }) => assert!(key == "batch_size" && message.contains("9"), "{message}"),
        other => panic!("expected a batch_size error, got {other:?}"),
    }
}
