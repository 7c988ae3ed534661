"""experiments/evaluate.py: the trainer's final evaluation again, from a run's workdir and checkpoint."""
import json
import shutil

from absl import app
import numpy as np
import pytest

from configs import common
from configs import simclr as simclr_config
from experiments import evaluate as evaluate_script
from rl.train import restore
from tests.methods import smoke

# The module-scoped runs are shared by its tests: all on one pytest-xdist worker (`--dist loadgroup`), trained once.
pytestmark = pytest.mark.xdist_group("evaluate_script")


@pytest.fixture(scope="module")
def run(tfds_dir, tmp_path_factory):
  """A 4-step simclr smoke run with the baseline rows (checkpoints at steps 2 and 4)."""
  config = simclr_config.get_config("smoke")
  base = tmp_path_factory.mktemp("evaluate")
  smoke.run(config, base, data_dir=tfds_dir, steps=4, baselines=True)
  return base / "run", config


def _rows(workdir):
  return json.loads((workdir / "results.json").read_text())


def _assert_rows_close(got, want):
  assert [r["representation"] for r in got] == [r["representation"] for r in want]
  for g, w in zip(got, want):
    assert set(g) == set(w), g["representation"]
    for key in w:
      if key != "eval_seconds" and isinstance(w[key], float):
        np.testing.assert_allclose(g[key], w[key], rtol=1e-5, atol=1e-6, err_msg=f"{g['representation']}: {key}")
      elif key != "eval_seconds":
        assert g[key] == w[key], key


def test_config_json_round_trips(run):
  workdir, config = run
  restored = restore.read_config(workdir, template=common.base())
  assert restored.to_dict() == config.to_dict()
  assert restored.augment.views == ("mnist1d", "mnist1d") and restored.eval.knn_ks == (5, 20)


def test_regenerates_the_trainers_results(run):
  workdir, _ = run
  want = _rows(workdir)
  metrics = (workdir / "metrics.jsonl").read_text()
  for name in ("report.md", "results.json", "loss.png", "accuracy.png", "tsne.png"):
    (workdir / name).unlink()
  evaluate_script.main(["evaluate.py", f"--workdir={workdir}"])
  for name in ("report.md", "loss.png", "accuracy.png", "tsne.png"):
    assert (workdir / name).stat().st_size > 0, name
  _assert_rows_close(_rows(workdir), want)  # the probes and kNN are deterministic given the seed
  assert "4 steps at batch 64" in (workdir / "report.md").read_text()
  assert (workdir / "metrics.jsonl").read_text() == metrics  # the training log is left alone


def test_step_and_config_overrides(run, tmp_path):
  workdir, _ = run
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  evaluate_script.main(["evaluate.py", "--workdir", str(copy), "--step=2", "--config.eval.baselines=False",
                        "--config.eval.projection=False", "--config.eval.tsne_points=0"])
  rows = _rows(copy)
  assert [r["representation"] for r in rows] == ["simclr (trained)"]
  assert "2 steps at batch 64" in (copy / "report.md").read_text()
  assert 0.0 <= rows[0]["linear_probe_accuracy"] <= 1.0


def test_errors(run, tmp_path):
  workdir, _ = run
  with pytest.raises(app.UsageError, match="--workdir is required"):
    evaluate_script.main(["evaluate.py"])
  with pytest.raises(FileNotFoundError, match=f"no config.json in {tmp_path}"):
    evaluate_script.main(["evaluate.py", f"--workdir={tmp_path}"])
  shutil.copy(workdir / "config.json", tmp_path / "config.json")
  with pytest.raises(FileNotFoundError, match=f"no complete checkpoint in {tmp_path / 'checkpoints'}"):
    evaluate_script.main(["evaluate.py", f"--workdir={tmp_path}"])
  with pytest.raises(ValueError, match=r"no checkpoint of step 3 in .*; available steps: 2, 4"):
    evaluate_script.main(["evaluate.py", f"--workdir={workdir}", "--step=3"])
  with pytest.raises(ValueError, match=r"--config: .*lacks"):
    evaluate_script.main(["evaluate.py", f"--workdir={workdir}", "--config.eval.no_such_key=1"])


def test_fork_copies_a_checkpoint_and_its_metrics(run, tmp_path):
  workdir, _ = run
  assert restore.fork_run(workdir, tmp_path / "fork", step=2) == 2
  assert restore.checkpoint_steps(tmp_path / "fork") == [2]
  lines = [json.loads(l) for l in (tmp_path / "fork" / "metrics.jsonl").read_text().splitlines()]
  assert [(l["step"], l["kind"]) for l in lines] == [(1, "train"), (2, "train"), (2, "checkpoint")]
  with pytest.raises(FileExistsError, match=r"already holds checkpoints \(steps 2\)"):
    restore.fork_run(workdir, tmp_path / "fork")
