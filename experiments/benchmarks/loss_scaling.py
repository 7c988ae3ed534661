"""Plain vs tiled contrastive loss: forward + backward time and peak memory as the batch grows.

    python experiments/benchmarks/loss_scaling.py                       # nt_xent, 2^12 .. 2^20 rows, d = 128
    python experiments/benchmarks/loss_scaling.py --max-log2 21 --loss clip

Rows are anchors: nt_xent on b pairs has 2b rows (131,072 rows = 65,536 pairs). Every (implementation, size)
runs in a fresh child process, so its peak memory is its own: the peak resident set size on a CPU (the process
includes the JAX runtime, a few hundred MB), the allocator's peak on an accelerator. The child first asks XLA for
its buffer assignment (`compiled.memory_analysis()`); where that exceeds the memory limit it reports
out-of-memory without running, and otherwise runs under an address-space limit, so an allocation that does not
fit fails inside the child instead of swapping or waking the OOM killer. An implementation stops at its first
out-of-memory ("OOM" in the table) or when the next size would take longer than --max-seconds (the time grows
as rows^2; "skipped" in the table): both are said, never extrapolated.

FLOP floor: forward + backward of the loss needs at least the logits matmul and the two gradient matmuls,
6 rows^2 d FLOPs (the tiled form recomputes the logits in its backward pass: 8 rows^2 d). "floor ratio" is the
measured time over floor / peak FLOP/s of the device (the issue's bar on a GPU: within 2x at 262,144 pairs).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

LOSSES = ("nt_xent", "info_nce", "clip")
# Dense peak FLOP/s by device kind (vendor data sheets, dense, no sparsity): bfloat16 and float32 (TF32 on GPUs;
# XLA uses TF32 for float32 matmuls on these GPUs by default).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 494e12},
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 494e12},
}


def _child(args) -> dict:
  """Runs one (loss, impl, rows) measurement in this process and returns its record."""
  if args.mem_limit_gb > 0:
    limit = int(args.mem_limit_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from rl import losses  # pylint: disable=g-import-not-at-top

  rows, d = args.n_rows, args.dim
  dtype = jnp.dtype(args.dtype)
  b = rows // 2 if args.loss == "nt_xent" else rows  # nt_xent: b pairs give 2b anchors
  kw = dict(impl=args.impl, tile_size=args.tile)
  fn = {"nt_xent": lambda x, y: losses.nt_xent(x, y, temperature=0.1, **kw),
        "info_nce": lambda x, y: losses.info_nce(x, y, temperature=0.1, **kw),
        "clip": lambda x, y: losses.clip(x, y, logit_scale=10.0, **kw)}[args.loss]
  step = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
  spec = jax.ShapeDtypeStruct((b, d), dtype)
  record = {"loss": args.loss, "impl": args.impl, "rows": rows, "dim": d, "dtype": args.dtype, "tile": args.tile,
            "device": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform}
  try:
    t0 = time.perf_counter()
    compiled = step.lower(spec, spec).compile()
    record["compile_s"] = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    need = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    record["xla_bytes"] = int(need)
    if args.mem_limit_gb > 0 and need > args.mem_limit_gb * (1 << 30):
      record.update(status="OOM", detail=f"XLA's buffer assignment needs {need / 2**30:.1f} GiB, over the "
                                         f"{args.mem_limit_gb:.1f} GiB limit")
      return record
    k1, k2 = jax.random.split(jax.random.key(0))
    x = jax.random.normal(k1, (b, d), dtype)
    y = (x + 0.5 * jax.random.normal(k2, (b, d), dtype)).astype(dtype)
    jax.block_until_ready(compiled(x, y))  # warm-up
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(compiled(x, y))
      times.append(time.perf_counter() - t0)
  except Exception as e:  # pylint: disable=broad-except
    text = str(e)
    if "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(e, MemoryError):
      record.update(status="OOM", detail=text.splitlines()[0][:200])
      return record
    raise
  times.sort()
  record.update(status="ok", seconds=times[len(times) // 2])
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    record["peak_bytes"], record["peak_kind"] = int(stats["peak_bytes_in_use"]), "device allocator peak"
  else:
    record["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    record["peak_kind"] = "process peak RSS"
  flops = 6 * rows * rows * d * (2 if args.loss == "clip" else 1)  # clip: rows and columns, two passes
  record["floor_flops"] = flops
  peak = PEAK_FLOPS.get(record["device"], {}).get(args.dtype)
  if peak:
    record["floor_ratio"] = record["seconds"] / (flops / peak)
  return record


def _run_child(args, impl: str, rows: int) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), "--child", "--loss", args.loss, "--impl", impl,
         "--n-rows", str(rows), "--dim", str(args.dim), "--tile", str(args.tile), "--dtype", args.dtype,
         "--repeats", str(args.repeats), "--mem-limit-gb", str(args.mem_limit_gb)]
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith("{"):
      return json.loads(line)
  killed = proc.returncode < 0 or proc.returncode == 137
  return {"loss": args.loss, "impl": impl, "rows": rows, "status": "OOM" if killed else "error",
          "detail": f"child exited with {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or ''}"}


def _gib(x) -> str:
  return f"{x / 2**30:.2f}" if x is not None else "—"


def table(records: list[dict]) -> str:
  lines = ["| loss | impl | rows | pairs | dtype | status | fwd+bwd s | peak GiB (kind) | XLA buffers GiB | "
           "floor ratio |", "|" + " --- |" * 10]
  for r in records:
    pairs = r["rows"] // 2 if r["loss"] == "nt_xent" else r["rows"]
    status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('detail', '')}"
    secs = f"{r['seconds']:.3f}" if "seconds" in r else "—"
    peak = f"{_gib(r['peak_bytes'])} ({r['peak_kind']})" if "peak_bytes" in r else "—"
    ratio = f"{r['floor_ratio']:.2f}" if "floor_ratio" in r else "n/a"
    lines.append(f"| {r['loss']} | {r['impl']} | {r['rows']:,} | {pairs:,} | {r.get('dtype', '')} | {status} | "
                 f"{secs} | {peak} | {_gib(r.get('xla_bytes'))} | {ratio} |")
  return "\n".join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--loss", default="nt_xent", choices=LOSSES)
  parser.add_argument("--impls", default="plain,tiled")
  parser.add_argument("--min-log2", type=int, default=12, help="smallest number of rows, as a power of 2")
  parser.add_argument("--max-log2", type=int, default=20, help="largest number of rows, as a power of 2")
  parser.add_argument("--rows", default="", help="explicit comma-separated row counts (overrides the range)")
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--tile", type=int, default=4096)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--max-seconds", type=float, default=900.0,
                      help="skip a size when the previous one's time x (ratio of rows)^2 would exceed this")
  parser.add_argument("--mem-limit-gb", type=float, default=-1.0,
                      help="child address-space limit (CPU); -1: 85%% of this machine's memory without a GPU driver, "
                           "none with one; 0: none")
  parser.add_argument("--json", default="experiments/benchmarks/results/loss_scaling.json")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--impl", default="tiled", help=argparse.SUPPRESS)
  parser.add_argument("--n-rows", type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(_child(args)), flush=True)
    return {}

  if args.mem_limit_gb < 0:
    # An address-space limit is for CPU runs only: CUDA reserves far more virtual memory than it uses. (The parent
    # must not start a GPU backend itself, so it looks for the driver instead of asking jax.)
    import shutil  # pylint: disable=g-import-not-at-top
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    args.mem_limit_gb = 0.0 if shutil.which("nvidia-smi") else 0.85 * total / 2**30
  sizes = ([int(r) for r in args.rows.split(",") if r] if args.rows
           else [2 ** p for p in range(args.min_log2, args.max_log2 + 1)])
  records = []
  for impl in args.impls.split(","):
    last = None
    for rows in sizes:
      if last is not None and last["status"] != "ok":
        break
      if last is not None and last["seconds"] * (rows / last["rows"]) ** 2 > args.max_seconds:
        records.append({"loss": args.loss, "impl": impl, "rows": rows, "dtype": args.dtype, "status": "skipped",
                        "detail": f"would take ~{last['seconds'] * (rows / last['rows']) ** 2:.0f} s "
                                  f"> --max-seconds {args.max_seconds:.0f}"})
        break
      t0 = time.time()
      last = _run_child(args, impl, rows)
      records.append(last)
      print(f"[loss_scaling] {impl} {rows} rows: {last['status']} "
            f"{last.get('seconds', float('nan')):.3f} s, peak {_gib(last.get('peak_bytes'))} GiB "
            f"(child {time.time() - t0:.0f} s)", flush=True)
  import jax  # pylint: disable=g-import-not-at-top
  machine = {"node": platform.node(), "cpus": os.cpu_count(), "jax": jax.__version__,
             "device": jax.devices()[0].device_kind, "date": str(datetime.date.today()),
             "mem_limit_gb": args.mem_limit_gb}
  text = table(records)
  print("\n" + text + f"\n\nmachine: {machine}")
  out = {"machine": machine, "args": {k: v for k, v in vars(args).items() if k not in ("child", "impl", "n_rows")},
         "records": records}
  os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
  with open(args.json, "w") as f:
    json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
