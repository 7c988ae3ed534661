"""Data-parallel scaling of the SimCLR step: 1, 2, 4, 8 devices at a fixed per-device batch.

  python experiments/benchmarks/scaling.py                                   # ResNet-18, 128 pairs per device
  python experiments/benchmarks/scaling.py --per-device-batch 16 --steps 3  # a quick CPU look

For each device count n (a sub-mesh of the first n devices, axis 'data'), the step of
`experiments/benchmarks/step_throughput.py` (the trainer's own step for `configs/simclr.py:cifar10`), model-only
(float32 views already on the device) and end-to-end (uint8 images augmented inside the step), global batch
n x `--per-device-batch`. Efficiency = (pairs/s on n devices) / (n x pairs/s on 1 device).

Without accelerators the devices are fake CPU devices (this script sets
`XLA_FLAGS=--xla_force_host_platform_device_count=8` before JAX starts, unless the flag is already there): they
share the same CPU cores, so their efficiency measures the overhead of sharding (collectives, per-device
dispatch, smaller per-device kernels), not a speed-up; an efficiency near 1/n is what no overhead looks like
there (and one fake device may leave cores idle that several use). Device counts above the devices present are
reported as not measured. Results:
experiments/benchmarks/results/scaling.json.
"""
from __future__ import annotations

import argparse
import os
import sys

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):  # before JAX is imported (here or by step_throughput)
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=8".strip()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

import step_throughput as st  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scaling.json")


def _counts(text: str) -> tuple[int, ...]:
  return st.positive_ints(text, "--devices", "device counts", "1,2,4,8")


def markdown(result: dict) -> str:
  """The scaling table and the note on what fake CPU devices measure."""
  m, s = result["machine"], result["settings"]
  lines = [f"SimCLR step scaling, {s['model']}, {s['per_device_batch']} pairs per device, compute dtype "
           f"{s['dtype']}, {m['device_kind']} ({m['platform']}); {m['node']}, {m['cpu_count']} CPU cores, "
           f"jax {m['jax']}; {s['steps']} timed steps after {s['warmup']}.", "",
           "| devices | global batch | model-only pairs/s | model-only efficiency | end-to-end pairs/s | "
           "end-to-end efficiency | status |", "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in result["rows"]:
    lines.append(f"| {r['devices']} | {r['global_batch']} | {st.fmt(r['model_only_pairs_per_s'], ',.1f')} | "
                 f"{st.fmt(r['model_only_efficiency'], '.2f')} | {st.fmt(r['end_to_end_pairs_per_s'], ',.1f')} | "
                 f"{st.fmt(r['end_to_end_efficiency'], '.2f')} | {r['status']} |")
  lines += ["", result["note"]]
  return "\n".join(lines)


def main(argv=None) -> dict:
  """Runs the scaling benchmark, prints the markdown table, writes the JSON and returns the result dict."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--devices", default="1,2,4,8", help="device counts, comma-separated")
  parser.add_argument("--per-device-batch", type=int, default=128, help="pairs per device per step")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation comes before them)")
  parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                      help="config.compute_dtype; auto: bfloat16 on GPU/TPU, float32 on CPU")
  parser.add_argument("--width", type=int, default=64, help="ResNet width (64: ResNet-18; smaller for tests)")
  parser.add_argument("--stages", default="2,2,2,2", help="blocks per ResNet stage (2,2,2,2: ResNet-18)")
  parser.add_argument("--kinds", default="model_only,end_to_end",
                      help="which steps to time: model_only, end_to_end or both (comma-separated)")
  parser.add_argument("--out", default=RESULTS, help="JSON output path")
  args = parser.parse_args(argv)
  counts = _counts(args.devices)
  kinds = tuple(k for k in args.kinds.split(",") if k)
  if not kinds or set(kinds) - set(st.STEP_KINDS):
    raise SystemExit(f"--kinds: expected model_only, end_to_end or both; got {args.kinds!r}")
  stages = st.parse_stages(args.stages)
  if args.per_device_batch < 1 or args.steps < 1 or args.warmup < 0:
    raise SystemExit(f"--per-device-batch and --steps must be >= 1 and --warmup >= 0; got "
                     f"{args.per_device_batch}, {args.steps} and {args.warmup}")
  dtype = st.resolve_dtype(args.dtype)
  available = jax.device_count()
  rows, base = [], {}
  for n in counts:
    b = n * args.per_device_batch
    row = {"devices": n, "global_batch": b}
    row.update({f"{k}_{field}": None for k in st.STEP_KINDS
                for field in ("pairs_per_s", "efficiency", "throughput_vs_1")})
    if n > available:
      rows.append({**row, "status": f"not measured (only {available} devices)"})
      continue
    config = st.make_config(batch=b, dtype=dtype, width=args.width, stages=stages)
    mesh = jax.make_mesh((n,), (st.mesh_lib.AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:n])
    steps = st.build_steps(config, mesh, kinds=kinds)
    for key, step, batch in (("model_only", steps.model_only, steps.views_batch),
                             ("end_to_end", steps.end_to_end, steps.images_batch)):
      if key not in kinds:
        continue
      rate = b / st.time_steps(step, steps.new_state(), batch, warmup=args.warmup, steps=args.steps)
      row[f"{key}_pairs_per_s"] = rate
      if n == 1:
        base[key] = rate
      if key in base:
        row[f"{key}_efficiency"] = rate / (n * base[key])
        row[f"{key}_throughput_vs_1"] = rate / base[key]
    rows.append({**row, "status": "measured" if base else "measured (no 1-device row: no efficiency)"})
  platform = jax.devices()[0].platform
  note = ("Fake CPU devices share the same CPU cores: on CPU these rows measure the overhead of sharding the step "
          "over n devices (collectives, dispatch, smaller kernels) and how the cores are used, not a speed-up. "
          "Without overhead the efficiency reads about 1/n there (the same cores, the same pairs/s); "
          "n x efficiency (`*_throughput_vs_1` in the JSON) is the pairs/s relative to 1 device: below 1 is "
          "overhead, above 1 means one device alone left cores idle." if platform == "cpu" else
          f"Real {platform} devices: efficiency 1.0 is perfect linear scaling at a fixed per-device batch.")
  result = {
      "benchmark": "scaling",
      "machine": st.machine(),
      "settings": {"per_device_batch": args.per_device_batch, "devices": list(counts), "kinds": list(kinds),
                   "steps": args.steps,
                   "warmup": args.warmup, "dtype": dtype, "width": args.width, "stages": list(stages),
                   "model": f"ResNet (CIFAR stem, width {args.width}, stages {list(stages)}) + SimCLR projector"},
      "rows": rows,
      "note": note,
  }
  return st.report(result, markdown(result), args.out)


if __name__ == "__main__":
  main()
