#!/usr/bin/env bash
# The GPU path of `ncsn`, checked on one NVIDIA GPU in one command (see scripts/README.md):
#
#   1. `ncsn check-device --device cuda`: the reference fixture's forward pass, DSM loss and
#      gradients on the GPU against the CPU and PyTorch, each within its tolerance;
#   2. `ncsn bench --device cuda` on the paper's model (ngf 128, batch 128), with the GPU's memory
#      sampled by nvidia-smi while it runs (candle reports none);
#   3. the reference's MNIST recipe (configs/mnist.toml) trained for a few hundred steps into a
#      run folder, a grid sampled from it (`ncsn sample`), the run resumed for more steps, and
#      checkpoint.json's step checked to have continued.
#
# Writes report.txt (every step's output and time, the GPU's name) and the sample grid into
# --out, and exits non-zero with a message naming the step on any failure.
#
#   scripts/gpu-check.sh [--dry-run] [--bin PATH] [--out DIR]
#
# --dry-run runs every step on the CPU at tiny sizes, without nvidia-smi: the check of the script
# itself that CI runs with the CPU release binary.
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --dry-run   every step on --device cpu with tiny sizes; no nvidia-smi
  --bin PATH  the ncsn binary (default: target/release/ncsn, built with
              `cargo build --release -p ncsn --features cuda` if absent and cargo exists;
              without --features cuda for --dry-run)
  --out DIR   where report.txt and the grid go (default: gpu-check-out)
EOF
}

dry_run=0
bin=""
out="gpu-check-out"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry_run=1; shift ;;
        --bin) [[ $# -ge 2 ]] || { echo "gpu-check: --bin needs a path" >&2; exit 2; }; bin="$2"; shift 2 ;;
        --out) [[ $# -ge 2 ]] || { echo "gpu-check: --out needs a folder" >&2; exit 2; }; out="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

# Paths given relative to where the script was called from, then work from the repository's
# root: the fixture (crates/ncsn/tests/data), configs/ and the MNIST digits (data/) are there.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
out="$(abspath "$out")"
[[ -n "$bin" ]] && bin="$(abspath "$bin")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

run_dir="$out/run"
if [[ -e "$run_dir" ]]; then
    echo "gpu-check: $run_dir exists (from an earlier check?): remove it or choose another --out;" \
        "a new run is not started over an old one" >&2
    exit 2
fi
mkdir -p "$out"
report="$out/report.txt"
: >"$report"
say() { echo "$*" | tee -a "$report"; }
fail() {
    echo "gpu-check: FAILED: $*" | tee -a "$report" >&2
    echo "gpu-check: the report so far is in $report" >&2
    exit 1
}

if [[ $dry_run -eq 1 ]]; then
    device=cpu
    features=()
else
    device=cuda
    features=(--features cuda)
fi

# The binary: given, or the workspace's release build (built here if cargo can).
if [[ -z "$bin" ]]; then
    bin="$root/target/release/ncsn"
    if [[ ! -x "$bin" ]]; then
        command -v cargo >/dev/null ||
            fail "no ncsn binary at $bin and no cargo to build it: pass --bin PATH (a release build${features:+ with --features cuda})"
        say "building $bin: cargo build --release -p ncsn ${features[*]}"
        cargo build --release -p ncsn "${features[@]}" 2>&1 | tee -a "$report" ||
            fail "cargo build --release -p ncsn ${features[*]} failed"
    fi
fi
[[ -x "$bin" ]] || fail "--bin $bin is not an executable file"

# Sizes. The GPU's: the paper's model for the bench, the reference's MNIST recipe (ngf 64,
# batch 128) for training. The dry run's: the smallest that still runs every code path.
if [[ $dry_run -eq 1 ]]; then
    bench_args=(--ngf 8 --batch 2 --steps 1 --evals 1 --warmup 0)
    train_config=configs/mnist-smoke.toml
    train_args=(--ngf 4 --batch-size 4 --test-batch-size 4 --num-levels 4
        --log-every 2 --test-every 2 --snapshot-every 2)
    first_steps=4
    more_steps=6
    sample_args=(--n 4 --batch-size 4 --steps-per-level 2)
else
    bench_args=(--ngf 128 --batch 128 --steps 3 --evals 3 --warmup 1)
    train_config=configs/mnist.toml
    train_args=(--log-every 25 --test-every 100 --snapshot-every 100)
    first_steps=300
    more_steps=400
    sample_args=(--n 64 --batch-size 64)
fi

# Each step's wall-clock limit in seconds: together under 8 minutes on an H100-class GPU; the
# dry run's are for a busy 2-core CI machine.
if [[ $dry_run -eq 1 ]]; then
    limit_check=60 limit_bench=60 limit_train=60 limit_sample=60 limit_resume=60
else
    limit_check=60 limit_bench=120 limit_train=150 limit_sample=60 limit_resume=60
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
timings=()

# run_step NAME LIMIT WHAT-IT-CHECKS COMMAND...: runs COMMAND with its output into the report,
# stops the whole check if it fails or runs past LIMIT seconds.
run_step() {
    local name="$1" limit="$2" what="$3"
    shift 3
    say ""
    say "== $name: $what"
    say "\$ $*"
    local start rc=0
    start="$(now)"
    if command -v timeout >/dev/null; then
        timeout "$limit" "$@" 2>&1 | tee -a "$report" || rc=${PIPESTATUS[0]}
    else
        "$@" 2>&1 | tee -a "$report" || rc=${PIPESTATUS[0]}
    fi
    local took
    took="$(elapsed "$start")"
    timings+=("$name: ${took} s")
    say "-- $name: exit $rc after ${took} s"
    if [[ $rc -eq 124 ]]; then
        fail "$name ran past its limit of $limit s"
    elif [[ $rc -ne 0 ]]; then
        fail "$name exited with status $rc (its output is above and in $report)"
    fi
}

# checkpoint.json's step, read without a JSON tool (it is written by serde_json, pretty-printed).
checkpoint_step() {
    local json="$1/checkpoint.json"
    [[ -f "$json" ]] || fail "$json not found after training"
    local step
    step="$(grep -o '"step": *[0-9]*' "$json" | head -n 1 | grep -o '[0-9]*$')" ||
        fail "$json has no \"step\""
    echo "$step"
}

total_start="$(now)"
say "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
say "binary: $bin ($("$bin" --version 2>&1 || echo 'does not run'))"
if [[ $dry_run -eq 1 ]]; then
    say "mode: DRY RUN (--device cpu, tiny sizes, no nvidia-smi)"
else
    command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this check needs a machine with an NVIDIA GPU (or --dry-run)"
    gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)" ||
        fail "nvidia-smi could not query the GPU"
    say "GPU: $gpu"
fi

# 1. The numbers.
run_step "check-device" "$limit_check" \
    "forward pass, DSM loss and gradients on $device against the CPU and PyTorch, each within its tolerance" \
    "$bin" check-device --device "$device"

# 2. Speed and memory. nvidia-smi samples the GPU's memory every 200 ms while the bench runs.
mem_log="$out/gpu-memory.csv"
sampler=""
stop_sampler() {
    if [[ -n "$sampler" ]]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        sampler=""
    fi
}
trap stop_sampler EXIT # also when a step fails and the script exits
if [[ $dry_run -eq 0 ]]; then
    nvidia-smi --query-gpu=memory.used,memory.total --format=csv -lms 200 >"$mem_log" 2>&1 &
    sampler=$!
fi
run_step "bench" "$limit_bench" \
    "the training and sampling steps run on $device (${bench_args[*]}); their speed and memory" \
    "$bin" bench --device "$device" "${bench_args[@]}"
if [[ $dry_run -eq 0 ]]; then
    stop_sampler
    # Lines after the header read "12345 MiB, 81559 MiB".
    peak="$(awk -F', *' 'NR > 1 && $1 ~ /MiB/ { v = $1 + 0; if (v > m) m = v; t = $2 } END { if (m) printf "%d MiB of %s", m, t }' "$mem_log")"
    [[ -n "$peak" ]] || fail "nvidia-smi recorded no memory samples during the bench (see $mem_log)"
    say "GPU memory used during the bench (nvidia-smi, every 200 ms; the whole GPU, other processes included): peak $peak"
fi

# 3. A training run, samples from it, and its continuation.
run_step "train" "$limit_train" \
    "$train_config trains on $device for $first_steps steps into a run folder, the loss finite" \
    "$bin" train --config "$train_config" --device "$device" --out "$run_dir" --steps "$first_steps" "${train_args[@]}"
step="$(checkpoint_step "$run_dir")"
[[ "$step" -eq "$first_steps" ]] || fail "checkpoint.json says step $step after training $first_steps steps"
say "checkpoint.json: step $step (expected $first_steps)"

run_step "sample" "$limit_sample" \
    "annealed Langevin sampling from the run on $device writes a grid (${sample_args[*]})" \
    "$bin" sample --checkpoint "$run_dir" --device "$device" --out "$out/samples" "${sample_args[@]}"
grid="$out/samples/samples.png"
[[ -s "$grid" ]] || fail "ncsn sample wrote no grid $grid"
cp "$grid" "$out/grid.png"
say "grid: $out/grid.png"

run_step "resume" "$limit_resume" \
    "the run resumes on $device from step $first_steps to $more_steps" \
    "$bin" train --resume "$run_dir" --device "$device" --steps "$more_steps"
step="$(checkpoint_step "$run_dir")"
[[ "$step" -eq "$more_steps" ]] || fail "checkpoint.json says step $step after resuming to $more_steps steps"
say "checkpoint.json: step $step (expected $more_steps): the run continued"

say ""
say "== timings"
for t in "${timings[@]}"; do say "$t"; done
say "total: $(elapsed "$total_start") s"
say "gpu-check: all steps passed on $device$([[ $dry_run -eq 1 ]] && echo ' (dry run)')"
