"""SimCLR through the real trainer on synthetic 32 x 32 images: steady-state pairs/s of the whole training loop.

  python experiments/benchmarks/trainer_throughput.py                  # ResNet-18, batch 512, bf16 on a GPU
  python experiments/benchmarks/trainer_throughput.py --steps 2 --log-every 1 --batch 16 --width 8 --stages 1

What runs: `configs/simclr.py:cifar10` on `synthetic_32` (`rl.data.synthetic`: uint8 images made on the host with
NumPy, no TensorFlow, the same bytes on every machine) through `rl.train.loop.train_and_evaluate`, the loop that
`experiments/main.py` runs: uint8 host batches from memory, assembled into global arrays on the mesh; two SimCLR
CIFAR views augmented on the device inside the jitted step; ResNet-18 (CIFAR stem) and the 2048-256 projector
in `--dtype`; NT-Xent, LARS and the online probe; the metrics writer; a checkpoint at the end. No evaluation
(`eval.final=False`, `eval.every_steps=0`): this measures training.

Steady state: the trainer logs `steps_per_second` every `--log-every` steps, over the steps since the previous
log, and each log waits for the device (the loss is checked to be finite). The first window holds the
compilation and is dropped; the steady rate is the median of the later windows, in pairs/s = batch x steps/s.
`experiments/benchmarks/step_throughput.py`'s end-to-end row times the same step on one batch already on the
device; the ratio of the two is what the host pipeline and the loop cost. Results:
experiments/benchmarks/results/trainer_throughput.json (`--out`); nothing is estimated where nothing ran.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import jax  # noqa: E402

from configs import simclr as simclr_config  # noqa: E402
from rl.train import loop  # noqa: E402
from rl.train import writer  # noqa: E402

RESULTS = os.path.join(ROOT, "experiments", "benchmarks", "results", "trainer_throughput.json")


def make_config(*, batch: int, steps: int, log_every: int, dtype: str, width: int, stages: tuple[int, ...],
                dataset: str = "synthetic_32"):
  """`configs/simclr.py:cifar10` on `dataset`, `steps` steps of `batch`, logged every `log_every`, no evaluation."""
  config = simclr_config.get_config("cifar10")
  config.dataset = dataset
  config.batch_size = batch
  config.total_steps = steps
  config.log_every_steps = log_every
  config.compute_dtype = dtype
  config.model.encoder_kwargs.width = width
  config.model.encoder_kwargs.stage_sizes = tuple(stages)
  config.eval.final = False
  config.eval.every_steps = 0
  config.checkpoint.every_steps = steps
  return config


def steady_rate(train_lines: list[dict], batch: int) -> dict:
  """Steady-state rate from the trainer's train lines: the windows after the first (which holds compilation)."""
  windows = [(line["step"], line["steps_per_second"]) for line in train_lines]
  later = [rate for _, rate in windows[1:]]
  steps_per_s = statistics.median(later) if later else None
  return {"windows": [{"step": s, "steps_per_second": r} for s, r in windows],
          "steady_steps_per_s": steps_per_s,
          "steady_pairs_per_s": None if steps_per_s is None else steps_per_s * batch,
          "first_window_seconds": windows[0][0] / windows[0][1] if windows else None}


def machine() -> dict:
  device = jax.devices()[0]
  return {"node": platform.node(), "cpu_count": os.cpu_count(), "jax": jax.__version__, "platform": device.platform,
          "device_kind": device.device_kind, "device_count": jax.device_count()}


def markdown(result: dict) -> str:
  s, m = result["settings"], result["machine"]
  rate = result["steady_pairs_per_s"]
  lines = [f"SimCLR through the trainer on {s['dataset']}: ResNet (CIFAR stem, width {s['width']}, stages "
           f"{s['stages']}), batch {s['batch']} pairs, {s['dtype']}, {s['steps']} steps logged every "
           f"{s['log_every']}; {m['device_count']} x {m['device_kind']}, jax {m['jax']}, {m['node']}.", "",
           "| steps | window steps/s | pairs/s |", "| --- | --- | --- |"]
  for i, w in enumerate(result["windows"]):
    note = " (compilation; dropped)" if i == 0 else ""
    lines.append(f"| to {w['step']} | {w['steps_per_second']:.2f}{note} | {w['steps_per_second'] * s['batch']:,.0f} |")
  lines += ["", "steady state: " + ("not measured (one window only)" if rate is None else
                                    f"{rate:,.0f} pairs/s ({result['steady_steps_per_s']:.2f} steps/s)") +
            f"; the run took {result['wall_seconds']:.1f} s, its first window {result['first_window_seconds']:.1f} s."]
  return "\n".join(lines)


def main(argv=None) -> dict:
  """Trains, prints the table, writes the JSON and returns the result dict."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=512, help="pairs per step (global batch)")
  parser.add_argument("--steps", type=int, default=300, help="training steps")
  parser.add_argument("--log-every", type=int, default=50, help="steps per timing window (the first is dropped)")
  parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                      help="config.compute_dtype; auto: bfloat16 on GPU/TPU, float32 on CPU")
  parser.add_argument("--width", type=int, default=64, help="ResNet width (64: ResNet-18; smaller for tests)")
  parser.add_argument("--stages", default="2,2,2,2", help="blocks per ResNet stage (2,2,2,2: ResNet-18)")
  parser.add_argument("--dataset", default="synthetic_32", help="an in-memory image data set of 32 x 32 images")
  parser.add_argument("--workdir", default="", help="the run's workdir (default: a fresh temporary directory)")
  parser.add_argument("--out", default=RESULTS, help="JSON output path")
  args = parser.parse_args(argv)
  try:
    stages = tuple(int(t) for t in args.stages.split(","))
  except ValueError:
    stages = ()
  if not stages or min(stages) < 1:
    raise SystemExit(f"--stages: expected comma-separated positive block counts such as 2,2,2,2; got {args.stages!r}")
  if args.steps < 2 or args.log_every < 1 or args.steps % args.log_every or args.steps // args.log_every < 2:
    raise SystemExit(f"--steps must be a multiple of --log-every with at least two windows (the first is dropped); "
                     f"got --steps {args.steps} and --log-every {args.log_every}")
  dtype = args.dtype
  if dtype == "auto":
    dtype = "float32" if jax.devices()[0].platform == "cpu" else "bfloat16"
  config = make_config(batch=args.batch, steps=args.steps, log_every=args.log_every, dtype=dtype, width=args.width,
                       stages=stages, dataset=args.dataset)
  workdir = args.workdir or tempfile.mkdtemp(prefix="trainer_throughput_")
  start = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  wall = time.perf_counter() - start
  lines = [line for line in writer.read_metrics(workdir) if line["kind"] == "train"]
  result = {"benchmark": "trainer_throughput", "machine": machine(),
            "settings": {"dataset": args.dataset, "batch": args.batch, "steps": args.steps, "log_every": args.log_every,
                         "dtype": dtype, "width": args.width, "stages": list(stages), "workdir": str(workdir)},
            **steady_rate(lines, args.batch), "wall_seconds": wall, "final_loss": lines[-1]["loss"]}
  print(markdown(result), flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"\nwrote {args.out}")
  return result


if __name__ == "__main__":
  main()
