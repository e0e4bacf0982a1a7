//! `ncsn check-device`: the reference fixture's forward pass, DSM loss and gradients on a device
//! against the CPU and PyTorch ([`crate::device_check`]).
use std::path::PathBuf;

use clap::Args;

use crate::device_check::{check_device, DEFAULT_FIXTURE_DIR, DSM_BATCH, GRADIENT_PARAMS};
use crate::error::{Error, Result};

/// `ncsn check-device`.
#[derive(Debug, Clone, Args)]
pub struct CheckDeviceArgs {
    /// The device to check against the CPU: cuda, cuda:N, or cpu (the CPU against itself: a dry
    /// run of the command)
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Folder of the reference fixture (reference_ngf8_32x32x3.safetensors and its _io file)
    #[arg(long, default_value = DEFAULT_FIXTURE_DIR)]
    pub fixture_dir: PathBuf,
    /// Seed of the DSM batch (images, levels and noise, drawn on the host)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `ncsn check-device`: prints each check with its numbers and tolerance; any failure is an
/// error (a non-zero exit) naming the failed checks.
pub fn run_check_device(args: &CheckDeviceArgs) -> Result<()> {
    let device = workbench::parse_device(&args.device, "ncsn")?;
    let (fixture, checks) = check_device(&args.fixture_dir, &device, &args.device, args.seed)?;
    let c = &fixture.config;
    println!(
        "check-device: {} against cpu; fixture {} (ngf {}, {}x{}x{}, {} levels, a batch of {}); \
         DSM batch of {DSM_BATCH} from seed {}; gradients of {}",
        args.device,
        args.fixture_dir.display(),
        c.ngf,
        c.channels,
        c.image_size,
        c.image_size,
        c.num_classes,
        fixture.x.dim(0)?,
        args.seed,
        GRADIENT_PARAMS.join(", ")
    );
    for check in &checks {
        println!("{check}");
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed()).map(|c| c.name.as_str()).collect();
    if failed.is_empty() {
        println!("check-device: all {} checks passed on {}", checks.len(), args.device);
        Ok(())
    } else {
        Err(Error::Device(format!(
            "check-device: {} of {} checks failed on {}: {}",
            failed.len(),
            checks.len(),
            args.device,
            failed.join("; ")
        )))
    }
}
