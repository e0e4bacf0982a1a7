#!/usr/bin/env python3
"""Reference values for `crates/quality`: the Frechet distance as scipy computes it, and the
Inception score as numpy computes it.

    python3 scripts/make_frechet_fixture.py crates/quality/tests/fixtures/frechet_scipy.safetensors

Needs numpy, scipy and safetensors. The Frechet distance of pytorch-fid takes the square root of
the product of the covariances with `scipy.linalg.sqrtm`, which does not assume symmetry; the Rust
code gets the same trace from symmetric eigendecompositions, and its test
(`crates/quality/tests/frechet_scipy.rs`) compares the two on the pairs written here.

The file holds, for each dimension d in DIMS, the float64 tensors `d{d}.mu1` (d), `d{d}.sigma1`
(d, d), `d{d}.mu2`, `d{d}.sigma2` and `d{d}.fid` (1). Covariances are `A A^T / n` of a random
A (d x n) with n > d, so they are positive definite; each dimension has its own seed.

The script also prints the Inception score of the logits that `lcg_logits` makes (an integer
generator that Rust reproduces bit for bit, see `tests/inception_score_numpy.rs`); those two
numbers are hard-coded in that test.
"""
import argparse
import os
import tempfile

import numpy as np
import scipy.linalg
from safetensors.numpy import save_file

DIMS = (4, 32, 128)


def frechet_scipy(mu1, s1, mu2, s2):
    """|mu1 - mu2|^2 + tr(s1) + tr(s2) - 2 tr(sqrtm(s1 s2)), in float64."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    # sqrtm of a product of two positive definite matrices is real up to rounding.
    assert np.abs(np.imag(root)).max() < 1e-8 * np.abs(root).max()
    root = np.real(root)
    dmu = mu1 - mu2
    return float(dmu @ dmu + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root))


def random_pair(d, seed):
    rng = np.random.default_rng(seed)
    n = 2 * d + 3
    out = {}
    for side in ("1", "2"):
        # Columns of different scales so the covariance is not close to a multiple of I.
        a = rng.standard_normal((d, n)) * rng.uniform(0.2, 2.0, size=(d, 1))
        out["sigma" + side] = a @ a.T / n
        out["mu" + side] = rng.standard_normal(d) * 0.5
    return out


def lcg_logits(n, k, seed=12345):
    """n x k logits in [-4, 4): x <- (1664525 x + 1013904223) mod 2^32, logit = (x >> 8) / 2^21 - 4.
    Every value is exact in float32, so Rust builds the same logits."""
    x = seed
    out = np.empty(n * k, dtype=np.float64)
    for i in range(n * k):
        x = (1664525 * x + 1013904223) % (1 << 32)
        out[i] = (x >> 8) / float(1 << 21) - 4.0
    return out.astype(np.float32).reshape(n, k)


def inception_score_numpy(logits, splits):
    """Mean and population sd over contiguous splits of exp(mean_x KL(p(y|x) || p(y)))."""
    z = logits.astype(np.float64)
    n = z.shape[0]
    scores = []
    for i in range(splits):
        part = z[i * n // splits:(i + 1) * n // splits]
        log_p = part - part.max(axis=1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        log_py = np.log(p.mean(axis=0))
        scores.append(np.exp((p * (log_p - log_py)).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="output .safetensors file")
    args = parser.parse_args()

    tensors = {}
    for d in DIMS:
        pair = random_pair(d, seed=1000 + d)
        fid = frechet_scipy(pair["mu1"], pair["sigma1"], pair["mu2"], pair["sigma2"])
        for name, value in pair.items():
            tensors[f"d{d}.{name}"] = np.ascontiguousarray(value, dtype=np.float64)
        tensors[f"d{d}.fid"] = np.array([fid], dtype=np.float64)
        print(f"d={d}: fid={fid!r}")

    # Written beside the target and renamed: a failed run leaves no partial file.
    folder = os.path.dirname(os.path.abspath(args.out))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.safetensors")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"generator": "scripts/make_frechet_fixture.py"})
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes")

    logits = lcg_logits(200, 10)
    mean, sd = inception_score_numpy(logits, splits=10)
    print(f"inception score of lcg_logits(200, 10), 10 splits: mean={mean!r} sd={sd!r}")
    mean, sd = inception_score_numpy(logits, splits=3)
    print(f"inception score of lcg_logits(200, 10), 3 splits: mean={mean!r} sd={sd!r}")


if __name__ == "__main__":
    main()
