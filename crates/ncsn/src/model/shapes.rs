//! The reference's state_dict: every parameter name and shape, in PyTorch's order.
//!
//! Written from the structure of the reference's `CondRefineNetDilated` (module registration
//! order in each `__init__`), separately from the modules of this crate, so that a test can check
//! that the variables the modules create are exactly these.
use super::ModelConfig;

/// `(name, shape)` of one parameter.
pub type ParamShape = (String, Vec<usize>);

struct Listing {
    out: Vec<ParamShape>,
    num_classes: usize,
}

impl Listing {
    fn push(&mut self, name: String, shape: Vec<usize>) {
        self.out.push((name, shape));
    }
    /// `nn.Conv2d(cin, cout, k)`: `weight`, then `bias` if any.
    fn conv(&mut self, prefix: &str, cin: usize, cout: usize, k: usize, bias: bool) {
        self.push(format!("{prefix}.weight"), vec![cout, cin, k, k]);
        if bias {
            self.push(format!("{prefix}.bias"), vec![cout]);
        }
    }
    /// `ConditionalInstanceNorm2dPlus(c)`: one embedding `[L, 3c]`.
    fn norm(&mut self, prefix: &str, c: usize) {
        self.push(format!("{prefix}.embed.weight"), vec![self.num_classes, 3 * c]);
    }
    /// `ConditionalResidualBlock`: registration order conv1, normalize2, conv2, shortcut, normalize1.
    fn residual(&mut self, prefix: &str, cin: usize, cout: usize, down: bool, dilated: bool) {
        match (down, dilated) {
            (true, true) => {
                self.conv(&format!("{prefix}.conv1"), cin, cin, 3, true);
                self.norm(&format!("{prefix}.normalize2"), cin);
                self.conv(&format!("{prefix}.conv2"), cin, cout, 3, true);
                self.conv(&format!("{prefix}.shortcut"), cin, cout, 3, true);
            }
            (true, false) => {
                self.conv(&format!("{prefix}.conv1"), cin, cin, 3, true);
                self.norm(&format!("{prefix}.normalize2"), cin);
                self.conv(&format!("{prefix}.conv2.conv"), cin, cout, 3, true);
                self.conv(&format!("{prefix}.shortcut.conv"), cin, cout, 1, true);
            }
            (false, _) => {
                self.conv(&format!("{prefix}.conv1"), cin, cout, 3, true);
                self.norm(&format!("{prefix}.normalize2"), cout);
                self.conv(&format!("{prefix}.conv2"), cout, cout, 3, true);
            }
        }
        self.norm(&format!("{prefix}.normalize1"), cin);
    }
    /// `CondRCUBlock`: `{i}_{j}_norm`, `{i}_{j}_conv` (no bias) for each block i and stage j.
    fn rcu(&mut self, prefix: &str, c: usize, n_blocks: usize) {
        for i in 1..=n_blocks {
            for j in 1..=2 {
                self.norm(&format!("{prefix}.{i}_{j}_norm"), c);
                self.conv(&format!("{prefix}.{i}_{j}_conv"), c, c, 3, false);
            }
        }
    }
    /// `CondRefineBlock`: adapt_convs, output_convs, msf (two inputs), crp (convs, then norms).
    fn refine(&mut self, prefix: &str, in_planes: &[usize], features: usize, end: bool) {
        for (k, &c) in in_planes.iter().enumerate() {
            self.rcu(&format!("{prefix}.adapt_convs.{k}"), c, 2);
        }
        self.rcu(&format!("{prefix}.output_convs"), features, if end { 3 } else { 1 });
        if in_planes.len() > 1 {
            for (k, &c) in in_planes.iter().enumerate() {
                self.conv(&format!("{prefix}.msf.convs.{k}"), c, features, 3, true);
            }
            for (k, &c) in in_planes.iter().enumerate() {
                self.norm(&format!("{prefix}.msf.norms.{k}"), c);
            }
        }
        for k in 0..2 {
            self.conv(&format!("{prefix}.crp.convs.{k}"), features, features, 3, false);
        }
        for k in 0..2 {
            self.norm(&format!("{prefix}.crp.norms.{k}"), features);
        }
    }
}

/// Every parameter of the reference `CondRefineNetDilated` for `cfg`, in state_dict order.
pub fn reference_shapes(cfg: &ModelConfig) -> Vec<ParamShape> {
    let (c, f) = (cfg.channels, cfg.ngf);
    let mut l = Listing {
        out: Vec::new(),
        num_classes: cfg.num_classes,
    };
    l.conv("begin_conv", c, f, 3, true);
    l.norm("normalizer", f);
    l.conv("end_conv", f, c, 3, true);
    l.residual("res1.0", f, f, false, false);
    l.residual("res1.1", f, f, false, false);
    l.residual("res2.0", f, 2 * f, true, false);
    l.residual("res2.1", 2 * f, 2 * f, false, false);
    for stage in ["res3", "res4"] {
        l.residual(&format!("{stage}.0"), 2 * f, 2 * f, true, true);
        l.residual(&format!("{stage}.1"), 2 * f, 2 * f, false, true);
    }
    l.refine("refine1", &[2 * f], 2 * f, false);
    l.refine("refine2", &[2 * f, 2 * f], 2 * f, false);
    l.refine("refine3", &[2 * f, 2 * f], f, false);
    l.refine("refine4", &[f, f], f, true);
    l.out
}
