//! Finite-difference checks of every op the network trains through, and of the whole network.
//!
//! candle's reverse-mode gradients are compared with central differences
//! `(L(p + h) - L(p - h)) / 2h` of a scalar `L = sum(w * f(...))` with fixed random weights `w`,
//! in f64. With h = 1e-5 the truncation error is O(h^2 |f'''|) ~ 1e-10 and rounding
//! O(1e-16 |L| / h) ~ 1e-11, so gradients must agree to 1e-6 (relative to max(1, |grad|)); a
//! wrong backward pass is off by O(1).
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use ncsn::model::conv::Conv2d;
use ncsn::model::pool::{avg_pool5_same, mean_pool2};
use ncsn::model::resize::{interpolation_matrix, BilinearResize};
use ncsn::model::{CondInstanceNormPlusPlus, CondRefineNetDilated, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn randn(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    langevin::randn_tensor(rng, shape, DType::F64, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Checks d/dp sum(w * f()) for the elements `which(var)` of each var (all when `None`).
fn check_gradients(vars: &[Var], f: impl Fn() -> Result<Tensor>, samples: Option<usize>, rng: &mut ChaCha8Rng) {
    check_gradients_with(vars, f, samples, rng, H, TOL)
}

fn check_gradients_with(
    vars: &[Var],
    f: impl Fn() -> Result<Tensor>,
    samples: Option<usize>,
    rng: &mut ChaCha8Rng,
    step: f64,
    tol: f64,
) {
    let out = f().unwrap();
    let w = randn(rng, out.dims());
    let loss = || -> f64 {
        (f().unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (f().unwrap() * &w).unwrap().sum_all().unwrap().backward().unwrap();
    for (k, var) in vars.iter().enumerate() {
        let analytic = values(grads.get(var.as_tensor()).expect("every var gets a gradient"));
        let original = values(var.as_tensor());
        let indices: Vec<usize> = match samples {
            None => (0..original.len()).collect(),
            Some(n) => (0..n).map(|_| rng.random_range(0..original.len())).collect(),
        };
        for i in indices {
            let mut p = original.clone();
            p[i] += step;
            var.set(&Tensor::from_vec(p.clone(), var.dims(), &Device::Cpu).unwrap())
                .unwrap();
            let up = loss();
            p[i] -= 2.0 * step;
            var.set(&Tensor::from_vec(p, var.dims(), &Device::Cpu).unwrap())
                .unwrap();
            let down = loss();
            var.set(&Tensor::from_vec(original.clone(), var.dims(), &Device::Cpu).unwrap())
                .unwrap();
            let numeric = (up - down) / (2.0 * step);
            let a = analytic[i];
            assert!(
                (a - numeric).abs() <= tol * numeric.abs().max(1.0),
                "var {k} element {i}: backward {a} vs numeric {numeric}"
            );
        }
    }
}

#[test]
fn resize_matches_interpolation_by_hand_and_differentiates() {
    // 1D, 2 -> 3 with aligned corners: [a, (a + b) / 2, b]; 3 -> 2: the two end points.
    assert_eq!(
        interpolation_matrix(2, 3),
        vec![vec![1.0, 0.0], vec![0.5, 0.5], vec![0.0, 1.0]]
    );
    assert_eq!(
        interpolation_matrix(3, 2),
        vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]]
    );
    // 2 -> 4: sample points 0, 1/3, 2/3, 1.
    let m = interpolation_matrix(2, 4);
    for (row, t) in m.iter().zip([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]) {
        assert!((row[0] - (1.0 - t)).abs() < 1e-15 && (row[1] - t).abs() < 1e-15);
    }

    let dev = Device::Cpu;
    let resize = BilinearResize::new();
    // 2x2 -> 3x3 of [[0, 1], [2, 3]]: bilinear in both directions, the centre is the mean 1.5.
    let x = Tensor::new(&[[[[0.0f64, 1.0], [2.0, 3.0]]]], &dev).unwrap();
    let y = values(&resize.forward(&x, 3, 3).unwrap());
    assert_eq!(y, vec![0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);

    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 4, 5])).unwrap();
    check_gradients(
        std::slice::from_ref(&x),
        || resize.forward(x.as_tensor(), 7, 6),
        None,
        &mut rng,
    );
}

#[test]
fn avg_pool5_matches_a_direct_sum_and_differentiates() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (hh, ww) = (6, 7);
    let x = randn(&mut rng, &[1, 2, hh, ww]);
    let y = values(&avg_pool5_same(&x).unwrap());
    let xv = values(&x);
    for c in 0..2 {
        for i in 0..hh {
            for j in 0..ww {
                let mut sum = 0.0;
                for u in i.saturating_sub(2)..(i + 3).min(hh) {
                    for v in j.saturating_sub(2)..(j + 3).min(ww) {
                        sum += xv[(c * hh + u) * ww + v];
                    }
                }
                // count_include_pad: always divided by 25, also at the border.
                let got = y[(c * hh + i) * ww + j];
                assert!(
                    (got - sum / 25.0).abs() < 1e-14,
                    "({c},{i},{j}): {got} vs {}",
                    sum / 25.0
                );
            }
        }
    }
    let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 5, 6])).unwrap();
    check_gradients(
        std::slice::from_ref(&x),
        || avg_pool5_same(x.as_tensor()),
        None,
        &mut rng,
    );
}

#[test]
fn mean_pool2_and_elu_differentiate() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 4, 6])).unwrap();
    check_gradients(std::slice::from_ref(&x), || mean_pool2(x.as_tensor()), None, &mut rng);
    check_gradients(
        std::slice::from_ref(&x),
        || ncsn::model::activation::elu(x.as_tensor()),
        None,
        &mut rng,
    );
}

#[test]
fn dilated_conv_differentiates_in_input_weight_and_bias() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (dilation, size) in [(1, 5), (2, 7), (4, 9)] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let conv = Conv2d::new(3, 2, 3, dilation, true, vb).unwrap();
        let x = Var::from_tensor(&randn(&mut rng, &[2, 3, size, size])).unwrap();
        let mut vars = vec![x.clone()];
        let data = varmap.data().lock().unwrap();
        vars.push(data["weight"].clone());
        vars.push(data["bias"].clone());
        drop(data);
        let y = conv.forward(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 2, size, size], "same padding at dilation {dilation}");
        check_gradients(&vars, || conv.forward(x.as_tensor()), None, &mut rng);
    }
}

#[test]
fn cond_instance_norm_plus_plus_differentiates() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let norm = CondInstanceNormPlusPlus::new(4, 3, vb).unwrap();
    let embed = varmap.data().lock().unwrap()["embed.weight"].clone();
    embed.set(&randn(&mut rng, &[3, 12])).unwrap(); // beta != 0, gamma and alpha far from 1
    let x = Var::from_tensor(&randn(&mut rng, &[2, 4, 3, 5])).unwrap();
    let labels = Tensor::new(&[2u32, 0], &Device::Cpu).unwrap();
    check_gradients(
        &[x.clone(), embed],
        || norm.forward(x.as_tensor(), &labels),
        None,
        &mut rng,
    );
}

#[test]
fn whole_network_differentiates() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let cfg = ModelConfig {
        ngf: 2,
        channels: 3,
        image_size: 8,
        num_classes: 4,
    };
    let varmap = VarMap::new();
    let vb = workbench::init::seeded_var_builder(&varmap, 6, DType::F64, &Device::Cpu);
    let model = CondRefineNetDilated::new(&cfg, vb).unwrap();
    let mut vars = varmap.all_vars();
    let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 8, 8]).affine(0.3, 0.5).unwrap()).unwrap();
    vars.push(x.clone());
    let labels = Tensor::new(&[1u32, 3], &Device::Cpu).unwrap();
    // One random element of every parameter tensor and of the input. The network is far more
    // curved than a single op: the cross-channel variance v of a few channel means can be near 0,
    // where (mu_c - m) / sqrt(v + 1e-5) bends sharply, and the central-difference error was seen
    // to shrink like O(h) from 1e-2 (h = 1e-4) to 5e-8 (h = 1e-7). So h = 1e-7 (rounding:
    // 1e-16 |L| / h ~ 1e-9 with |L| ~ 1) and a relative tolerance of 1e-5.
    let forward = || model.forward(x.as_tensor(), &labels);
    check_gradients_with(&vars, forward, Some(1), &mut rng, 1e-7, 1e-5);
}
