"""One config on other draws of MNIST-1D: is its result a property of the method, or of the one draw `rl` ships?

  python experiments/benchmarks/mnist1d_draws.py                                   # make run's config, draws 1-3
  python experiments/benchmarks/mnist1d_draws.py --config configs/byol.py:mnist1d --draws 1,2

The MNIST-1D generator (`mnist1d.data.make_dataset`) makes the data set from ten templates and random nuisances; its
seed (42 for the data set of the paper and of `rl`) decides the draw. Each draw here is a new data set of the same
size and split (4000 train, 1000 test), registered as `mnist1d_draw<seed>` and trained on with the config as it
is (its recipe was chosen on the validation split of draw 42; nothing is tuned here). Each run's final report reads
that draw's test split. The table (printed, and written as markdown and JSON) gives the linear probe and kNN
accuracy per draw.

Finished runs are reused (their `results.json`); an interrupted one resumes from its checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import importlib.util  # noqa: E402

from rl import data  # noqa: E402
from rl.data import embedded  # noqa: E402


def register_draw(seed: int) -> str:
  """Registers MNIST-1D drawn with generator seed `seed` as 'mnist1d_draw<seed>'; returns the name."""
  name = f"mnist1d_draw{seed}"
  spec = dataclasses.replace(data.dataset_spec("mnist1d"), source=functools.partial(embedded.mnist1d, seed=seed))
  data.register_dataset(name, spec, replace=True)
  return name


def _config(path: str, dataset: str):
  """`get_config(VARIANT)` of a `configs/<method>.py:VARIANT` path, on `dataset`."""
  file, _, variant = path.partition(":")
  spec = importlib.util.spec_from_file_location("_draws_config", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant or None)
  config.dataset = dataset
  config.eval.tsne_points = 0  # the table reads the trained encoder's row only
  config.eval.baselines = False
  config.eval.projection = False
  return config


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/simclr.py:mnist1d", help="config file and variant")
  parser.add_argument("--draws", default="1,2,3", help="comma-separated generator seeds (42 is the shipped draw)")
  parser.add_argument("--workdir", default="runs/mnist1d_draws", help="one run per draw under it; reused")
  parser.add_argument("--out", default="", help="markdown table (default: <workdir>/draws.md)")
  args = parser.parse_args(argv)
  try:
    draws = [int(d) for d in args.draws.split(",") if d.strip()]
  except ValueError:
    parser.error(f"--draws: expected comma-separated integers, got {args.draws!r}")
  if not draws:
    parser.error("--draws: expected at least one seed")
  from rl.train import loop  # pylint: disable=import-outside-toplevel

  rows = []
  for seed in draws:
    name = register_draw(seed)
    config = _config(args.config, name)
    run_dir = os.path.join(args.workdir, f"{config.method}_draw{seed}")
    results_path = os.path.join(run_dir, "results.json")
    t0 = time.time()
    if os.path.exists(results_path):
      with open(results_path) as f:
        results = json.load(f)
      seconds = None
    else:
      results = loop.train_and_evaluate(config, run_dir)["rows"]
      seconds = time.time() - t0
    trained = results[0]
    rows.append({"draw": seed, "dataset": name, "linear_probe_accuracy": trained["linear_probe_accuracy"],
                 "knn_20_accuracy": trained.get("knn_20_accuracy"), "seconds": seconds})
    print(f"[draws] {name}: probe {trained['linear_probe_accuracy']:.3f} kNN {trained.get('knn_20_accuracy', 0):.3f}",
          flush=True)
  probes = [r["linear_probe_accuracy"] for r in rows]
  lines = ["| MNIST-1D draw (generator seed) | linear probe % | kNN-20 % |", "| --- | --- | --- |"]
  lines += [f"| {r['draw']} | {100 * r['linear_probe_accuracy']:.1f} | {100 * r['knn_20_accuracy']:.1f} |" for r in rows]
  text = (f"`{args.config}` on other draws of MNIST-1D (`python experiments/benchmarks/mnist1d_draws.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`); test split of each draw.\n\n" + "\n".join(lines)
          + f"\n\nLowest linear probe: {100 * min(probes):.1f}%, mean {100 * sum(probes) / len(probes):.1f}%.\n")
  out = args.out or os.path.join(args.workdir, "draws.md")
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out, "w") as f:
    f.write(text)
  with open(os.path.splitext(out)[0] + ".json", "w") as f:
    json.dump({"config": args.config, "rows": rows}, f, indent=2)
  print("\n" + text + f"\n[draws] wrote {out}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
