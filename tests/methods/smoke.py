"""End-to-end smoke run of any method's `smoke` config: a few steps on 8 fake devices, then the final report.

Used by every method's test module: `smoke.run(configs.byol.get_config("smoke"), tmp_path)`.
"""
from __future__ import annotations

import json

import numpy as np

from rl.train import loop


def run(config, tmp_path, *, data_dir=None, steps: int = 4, baselines: bool = False) -> dict:
  """Trains `steps` steps (checkpoint at step 2, no in-loop kNN) and checks the run's outputs; returns results.

  Pass the session-wide `tfds_dir` fixture as `data_dir` so the embedded datasets are built once per worker. The
  report's baseline rows and t-SNE plot are off unless `baselines` (the trainer's own tests cover them), which
  keeps one method's smoke run to its training and evaluation.
  """
  config.total_steps = steps
  config.log_every_steps = 1
  config.eval.every_steps = 0
  config.eval.baselines = baselines
  config.eval.projection = baselines
  config.eval.tsne_points = 50 if baselines else 0
  config.eval.alignment_examples = 100
  config.eval.max_train_examples = 512
  config.checkpoint.every_steps = 2
  config.data_dir = str(data_dir or tmp_path / "tfds")
  workdir = tmp_path / "run"
  results = loop.train_and_evaluate(config, workdir)
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [l for l in lines if l["kind"] == "train"]
  assert [l["step"] for l in train] == list(range(1, steps + 1)), [l["step"] for l in train]
  assert all(np.isfinite(l["loss"]) for l in train), train
  assert (workdir / "report.md").exists() and (workdir / "results.json").exists()
  return results
