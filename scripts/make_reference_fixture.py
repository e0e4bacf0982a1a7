#!/usr/bin/env python3
"""Write the test fixtures that check `ncsn::model` against the reference PyTorch model.

Needs a clone of the reference implementation (ermongroup/ncsn, for
`models/cond_refinenet_dilated.py`), torch and safetensors:

    python scripts/make_reference_fixture.py --reference /path/to/ncsn crates/ncsn/tests/data

It writes
- `reference_state_dict_cifar10.txt`: `name dim dim ...` for each state_dict entry of the
  CIFAR-10 model (ngf 128, 3 channels, 10 levels), in PyTorch's order;
- for two small models, `reference_<name>.safetensors` (the weights, produced by saving a
  DataParallel checkpoint `[state_dict, optimizer]` as the reference does and converting it
  with `convert_reference_checkpoint.py`) and `reference_<name>_io.safetensors` (`x`, `labels`,
  and the reference output `score`).

Every parameter is redrawn so that the test tells gamma, alpha and beta apart (at their initial
values gamma and alpha are both near 1 and beta is 0).
"""
import argparse
import os
import subprocess
import sys
import types

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

SMALL_MODELS = {
    # name: (ngf, channels, image_size, num_classes, batch)
    "ngf8_32x32x3": (8, 3, 32, 10, 3),
    "ngf4_28x28x1": (4, 1, 28, 10, 2),
}


def config(ngf, channels, image_size, num_classes):
    data = types.SimpleNamespace(logit_transform=False, channels=channels, image_size=image_size)
    return types.SimpleNamespace(data=data, model=types.SimpleNamespace(ngf=ngf, num_classes=num_classes))


def randomise(model, generator):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed.weight"):
                c = p.shape[1] // 3
                p[:, :c].normal_(1.0, 0.3, generator=generator)  # gamma
                p[:, c:2 * c].normal_(0.5, 0.3, generator=generator)  # alpha
                p[:, 2 * c:].normal_(0.0, 0.3, generator=generator)  # beta
            else:
                p.uniform_(-1.0, 1.0, generator=generator).mul_(1.0 / (p[0].numel() ** 0.5 if p.dim() > 1 else 3.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="clone of the reference repository")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    sys.path.insert(0, args.reference)
    from models.cond_refinenet_dilated import CondRefineNetDilated

    os.makedirs(args.out_dir, exist_ok=True)
    big = CondRefineNetDilated(config(128, 3, 32, 10))
    with open(os.path.join(args.out_dir, "reference_state_dict_cifar10.txt"), "w") as f:
        for name, t in big.state_dict().items():
            f.write(name + " " + " ".join(str(d) for d in t.shape) + "\n")

    g = torch.Generator().manual_seed(2019)
    for name, (ngf, channels, size, levels, batch) in SMALL_MODELS.items():
        torch.manual_seed(0)
        model = CondRefineNetDilated(config(ngf, channels, size, levels))
        randomise(model, g)
        model.eval()
        x = torch.rand(batch, channels, size, size, generator=g)
        labels = torch.randint(0, levels, (batch,), generator=g)
        with torch.no_grad():
            score = model(x, labels)

        wrapped = torch.nn.DataParallel(model)
        optimizer = torch.optim.Adam(wrapped.parameters(), lr=1e-3)
        checkpoint = os.path.join(args.out_dir, f".reference_{name}.pth")
        torch.save([wrapped.state_dict(), optimizer.state_dict()], checkpoint)
        weights = os.path.join(args.out_dir, f"reference_{name}.safetensors")
        subprocess.run([sys.executable, os.path.join(HERE, "convert_reference_checkpoint.py"), checkpoint, weights],
                       check=True)
        os.unlink(checkpoint)
        save_file({"x": x.contiguous(), "labels": labels.to(torch.int64).contiguous(), "score": score.contiguous()},
                  os.path.join(args.out_dir, f"reference_{name}_io.safetensors"))
        print(f"{name}: score mean |.| {score.abs().mean():.4f}, max |.| {score.abs().max():.4f}")


if __name__ == "__main__":
    main()
