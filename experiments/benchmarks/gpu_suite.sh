#!/usr/bin/env bash
# The GPU checks as one prepared script for a session that is lent one GPU (15 minutes of device time in all, the
# machine's start included): on a bare GPU machine (Python 3.12 with JAX for CUDA, Flax, Optax, Orbax, ...; no
# TensorFlow, no network), every part under a time limit, at most 8 minutes in all. Each part writes its JSON
# under $OUT (default experiments/benchmarks/results/gpu) and its output to $OUT/<part>.log; the end prints a
# summary table (ok / failed / timed out, wall time, the headline number) and writes $OUT/summary.json.
#
#   bash experiments/benchmarks/gpu_wheels.sh      # first, on a machine with network: the wheels into .whl/
#   OUT=/tmp/gpu bash experiments/benchmarks/gpu_suite.sh   # on the GPU machine, with .whl/ carried along
#
# Parts and their limits (seconds; the last two run side by side, which their numbers allow: the tests report
# pass/fail, the mnist1d run its accuracy; the timed benchmarks run alone, before them):
#   wheels 20        the carried wheels (.whl/, gpu_wheels.txt), installed offline before anything else
#   env 15           nvidia-smi; jax's devices
#   augment 40       augment_throughput.py: views/s at 32^2 (bar: >= 200k, fused) and 224^2
#   step 100         step_throughput.py: the SimCLR ResNet-18 step, batch 512, bf16; PyTorch eager and compile
#   loss_plain 30    loss_scaling.py: plain nt_xent at 32,768 and 65,536 pairs (bar: out of memory at 65,536)
#   loss_tiled 60    loss_scaling.py: tiled nt_xent at 262,144 pairs (bar: within 2x of its FLOP floor) and
#                    1,048,576 pairs (bar: runs), tile 16384
#   trainer 75       trainer_throughput.py: SimCLR ResNet-18 bf16, batch 512, synthetic 32^2 uint8 batches through
#                    the trainer (augmentation on the device), 300 steps, steady state from the last 250
#   tests 110     \  tests/losses and tests/methods on the GPU (-p tests.fewer_devices: the 8-device tests are
#                 |  skipped on one GPU), float32 matmuls at full precision (the tests compare with float64
#                 |  references and recorded CPU metrics; TF32 would fail them by design)
#   mnist1d 110   /  experiments/main.py --config configs/simclr.py:mnist1d, 8000 steps, the report and all
# Sum: 20 + 15 + 40 + 100 + 30 + 60 + 75 + 110 = 450 s; with the 3 s that `timeout` grants a part to stop after
# its limit, at most 474 s, plus a few seconds of bookkeeping.
#
# Bars (BENCHMARKS.md): tiled nt_xent at >= 1,048,576 pairs (2,097,152 rows) on one GPU and within 2x of its FLOP
# floor at 262,144 pairs (524,288 rows); plain nt_xent out of memory at 65,536 pairs; end-to-end SimCLR step
# >= 50k pairs/s on an H200, >= 0.9 of the model-only step and >= 1.15x torch.compile; augmentation >= 200k
# views/s at 32x32.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-experiments/benchmarks/results/gpu}
WHL=${WHL:-.whl}
WORK=${WORK:-/tmp/rl-gpu-suite}  # workdirs whose checkpoints should not come back with $OUT
PY=${PYTHON:-python}
mkdir -p "$OUT"
rm -f "$OUT/parts.jsonl" "$OUT/tests.jsonl"
rm -rf "$WORK"  # a workdir left by an earlier run would be resumed, not trained
mkdir -p "$WORK"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
SUITE_START=$(date +%s%N)
log() { echo "== $(date +%T) $*" | tee -a "$OUT/suite.log"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
record() {  # record PART RC START_MS LIMIT: one line of $OUT/parts.jsonl
  printf '{"part": "%s", "rc": %d, "seconds": %.1f, "limit": %d}\n' "$1" "$2" \
    "$(( $(now_ms) - $3 ))e-3" "$4" >> "$OUT/parts.jsonl"
}
part() {  # part NAME LIMIT COMMAND...: COMMAND under `timeout`, its output in $OUT/NAME.log, the tail in suite.log
  local name=$1 limit=$2 start rc
  shift 2
  log "$name (limit ${limit} s): $*"
  start=$(now_ms)
  timeout --kill-after=3 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  record "$name" "$rc" "$start" "$limit"
  tail -n 25 "$OUT/$name.log" | tee -a "$OUT/suite.log"
  log "$name: rc $rc"
}

# 1. The carried wheels, before anything else: each one whose distribution this Python lacks is installed offline
#    into $SITE (experiments/benchmarks/gpu_wheels.py), which then leads PYTHONPATH for every part; what the image
#    has is never shadowed.
SITE=$WORK/site
part wheels 20 "$PY" experiments/benchmarks/gpu_wheels.py install "$WHL" "$SITE" --json "$OUT/wheels.json"
export PYTHONPATH=$SITE:$PYTHONPATH

# 2. The machine.
part env 15 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; $PY -c \"
import json, platform, jax
d = jax.devices()[0]
r = {'device_kind': d.device_kind, 'platform': d.platform, 'device_count': jax.device_count(), 'jax': jax.__version__,
     'python': platform.python_version(), 'node': platform.node()}
print(json.dumps(r)); json.dump(r, open('$OUT/env.json', 'w'))\""

# 3. The timed benchmarks, one at a time.
part augment_throughput 40 "$PY" experiments/benchmarks/augment_throughput.py --repeats 10 \
  --json "$OUT/augment_throughput.json"
part step_throughput 100 "$PY" experiments/benchmarks/step_throughput.py --batch 512 --steps 20 --warmup 3 \
  --out "$OUT/step_throughput.json"
part loss_scaling_plain 30 "$PY" experiments/benchmarks/loss_scaling.py --impls plain --rows 65536,131072 \
  --dtype bfloat16 --mem-limit-gb 0 --repeats 3 --json "$OUT/loss_scaling_plain.json"
part loss_scaling_tiled 60 "$PY" experiments/benchmarks/loss_scaling.py --impls tiled --rows 524288,2097152 \
  --tile 16384 --dtype bfloat16 --mem-limit-gb 0 --repeats 2 --json "$OUT/loss_scaling_tiled.json"
part trainer_throughput 75 "$PY" experiments/benchmarks/trainer_throughput.py --batch 512 --steps 300 \
  --log-every 50 --dtype bfloat16 --workdir "$WORK/trainer_throughput" --out "$OUT/trainer_throughput.json"

# 4. The tests on the GPU, beside the mnist1d run (neither is timed; both grow GPU memory on demand).
rm -rf "$OUT/simclr_mnist1d"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
JAX_PLATFORMS=cuda JAX_DEFAULT_MATMUL_PRECISION=highest RL_TEST_OUTCOMES="$OUT/tests.jsonl" \
  part tests 110 "$PY" -m pytest -q -n 8 --dist loadgroup -p tests.fewer_devices -p no:cacheprovider \
  tests/losses tests/methods &
TESTS=$!
part simclr_mnist1d 110 "$PY" experiments/main.py --config configs/simclr.py:mnist1d \
  --workdir "$WORK/simclr_mnist1d"
mkdir -p "$OUT/simclr_mnist1d"
for f in report.md results.json metrics.jsonl config.json loss.png accuracy.png tsne.png; do
  [ -f "$WORK/simclr_mnist1d/$f" ] && cp "$WORK/simclr_mnist1d/$f" "$OUT/simclr_mnist1d/"
done
wait $TESTS

# 5. The summary.
log "summary"
"$PY" experiments/benchmarks/gpu_summary.py --out "$OUT" --wall "$(( ($(date +%s%N) - SUITE_START) / 1000000 ))e-3" \
  2>&1 | tee -a "$OUT/suite.log"
