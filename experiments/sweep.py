"""A grid of config overrides, trained in parallel worker processes and scored on a validation split.

  python experiments/sweep.py --config configs/simclr.py:mnist1d --workdir runs/sweeps/simclr_lr_temp \
      --grid optim.lr=1e-3,4e-3 --grid simclr.temperature=0.1,0.2 --seeds 2 --workers 2

Every cell of the grid (each combination of one value per `--grid` key, times `--seeds` seeds) is one run of
`experiments/main.py` in its own process, with `--set` overrides shared by all cells. The runs evaluate on a
validation split carved from the training split (`config.eval.validation_percent`, 10 by default: the last 10% of
`train`; pretraining and the probe use the rest), never on the test split, and skip the t-SNE plot and the
baselines. The table ranks the cells by their mean validation linear-probe accuracy over seeds and gives the kNN
accuracy and the wall time of each; it is printed and written to `<workdir>/sweep.md` and `<workdir>/sweep.json`
as cells finish.

Nothing is lost on interruption: a finished cell leaves `results.json` in its run directory and is read back on
the next invocation; an interrupted cell resumes from its last checkpoint (the trainer's exact resume).
A value may be a tuple, `--grid 'augment.overrides.shift_range=(-8,8),(-16,16)'` (commas inside brackets do not
split values).

Cells that are not a product (an ablation: each row changes another key) are named with `--cell`:

  python experiments/sweep.py --config configs/simclr.py:mnist1d --workdir runs/sweeps/ablation --seeds 3 \
      --cell 'preset:' --cell 'no shear: augment.overrides.shear_p=0.0' \
      --cell 'no noise: augment.overrides.noise_p=0.0; augment.overrides.corr_noise_p=0.0'

Each `--cell 'NAME: KEY=VALUE; KEY=VALUE'` is one row (its overrides may be none); with `--grid` too, every named
cell runs with every grid combination. Named cells keep their order in the table, with each row's difference to
the first.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "experiments", "main.py")
# What every cell sets: no test split, no plots or baselines, no evaluation during training.
FIXED = {"eval.tsne_points": "0", "eval.baselines": "False", "eval.every_steps": "0"}


def split_values(text: str) -> list[str]:
  """'1e-3,4e-3' -> ['1e-3', '4e-3']; commas inside (), [] or '' do not split: '(-8,8),(-16,16)' -> 2 values.

  >>> split_values("(-8,8),(-16,16)")
  ['(-8,8)', '(-16,16)']
  """
  values, depth, current, quote = [], 0, "", None
  for ch in text:
    if quote:
      quote = None if ch == quote else quote
    elif ch in "'\"":
      quote = ch
    elif ch in "([":
      depth += 1
    elif ch in ")]":
      depth -= 1
    elif ch == "," and depth == 0:
      values.append(current.strip())
      current = ""
      continue
    current += ch
  values.append(current.strip())
  if depth != 0 or quote or any(v == "" for v in values):
    raise ValueError(f"unbalanced brackets or an empty value in {text!r}")
  return values


def parse_assignments(items: list[str], flag: str, *, many: bool) -> dict[str, list[str]]:
  """['optim.lr=1e-3,4e-3'] -> {'optim.lr': ['1e-3', '4e-3']}; with many=False, one value each."""
  out: dict[str, list[str]] = {}
  for item in items:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", key) or not text.strip():
      raise ValueError(f"{flag}: expected KEY=VALUE{',VALUE...' if many else ''} with a dotted config key, "
                       f"got {item!r}")
    if key in out:
      raise ValueError(f"{flag}: {key!r} is given twice")
    out[key] = split_values(text) if many else [text.strip()]
  return out


def parse_cells(items: list[str]) -> list[tuple[str, dict[str, str]]]:
  """['no shear: augment.overrides.shear_p=0.0; optim.lr=1e-3'] -> [('no shear', {...: '0.0', 'optim.lr': '1e-3'})]."""
  cells, names = [], set()
  for item in items:
    name, sep, rest = item.partition(":")
    name = name.strip()
    if not sep or not name:
      raise ValueError(f"--cell: expected 'NAME: KEY=VALUE; KEY=VALUE' (the overrides may be empty), got {item!r}")
    if name in names:
      raise ValueError(f"--cell: the name {name!r} is given twice")
    names.add(name)
    parts = [p.strip() for p in rest.split(";") if p.strip()]
    cells.append((name, {k: v[0] for k, v in parse_assignments(parts, "--cell", many=False).items()}))
  return cells


def cell_name(label: dict[str, str], seed: int) -> str:
  """A directory name for one cell: 'optim.lr=0.004,simclr.temperature=0.1,seed=0' with unsafe characters
  replaced."""
  parts = [f"{k}={v}" for k, v in label.items()] + [f"seed={seed}"]
  return re.sub(r"[^\w.=,+-]", "_", ",".join(parts))


def _read(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def run_cell(config: str, fixed: dict[str, str], label: dict[str, str], overrides: dict[str, str], seed: int,
             run_dir: str) -> dict:
  """Trains one cell in a subprocess (or reads it back when finished); returns its record (`label`: its row)."""
  record_path = os.path.join(run_dir, "sweep_cell.json")
  record = _read(record_path)
  settings = {**fixed, **overrides, "seed": str(seed)}
  if record is not None and _read(os.path.join(run_dir, "results.json")) is not None:
    if record.get("config", config) != config or record.get("all_settings", settings) != settings:
      return {"overrides": label, "seed": seed, "seconds": 0.0,
              "error": f"{run_dir} finished with other settings ({record.get('config')}, "
                       f"{record.get('all_settings')}); use another --workdir"}
    return {**record, "reused": True}
  os.makedirs(run_dir, exist_ok=True)
  cmd = [sys.executable, MAIN, f"--config={config}", f"--workdir={run_dir}"]
  cmd += [f"--config.{k}={v}" for k, v in settings.items()]
  t0 = time.time()
  with open(os.path.join(run_dir, "log.txt"), "a") as log:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
  seconds = time.time() - t0
  results = _read(os.path.join(run_dir, "results.json"))
  if code != 0 or results is None:
    return {"overrides": label, "seed": seed, "error": f"exit {code}; see {run_dir}/log.txt",
            "seconds": seconds}
  row = results[0]
  record = {"overrides": label, "settings": overrides, "config": config, "all_settings": settings, "seed": seed,
            "seconds": seconds,
            "linear_probe_accuracy": row.get("linear_probe_accuracy"),
            "knn_20_accuracy": row.get("knn_20_accuracy")}
  with open(record_path, "w") as f:
    json.dump(record, f, indent=2)
  return record


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
  if not values:
    return "—"
  values = [v * scale for v in values]
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(records: list[dict], keys: list[str], order: list[tuple] | None = None) -> tuple[str, list[dict]]:
  """Markdown table of the cells (mean ± std over seeds) and its rows: best validation probe first, or, with
  `order` (the cells' key values; named cells), in that order with each row's difference to the first."""
  cells: dict[tuple, list[dict]] = {}
  for r in records:
    cells.setdefault(tuple(r["overrides"][k] for k in keys), []).append(r)
  rows = []
  for values, recs in cells.items():
    ok = [r for r in recs if "error" not in r]
    probes = [r["linear_probe_accuracy"] for r in ok if r.get("linear_probe_accuracy") is not None]
    rows.append({"overrides": dict(zip(keys, values)), "seeds": len(ok), "errors": len(recs) - len(ok),
                 "probe": probes, "knn": [r["knn_20_accuracy"] for r in ok if r.get("knn_20_accuracy") is not None],
                 "seconds": [r["seconds"] for r in ok]})
  if order is None:
    rows.sort(key=lambda r: -statistics.fmean(r["probe"]) if r["probe"] else 0.0)
  else:
    rank = {values: i for i, values in enumerate(order)}
    rows.sort(key=lambda r: rank.get(tuple(r["overrides"].values()), len(rank)))
  first = statistics.fmean(rows[0]["probe"]) if rows and rows[0]["probe"] else None
  delta = order is not None and first is not None
  head = [*keys, "seeds", "val. linear probe %", *(["Δ (points)"] if delta else []), "val. kNN-20 %", "time s"]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for r in rows:
    seeds = f"{r['seeds']}" + (f" ({r['errors']} failed)" if r["errors"] else "")
    change = ([f"{100 * (statistics.fmean(r['probe']) - first):+.1f}" if r["probe"] else "—"] if delta else [])
    lines.append("| " + " | ".join([*(f"`{v}`" for v in r["overrides"].values()), seeds,
                                    _mean_std(r["probe"], 100), *change, _mean_std(r["knn"], 100),
                                    _mean_std(r["seconds"], 1, 0)]) + " |")
  return "\n".join(lines), rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True, help="config file and variant, e.g. configs/simclr.py:mnist1d")
  parser.add_argument("--workdir", required=True, help="one run directory per cell under it; reused on re-run")
  parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                      help="a config key and its values; repeat for more keys (the grid is their product)")
  parser.add_argument("--cell", action="append", default=[], metavar="'NAME: KEY=V; KEY=V'",
                      help="a named cell (a row of its own overrides); repeat for more rows")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a config override shared by every cell")
  parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per cell")
  parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one process each)")
  parser.add_argument("--validation_percent", type=int, default=10,
                      help="the last N%% of the training split is the evaluation split (1..99)")
  args = parser.parse_args(argv)
  try:
    grid = parse_assignments(args.grid, "--grid", many=True)
    shared = {k: v[0] for k, v in parse_assignments(args.set, "--set", many=False).items()}
    named = parse_cells(args.cell)
  except ValueError as e:
    parser.error(str(e))
  if not 0 < args.validation_percent < 100:
    parser.error(f"--validation_percent: expected an int in [1, 99], got {args.validation_percent}")
  if args.seeds < 1 or args.workers < 1:
    parser.error(f"--seeds and --workers: expected >= 1, got {args.seeds} and {args.workers}")
  clash = sorted(set(grid) & set(shared))
  if clash:
    parser.error(f"--grid and --set both set {clash}")
  for name, cell in named:
    clash = sorted(set(cell) & (set(grid) | set(shared)))
    if clash:
      parser.error(f"--cell {name!r} sets {clash}, which --grid or --set also set")
  fixed = {**FIXED, "eval.validation_percent": str(args.validation_percent), **shared}
  keys = (["cell"] if named else []) + list(grid)
  cells = []  # (label: the table's row, overrides: what the run sets)
  for name, cell in named or [(None, {})]:
    for values in itertools.product(*grid.values()):
      combination = dict(zip(grid, values))
      cells.append(({"cell": name, **combination} if named else combination, {**cell, **combination}))
  todo = [(label, o, s) for label, o in cells for s in range(args.seeds)]
  os.makedirs(args.workdir, exist_ok=True)
  print(f"[sweep] {len(cells)} cells x {args.seeds} seeds = {len(todo)} runs of {args.config} on {args.workers} "
        f"workers, validated on the last {args.validation_percent}% of the training split; shared: "
        f"{ {k: v for k, v in fixed.items()} }", flush=True)
  records, lock, t0 = [], threading.Lock(), time.time()

  def write():
    text, rows = table(records, keys, [tuple(label.values()) for label, _ in cells] if named else None)
    header = (f"# Sweep of `{args.config}`\n\n`python experiments/sweep.py {' '.join(argv or sys.argv[1:])}`\n\n"
              f"Validation split: the last {args.validation_percent}% of the training split (the test split is not "
              f"read). Shared overrides: {', '.join(f'`{k}={v}`' for k, v in fixed.items())}. "
              f"{len(records)}/{len(todo)} runs finished.\n\n")
    with open(os.path.join(args.workdir, "sweep.md"), "w") as f:
      f.write(header + text + "\n")
    with open(os.path.join(args.workdir, "sweep.json"), "w") as f:
      json.dump({"config": args.config, "shared": fixed, "grid": grid, "rows": rows, "runs": records}, f, indent=2)
    return text

  def one(job):
    label, overrides, seed = job
    rec = run_cell(args.config, fixed, label, overrides, seed, os.path.join(args.workdir, cell_name(label, seed)))
    with lock:
      records.append(rec)
      write()
      what = (f"error: {rec['error']}" if "error" in rec else
              f"val. probe {rec['linear_probe_accuracy']:.3f} kNN {rec['knn_20_accuracy']:.3f} in "
              f"{rec['seconds']:.0f} s{' (reused)' if rec.get('reused') else ''}")
      print(f"[sweep] {len(records)}/{len(todo)} {cell_name(label, seed)}: {what} "
            f"(elapsed {time.time() - t0:.0f} s)", flush=True)
    return rec

  with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
    list(pool.map(one, todo))
  text = write()
  print(f"\n{text}\n\n[sweep] wrote {args.workdir}/sweep.md and sweep.json", flush=True)
  return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
  sys.exit(main())
