"""Every method on mnist1d or digits, several seeds, one table: `RESULTS.md` (`RESULTS_digits.md`) and a JSON of every
run.

  python experiments/benchmarks/results_table.py                        # every method on mnist1d, 3 seeds
  python experiments/benchmarks/results_table.py --variant digits       # the same on digits
  python experiments/benchmarks/results_table.py --methods simclr,byol --seeds 1

Each run is `configs/<method>.py:<variant>` as it is (its own budget; `--steps` overrides the number of steps) and
the trainer's final evaluation on the test split: linear probe and kNN accuracy, alignment and uniformity on two
augmented views, effective rank (RankMe). The table gives mean ± std over seeds, the training time (compile and
checkpoints included) and the time with the final evaluation. Reference rows: the raw input and a random
(untrained) encoder of the same architecture (from the supervised runs), the supervised encoder trained with labels
(`configs/supervised.py`) and SupCon; they are marked and not counted as self-supervised.

The notes under the table check the bars of the representation-quality issue. On mnist1d: the best
self-supervised probe at least `BEST_BAR`; every contrastive, distillation, redundancy-reduction and clustering
method at least `FAMILY_BAR`; BYOL and SimSiam within `PAIR_GAP` of SimCLR. A method that misses its bar gets the
reason written in `REASONS` (a diagnosis from experiments), or is flagged "no reason recorded yet". On digits the
question is which methods beat the raw pixels, which the notes list.

Nothing is lost on interruption: each finished run leaves `<workdir>/<method>_s<seed>/table_run.json`, which a
re-run reuses if it ran the same config (`--force` re-trains); a run of another config is trained again. Each
finished run's record (its metrics, times and a digest of its config, without the weights) is also kept in the
ledger `experiments/benchmarks/table_runs/<variant>.jsonl`, which is committed: a table of a few hours can be
built over several sessions or machines whose run directories do not survive, and a re-run reuses a ledger record
whose config digest matches. `--collect` trains nothing: it records the workdir's finished runs in the ledger and
prints the table of what is done, without writing RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

from rl import methods as methods_lib  # noqa: E402

REFERENCES = ("supervised", "supcon", "feature_sieve")  # trained with labels: reference rows

# Each self-supervised method's family (the bars of the representation-quality issue are per family).
FAMILIES = {
    **dict.fromkeys(("align_uniform", "dcl", "hallucinator", "matryoshka", "moco_v2", "moco_v3", "nnclr", "npid",
                     "simclr"), "contrastive"),
    **dict.fromkeys(("byol", "dino", "scfs", "simsiam"), "distillation"),
    **dict.fromkeys(("barlow_twins", "vicreg", "wmse"), "redundancy reduction"),
    **dict.fromkeys(("mlcd", "odc", "swav", "unicom"), "clustering"),
    **dict.fromkeys(("jigsaw", "relative_location", "rotnet"), "pretext"),
    "mae": "masked modelling",
    "semaim": "masked modelling",
    "shortcut_lens": "pretext",
}
BEST_BAR = 0.96  # mnist1d: the best self-supervised linear probe
FAMILY_BAR = 0.90  # mnist1d: every method of these families
BARRED_FAMILIES = ("contrastive", "distillation", "redundancy reduction", "clustering")
PAIR_GAP = 0.02  # mnist1d: BYOL and SimSiam within this of SimCLR, or above

# Why a method misses its bar on mnist1d: a diagnosis from experiments (what was tried, with the numbers), written
# after looking at its runs. Keep it honest and short. (The previous table's reasons, for the old recipe and the
# 2000-step budget, are in the git history of experiments/benchmarks/mnist1d_table.py.)
REASONS: dict[str, str] = {}

COLUMNS = ("linear_probe_accuracy", "knn_20_accuracy", "alignment", "uniformity", "effective_rank")


VARIANTS = ("mnist1d", "digits")


def methods_with(variant: str) -> list[str]:
  """Registered methods with a `configs/<name>.py` that has `variant`, references last."""
  names = []
  for name in sorted(methods_lib.METHODS):
    try:
      module = importlib.import_module(f"configs.{name}")
    except ModuleNotFoundError:
      continue
    if variant in getattr(module, "VARIANTS", ()):
      names.append(name)
  return [n for n in names if n not in REFERENCES] + [n for n in REFERENCES if n in names]


def _config(method: str, variant: str, seed: int, steps: int | None, *, baselines: bool):
  config = importlib.import_module(f"configs.{method}").get_config(variant)
  config.seed = seed
  if steps is not None:
    config.total_steps = steps
    config.optim.warmup_steps = min(config.optim.warmup_steps, max(steps // 10, 1))
  config.eval.every_steps = 0
  config.eval.tsne_points = 0
  config.eval.baselines = baselines
  config.checkpoint.every_steps = config.total_steps
  config.log_every_steps = max(config.total_steps // 5, 1)
  return config


RANDOM, RAW = "random encoder (baseline)", "raw inputs (baseline)"  # rows of the trainer's final evaluation


def _encoder(method: str, variant: str) -> str:
  return importlib.import_module(f"configs.{method}").get_config(variant).model.encoder


def _wants_baselines(method: str, variant: str) -> bool:
  """The supervised runs give the raw-input and random-encoder rows; a method whose encoder is another
  architecture (MAE's ViT) evaluates its own random encoder, so that it is compared with its own architecture."""
  return method == "supervised" or _encoder(method, variant) != _encoder("supervised", variant)


# Config fields the trainer fills in while it runs (from the data set), left out of the comparison.
DERIVED = ("num_train_examples",)


def _settings(config) -> dict:
  """The config as plain JSON without the `DERIVED` fields: what a finished run must match to be reused."""
  settings = json.loads(config.to_json_best_effort(sort_keys=True))
  return {k: v for k, v in settings.items() if k not in DERIVED}


def this_machine() -> str:
  return f"{platform.node()} ({os.cpu_count()} CPU cores, {jax.devices()[0].platform}, jax {jax.__version__})"


def digest(settings: dict) -> str:
  """A short digest of a run's settings (`_settings`): what a ledger record must match to be reused."""
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_ledger(path: str) -> dict[tuple[str, int], dict]:
  """The ledger's records by (method, seed); {} if there is no ledger."""
  records = {}
  try:
    with open(path) as f:
      for line in f:
        if line.strip():
          record = json.loads(line)
          records[(record["method"], int(record["seed"]))] = record
  except FileNotFoundError:
    pass
  return records


def record_in_ledger(path: str, record: dict) -> None:
  """Adds (or replaces) `record`'s (method, seed) in the ledger, without its full config (a digest of it instead);
  one JSON line per run, sorted, so that the file's diff shows the runs added."""
  entry = {k: v for k, v in record.items() if k != "config"}
  if "config" in record:
    entry["config_digest"] = digest({k: v for k, v in record["config"].items() if k not in DERIVED})
  records = read_ledger(path)
  if records.get((record["method"], int(record["seed"]))) == entry:
    return
  records[(record["method"], int(record["seed"]))] = entry
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for key in sorted(records):
      f.write(json.dumps(records[key], sort_keys=True) + "\n")
  os.replace(tmp, path)  # a reader never sees half a ledger


def run_one(method: str, seed: int, steps: int | None, workdir: str, *, force: bool, variant: str = "mnist1d",
            ledger: str | None = None, train: bool = True) -> dict | None:
  """Trains and evaluates one (method, seed), or reads the finished run (from `workdir`, else from the `ledger`) if
  it ran the same config; returns its record: {method, seed, steps, batch_size, encoder, seconds, train_seconds,
  cores, uses_labels, rows, config (config_digest from the ledger)}. With `train=False`, None where there is no
  finished run of the same config."""
  from rl.train import loop  # pylint: disable=g-import-not-at-top
  run_dir = os.path.join(workdir, f"{method}_s{seed}")
  done = os.path.join(run_dir, "table_run.json")
  config = _config(method, variant, seed, steps, baselines=_wants_baselines(method, variant))
  finished = None  # the run directory's record, if it has one
  if os.path.exists(done) and not force:
    with open(done) as f:
      finished = json.load(f)
    # Runs recorded before these fields existed: a workdir is local, so its runs ran on this machine, on the day
    # their record was written.
    finished.setdefault("machine", this_machine())
    finished.setdefault("date", str(datetime.date.fromtimestamp(os.path.getmtime(done))))
    if {k: v for k, v in (finished.get("config") or {}).items() if k not in DERIVED} == _settings(config):
      if ledger:
        record_in_ledger(ledger, finished)
      return finished
  if ledger and not force:
    kept = read_ledger(ledger).get((method, seed))
    if kept is not None and kept.get("config_digest") == digest(_settings(config)):
      return kept
  if not train:
    return None
  if finished is not None:
    old = finished.get("config") or {}
    changed = sorted(k for k in set(_flat(old)) | set(_flat(_settings(config)))
                     if _flat(old).get(k) != _flat(_settings(config)).get(k))
    print(f"[table] {run_dir} ran another config ({', '.join(changed[:6]) or 'none recorded'}"
          f"{' ...' if len(changed) > 6 else ''} differ): training it again", flush=True)
    force = True
  if force and os.path.exists(run_dir):
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(run_dir)
  settings = _settings(config)  # before training, which fills in the DERIVED fields
  t0 = time.time()
  results = loop.train_and_evaluate(config, run_dir)
  if "interrupted" in results:  # SIGTERM/SIGINT: checkpointed, not finished; a re-run resumes it
    print(f"[table] {method} seed {seed} stopped by {results['interrupted']['signal']} at step "
          f"{results['interrupted']['step']}; run the same command to resume it", flush=True)
    sys.exit(1)
  record = {"method": method, "seed": seed, "steps": int(config.total_steps), "batch_size": int(config.batch_size),
            "encoder": str(config.model.encoder),
            # A resumed run's earlier processes trained before this one started (their time is in train_seconds).
            "seconds": time.time() - t0 + results.get("resumed", {}).get("train_seconds", 0.0),
            "train_seconds": results.get("train_seconds"), "cores": len(os.sched_getaffinity(0)),
            "machine": this_machine(), "date": str(datetime.date.today()),
            "uses_labels": bool(config.uses_labels),
            "rows": results["rows"], "config": settings}
  os.makedirs(run_dir, exist_ok=True)
  with open(done, "w") as f:
    json.dump(record, f, indent=2)
  if ledger:
    record_in_ledger(ledger, record)
  return record


def _flat(tree: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _minutes(records: list[dict]) -> str:
  total = sum(r["seconds"] for r in records)
  return f"{total / 60:.1f} minutes ({total:.0f} s)"


def _stat(values: list[float]) -> tuple[float, float]:
  return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values: list[float], digits: int = 3, pct: bool = False) -> str:
  if not values:
    return "—"
  mean, std = _stat([v * 100 if pct else v for v in values])
  d = 1 if pct else digits
  return f"{mean:.{d}f} ± {std:.{d}f}" if len(values) > 1 else f"{mean:.{d}f}"


def family(method: str, uses_labels: bool) -> str:
  return "supervised (reference)" if uses_labels else FAMILIES.get(method, "self-supervised")


def summarise(records: list[dict], *, variant: str = "mnist1d") -> tuple[list[dict], str]:
  """One summary row per method (mean ± std over seeds), the reference rows, the markdown table and the notes on
  the bars (module docstring)."""
  by_method: dict[str, list[dict]] = {}
  for r in records:
    by_method.setdefault(r["method"], []).append(r)
  rows, lines = [], []
  header = ("| representation | family | seeds | steps | linear probe % | kNN-20 % | alignment | uniformity | "
            "effective rank | train s | train+eval s |")
  lines += [header, "|" + " --- |" * 11]

  def add(name, kind, recs, pick):
    vals = {c: [pick(r)[c] for r in recs if c in pick(r) and pick(r)[c] is not None] for c in COLUMNS}
    own = kind != "baseline"  # baselines ride on another run: no time of their own
    seconds = [r["seconds"] for r in recs] if own else []
    train = [r["train_seconds"] for r in recs if r.get("train_seconds") is not None] if own else []
    row = {"representation": name, "kind": kind, "seeds": len(recs), "steps": recs[0]["steps"],
           **{c: _stat(v) if v else None for c, v in vals.items()},
           "seconds": _stat(seconds) if seconds else None, "train_seconds": _stat(train) if train else None}
    rows.append(row)
    lines.append(f"| {name} | {kind} | {len(recs)} | {recs[0]['steps']} | "
                 f"{_fmt(vals['linear_probe_accuracy'], pct=True)} | {_fmt(vals['knn_20_accuracy'], pct=True)} | "
                 f"{_fmt(vals['alignment'])} | {_fmt(vals['uniformity'])} | {_fmt(vals['effective_rank'], 1)} | "
                 f"{_fmt(train, 0)} | {_fmt(seconds, 0)} |")

  def row_named(name):
    return lambda r: next(x for x in r["rows"] if x["representation"] == name)

  def has(name):
    return lambda r: any(x["representation"] == name for x in r["rows"])

  for method, recs in by_method.items():
    add(method, family(method, recs[0]["uses_labels"]), recs, lambda r: r["rows"][0])
  sup = by_method.get("supervised", [])
  for label, name in (("random encoder", RANDOM), ("raw input", RAW)):
    base = [r for r in sup if has(name)(r)]
    if base:
      add(label, "baseline", base, row_named(name))
  # A method with another architecture brings its own random encoder; it is compared with that one.
  own_random = {}
  for method, recs in by_method.items():
    base = [r for r in recs if has(RANDOM)(r)]
    if method != "supervised" and base:
      own_random[method] = label = f"random {recs[0].get('encoder', method)} encoder (for {method})"
      add(label, "baseline", base, row_named(RANDOM))

  by_name = {r["representation"]: r for r in rows}
  probe = {r["representation"]: r["linear_probe_accuracy"][0] for r in rows if r["linear_probe_accuracy"]}
  ssl = [r for r in rows if r["kind"] not in ("supervised (reference)", "baseline") and r["linear_probe_accuracy"]]
  notes = []
  if ssl and variant == "mnist1d":
    notes += _mnist1d_bars(ssl, probe)
  elif ssl and "raw input" in probe:
    raw = probe["raw input"]
    above = [f"{r['representation']} ({100 * probe[r['representation']]:.1f})" for r in ssl
             if probe[r["representation"]] > raw]
    below = [f"{r['representation']} ({100 * probe[r['representation']]:.1f})" for r in ssl
             if probe[r["representation"]] <= raw]
    notes.append(f"Raw pixels: {100 * raw:.1f}% linear probe. Above them: {', '.join(above) or 'none'}. "
                 f"At or below them: {', '.join(below) or 'none'}.")
  random_row = by_name.get("random encoder")
  if random_row and random_row["linear_probe_accuracy"]:
    rnd = random_row["linear_probe_accuracy"][0]

    def reference(r):  # the random encoder of the method's own architecture
      return by_name[own_random[r["representation"]]] if r["representation"] in own_random else random_row

    weak = [f"{r['representation']} ({100 * r['linear_probe_accuracy'][0]:.1f} vs "
            f"{100 * reference(r)['linear_probe_accuracy'][0]:.1f})" for r in ssl
            if r["linear_probe_accuracy"][0] < reference(r)["linear_probe_accuracy"][0] + 0.05]
    own = "".join(f"; `{m}` against its own `{label}` row ({100 * by_name[label]['linear_probe_accuracy'][0]:.1f}%)"
                  for m, label in own_random.items())
    notes.append(f"Random-encoder probe {100 * rnd:.1f}%{own}. Methods within 5 points of their random encoder: "
                 f"{', '.join(weak) if weak else 'none'}.")
  return rows, "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def _mnist1d_bars(ssl: list[dict], probe: dict[str, float]) -> list[str]:
  """The notes on mnist1d's bars: each bar met or not, and the reason for each method that misses one."""
  notes, missed = [], {}
  best = max(ssl, key=lambda r: probe[r["representation"]])
  met = probe[best["representation"]] >= BEST_BAR
  notes.append(f"- Best self-supervised linear probe: **{best['representation']}** "
               f"{100 * probe[best['representation']]:.1f}% (bar: {100 * BEST_BAR:.0f}%{'' if met else ', missed'}).")
  barred = [r for r in ssl if r["kind"] in BARRED_FAMILIES]
  below = [r["representation"] for r in barred if probe[r["representation"]] < FAMILY_BAR]
  notes.append(f"- {len(barred) - len(below)} of {len(barred)} contrastive, distillation, redundancy-reduction and "
               f"clustering methods reach {100 * FAMILY_BAR:.0f}%" + (f"; below: {', '.join(below)}." if below else "."))
  for name in below:
    missed[name] = f"below {100 * FAMILY_BAR:.0f}% ({100 * probe[name]:.1f}%)"
  if "simclr" in probe:
    gaps = []
    for name in ("byol", "simsiam"):
      if name in probe:
        gap = probe["simclr"] - probe[name]
        gaps.append(f"{name} {-100 * gap:+.1f}")
        if gap > PAIR_GAP:
          missed[name] = (missed[name] + "; " if name in missed else "") + f"{100 * gap:.1f} points behind SimCLR"
    if gaps:
      notes.append(f"- BYOL and SimSiam against SimCLR (bar: within {100 * PAIR_GAP:.0f} points or above): "
                   f"{', '.join(gaps)} points.")
  for name, what in missed.items():
    notes.append(f"- `{name}` {what}: {REASONS.get(name, '**no reason recorded yet**')}")
  return notes


# RESULTS.md's sections after this line are not this script's (the augmentation ablation, the sweeps that chose
# the recipes): a re-run keeps them as they are.
KEEP_MARKER = "<!-- The sections below are not written by results_table.py, which keeps them. -->"


def kept_sections(path: str) -> str:
  """The part of the existing file from `KEEP_MARKER` on ("" if there is none), to append to the new table."""
  try:
    with open(path) as f:
      old = f.read()
  except OSError:
    return ""
  at = old.find(KEEP_MARKER)
  return "" if at < 0 else "\n" + old[at:]


# What the test split is, for the text above each table.
TEST_SPLIT = {"mnist1d": "the 1000 test signals", "digits": "the 360 test images"}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--variant", default="mnist1d", choices=VARIANTS, help="the configs' variant (data set)")
  parser.add_argument("--methods", default="", help="comma-separated method names (default: every method)")
  parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
  parser.add_argument("--steps", type=int, default=0,
                      help="training steps per run (0: each config's own total_steps)")
  parser.add_argument("--workdir", default="", help="where the runs go, reused on re-run (runs/<variant>_table)")
  parser.add_argument("--out", default="", help="the markdown table (RESULTS.md; RESULTS_digits.md for digits)")
  parser.add_argument("--json", default="", help="every run (experiments/benchmarks/results/<variant>_table.json)")
  parser.add_argument("--force", action="store_true", help="re-train runs that already finished")
  parser.add_argument("--ledger", default="",
                      help="the committed record of finished runs (experiments/benchmarks/table_runs/<variant>.jsonl)")
  parser.add_argument("--collect", action="store_true",
                      help="train nothing: record the workdir's finished runs in the ledger, print the partial table")
  args = parser.parse_args(argv)
  variant = args.variant
  workdir = args.workdir or f"runs/{variant}_table"
  out = args.out or ("RESULTS.md" if variant == "mnist1d" else f"RESULTS_{variant}.md")
  json_path = args.json or f"experiments/benchmarks/results/{variant}_table.json"
  ledger = args.ledger or os.path.join(os.path.dirname(os.path.abspath(__file__)), "table_runs", f"{variant}.jsonl")
  if args.seeds < 1:
    parser.error(f"--seeds: expected at least 1, got {args.seeds}")

  known = methods_with(variant)
  names = [m for m in args.methods.split(",") if m] or known
  unknown = [m for m in names if m not in known]
  if unknown:
    parser.error(f"--methods: unknown {unknown} for --variant {variant}; known: {', '.join(known)}")
  if "supervised" not in names and not args.methods:
    names.append("supervised")
  steps = args.steps or None
  todo = [(m, s) for m in names for s in range(args.seeds)]
  print(f"[table] {variant}: {len(todo)} runs ({len(names)} methods x {args.seeds} seeds), {steps or 'config'} "
        f"steps each, on {jax.device_count()} {jax.devices()[0].platform} device(s)", flush=True)
  records, missing, t0 = [], [], time.time()
  for i, (method, seed) in enumerate(todo, 1):
    rec = run_one(method, seed, steps, workdir, force=args.force, variant=variant, ledger=ledger,
                  train=not args.collect)
    if rec is None:
      missing.append(f"{method}_s{seed}")
      continue
    records.append(rec)
    row = rec["rows"][0]
    print(f"[table] {i}/{len(todo)} {method} seed {seed}: probe {row['linear_probe_accuracy']:.3f} "
          f"kNN {row.get('knn_20_accuracy', float('nan')):.3f} in {rec['seconds']:.0f} s "
          f"(elapsed {time.time() - t0:.0f} s)", flush=True)

  if args.collect:
    print(f"[table] --collect: {len(records)} of {len(todo)} runs done, in {ledger}; not done: "
          f"{', '.join(missing) or 'none'}", flush=True)
    if records:
      print("\n" + summarise(records, variant=variant)[1], flush=True)
    return
  rows, table = summarise(records, variant=variant)
  cores = "/".join(sorted({str(r.get("cores", "?")) for r in records}))  # taskset pins a run to fewer cores
  hosts = "; ".join(sorted({r.get("machine", "?") for r in records}))  # a ledger's runs may come from several
  machine = f"{hosts}; each run on {cores} of its CPU cores"
  command = " ".join(["experiments/benchmarks/results_table.py"] + (argv if argv is not None else sys.argv[1:]))
  dates = sorted({r.get("date") or str(datetime.date.today()) for r in records})
  when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
  text = (f"# {variant} results\n\nGenerated by `python {command}`, runs of {when} ({machine}). The "
          f"{len(records)} runs took {_minutes(records)} (train + evaluation, summed over runs, each timed when it "
          f"ran, one run at a time; this invocation: {time.time() - t0:.0f} s, finished runs are reused).\n\n"
          f"Every method trains `configs/<method>.py:{variant}` for the number of steps in the table's `steps` "
          f"column at batch {'/'.join(sorted({str(r.get('batch_size', '?')) for r in records}))}, then the "
          f"trainer's final evaluation on {TEST_SPLIT[variant]}: the linear probe (logistic regression on frozen "
          "encoder features) and kNN (k = 20, cosine) accuracy; alignment and uniformity (Wang & Isola 2020) on two "
          "augmented views of the test set; effective rank (RankMe). Mean ± std over seeds. `train s` is the "
          "training loop's wall time (compilation and checkpoints included), `train+eval s` adds the final "
          "evaluation.\n\n" + table)
  text += kept_sections(out)
  with open(out, "w") as f:
    f.write(text)
  os.makedirs(os.path.dirname(json_path) or ".", exist_ok=True)
  with open(json_path, "w") as f:
    json.dump({"summary": rows, "runs": records}, f, indent=2)
  print("\n" + table + f"\n[table] wrote {out} and {json_path}", flush=True)


if __name__ == "__main__":
  main()
