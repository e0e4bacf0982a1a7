//! `checkpoint.json` holds the run's floats (learning rate, EMA rate, loss sums); resuming
//! promises the same numbers bit for bit, so every f64 must survive JSON exactly. serde_json's
//! default float parser is off by an ulp for about one value in seven (of random 17-digit
//! values); its `float_roundtrip` feature, enabled for the workspace, parses them exactly.
use ncsn::TrainConfig;
use rand::{Rng, SeedableRng};

#[test]
fn every_float_of_a_config_survives_json_bit_for_bit() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for _ in 0..500 {
        let mut config = TrainConfig::cifar10();
        config.lr = rng.random::<f64>() * 10f64.powi(rng.random_range(-8..0));
        config.ema_rate = rng.random::<f64>();
        let text = serde_json::to_string(&config).unwrap();
        let back: TrainConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.lr.to_bits(), config.lr.to_bits(), "lr {:e}", config.lr);
        assert_eq!(
            back.ema_rate.to_bits(),
            config.ema_rate.to_bits(),
            "ema_rate {:e}",
            config.ema_rate
        );
    }
    // Loss sums, as the checkpoint's accumulator stores them.
    let sums: Vec<f64> = (0..2000).map(|_| rng.random::<f64>() * 1e3).collect();
    let back: Vec<f64> = serde_json::from_str(&serde_json::to_string(&sums).unwrap()).unwrap();
    assert!(sums.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
}
