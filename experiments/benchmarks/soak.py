"""Soak test of resume: many cycles of start -> kill at a random moment -> restart, on the smoke config.

  python experiments/benchmarks/soak.py                       # 20 cycles of simclr, the issue's soak
  python experiments/benchmarks/soak.py --cycles 3 --method byol --steps 30

One uninterrupted run (`experiments/main.py`, `--config.total_steps=--steps`, a checkpoint every 2 steps, no final
evaluation) is the reference. Then the same command is started `--cycles` times in one fresh workdir, each time
killed with SIGKILL either at a random step (0-3 steps past the first one it logs) or, one time in three, at a
random moment 2-15 s after it starts (while it loads, restores, compiles, trains or saves); then it is run to the
end. The killed runs pause `--step-pause` s after each step (`paused_main.py`: a smoke step takes milliseconds,
far less than an asynchronous save, so an unpaused run would almost never be killed after a save completed). It
checks that the result equals the reference bit for bit (every leaf of the final checkpoint, and every train line of
`metrics.jsonl` but the wall-clock rate), and that no checkpoint directory is left half-written (every entry of
`checkpoints/` is a complete step). Not part of `make test` (about 15 s per cycle on 2 CPU cores).
Results: experiments/benchmarks/results/soak.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=8".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

import step_throughput as st  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "soak.json")


def command(method: str, workdir: pathlib.Path, data_dir: pathlib.Path, steps: int) -> list[str]:
  overrides = {"total_steps": steps, "log_every_steps": 1, "checkpoint.every_steps": 2, "checkpoint.keep": 3,
               "eval.every_steps": 0, "eval.final": False, "data_dir": data_dir}
  return [sys.executable, str(ROOT / "experiments" / "benchmarks" / "paused_main.py"), "--config",
          f"configs/{method}.py:smoke",
          "--workdir", str(workdir), *(f"--config.{k}={v}" for k, v in overrides.items())]


def run_to_end(cmd: list[str]) -> str:
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise SystemExit(f"the run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
  return proc.stdout


def kill_cycle(cmd: list[str], rng: random.Random, steps: int) -> dict:
  """Starts the run and SIGKILLs it at a random step or a random moment; returns what happened."""
  t0 = time.time()
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  by_time = rng.random() < 1 / 3
  delay = rng.uniform(2.0, 15.0) if by_time else None
  timer = threading.Timer(delay, proc.kill) if by_time else None
  if timer:
    timer.start()
  resumed, kill_at, last, lines = None, None, None, []  # None: killed before it said where it starts
  for line in proc.stdout:
    lines.append(line)
    if line.startswith("[rl] resuming from checkpoint at step") or line.startswith("[rl] starting at step"):
      resumed = int(line.split("step ")[1].split("/")[0])
    if line.startswith("[rl] step "):
      last = int(line.split()[2].split("/")[0])
      if kill_at is None:
        kill_at = min(last + rng.randint(0, 3), steps - 1)
      if not by_time and last >= kill_at:
        proc.send_signal(signal.SIGKILL)
        break
  proc.wait()
  if timer:
    timer.cancel()
  finished = proc.returncode == 0
  if proc.returncode not in (0, -signal.SIGKILL):
    raise SystemExit(f"the run failed (exit {proc.returncode}):\n{''.join(lines)}")
  return {"killed": "at a random moment" if by_time else "at a random step", "resumed_from": resumed,
          "last_logged_step": last, "finished": finished, "seconds": round(time.time() - t0, 1),
          "warnings": [l.strip() for l in lines if "WARNING" in l]}


def _show(step: int | None) -> str:
  return "— (killed before)" if step is None else str(step)


def leaves(workdir: pathlib.Path, step: int) -> dict:
  tree = ocp.PyTreeCheckpointer().restore(workdir / "checkpoints" / str(step) / "default")
  return dict(ocp.tree.to_flat_dict(tree))


def train_lines(workdir: pathlib.Path) -> list[dict]:
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  timing = ("steps_per_second", "train_seconds")  # wall-clock keys differ between runs
  return [{k: v for k, v in l.items() if k not in timing} for l in lines if l["kind"] == "train"]


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cycles", type=int, default=20, help="start -> kill -> resume cycles (default 20)")
  parser.add_argument("--method", default="simclr", help="a method with a configs/<method>.py smoke variant")
  parser.add_argument("--steps", type=int, default=60, help="total training steps (default 60)")
  parser.add_argument("--seed", type=int, default=0, help="seeds the kill points")
  parser.add_argument("--step-pause", type=float, default=0.25,
                      help="seconds of pause after each train step of the killed runs (default 0.25)")
  parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary directory)")
  parser.add_argument("--out", default=RESULTS, help="JSON results path")
  args = parser.parse_args(argv)
  if args.cycles < 1 or args.steps < 4:
    raise SystemExit(f"--cycles must be >= 1 and --steps >= 4; got {args.cycles} and {args.steps}")
  root = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="rl-soak-"))
  data_dir, straight, soaked = root / "tfds", root / "straight", root / "soaked"
  rng = random.Random(args.seed)

  t0 = time.time()
  print(f"[soak] uninterrupted reference run of {args.method}, {args.steps} steps ({straight})", flush=True)
  run_to_end(command(args.method, straight, data_dir, args.steps))
  cycles = []
  os.environ["RL_STEP_PAUSE"] = str(args.step_pause)
  for i in range(args.cycles):
    cycle = kill_cycle(command(args.method, soaked, data_dir, args.steps), rng, args.steps)
    cycles.append(cycle)
    print(f"[soak] cycle {i + 1}/{args.cycles}: started at step {_show(cycle['resumed_from'])}, killed "
          f"{cycle['killed']} (last logged step {_show(cycle['last_logged_step'])}), {cycle['seconds']} s"
          + (" - it finished before the kill" if cycle["finished"] else ""), flush=True)
  os.environ["RL_STEP_PAUSE"] = "0"
  print("[soak] final run to the end", flush=True)
  run_to_end(command(args.method, soaked, data_dir, args.steps))

  want, got = leaves(straight, args.steps), leaves(soaked, args.steps)
  differing = sorted("/".join(k) for k in want.keys() | got.keys()
                     if k not in want or k not in got or not np.array_equal(want[k], got[k]))
  same_metrics = train_lines(straight) == train_lines(soaked)
  entries = sorted(p.name for p in (soaked / "checkpoints").iterdir())
  half_written = [n for n in entries if not n.isdigit()]
  ok = not differing and same_metrics and not half_written
  result = {
      "machine": st.machine(), "method": args.method, "steps": args.steps, "step_pause": args.step_pause,
      "cycles": cycles,
      "leaves_compared": len(want), "differing_leaves": differing, "same_train_metrics": same_metrics,
      "checkpoint_entries": entries, "half_written": half_written, "passed": ok,
      "seconds": round(time.time() - t0, 1)}
  rows = ["| cycle | started at step | killed | last logged step | seconds |", "| --- | --- | --- | --- | --- |"]
  rows += [f"| {i + 1} | {_show(c['resumed_from'])} | {c['killed']} | {_show(c['last_logged_step'])} | "
           f"{c['seconds']} |"
           for i, c in enumerate(cycles)]
  rows += ["", f"- final checkpoint: {len(want)} leaves, {len(differing)} differ from the uninterrupted run"
           + (f" ({', '.join(differing[:5])})" if differing else ""),
           f"- train lines of metrics.jsonl equal to the uninterrupted run: {same_metrics}",
           f"- checkpoints/ entries: {', '.join(entries)}; half-written: {', '.join(half_written) or 'none'}",
           f"- **{'PASSED' if ok else 'FAILED'}** in {result['seconds']} s"]
  st.report(result, "\n".join(rows), args.out)
  if not ok:
    sys.exit(1)
  return result


if __name__ == "__main__":
  main()
