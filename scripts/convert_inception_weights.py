#!/usr/bin/env python3
"""Convert pytorch-fid's Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth) to safetensors.

pytorch-fid ports the Inception graph that TensorFlow's FID and Inception score use; its
weights are a plain state_dict, published at
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
(95 MB). This script keeps the tensors `quality::InceptionV3` uses, under the same names
(`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_var`, ..., `fc.weight`,
`fc.bias`), as contiguous float32, and drops the batch norms' `num_batches_tracked` counters:

    python3 scripts/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth \\
        data/pt_inception-2015-12-05.safetensors

Needs torch and safetensors (pip install torch safetensors); pytorch-fid itself is not needed.
"""
import argparse
import os
import sys
import tempfile

# The network's layers and their tensors. Each BasicConv2d unit (convolution without bias, batch
# norm) holds five tensors; the Rust model has the same units under the same names.
UNIT_TENSORS = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
BLOCK_UNITS = {
    "A": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
    "E": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}
BLOCKS = (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"),
          ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E"),
          ("Mixed_7c", "E"))


def expected_names():
    """The 472 tensor names of the FID Inception, in network order."""
    units = list(STEM) + [f"{block}.{unit}" for block, kind in BLOCKS for unit in BLOCK_UNITS[kind]]
    return [f"{unit}.{t}" for unit in units for t in UNIT_TENSORS] + ["fc.weight", "fc.bias"]


def load_state_dict(path, unsafe_load):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_load)
    except Exception as e:  # noqa: BLE001 - report any loading failure with the file name
        hint = "" if unsafe_load else " (if you trust the file, retry with --unsafe-load)"
        raise SystemExit(f"error: cannot read checkpoint {path}: {e}{hint}")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SystemExit(f"error: {path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    return obj


def convert(state_dict, path):
    """The tensors the Rust model reads, float32 and contiguous; a clear error for any gap."""
    import torch

    names = expected_names()
    missing = [n for n in names if n not in state_dict]
    if missing:
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SystemExit(f"error: {path}: {len(missing)} of the {len(names)} Inception tensors are missing: "
                         f"{listed} - is this pytorch-fid's pt_inception-2015-12-05 file?")
    fc = state_dict["fc.weight"]
    if tuple(fc.shape) != (1008, 2048):
        raise SystemExit(f"error: {path}: fc.weight has shape {tuple(fc.shape)}, expected (1008, 2048) "
                         "(torchvision's ImageNet Inception has 1000 classes and other weights: use pytorch-fid's)")
    out = {}
    for name in names:
        t = state_dict[name]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise SystemExit(f"error: {path}: {name} is not a floating-point tensor")
        t = t.detach().to(torch.float32).contiguous()
        if not torch.isfinite(t).all():
            raise SystemExit(f"error: {path}: {name} holds NaN or infinite values")
        out[name] = t
    dropped = sorted(set(state_dict) - set(names))
    return out, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("output", help="safetensors file to write, e.g. data/pt_inception-2015-12-05.safetensors")
    parser.add_argument("--unsafe-load", action="store_true", help="torch.load with weights_only=False (trusted files only)")
    args = parser.parse_args(argv)

    try:
        from safetensors.torch import save_file
    except ImportError:
        raise SystemExit("error: the python package `safetensors` is missing: pip install safetensors")

    tensors, dropped = convert(load_state_dict(args.checkpoint, args.unsafe_load), args.checkpoint)
    unexpected = [n for n in dropped if not n.endswith("num_batches_tracked")]
    if unexpected:
        print(f"note: {len(unexpected)} tensor(s) not used by the FID network were dropped, e.g. {unexpected[0]}",
              file=sys.stderr)
    count = sum(t.numel() for t in tensors.values())

    # Write next to the target, then rename: a failed run never leaves a half-written file.
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise SystemExit(f"error: the folder of {args.output} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".safetensors", dir=out_dir)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"source": os.path.basename(args.checkpoint), "format": "pt",
                                          "network": "inception-v3-fid"})
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the usual permissions of a written file
        os.replace(tmp, args.output)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {args.output}: {len(tensors)} tensors, {count} parameters "
          f"({len(dropped)} dropped: num_batches_tracked and unused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
