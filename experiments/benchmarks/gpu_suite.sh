#!/usr/bin/env bash
# The GPU checks of the "Scale and speed" issue as one prepared script, for a session that is lent a GPU
# (15 minutes of device time in all): every benchmark with a time limit, its JSON under $OUT (default
# experiments/benchmarks/results/gpu), its table in $OUT/suite.log. About 8 minutes on an H200.
#
#   OUT=/tmp/gpu bash experiments/benchmarks/gpu_suite.sh
#
# Bars (BENCHMARKS.md): tiled nt_xent at >= 1,048,576 pairs (2,097,152 rows) on one GPU and within 2x of its FLOP
# floor at 262,144 pairs (524,288 rows); plain nt_xent out of memory at 65,536 pairs; end-to-end SimCLR step
# >= 50k pairs/s on an H200, >= 0.9 of the model-only step and >= 1.15x torch.compile; augmentation >= 200k
# views/s at 32x32.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-experiments/benchmarks/results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/suite.log"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/suite.log"
$PY -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/suite.log"

log "augmentation throughput"
timeout 120 $PY experiments/benchmarks/augment_throughput.py --repeats 20 --json "$OUT/augment_throughput.json" \
  2>&1 | tail -n 25 | tee -a "$OUT/suite.log"

log "SimCLR step throughput (ResNet-18, 32x32, batch 512, bf16; PyTorch eager and torch.compile side by side)"
timeout 200 $PY experiments/benchmarks/step_throughput.py --batch 512 --steps 30 --warmup 5 \
  --out "$OUT/step_throughput.json" 2>&1 | tail -n 30 | tee -a "$OUT/suite.log"

log "loss scaling: plain nt_xent up to its out-of-memory"
timeout 120 $PY experiments/benchmarks/loss_scaling.py --impls plain --rows 32768,65536,131072 --dtype bfloat16 \
  --mem-limit-gb 0 --repeats 3 --json "$OUT/loss_scaling_plain.json" 2>&1 | tail -n 8 | tee -a "$OUT/suite.log"

log "loss scaling: tiled nt_xent to 2^21 rows (1,048,576 pairs); two tile sizes at 2^19 rows (the floor bar)"
for tile in 4096 16384; do
  timeout 150 $PY experiments/benchmarks/loss_scaling.py --impls tiled --rows 524288 --tile $tile --dtype bfloat16 \
    --mem-limit-gb 0 --repeats 3 --json "$OUT/loss_scaling_tiled_t$tile.json" 2>&1 | tail -n 4 | tee -a "$OUT/suite.log"
done
timeout 150 $PY experiments/benchmarks/loss_scaling.py --impls tiled --rows 131072,2097152 --tile 16384 \
  --dtype bfloat16 --mem-limit-gb 0 --repeats 2 --json "$OUT/loss_scaling_tiled.json" 2>&1 | tail -n 6 \
  | tee -a "$OUT/suite.log"
log "done"
