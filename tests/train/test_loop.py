"""The training loop end to end on the smoke config: every file written.

Determinism and resume after a kill are tested in tests/train/test_reliability.py (six methods, a real SIGKILL).
"""
import json

import numpy as np
import pytest

from configs import simclr as simclr_config
from rl.train import loop

# The module-scoped runs are shared by its tests: all on one pytest-xdist worker (`--dist loadgroup`), trained once.
pytestmark = pytest.mark.xdist_group("loop")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def _config(data_dir, **overrides):
  c = simclr_config.get_config("smoke")
  c.data_dir = data_dir
  for k, v in overrides.items():
    c[k] = v
  return c


def _train_lines(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
          if json.loads(l)["kind"] == "train"]


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  results = loop.train_and_evaluate(_config(data_dir), workdir)
  return workdir, results


def test_smoke_run_writes_every_artifact(straight_run):
  workdir, results = straight_run
  for name in ("metrics.jsonl", "report.md", "results.json", "config.json", "loss.png", "accuracy.png",
               "tsne.png"):
    assert (workdir / name).exists() and (workdir / name).stat().st_size > 0, name
  assert any((workdir / "tensorboard").iterdir())
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [3, 6]
  lines = _train_lines(workdir)
  assert [l["step"] for l in lines] == [2, 4, 6]
  assert all(np.isfinite(l["loss"]) for l in lines)
  evals = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
           if json.loads(l)["kind"] == "eval"]
  assert [e["step"] for e in evals] == [4] and "knn_5_accuracy" in evals[0]
  names = [r["representation"] for r in results["rows"]]
  assert names == ["simclr (trained)", "simclr (projection head output)", "random encoder (baseline)",
                   "raw inputs (baseline)"]
  for row in results["rows"]:
    assert 0.0 <= row["linear_probe_accuracy"] <= 1.0
    for key in ("recall_at_1", "map", "fewshot_1"):  # retrieval and few-shot columns of the report
      assert 0.0 <= row[key] <= 1.0, (row["representation"], key)
  report = (workdir / "report.md").read_text()
  assert "recall_at_1" in report and "fewshot_1" in report
  assert "| knn_5_accuracy | knn_20_accuracy |" in report  # one column per k of eval.knn_ks, (5, 20) here
  report = (workdir / "report.md").read_text()
  assert "| representation" in report and "raw inputs (baseline)" in report


def test_batch_not_divisible_by_devices_is_refused(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"config.batch_size: expected a multiple of the device count 8 .*got 12"):
    loop.train_and_evaluate(_config(data_dir, batch_size=12), tmp_path)
