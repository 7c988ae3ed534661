"""End-to-end smoke run of any method's `smoke` config: a few steps on 8 fake devices, then the final report.

Used by tests/methods/test_training.py (every method, 40 steps, `final=False`) and the trainer's tests:
`smoke.run(configs.byol.get_config("smoke"), tmp_path, steps=4)`.

`golden` names the run's entry of `smoke_losses.json`: every train metric of the first steps (loss, its terms,
gradient norm, online probe) as test_training.py's protocol gives them. The architecture issue's refactor into
method bases reproduced the earlier code's values bit for bit; the test-suite issue then changed the protocol (40
steps with a 2-step warm-up, of which the first 4 are recorded) and recorded them again from the same code, which
reproduced the old protocol's record bit for bit first. The run must reproduce them, so a refactor that changes
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
# Accuracies (an arg-max over the online probe's logits, which are all near zero in the first steps) are not
# compared: rounding that moves the losses by less than GOLDEN_RTOL flips predictions that sit on near-ties (a fresh
# install of the same versions gave the online probe's accuracy at step 2 of nnclr, npid, unicom and two
# hallucinator runs 1 to 3 examples of 64 apart, while every loss, gradient norm and probe loss matched). The
# continuous metrics, the probe's loss among them, carry the check.
UNCOMPARED = ("accuracy",)


def check_golden(name: str, train_lines: list[dict]) -> None:
  """Every train metric of every step equals `smoke_losses.json[name]` (rtol GOLDEN_RTOL; exact with
  RL_GOLDEN_EXACT=1). With RL_GOLDEN_RECORD=1, a name not in the file is recorded from this run instead (a new
  method: `RL_GOLDEN_RECORD=1 pytest tests/methods/test_training.py -k <name>`); recorded names are never
  overwritten."""
  recorded = json.loads(GOLDEN.read_text())
  timing = ("kind", "steps_per_second", "train_seconds")  # wall-clock keys differ between runs
  got = [{k: v for k, v in line.items() if k not in timing} for line in train_lines]
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
        if metric.endswith(UNCOMPARED):
          continue
        np.testing.assert_allclose(g[metric], e[metric], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL,
                                   err_msg=f"{name}: step {step}, {metric}")


def run(config, tmp_path, *, data_dir=None, steps: int = 4, every: int = 2, baselines: bool = False,
        golden: str | None = None, golden_steps: int | None = None, final: bool = True) -> dict:
  """Trains `steps` steps (a checkpoint every `every` steps) and checks the run's outputs; returns results.

  With `golden`, the train metrics of the first `golden_steps` steps (all by default) must equal its entry of
  `smoke_losses.json` (`check_golden`). Without `final`, the run ends after training, and the in-loop kNN every
  `every` steps, the last one included (`rl.train.loop`'s evaluation during training, through the method's
  `embed`), stands in for the final report: `results["eval"]` lists its lines (`results["train"]`, the train
  lines).

  Pass the session-wide `tfds_dir` fixture as `data_dir` so the embedded datasets are built once per worker. The
  report's baseline rows and t-SNE plot are off unless `baselines` (the trainer's own tests cover them), which
  keeps one method's smoke run to its training and evaluation.
  """
  config.total_steps = steps
  config.log_every_steps = 1
  config.eval.every_steps = 0 if final else every
  config.eval.final = final
  config.eval.baselines = baselines
  config.eval.projection = baselines
  config.eval.tsne_points = 50 if baselines else 0
  config.eval.alignment_examples = 100
  config.eval.max_train_examples = 512
  config.checkpoint.every_steps = every
  config.data_dir = str(data_dir or tmp_path / "tfds")
  workdir = tmp_path / "run"
  results = loop.train_and_evaluate(config, workdir)
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [l for l in lines if l["kind"] == "train"]
  assert [l["step"] for l in train] == list(range(1, steps + 1)), [l["step"] for l in train]
  assert all(np.isfinite(l["loss"]) for l in train), train
  if golden is not None:
    check_golden(golden, train[:golden_steps])
  if final:
    assert (workdir / "report.md").exists() and (workdir / "results.json").exists()
  else:
    results["eval"] = [l for l in lines if l["kind"] == "eval"]
  results["train"] = train
  return results
