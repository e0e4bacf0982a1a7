#!/usr/bin/env bash
# Remakes every number and picture of the MNIST CPU recipe that the book (chapter "Images") and
# crates/ncsn/README.md show: about 105 minutes on a 2-core AMD EPYC of the Zen 4 generation, about
# 140 on a Zen 1, best on an idle machine (the minutes it reports are measured).
#
#   scripts/mnist_recipe.sh [RUNS_DIR]      (default: runs)
#
# 1. trains the recipe (configs/mnist-cpu.toml), keeping a checkpoint every 2,000 steps, and
#    draws 1,000 samples of it with its own sampler from four seeds, and from two without its
#    step band (the headline figures);
# 2. trains the paper's settings (sigma 1 -> 0.01, L = 10, the network's output as the score,
#    uniform levels, no EMA) with the same network, batch and sampler budget (121 network
#    evaluations per chain) for 3,200 steps, keeping a checkpoint every 800;
# 3. measures the MNIST FID of 250 samples of every kept checkpoint of both (the FID over
#    training), and of the recipe's last weights under several sampler settings;
# 4. classifies Tweedie's estimate of 500 chains at every level (where the chains decide their
#    digit), and draws the chain of 16 samples and its estimates as GIFs, a grid of 64 and
#    inpaintings of held-out digits;
# 5. collects everything into book/src/figures/mnist_recipe.json and mnist_recipe_fid.png
#    (`cargo run --release -p ncsn --example mnist_recipe`).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs}"
cargo build --release -p ncsn --bins --examples
ncsn=target/release/ncsn
recipe="$runs/mnist-cpu"
paper="$runs/mnist-cpu-paper"

# `train FOLDER ARGS...`: trains, timing the whole command into FOLDER/train-seconds.txt. A
# folder that already holds a finished, timed run is kept (so the measuring steps can be rerun
# alone); delete it to train again.
train() {
    local dir="$1"
    shift
    if [[ -f "$dir/train-seconds.txt" && -f "$dir/checkpoint.json" ]]; then
        echo "mnist_recipe.sh: $dir already holds a finished run ($(cat "$dir/train-seconds.txt") s of training): kept"
        return
    fi
    local start end
    start=$(date +%s)
    "$ncsn" train --out "$dir" "$@"
    end=$(date +%s)
    echo $((end - start)) >"$dir/train-seconds.txt"
}

# `[SEED=S] measure CHECKPOINT OUT N ARGS...`: N samples (seed S, default 1) and their FID
# (OUT/fid.json). A folder that already holds its fid.json is kept, as a finished run is; delete
# it to measure again.
measure() {
    local checkpoint="$1" out="$2" n="$3"
    shift 3
    if [[ -f "$out/fid.json" ]]; then
        echo "mnist_recipe.sh: $out/fid.json exists: kept"
        return
    fi
    "$ncsn" sample --checkpoint "$checkpoint" --out "$out" --n "$n" --batch-size 250 --seed "${SEED:-1}" --fid "$@"
}

train "$recipe" --config configs/mnist-cpu.toml --keep-every 2000
# The headline: 1,000 samples with the recipe's sampler from four seeds, for the spread of the
# numbers between draws; and the first two seeds without the step band.
measure "$recipe" "$recipe/final-1000" 1000
for seed in 2 3 4; do
    SEED=$seed measure "$recipe" "$recipe/final-1000-seed-$seed" 1000
done
measure "$recipe" "$recipe/final-1000-no-band" 1000 --step-band none
SEED=2 measure "$recipe" "$recipe/final-1000-no-band-seed-2" 1000 --step-band none
# The paper's settings: same network, batch, learning rate (constant) and seed, the levels drawn
# uniformly; its sampler with the same budget of 121 network evaluations per chain (10 levels x
# 12 steps and the denoising step), and the step size 1.8e-4 of the book's earlier comparison; NCSNv2's rule for its schedule (3.4e-5) is
# measured below. The sampler is passed to every measurement, not read from the checkpoints: the
# settings a run records do not change its training, and the paper run in the book recorded 8 steps
# per level.
train "$paper" --config configs/mnist-cpu.toml --keep-every 800 --name mnist-cpu-paper --steps 3200 \
    --sigma-begin 1 --num-levels 10 --score-over-sigma false --ema false --lr-schedule constant \
    --level-sampling uniform \
    --sample-steps-per-level 12 --sample-eps 1.8e-4 --sample-band-low 0 --sample-band-high 0 --sample-band-factor 1
paper_measure=(--steps-per-level 12 --eps 1.8e-4 --step-band none)

# The FID over training: 250 samples of every kept checkpoint.
for json in "$recipe"/checkpoint-*.json; do
    step=$(basename "$json" .json)
    measure "$json" "$recipe/samples-${step#checkpoint-}" 250
done
for json in "$paper"/checkpoint-*.json; do
    step=$(basename "$json" .json)
    measure "$json" "$paper/samples-${step#checkpoint-}" 250 "${paper_measure[@]}"
done

# The sampler on the recipe's last weights, 250 samples each (its own, 3 steps per level at eps
# 1.2e-4 and three times that step between sigma 0.5 and 0.2, is samples-00012000): no longer step
# in that band, twice as long a step there, NCSNv2's rule for the step size (4.7e-5 at 3 steps per
# level, without the band), smaller and larger steps, 2 steps per level (two thirds of the budget),
# and the last weights instead of the EMA.
measure "$recipe" "$recipe/sweep-no-band" 250 --step-band none
measure "$recipe" "$recipe/sweep-band-x2" 250 --step-band 0.2,0.5,2
measure "$recipe" "$recipe/sweep-eps-4.7e-5" 250 --eps 4.7e-5 --step-band none
for eps in 8e-5 1.8e-4; do
    measure "$recipe" "$recipe/sweep-eps-$eps" 250 --eps "$eps"
done
measure "$recipe" "$recipe/sweep-t2" 250 --steps-per-level 2
measure "$recipe" "$recipe/sweep-last-weights" 250 --no-ema
# The paper's settings at its last checkpoint with NCSNv2's rule for its schedule.
measure "$paper" "$paper/sweep-eps-3.4e-5" 250 --steps-per-level 12 --eps 3.4e-5

# Where the chains decide their digit: Tweedie's estimate x + sigma_i^2 s(x, sigma_i) at every
# level of 500 chains (the first 500 of the seed-1 draw above: the same batches and streams),
# classified and set against each chain's final class (fid.json's `decisions`, decisions.png).
measure "$recipe" "$recipe/decisions" 500 --snapshots 3 --denoised
# The same chains without the step band: the measurement that placed it.
measure "$recipe" "$recipe/decisions-no-band" 500 --snapshots 3 --denoised --step-band none

# The chain of 16 samples, one frame per noise level (3 steps each), with the estimates beside it
# (denoised.gif), and the inpaintings.
"$ncsn" sample --checkpoint "$recipe" --out "$recipe/grid-64" --n 64 --seed 1
"$ncsn" sample --checkpoint "$recipe" --out "$recipe/chain" --n 16 --batch-size 16 --seed 2 --snapshots 3 --denoised
for mask in left-half center; do
    "$ncsn" inpaint --checkpoint "$recipe" --out "$recipe/inpaint-$mask" \
        --dataset data/mnist-5k-images-idx3-ubyte.gz --n 8 --per-image 4 --mask "$mask" --seed 3
done
figures=book/src/figures
cp "$recipe/grid-64/samples.png" "$figures/mnist_recipe_samples.png"
cp "$recipe/chain/chain.gif" "$figures/mnist_recipe_chain.gif"
cp "$recipe/chain/denoised.gif" "$figures/mnist_recipe_denoised.gif"
cp "$recipe/decisions/decisions.png" "$figures/mnist_recipe_decisions.png"
cp "$recipe/decisions/fid.json" "$figures/mnist_recipe_decisions.json"
cp "$recipe/decisions-no-band/fid.json" "$figures/mnist_recipe_decisions_no_band.json"
cp "$recipe/inpaint-left-half/inpainting.png" "$figures/mnist_recipe_inpaint_left.png"
cp "$recipe/inpaint-center/inpainting.png" "$figures/mnist_recipe_inpaint_center.png"

cargo run --release -p ncsn --example mnist_recipe -- --recipe configs/mnist-cpu.toml \
    --run "NCSNv2 settings (the recipe)=$recipe" --run "the paper's settings=$paper"
