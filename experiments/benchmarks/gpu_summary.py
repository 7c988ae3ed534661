"""The summary of experiments/benchmarks/gpu_suite.sh: one row per part, from its outcome and its own JSON.

  python experiments/benchmarks/gpu_summary.py --out experiments/benchmarks/results/gpu

gpu_suite.sh appends one line per part to `<out>/parts.jsonl` (`{"part", "rc", "seconds", "limit"}`, rc 124 or
137: the part ran into its time limit); each part writes its results to `<out>/<part>.json` (the tests part: one
JSON line per test in `<out>/tests.jsonl`). This prints the table (status: ok, failed (rc), timed out; wall time;
the part's headline number, read from its JSON; "—" where there is none) and writes it to `<out>/summary.json`.
A headline is what the part measured, never an estimate.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
from typing import Callable

TIMED_OUT = (124, 137)  # GNU timeout: the limit's SIGTERM (124), or its SIGKILL after --kill-after (137)


def _load(path: str):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _wheels(r: dict) -> str:
  return (f"{len(r['installed'])} installed offline, {len(r['present'])} already present"
          + (f"; import failed: {', '.join(r['import_failed'])}" if r.get("import_failed") else ""))


def _env(r: dict) -> str:
  return f"{r['device_count']} x {r['device_kind']} ({r['platform']}), jax {r['jax']}, Python {r['python']}"


def _augment(r: dict) -> str:
  fused = [row for row in r["rows"] if row["impl"] == "fused"]
  rates = ", ".join(f"{row['views_per_s']:,.0f} views/s at {row['size']}^2" for row in fused)
  return f"fused {rates}; bar: {r['gpu_bar']['result']}"


def _step(r: dict) -> str:
  rows = {row["name"]: row for row in r["rows"]}
  e2e = rows["end-to-end"]
  mfu = "" if e2e.get("mfu_spec") is None else f", MFU {e2e['mfu_spec']:.1%}"
  bars = "; ".join(f"{b['bar']}: {b['status']}" for b in r["bars"])
  return f"end-to-end {e2e['pairs_per_s']:,.0f} pairs/s{mfu}; {bars}"


def _loss(r: dict) -> str:
  parts = []
  for rec in r["records"]:
    what = f"{rec['seconds']:.3f} s" if rec["status"] == "ok" else rec["status"]
    ratio = f" (floor ratio {rec['floor_ratio']:.2f})" if "floor_ratio" in rec else ""
    parts.append(f"{rec['impl']} {rec['rows']:,} rows: {what}{ratio}")
  return "; ".join(parts)


def _trainer(r: dict, step: dict | None = None) -> str:
  rate = r["steady_pairs_per_s"]
  if rate is None:
    return "no steady window"
  text = f"{rate:,.0f} pairs/s steady (batch {r['settings']['batch']}, {r['settings']['dtype']})"
  if step:
    e2e = {row["name"]: row for row in step["rows"]}["end-to-end"]["pairs_per_s"]
    text += f"; {rate / e2e:.2f} x step_throughput's end-to-end step"
  return text


def _mnist1d(rows: list) -> str:
  trained = next(row for row in rows if row["representation"].endswith("(trained)"))
  return (f"linear probe {trained['linear_probe_accuracy']:.3f}, kNN-20 {trained['knn_20_accuracy']:.3f} "
          f"(make run on 2 CPU cores: 0.951, 0.941)")


def _tests(lines: list) -> str:
  counts = collections.Counter(line["outcome"] for line in lines)
  return ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "skipped") if counts[k]) or "no test finished"


# part -> (its results file in <out>, headline of the loaded results (and of step_throughput's, for the trainer)).
HEADLINES: dict[str, tuple[str, Callable]] = {
    "wheels": ("wheels.json", _wheels),
    "env": ("env.json", _env),
    "augment_throughput": ("augment_throughput.json", _augment),
    "step_throughput": ("step_throughput.json", _step),
    "loss_scaling_plain": ("loss_scaling_plain.json", _loss),
    "loss_scaling_tiled": ("loss_scaling_tiled.json", _loss),
    "trainer_throughput": ("trainer_throughput.json", _trainer),
    "simclr_mnist1d": ("simclr_mnist1d/results.json", _mnist1d),
    "tests": ("tests.jsonl", _tests),
}


def _results(out: str, name: str):
  path = os.path.join(out, HEADLINES[name][0])
  if path.endswith(".jsonl"):
    try:
      with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
    except OSError:
      return None
  return _load(path)


def summarize(out: str, wall_seconds: float | None = None) -> dict:
  """The summary of the parts recorded in `<out>/parts.jsonl`, in their order; `wall_seconds`: the whole suite's."""
  with open(os.path.join(out, "parts.jsonl"), encoding="utf-8") as f:
    parts = [json.loads(line) for line in f if line.strip()]
  rows = []
  for p in parts:
    status = "ok" if p["rc"] == 0 else "timed out" if p["rc"] in TIMED_OUT else f"failed (rc {p['rc']})"
    headline = "—"
    if p["part"] in HEADLINES:
      results = _results(out, p["part"])
      if results is not None:
        try:
          if p["part"] == "trainer_throughput":
            headline = _trainer(results, _results(out, "step_throughput"))
          else:
            headline = HEADLINES[p["part"]][1](results)
        except (KeyError, TypeError, ValueError, StopIteration, ZeroDivisionError) as e:
          headline = f"unreadable results ({type(e).__name__}: {e})"
    rows.append({"part": p["part"], "status": status, "seconds": p["seconds"], "limit": p["limit"],
                 "headline": headline})
  return {"parts": rows, "wall_seconds": wall_seconds, "all_ok": all(r["status"] == "ok" for r in rows)}


def markdown(summary: dict) -> str:
  lines = ["| part | status | wall s | limit s | headline |", "| --- | --- | --- | --- | --- |"]
  for r in summary["parts"]:
    lines.append(f"| {r['part']} | {r['status']} | {r['seconds']:.0f} | {r['limit']} | {r['headline']} |")
  if summary["wall_seconds"] is not None:
    lines += ["", f"The suite took {summary['wall_seconds']:.0f} s; "
              + ("every part ok." if summary["all_ok"] else "not every part is ok.")]
  return "\n".join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="gpu_suite.sh's output folder")
  parser.add_argument("--wall", type=float, default=None, help="the whole suite's wall time in seconds")
  args = parser.parse_args(argv)
  summary = summarize(args.out, args.wall)
  print(markdown(summary), flush=True)
  with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2)
  return summary


if __name__ == "__main__":
  main()
