#!/usr/bin/env python3
"""Side-by-side speed of the Rust image model and PyTorch on this machine.

Runs the Rust benchmarks and the same work in PyTorch alternately (Rust, PyTorch, Rust, ...),
`--rounds` times, and prints the median of each side and their ratio, so that load from other
programs on a shared machine hits both sides alike. Needs torch and, for the whole-model rows, a
clone of the reference implementation (ermongroup/ncsn), imported at run time, never copied:

    python scripts/bench_torch.py convs                          # every convolution shape, batch 16
    python scripts/bench_torch.py convs --rounds 9 --runs 5      # the same five times, and the medians
    python scripts/bench_torch.py model --reference /path/to/ncsn --batches 8 16   # training step
    python scripts/bench_torch.py forward --reference /path/to/ncsn --batches 8 32 # sampling step
    python scripts/bench_torch.py model --reference /path/to/ncsn --ngf 16 --channels 1 --image-size 28 \
        --batches 64                                             # the MNIST CPU recipe's step

Rows:
- convs: each convolution shape of the CIFAR-10 model (`crates/ncsn/benches/conv.rs` lists them),
  forward, and forward + backward given the output's gradient (both inputs' gradients).
- model: one training step of the network (default: the ngf-128 CIFAR-10 one) at batch B, as `ncsn train` runs it
  and as the reference runner runs it: noise-conditional DSM loss (sigmas 1 -> 0.01, L = 10),
  backward, Adam (lr 1e-3); peak resident memory of each process.
- forward: one forward pass of the network (one step of annealed Langevin) at batch B.

The Rust side is `cargo bench -p ncsn --bench conv -- --json` and `ncsn bench --json`, built in
release mode first. Both sides use the same number of threads (`--threads`, default: all cores).
Add `--json FILE` to keep every measurement.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rust_convs(args, only=None, reps=None):
    cmd = ["cargo", "bench", "-q", "-p", "ncsn", "--bench", "conv", "--", "--bench", "--json",
           "--batch", str(args.batch), "--reps", str(reps or args.reps)]
    if only:
        cmd += ["--only", only]
    if args.mnist:
        cmd += ["--mnist"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=rust_env(args)).stdout
    return {r["name"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}


def rust_env(args):
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = str(args.threads)
    return env


def torch_time(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def torch_convs(args, shapes):
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    out = {}
    for s in shapes:
        b, cin, cout, hw, k, d = args.batch, s["cin"], s["cout"], s["hw"], s["k"], s["d"]
        x = (torch.rand(b, cin, hw, hw, generator=g) - 0.5).requires_grad_(True)
        w = ((torch.rand(cout, cin, k, k, generator=g) - 0.5) / (cin * k * k) ** 0.5).requires_grad_(True)
        dy = torch.rand(b, cout, hw, hw, generator=g) - 0.5
        p = d * (k - 1) // 2

        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, padding=p, dilation=d)

        def both():
            x.grad = None
            w.grad = None
            F.conv2d(x, w, padding=p, dilation=d).backward(dy)

        out[s["name"]] = {"fwd_ms": torch_time(fwd, args.reps), "fwdbwd_ms": torch_time(both, args.reps)}
    return out


def cmd_convs(args):
    """Each shape alternates on its own (Rust, PyTorch; the next round PyTorch first), so that
    the two sides of a ratio are measured seconds apart: this virtual machine's speed drifts by
    20% and more over minutes. The ratio is the median of the rounds' ratios."""
    import torch
    torch.set_num_threads(args.threads)
    shapes = list(rust_convs(args, reps=1).values())  # the shapes, and a warm-up
    if args.only:
        unknown = set(args.only) - {s["name"] for s in shapes}
        if unknown:
            sys.exit(f"--only: no convolution shape named {sorted(unknown)}; the shapes: {[s['name'] for s in shapes]}")
        shapes = [s for s in shapes if s["name"] in args.only]
    rows = {}
    for r in range(args.rounds):
        for s in shapes:
            if r % 2 == 0:
                rust = rust_convs(args, only=s["name"])[s["name"]]
                py = torch_convs(args, [s])[s["name"]]
            else:
                py = torch_convs(args, [s])[s["name"]]
                rust = rust_convs(args, only=s["name"])[s["name"]]
            for key in ("fwd_ms", "fwdbwd_ms"):
                v = rows.setdefault((s["name"], key), {"rust": [], "torch": []})
                v["rust"].append(rust[key])
                v["torch"].append(py[key])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"convolutions, batch {args.batch}, {args.threads} threads, {args.rounds} rounds x {args.reps} reps (ms: "
          "medians; ratio: the median of the rounds' ratios)")
    print(f"{'shape':<30} {'pass':<8} {'rust':>9} {'torch':>9} {'ratio':>6}")
    table = []
    for (name, key), v in rows.items():
        rs, ts = statistics.median(v["rust"]), statistics.median(v["torch"])
        ratio = statistics.median(a / b for a, b in zip(v["rust"], v["torch"]))
        table.append({"name": name, "pass": key, "rust_ms": rs, "torch_ms": ts, "ratio": ratio, "raw": v})
        print(f"{name:<30} {key[:-3]:<8} {rs:>9.2f} {ts:>9.2f} {ratio:>6.2f}")
    return table


def cmd_convs_runs(args):
    """`--runs N`: the whole table N times in a row. A row timed alone, or in one run, moves with
    the machine's phase (PyTorch's dilation-4 fwd+bwd took 43-66 ms in runs of that row alone and
    37-45 ms inside the full table, the same hour), so a bound is judged on the medians over
    several full runs. Returns the rows (each the median over the runs of the runs' medians and
    ratios, with every run's ratio) and the runs themselves."""
    runs = []
    for i in range(args.runs):
        if args.runs > 1:
            print(f"run {i + 1}/{args.runs}", file=sys.stderr)
        runs.append(cmd_convs(args))
    if args.runs == 1:
        return runs[0], None
    rows = []
    for row in runs[0]:
        same = [next(r for r in run if r["name"] == row["name"] and r["pass"] == row["pass"]) for run in runs]
        ratios = [r["ratio"] for r in same]
        rows.append({"name": row["name"], "pass": row["pass"],
                     "rust_ms": statistics.median(r["rust_ms"] for r in same),
                     "torch_ms": statistics.median(r["torch_ms"] for r in same),
                     "ratio": statistics.median(ratios), "ratio_per_run": ratios})
    print(f"medians over {args.runs} runs (ms; ratio: the median of the runs' ratios, and their range)")
    print(f"{'shape':<30} {'pass':<8} {'rust':>9} {'torch':>9} {'ratio':>6} {'range':>11}")
    for r in rows:
        lo, hi = min(r["ratio_per_run"]), max(r["ratio_per_run"])
        print(f"{r['name']:<30} {r['pass'][:-3]:<8} {r['rust_ms']:>9.2f} {r['torch_ms']:>9.2f} {r['ratio']:>6.2f} "
              f"{lo:>5.2f}-{hi:<5.2f}")
    return rows, runs


# ---- whole model: the reference implementation, imported from a clone ----

def reference_model(reference, args_shape):
    sys.path.insert(0, reference)
    from models.cond_refinenet_dilated import CondRefineNetDilated  # noqa: E402
    data = types.SimpleNamespace(logit_transform=False, channels=args_shape.channels, image_size=args_shape.image_size)
    config = types.SimpleNamespace(data=data, model=types.SimpleNamespace(ngf=args_shape.ngf, num_classes=10))
    config.device = "cpu"
    return CondRefineNetDilated(config)


def torch_child(args):
    """One measurement in a fresh process (so its peak memory is its own): prints JSON."""
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sys.path.insert(0, args.reference)
    from losses.dsm import anneal_dsm_score_estimation  # noqa: E402
    model = reference_model(args.reference, args)
    sigmas = torch.tensor([float(v) for v in torch.logspace(0, -2, 10)])  # 1 -> 0.01, geometric
    x = torch.rand(args.batch, args.channels, args.image_size, args.image_size)
    times = []
    if args.kind == "model":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
        for i in range(args.warmup + args.steps):
            t = time.perf_counter()
            labels = torch.randint(0, len(sigmas), (x.shape[0],))
            loss = anneal_dsm_score_estimation(model, x, labels, sigmas, 2.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
            if i >= args.warmup:
                times.append(time.perf_counter() - t)
    else:
        labels = torch.randint(0, len(sigmas), (x.shape[0],))
        with torch.no_grad():
            for i in range(args.warmup + args.steps):
                t = time.perf_counter()
                model(x, labels).sum().item()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": statistics.median(times), "peak_bytes": peak}))


def rust_model(args, batch):
    cmd = ["cargo", "run", "-q", "--release", "-p", "ncsn", "--", "bench", "--json", "--ngf", str(args.ngf),
           "--channels", str(args.channels), "--image-size", str(args.image_size),
           "--batch", str(batch), "--warmup", str(args.warmup),
           "--steps", str(args.steps if args.what == "model" else 0),
           "--evals", str(args.steps if args.what == "forward" else 0)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=rust_env(args)).stdout
    r = json.loads(out.strip().splitlines()[-1])
    key = "train_step_median_s" if args.what == "model" else "sample_forward_median_s"
    return {"seconds": r[key], "peak_bytes": r["peak_resident_bytes"]}


def torch_model(args, batch):
    cmd = [sys.executable, os.path.abspath(__file__), "_child", "--kind", args.what, "--reference", args.reference,
           "--batch", str(batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--ngf", str(args.ngf), "--channels", str(args.channels),
           "--image-size", str(args.image_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cmd_model(args):
    if not args.reference:
        sys.exit("--reference /path/to/ncsn (a clone of ermongroup/ncsn) is needed for whole-model rows")
    label = "training step" if args.what == "model" else "forward pass"
    table = []
    for batch in args.batches:
        v = {"rust": [], "torch": [], "rust_peak": [], "torch_peak": []}
        for r in range(args.rounds):
            a = rust_model(args, batch)
            b = torch_model(args, batch)
            v["rust"].append(a["seconds"])
            v["torch"].append(b["seconds"])
            v["rust_peak"].append(a["peak_bytes"])
            v["torch_peak"].append(b["peak_bytes"])
            print(f"batch {batch} round {r + 1}/{args.rounds}: rust {a['seconds']:.3f} s, torch {b['seconds']:.3f} s",
                  file=sys.stderr)
        rs, ts = statistics.median(v["rust"]), statistics.median(v["torch"])
        rp, tp = max(v["rust_peak"]), max(v["torch_peak"])
        table.append({"what": label, "batch": batch, "rust_s": rs, "torch_s": ts, "ratio": rs / ts,
                      "rust_peak_bytes": rp, "torch_peak_bytes": tp, "raw": v})
    print(f"{label}, ngf {args.ngf} model on {args.channels}x{args.image_size}x{args.image_size} images, {args.threads} threads, median of {args.rounds} rounds "
          f"(each the median of {args.steps} steps after {args.warmup} warm-up)")
    print(f"{'batch':>5} {'rust s':>8} {'torch s':>8} {'ratio':>6} {'rust MiB':>9} {'torch MiB':>9}")
    for t in table:
        print(f"{t['batch']:>5} {t['rust_s']:>8.3f} {t['torch_s']:>8.3f} {t['ratio']:>6.2f} "
              f"{t['rust_peak_bytes'] / 2**20:>9.0f} {t['torch_peak_bytes'] / 2**20:>9.0f}")
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["convs", "model", "forward", "_child"])
    p.add_argument("--reference", help="clone of ermongroup/ncsn (model, forward)")
    p.add_argument("--batch", type=int, default=16, help="convs: images per batch")
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16], help="model/forward: batch sizes")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    p.add_argument("--reps", type=int, default=5, help="convs: timed repetitions per round")
    p.add_argument("--runs", type=int, default=1, help="convs: the whole table this many times; medians over them")
    p.add_argument("--only", nargs="+", metavar="NAME", help='convs: only these shapes, e.g. "256->256 16x16 k3 d4"')
    p.add_argument("--steps", type=int, default=3, help="model/forward: timed steps per round")
    p.add_argument("--warmup", type=int, default=1, help="model/forward: untimed steps first")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--ngf", type=int, default=128, help="model/forward: network width (CIFAR-10: 128)")
    p.add_argument("--channels", type=int, default=3, help="model/forward: image channels (MNIST: 1)")
    p.add_argument("--image-size", type=int, default=32, help="model/forward: image height = width (MNIST: 28)")
    p.add_argument("--json", help="write every measurement to this file")
    p.add_argument("--mnist", action="store_true", help="convs: the MNIST recipe's shapes (use --batch 64)")
    p.add_argument("--kind", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.what == "_child":
        return torch_child(args)
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "ncsn", "--benches", "--bins"], cwd=ROOT, check=True)
    runs = None
    if args.what == "convs":
        table, runs = cmd_convs_runs(args)
    else:
        table = cmd_model(args)
    if args.json:
        record = {"command": sys.argv, "threads": args.threads, "rows": table}
        if runs:
            record["runs"] = [{"rows": run} for run in runs]
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
