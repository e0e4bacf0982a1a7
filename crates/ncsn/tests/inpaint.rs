//! Inpainting: the projection, the observed pixels at the end, masks, and loading the images.
mod common;

use candle_core::{DType, Device, Tensor};
use langevin::Projection;
use ncsn::model::build_model;
use ncsn::model::{CondRefineNetDilated, ModelConfig, ScoreNet};
use ncsn::sampling::inpaint::{inpaint, load_dataset_images, load_image_files, InpaintProjection, MaskKind};
use ncsn::sampling::SampleConfig;
use ncsn::Progress;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SIZE: usize = 8;

fn tiny_model() -> CondRefineNetDilated {
    let cfg = ModelConfig {
        ngf: 4,
        channels: 1,
        image_size: SIZE,
        num_classes: 4,
    };
    build_model(&cfg, DType::F32, &Device::Cpu, Some(9)).unwrap().1
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Two 8x8 images with a smooth pattern in [0, 1].
fn images() -> Tensor {
    let v: Vec<f32> = (0..2 * SIZE * SIZE)
        .map(|k| 0.2 + 0.6 * ((k % SIZE) as f32 / SIZE as f32) * ((k / 64) as f32 * 0.5 + 0.5))
        .collect();
    Tensor::from_vec(v, (2, 1, SIZE, SIZE), &Device::Cpu).unwrap()
}

#[test]
fn projection_sets_observed_pixels_to_the_perturbed_observation() {
    let observed = images();
    let mask = MaskKind::LeftHalf.build(SIZE, &Device::Cpu).unwrap();
    let mut p = InpaintProjection::new(observed.clone(), &mask).unwrap();
    let x = Tensor::full(5f32, (2, 1, SIZE, SIZE), &Device::Cpu).unwrap();
    assert!(p.project(x.clone()).is_err(), "no observation before the first level");
    let sigma = 0.3;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    p.begin_level(0, sigma, &mut rng).unwrap();
    // The same draw, replayed: y = x_obs + sigma z.
    let z = langevin::randn_tensor(
        &mut ChaCha8Rng::seed_from_u64(1),
        &[2, 1, SIZE, SIZE],
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let y = values(&(&observed + (z * sigma).unwrap()).unwrap());
    assert_eq!(values(p.perturbed().unwrap()), y);
    let out = values(&p.project(x).unwrap());
    for (k, (&o, &yk)) in out.iter().zip(&y).enumerate() {
        if k % SIZE < SIZE / 2 {
            assert_eq!(o, yk, "observed pixel {k}");
        } else {
            assert_eq!(o, 5.0, "unobserved pixel {k} untouched");
        }
    }
}

#[test]
fn completions_keep_the_observed_pixels_within_a_few_sigma_l() {
    // The reference's choice, kept here: after the last level the observed pixels are
    // x_obs + sigma_L z, not x_obs. With sigma_L = 0.01 and 2 x 3 x 32 draws of z, |z| < 6
    // holds for all (a 6-sd draw has probability 2e-9), so |x - x_obs| < 0.06 there.
    let model = tiny_model();
    let sigmas = langevin::geometric_sigmas(1.0, 0.01, 4).unwrap();
    let observed = images();
    let mask = MaskKind::LeftHalf.build(SIZE, &Device::Cpu).unwrap();
    for denoise in [false, true] {
        let config = SampleConfig {
            steps_per_level: 3,
            batch_size: 4,
            denoise,
            ..SampleConfig::default()
        };
        let out = inpaint(
            &ScoreNet::new(&model, &sigmas).unwrap(),
            [1, SIZE, SIZE],
            &observed,
            &mask,
            3,
            &config,
            &Device::Cpu,
            Progress::Quiet,
        )
        .unwrap();
        assert_eq!(out.samples.dims(), [6, 1, SIZE, SIZE]);
        let done = values(&out.samples);
        let obs = values(&observed);
        let per = SIZE * SIZE;
        let mut max_observed = 0f32;
        let mut max_unobserved = 0f32;
        for (chain, pixels) in done.chunks(per).enumerate() {
            let image = &obs[(chain / 3) * per..(chain / 3 + 1) * per];
            for (k, (&x, &o)) in pixels.iter().zip(image).enumerate() {
                let d = (x - o).abs();
                if k % SIZE < SIZE / 2 {
                    max_observed = max_observed.max(d);
                } else {
                    max_unobserved = max_unobserved.max(d);
                }
            }
        }
        assert!(max_observed < 6.0 * 0.01, "denoise {denoise}: {max_observed}");
        assert!(
            max_observed > 0.0,
            "observed pixels carry sigma_L noise, as in the reference"
        );
        // The unobserved half is the chain's own (an untrained network's sample), far from the input.
        assert!(max_unobserved > 0.1, "denoise {denoise}: {max_unobserved}");
    }
}

#[test]
fn completions_of_one_image_differ_and_are_reproducible() {
    let model = tiny_model();
    let sigmas = langevin::geometric_sigmas(1.0, 0.01, 4).unwrap();
    let mask = MaskKind::Center.build(SIZE, &Device::Cpu).unwrap();
    let config = SampleConfig {
        steps_per_level: 2,
        batch_size: 8,
        ..SampleConfig::default()
    };
    let run = || {
        values(
            &inpaint(
                &ScoreNet::new(&model, &sigmas).unwrap(),
                [1, SIZE, SIZE],
                &images(),
                &mask,
                2,
                &config,
                &Device::Cpu,
                Progress::Quiet,
            )
            .unwrap()
            .samples,
        )
    };
    let a = run();
    assert_eq!(a, run());
    let per = SIZE * SIZE;
    assert_ne!(a[..per], a[per..2 * per], "two completions of image 0");
}

#[test]
fn masks_left_half_and_center() {
    let left = values(&MaskKind::LeftHalf.build(SIZE, &Device::Cpu).unwrap());
    assert_eq!(left.iter().filter(|&&v| v == 1.0).count(), SIZE * SIZE / 2);
    assert_eq!(&left[..SIZE], &[1., 1., 1., 1., 0., 0., 0., 0.]);
    let center = values(&MaskKind::Center.build(SIZE, &Device::Cpu).unwrap());
    // The hole is rows and columns 2..6 of 8: 16 pixels.
    assert_eq!(center.iter().filter(|&&v| v == 0.0).count(), 16);
    assert_eq!(center[3 * SIZE + 3], 0.0);
    assert_eq!(center[0], 1.0);
    assert_eq!(MaskKind::parse("left-half"), MaskKind::LeftHalf);
    assert_eq!(MaskKind::parse("m.png"), MaskKind::File("m.png".into()));
}

#[test]
fn mask_files_white_is_observed_and_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("mask.png");
    // Top half white (observed), bottom half black.
    image::GrayImage::from_fn(SIZE as u32, SIZE as u32, |_, y| {
        image::Luma([if y < 4 { 255 } else { 0 }])
    })
    .save(&path)
    .unwrap();
    let m = values(&MaskKind::File(path.clone()).build(SIZE, &Device::Cpu).unwrap());
    assert!(m[..32].iter().all(|&v| v == 1.0) && m[32..].iter().all(|&v| v == 0.0));

    let err = MaskKind::File(path).build(16, &Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("mask.png") && err.contains("8x8") && err.contains("16x16"),
        "{err}"
    );
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "not a picture").unwrap();
    let err = MaskKind::File(text).build(SIZE, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("notes.png") && err.contains("decoded"), "{err}");
    let err = MaskKind::File(tmp.path().join("none.png"))
        .build(SIZE, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("none.png"), "{err}");
    let white = tmp.path().join("white.png");
    image::GrayImage::from_pixel(SIZE as u32, SIZE as u32, image::Luma([255]))
        .save(&white)
        .unwrap();
    let err = MaskKind::File(white).build(SIZE, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("white.png") && err.contains("nothing to fill in"), "{err}");
}

#[test]
fn image_files_are_resized_like_the_loader_and_bad_ones_named() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("digit.png");
    // A 20x10 image: resized so the short side is 8 and centre-cropped to 8x8.
    image::RgbImage::from_fn(20, 10, |x, _| image::Rgb([(x * 12) as u8, 0, 0]))
        .save(&png)
        .unwrap();
    let t = load_image_files(&[png.clone(), png], 1, SIZE, &Device::Cpu).unwrap();
    assert_eq!(t.dims(), [2, 1, SIZE, SIZE]);
    assert!(values(&t).iter().all(|v| (0.0..=1.0).contains(v)));
    let bad = tmp.path().join("photo.jpg");
    std::fs::write(&bad, "plain text").unwrap();
    let err = load_image_files(&[bad], 1, SIZE, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("photo.jpg") && err.contains("cannot be decoded"), "{err}");
    let err = load_image_files(&[tmp.path().join("gone.png")], 1, SIZE, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone.png"), "{err}");
}

#[test]
fn dataset_images_come_from_the_held_out_split_and_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("digits.gz");
    common::write_idx(&idx, 20, SIZE, true);
    let t = load_dataset_images(&idx, 3, 1, SIZE, 0.1, &Device::Cpu).unwrap();
    assert_eq!(t.dims(), [3, 1, SIZE, SIZE]);
    // The first two are the 2 held-out images of the fixed split train uses.
    let all = ncsn::data::idx::load_images(&idx).unwrap();
    let (_, test) = ncsn::data::holdout(&all, 0.1);
    assert_eq!(test.len(), 2);
    let first: Vec<f32> = test.image(0).iter().map(|&b| f32::from(b) / 255.0).collect();
    assert_eq!(values(&t)[..SIZE * SIZE], first[..]);
    let err = load_dataset_images(&idx, 30, 1, SIZE, 0.1, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("digits.gz") && err.contains("20 images"), "{err}");
    let err = load_dataset_images(&idx, 3, 1, 16, 0.1, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("digits.gz") && err.contains("1x16x16"), "{err}");
    let err = load_dataset_images(&tmp.path().join("nothing"), 3, 1, SIZE, 0.1, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing") && err.contains("does not exist"), "{err}");
}
