"""What a training step of each method costs against SimCLR's, and how many steps fit the mnist1d time budget.

  python experiments/benchmarks/step_cost.py --variant mnist1d --methods simclr,mae,semaim
  python experiments/benchmarks/step_cost.py --variant digits          # every method with a digits config

Issue 19's budget: every method trains for at most 5 minutes on the 2-core CPU machine. SimCLR's `make run`
(`configs/simclr.py:mnist1d`, 8000 steps) trains for 135 s there (README), so the budget is the time of
`BUDGET_SIMCLR_STEPS` = 300 / 135 x 8000 = 17,800 SimCLR steps. A method whose step costs r times SimCLR's fits
17,800 / r steps. The ratio r is measured here, in one process, one method after the other, so that whatever else
the machine is doing weighs on both alike; absolute times vary with the load and are printed for reference only.

Each method is timed on its config's own step (`Run.train_step`: augmentation inside, the online probe, the
optimizer), fed one real batch of the data set again and again: all are compiled and warmed up first, then
`--rounds` rounds time `--steps` steps of every method in turn, and a method's time is its fastest round. Prints a table and writes
`experiments/benchmarks/results/step_cost_<variant>.json`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

from experiments.benchmarks import results_table  # noqa: E402
from experiments.benchmarks import timing  # noqa: E402
from rl.train import loop  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BUDGET_SECONDS = 300.0
SIMCLR_MAKE_RUN = (8000, 135.0)  # configs/simclr.py:mnist1d's steps and training seconds of `make run` (README)
BUDGET_SIMCLR_STEPS = int(round(BUDGET_SECONDS / SIMCLR_MAKE_RUN[1] * SIMCLR_MAKE_RUN[0], -2))
REFERENCE = "simclr"
# The budget is mnist1d's (smoke: the same signals, for the tests); elsewhere only the ratios are reported.
BUDGETED = ("mnist1d", "smoke")


def compiled_step(method: str, variant: str) -> dict:
  """`configs/<method>.py:<variant>`'s compiled step, a state, one real batch, and its compile time."""
  config = importlib.import_module(f"configs.{method}").get_config(variant)
  run = loop.build(config)
  state = run.init_state()
  batch = next(run.train_batches(0))
  start = time.perf_counter()
  step = run.train_step().lower(state, batch).compile()
  return {"step": step, "state": state, "batch": batch, "compile_s": time.perf_counter() - start,
          "configured_steps": int(config.total_steps)}


def timed(entry: dict, steps: int) -> float:
  """Seconds per step over `steps` steps, carrying the state as training does."""
  seconds, entry["state"] = timing.run_steps(entry["step"], entry["state"], entry["batch"], steps)
  return seconds


def measure(variant: str, methods: list[str], *, warmup: int, steps: int, rounds: int) -> list[dict]:
  """One row per method (SimCLR first, the reference): seconds per step, its ratio r to SimCLR's, the configured
  steps and the steps that fit the budget (`BUDGET_SIMCLR_STEPS` / r).

  Every method is compiled and warmed up first; then `rounds` rounds each time `steps` steps of every method in
  turn, and a method's time is its fastest round: a load that comes and goes (another process on the core) then
  weighs on no method more than on another.
  """
  methods = [REFERENCE] + [m for m in methods if m != REFERENCE]
  entries = {}
  for method in methods:
    entries[method] = compiled_step(method, variant)
    timed(entries[method], warmup)
    print(f"[step_cost] compiled {method} in {entries[method]['compile_s']:.0f} s", flush=True)
  times = {m: [] for m in methods}
  for r in range(rounds):
    for method in methods:
      times[method].append(timed(entries[method], steps))
    print(f"[step_cost] round {r + 1}/{rounds} done", flush=True)
  rows = []
  for method in methods:
    seconds = min(times[method])
    ratio = seconds / min(times[REFERENCE])
    row = {"method": method, "ms_per_step": 1e3 * seconds, "compile_s": entries[method]["compile_s"],
           "cost_vs_simclr": ratio, "configured_steps": entries[method]["configured_steps"],
           "budget_steps": int(BUDGET_SIMCLR_STEPS / ratio) if variant in BUDGETED else None,
           "rounds_ms": [1e3 * t for t in times[method]]}
    row["within_budget"] = row["configured_steps"] <= row["budget_steps"] if variant in BUDGETED else None
    rows.append(row)
  return rows


def table(rows: list[dict]) -> str:
  lines = ["| method | ms/step | x SimCLR | configured steps | steps in budget | within |",
           "| --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    lines.append(f"| {r['method']} | {r['ms_per_step']:.1f} | {r['cost_vs_simclr']:.2f} | {r['configured_steps']} | "
                 f"{r['budget_steps'] or '—'} | {({True: 'yes', False: 'NO'}).get(r['within_budget'], '—')} |")
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--variant", default="mnist1d", choices=results_table.VARIANTS + ("smoke",))
  parser.add_argument("--methods", default=None, help="comma-separated; default: every method with the variant")
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10, help="steps per round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--out", default=None, help="the JSON file (default results/step_cost_<variant>.json)")
  args = parser.parse_args(argv)
  methods = args.methods.split(",") if args.methods else results_table.methods_with(args.variant)
  known = results_table.methods_with(args.variant)
  unknown = [m for m in methods if m not in known]
  if unknown:
    raise SystemExit(f"--methods: expected methods with a '{args.variant}' config ({', '.join(known)}); "
                     f"got {', '.join(unknown)}")
  rows = measure(args.variant, methods, warmup=args.warmup, steps=args.steps, rounds=args.rounds)
  budget = (f"budget {BUDGET_SECONDS:.0f} s = {BUDGET_SIMCLR_STEPS} SimCLR steps" if args.variant in BUDGETED
            else "no step budget (mnist1d's only)")
  print(f"\nStep cost on {args.variant} ({platform.node()}, {os.cpu_count()} cores, jax {jax.__version__}); "
        f"{budget}:\n")
  print(table(rows))
  out = args.out or os.path.join(RESULTS_DIR, f"step_cost_{args.variant}.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, "w") as f:
    json.dump({"variant": args.variant, "budget_seconds": BUDGET_SECONDS, "budget_simclr_steps": BUDGET_SIMCLR_STEPS,
               "machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
                           "affinity": len(os.sched_getaffinity(0))},
               "rows": rows}, f, indent=1)
  print(f"\nwrote {out}")


if __name__ == "__main__":
  main()
