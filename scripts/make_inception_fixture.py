#!/usr/bin/env python3
"""Write the fixture that checks `quality::InceptionV3` against pytorch-fid, without real weights.

pytorch-fid's FID Inception is built without its download, and every tensor of its state_dict
(convolution weights, batch-norm scale, shift and running statistics, the 1008-way `fc`) is
filled from a formula of the tensor's name and the element's index that the Rust test
(`crates/quality/tests/inception_fixture.rs`) computes the same way. A few images go through
pytorch-fid's own `InceptionV3` (resize to 299x299, map to [-1, 1], the blocks, the final
average pool) and through `fc`; the fixture keeps only the images, those outputs and (in its
metadata) the formula's version and the list of tensors filled, with their shapes:

    python3 scripts/make_inception_fixture.py                      # default output below
    python3 scripts/make_inception_fixture.py --out some/file.safetensors

Needs torch, torchvision, pytorch-fid, numpy and safetensors.

The formula (version `inception-fill-v1`), for element `i` (row-major) of tensor `name`:

    h = splitmix64(fnv1a64(utf8(name)) ^ i)          wrapping 64-bit arithmetic
    u = (h >> 11) * 2^-53 * 2 - 1                    in [-1, 1), exact in float64
    value = role(name, u) in float64, then rounded to float32

with role: `*.conv.weight` u * sqrt(6 / fan_in) (He uniform, fan_in = in_channels * kh * kw);
`*.bn.weight` 1 + 0.1 u; `*.bn.bias` 0.1 u; `*.bn.running_mean` 0.1 u; `*.bn.running_var`
0.75 + 0.25 (u + 1); `fc.weight` u / sqrt(2048); `fc.bias` 0.1 u.

The reference outputs are computed in float64 (the float32 weights and images, widened), so
that they carry no float32 rounding; the script prints how far PyTorch's own float32 run is
from them, the scale of rounding the Rust test's tolerance has to allow.
"""
import argparse
import os
import sys
import tempfile
from unittest import mock

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "crates", "quality", "tests", "fixtures", "inception_random.safetensors")
FORMULA = "inception-fill-v1"
MASK = (1 << 64) - 1


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def splitmix64(x):
    """The splitmix64 finaliser on a numpy uint64 array (numpy's uint64 arithmetic wraps)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(name, count):
    """u in [-1, 1) for elements 0..count of tensor `name`, float64."""
    with np.errstate(over="ignore"):
        h = splitmix64(np.uint64(fnv1a64(name.encode())) ^ np.arange(count, dtype=np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0


def fill_value(name, shape):
    """The float32 tensor the formula gives for `name` of `shape`."""
    count = int(np.prod(shape))
    u = uniform(name, count)
    if name.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        v = u * np.sqrt(6.0 / fan_in)
    elif name.endswith("bn.weight"):
        v = 1.0 + 0.1 * u
    elif name.endswith("bn.running_var"):
        v = 0.75 + 0.25 * (u + 1.0)
    elif name.endswith(("bn.bias", "bn.running_mean", "fc.bias")):
        v = 0.1 * u
    elif name == "fc.weight":
        v = u / np.sqrt(2048.0)
    else:
        raise SystemExit(f"error: no fill rule for tensor {name!r} {tuple(shape)}")
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def build_fid_inception():
    """pytorch-fid's FID Inception-v3 with formula-filled tensors, built without a download."""
    import pytorch_fid.inception as fid
    import torchvision

    marker = object()

    def skip_marker_load(module, state_dict, *args, **kwargs):
        if state_dict is not marker:
            raise SystemExit("error: unexpected load_state_dict while building the model")

    with mock.patch.object(fid, "load_state_dict_from_url", lambda *a, **k: marker), \
            mock.patch.object(torchvision.models.inception.Inception3, "load_state_dict", skip_marker_load):
        net = fid.fid_inception_v3()
    filled = []
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(fill_value(name, tuple(t.shape)))
            filled.append(f"{name} " + " ".join(str(d) for d in t.shape))
    # pytorch-fid's wrapper (resize, [-1, 1], the blocks, the final pool) around this network.
    with mock.patch.object(fid, "fid_inception_v3", lambda: net):
        wrapper = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return wrapper.eval(), net.fc, filled


def run(wrapper, fc, images, dtype):
    """Pool features (N, 2048) and logits (N, 1008) of `images` (N, C, H, W) in [0, 1]."""
    wrapper = wrapper.to(dtype)
    fc = fc.to(dtype)
    x = torch.from_numpy(images).to(dtype)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)  # grayscale -> RGB, as the Rust model does
    with torch.no_grad():
        pool = wrapper(x)[0].flatten(1)
        logits = fc(pool)
    return pool, logits


def rel_err(a, b):
    """max over images of max|a - b| / max|b| (per image)."""
    d = (a - b).abs().amax(dim=1) / b.abs().amax(dim=1)
    return float(d.max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="safetensors file to write")
    args = parser.parse_args(argv)
    from safetensors.torch import save_file

    torch.manual_seed(0)
    wrapper, fc, filled = build_fid_inception()
    rng = np.random.default_rng(20191205)
    batches = {
        "rgb": rng.random((3, 3, 32, 32), dtype=np.float32),  # CIFAR-10 sized
        "gray": rng.random((1, 1, 28, 28), dtype=np.float32),  # MNIST sized, repeated to RGB
        "odd": rng.random((1, 3, 20, 36), dtype=np.float32),  # unequal sides, down- and upsampled
    }
    out = {}
    worst = 0.0
    for key, images in batches.items():
        pool64, logits64 = run(wrapper, fc, images, torch.float64)
        pool32, logits32 = run(wrapper, fc, images, torch.float32)
        worst = max(worst, rel_err(pool32.double(), pool64), rel_err(logits32.double(), logits64))
        print(f"{key}: images {tuple(images.shape)}; pool mean {pool64.mean():.4f} std {pool64.std():.4f} "
              f"zero fraction {(pool64 == 0).double().mean():.3f}; logits std {logits64.std():.4f}; "
              f"torch float32 vs float64: pool {rel_err(pool32.double(), pool64):.2e}, "
              f"logits {rel_err(logits32.double(), logits64):.2e}")
        out[f"{key}_images"] = torch.from_numpy(images).contiguous()
        out[f"{key}_pool"] = pool64.to(torch.float32).contiguous()
        out[f"{key}_logits"] = logits64.to(torch.float32).contiguous()

    out_path = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    metadata = {
        "formula": FORMULA,
        # Every filled tensor, "name dim dim ...", one a line: the Rust model must have exactly these.
        "state_dict": "\n".join(filled),
        "reference": "pytorch-fid InceptionV3 (block 3) + fc, float64",
        "torch_float32_rel_err": f"{worst:.3e}",
    }
    fd, tmp = tempfile.mkstemp(prefix=".fixture-", suffix=".safetensors", dir=os.path.dirname(out_path))
    os.close(fd)
    try:
        save_file(out, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes): {len(filled)} tensors filled by {FORMULA}; "
          f"torch float32 vs float64 worst {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
