"""Views per second of on-device image augmentation: the fused `augment_images` against the op-by-op path.

  python experiments/benchmarks/augment_throughput.py                       # 32^2 (b 4096) and 224^2 (b 256)
  python experiments/benchmarks/augment_throughput.py --sizes 32 --batch32 1024 --repeats 5

Each row is one jitted call of a view function on a uint8 batch already on the device: `augment_images` (fused:
one resampling per view with the flip folded in, one colour pass, blur only on the views that draw it) and
`_augment_images_op_by_op` (the previous implementation: crop, flip, each jitter slot, grayscale as separate
vmapped passes, dm-pix's blur vmapped over the subset), both with the full SimCLR recipe (`--recipe`; blur p = 0.5
at both sizes, although the SimCLR paper turns blur off on CIFAR). 32^2 views come from 32 x 32 inputs (CIFAR);
224^2 views from 256 x 256 inputs (the usual ImageNet pipeline: decode, resize to 256, random-resized-crop to
224). The time is the median of `--repeats` calls with fresh keys, after a warm-up call that compiles; the two
implementations alternate call by call, so a noisy machine slows both alike and the speed-up is read within one
run. The GPU bar (>= 200k views/s at 32^2, fused) is checked only on a GPU; elsewhere its row says "not measured
(no GPU)". Writes a markdown table to stdout and the rows to `--json`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from rl.data import augment  # noqa: E402
from rl.data.augment import image as aug_image  # noqa: E402

GPU_BAR_VIEWS_PER_S = 200_000  # fused, 32 x 32 views, on one GPU (the "Scale and speed" issue)
# The previous implementation is kept in rl as the executable reference of the fused one.
IMPLS = {"fused": aug_image.augment_images, "op_by_op": aug_image._augment_images_op_by_op}  # pylint: disable=W0212


def _ints(text: str, name: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError as e:
    raise ValueError(f"{name} must be comma-separated integers; got {text!r}.") from e
  if not values or min(values) <= 0:
    raise ValueError(f"{name} must hold positive integers; got {text!r}.")
  return values


def machine() -> dict:
  """Where the numbers come from: host, CPU count, jax version, device platform and kind."""
  device = jax.devices()[0]
  return {"node": platform.node(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "platform": device.platform, "device_kind": device.device_kind, "device_count": jax.device_count()}


def time_views(size: int, batch: int, input_size: int, recipe, repeats: int, seed: int = 0) -> dict[str, list[float]]:
  """Seconds per call of every implementation on one [batch, input_size, input_size, 3] uint8 batch.

  Args:
    size: output side S.
    batch: number of views per call.
    input_size: side of the square input images.
    recipe: the `ImageRecipe`.
    repeats: timed calls per implementation (after one untimed warm-up call each).
    seed: seed of the random input images.

  Returns:
    {impl: [seconds of each timed call]}.
  """
  x = np.random.RandomState(seed).randint(0, 256, (batch, input_size, input_size, 3)).astype(np.uint8)
  x = jax.block_until_ready(jax.device_put(x))
  fns = {name: jax.jit(lambda k, v, fn=fn: fn(k, v, recipe, out_size=size)) for name, fn in IMPLS.items()}
  key = jax.random.key(seed)
  for fn in fns.values():
    jax.block_until_ready(fn(key, x))  # compile + first run, excluded
  times = {name: [] for name in fns}
  for i in range(repeats):
    k = jax.random.fold_in(key, i + 1)
    for name, fn in fns.items():  # alternate, so that load on a shared machine hits both alike
      start = time.perf_counter()
      jax.block_until_ready(fn(k, x))
      times[name].append(time.perf_counter() - start)
  return times


def gpu_bar(rows: list[dict], info: dict) -> dict:
  """The >= 200k views/s at 32^2 check: pass/fail on a GPU, 'not measured' elsewhere or when 32 was not run."""
  check = f"fused >= {GPU_BAR_VIEWS_PER_S:,} views/s at 32^2"
  if info["platform"] != "gpu":
    return {"check": check, "result": "not measured (no GPU)", "views_per_s": None}
  fused = [r for r in rows if r["size"] == 32 and r["impl"] == "fused"]
  if not fused:
    return {"check": check, "result": "not measured (32^2 not in --sizes)", "views_per_s": None}
  rate = fused[0]["views_per_s"]
  return {"check": check, "result": "pass" if rate >= GPU_BAR_VIEWS_PER_S else "fail", "views_per_s": rate}


def table(rows: list[dict], speedups: dict, bar: dict, info: dict) -> str:
  lines = ["| size | batch | input | impl | views/s | ms/batch | device |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['size']}^2 | {r['batch']} | {r['input_size']}^2 uint8 | {r['impl']} | "
                 f"{r['views_per_s']:,.0f} | {r['ms_per_batch']:.2f} | {r['device']} |")
  notes = [f"Speed-up of fused over op-by-op at {s}^2: {v:.2f}x" for s, v in speedups.items()]
  bar_value = "" if bar["views_per_s"] is None else f" ({bar['views_per_s']:,.0f} views/s)"
  notes.append(f"GPU bar, {bar['check']}: {bar['result']}{bar_value}")
  notes.append(f"Machine: {info['node']}, {info['cpu_count']} CPU cores, jax {info['jax']}, "
               f"{info['device_count']} x {info['device_kind']} ({info['platform']})")
  return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def main(argv=None) -> dict:
  """Runs the benchmark; returns what it writes to --json."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default="32,224", help="output sides S, comma-separated")
  parser.add_argument("--input-sizes", default="",
                      help="input side per size, comma-separated (default: 256 for 224, else S)")
  parser.add_argument("--batch32", type=int, default=4096, help="views per call at S = 32 (and other S < 224)")
  parser.add_argument("--batch224", type=int, default=256, help="views per call at S = 224 (and other S >= 224)")
  parser.add_argument("--repeats", type=int, default=10, help="timed calls per implementation (median reported)")
  parser.add_argument("--recipe", default="simclr", help="augment.get_recipe name")
  parser.add_argument("--json", default="experiments/benchmarks/results/augment_throughput.json")
  args = parser.parse_args(argv)

  sizes = _ints(args.sizes, "--sizes")
  inputs = _ints(args.input_sizes, "--input-sizes") if args.input_sizes else [256 if s == 224 else s for s in sizes]
  if len(inputs) != len(sizes):
    raise ValueError(f"--input-sizes must give one side per size; got {len(inputs)} for {len(sizes)} sizes.")
  for name in ("batch32", "batch224", "repeats"):
    if getattr(args, name) <= 0:
      raise ValueError(f"--{name} must be > 0; got {getattr(args, name)}.")
  recipe = augment.get_recipe(args.recipe)
  info = machine()
  device = f"{info['device_kind']} ({info['platform']})"
  rows, speedups = [], {}
  for size, input_size in zip(sizes, inputs):
    batch = args.batch224 if size >= 224 else args.batch32
    print(f"[augment_throughput] {size}^2 from {input_size}^2, batch {batch}, {args.repeats} repeats", flush=True)
    times = time_views(size, batch, input_size, recipe, args.repeats)
    for impl, ts in times.items():
      median = statistics.median(ts)
      rows.append({"size": size, "batch": batch, "input_size": input_size, "impl": impl, "recipe": args.recipe,
                   "views_per_s": batch / median, "ms_per_batch": 1e3 * median, "seconds": ts, "device": device})
    speedups[size] = statistics.median(times["op_by_op"]) / statistics.median(times["fused"])
  bar = gpu_bar(rows, info)
  print("\n" + table(rows, speedups, bar, info), flush=True)
  result = {"machine": info, "recipe": args.recipe, "repeats": args.repeats, "rows": rows,
            "speedup_fused_over_op_by_op": {str(k): v for k, v in speedups.items()}, "gpu_bar": bar}
  os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
  with open(args.json, "w") as f:
    json.dump(result, f, indent=2)
  print(f"[augment_throughput] wrote {args.json}", flush=True)
  return result


if __name__ == "__main__":
  main()
