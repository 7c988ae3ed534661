"""End-to-end smoke run of any method's `smoke` config: a few steps on 8 fake devices, then the final report.

Used by tests/methods/test_training.py (every method, `final=False`) and the trainer's tests:
`smoke.run(configs.byol.get_config("smoke"), tmp_path, golden="byol:smoke", final=False)`.

`golden` names the run's entry of `smoke_losses.json`: every train metric of every step (loss, its terms, gradient
norm, online probe) as this protocol gives it (recorded by the architecture issue, whose refactor into method
bases reproduced the earlier code's values bit for bit). The run must reproduce them, so a refactor that changes
how a method trains fails here. Other machines and XLA versions round reductions differently, hence `GOLDEN_RTOL`; on
the machine that recorded them the values are bit-identical (`RL_GOLDEN_EXACT=1` checks that).
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from rl.train import loop

GOLDEN = pathlib.Path(__file__).with_name("smoke_losses.json")
# Four steps of a tiny network: float rounding that differs between CPUs or XLA versions moves the metrics by
# ~1e-6 relative; a wrong temperature, a swapped view or a missing stop-gradient moves the loss by far more.
GOLDEN_RTOL, GOLDEN_ATOL = 2e-4, 1e-5


def check_golden(name: str, train_lines: list[dict]) -> None:
  """Every train metric of every step equals `smoke_losses.json[name]` (rtol GOLDEN_RTOL; exact with
  RL_GOLDEN_EXACT=1). With RL_GOLDEN_RECORD=1, a name not in the file is recorded from this run instead (a new
  method: `RL_GOLDEN_RECORD=1 pytest tests/methods/test_training.py -k <name>`); recorded names are never
  overwritten."""
  recorded = json.loads(GOLDEN.read_text())
  got = [{k: v for k, v in line.items() if k not in ("kind", "steps_per_second")} for line in train_lines]
  if name not in recorded and os.environ.get("RL_GOLDEN_RECORD") == "1":  # a new method's first, checked run
    GOLDEN.write_text(json.dumps({**recorded, name: got}, indent=1, sort_keys=True))
    return
  expected = recorded[name]
  assert [sorted(line) for line in got] == [sorted(line) for line in expected], (name, got[0], expected[0])
  exact = os.environ.get("RL_GOLDEN_EXACT") == "1"
  for step, (g, e) in enumerate(zip(got, expected), start=1):
    for metric in e:
      if exact:
        assert g[metric] == e[metric], (name, step, metric, g[metric], e[metric])
      else:
        np.testing.assert_allclose(g[metric], e[metric], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL,
                                   err_msg=f"{name}: step {step}, {metric}")


def run(config, tmp_path, *, data_dir=None, steps: int = 4, baselines: bool = False,
        golden: str | None = None, final: bool = True) -> dict:
  """Trains `steps` steps (checkpoints every 2 steps) and checks the run's outputs; returns results.

  With `golden` (4 steps of a config as `get_config` returns it), the train metrics must equal its entry of
  `smoke_losses.json` (`check_golden`). Without `final`, the run ends after training, and the in-loop kNN of step 2
  (`rl.train.loop`'s evaluation during training, through the method's `embed`) stands in for the final report.

  Pass the session-wide `tfds_dir` fixture as `data_dir` so the embedded datasets are built once per worker. The
  report's baseline rows and t-SNE plot are off unless `baselines` (the trainer's own tests cover them), which
  keeps one method's smoke run to its training and evaluation.
  """
  config.total_steps = steps
  config.log_every_steps = 1
  config.eval.every_steps = 0 if final else 2  # the trainer's in-loop kNN skips the last step (the report's)
  config.eval.final = final
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
  if golden is not None:
    check_golden(golden, train)
  if final:
    assert (workdir / "report.md").exists() and (workdir / "results.json").exists()
  else:
    results["eval"] = [l for l in lines if l["kind"] == "eval"]
  return results
