#!/usr/bin/env python3
"""Convert a checkpoint of the reference NCSN implementation (ermongroup/ncsn) to safetensors.

The reference saves `torch.save([score.state_dict(), optimizer.state_dict()], "checkpoint.pth")`
where `score` is wrapped in `torch.nn.DataParallel`, so every key starts with `module.`. This
script keeps the model's state_dict only, strips that prefix, stores every tensor as contiguous
float32 and writes a safetensors file whose names are exactly the variable names of
`ncsn::model::CondRefineNetDilated` (e.g. `res1.0.normalize1.embed.weight`).

Usage:
    python scripts/convert_reference_checkpoint.py checkpoint.pth model.safetensors

Needs `torch` and `safetensors` (pip install torch safetensors). It prints the model shape the
checkpoint implies (ngf, channels, num_classes) for the ncsn configuration.
"""
import argparse
import os
import sys
import tempfile


def load_state_dict(path, unsafe_load):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_load)
    except Exception as e:  # noqa: BLE001 - report any loading failure with the file name
        hint = "" if unsafe_load else " (if you trust the file, retry with --unsafe-load)"
        raise SystemExit(f"error: cannot read checkpoint {path}: {e}{hint}")
    # [state_dict, optimizer_state] as the reference saves it; a bare state_dict is accepted too.
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise SystemExit(f"error: {path}: expected [state_dict, optimizer], got an empty list")
        obj = obj[0]
    if not isinstance(obj, dict):
        raise SystemExit(f"error: {path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise SystemExit(f"error: {path}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        name = key[len("module."):] if key.startswith("module.") else key
        if name in out:
            raise SystemExit(f"error: {path}: {name!r} appears twice (with and without 'module.')")
        out[name] = value.detach().to(torch.float32).contiguous()
    return out


def describe(tensors, path):
    """The ModelConfig fields a CondRefineNetDilated checkpoint implies."""
    try:
        ngf, channels = tensors["begin_conv.weight"].shape[:2]
        num_classes, three_ngf = tensors["normalizer.embed.weight"].shape
    except KeyError as e:
        raise SystemExit(f"error: {path}: no tensor {e} - is this a CondRefineNetDilated checkpoint?")
    if three_ngf != 3 * ngf:
        raise SystemExit(f"error: {path}: normalizer.embed.weight is [{num_classes}, {three_ngf}], expected [L, {3 * ngf}]")
    return {"ngf": int(ngf), "channels": int(channels), "num_classes": int(num_classes)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="reference checkpoint (.pth), [state_dict, optimizer] or a state_dict")
    parser.add_argument("output", help="safetensors file to write")
    parser.add_argument("--unsafe-load", action="store_true", help="torch.load with weights_only=False (trusted files only)")
    args = parser.parse_args(argv)

    from safetensors.torch import save_file

    tensors = load_state_dict(args.checkpoint, args.unsafe_load)
    shape = describe(tensors, args.checkpoint)
    count = sum(t.numel() for t in tensors.values())

    # Write next to the target, then rename: a failed run never leaves a half-written file.
    out_dir = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".safetensors", dir=out_dir)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"source": os.path.basename(args.checkpoint), "format": "pt"})
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the usual permissions of a written file
        os.replace(tmp, args.output)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {args.output}: {len(tensors)} tensors, {count} parameters; "
          f"model ngf={shape['ngf']} channels={shape['channels']} num_classes={shape['num_classes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
