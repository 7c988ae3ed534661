"""experiments/stability_plasticity.py end to end: two phases of the simclr smoke config, probes and report."""
import json
import pathlib

from absl import app
import pytest

from experiments import stability_plasticity as sp_script

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "simclr.py") + ":smoke"


def _overrides(tfds_dir):
  return [f"--config.data_dir={tfds_dir}", "--config.log_every_steps=1", "--config.eval.every_steps=0",
          "--config.eval.baselines=False", "--config.eval.tsne_points=0", "--config.eval.alignment_examples=100",
          "--config.eval.max_train_examples=512", "--config.checkpoint.every_steps=2"]


def _lines(workdir, kind="train"):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
          if json.loads(l)["kind"] == kind]


def test_two_phases_probes_and_report(tfds_dir, tmp_path, capsys):
  sp_script.main(["stability_plasticity.py", f"--config={CONFIG}", f"--workdir={tmp_path}", "--old=0,1,2,3,4",
                  "--steps_old=2", "--steps_new=2", *_overrides(tfds_dir)])
  out = capsys.readouterr().out
  assert "resuming from checkpoint at step 2/4" in out  # phase 2 continued phase 1's state
  assert "| representation | old classes [0, 1, 2, 3, 4] | new classes [5, 6, 7, 8, 9] | all classes |" in out

  # Phase 1 trained steps 1-2 on the old classes; phase 2 carries those lines and adds steps 3-4.
  assert [l["step"] for l in _lines(tmp_path / "phase1")] == [1, 2]
  phase2 = _lines(tmp_path / "phase2")
  assert [l["step"] for l in phase2] == [1, 2, 3, 4]
  assert phase2[:2] == _lines(tmp_path / "phase1")
  assert json.loads((tmp_path / "phase1" / "config.json").read_text())["data_classes"] == [0, 1, 2, 3, 4]
  assert json.loads((tmp_path / "phase2" / "config.json").read_text())["data_classes"] == [5, 6, 7, 8, 9]
  assert [l["step"] for l in _lines(tmp_path / "phase2", "final")] == [4]

  result = json.loads((tmp_path / "stability_plasticity.json").read_text())
  assert (result["old_classes"], result["new_classes"]) == ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
  assert (result["steps_old"], result["steps_new"]) == (2, 2)
  assert [r["step"] for r in result["rows"]] == [0, 2, 4]
  for row in result["rows"]:
    for key in ("old", "new", "all"):
      assert 0.0 <= row[key] <= 1.0, (row["representation"], key)
  m = result["measures"]
  rows = result["rows"]
  assert m["stability"] == pytest.approx(rows[2]["old"] - rows[1]["old"])
  assert m["plasticity"] == pytest.approx(rows[2]["new"] - rows[1]["new"])
  assert m["plasticity_vs_random"] == pytest.approx(rows[2]["new"] - rows[0]["new"])
  assert 0.0 <= m["cka_phase1_phase2"] <= 1.0
  report = (tmp_path / "stability_plasticity.md").read_text()
  assert "change in phase 2" in report and "stability" in report and "plasticity" in report

  # A rerun finds both phases complete and only redoes the probes.
  sp_script.main(["stability_plasticity.py", f"--config={CONFIG}", f"--workdir={tmp_path}", "--steps_old=2",
                  "--steps_new=2", *_overrides(tfds_dir)])
  assert "is complete (step 4); not training it again" in capsys.readouterr().out
  assert json.loads((tmp_path / "stability_plasticity.json").read_text())["rows"] == result["rows"]


def test_bad_arguments(tfds_dir, tmp_path):
  base = ["stability_plasticity.py", f"--config={CONFIG}", f"--workdir={tmp_path}", *_overrides(tfds_dir)]
  with pytest.raises(ValueError, match=r"--old: a probe needs at least 2 old and 2 new classes"):
    sp_script.main(base + ["--old=0"])
  with pytest.raises(ValueError, match=r"--old: expected distinct class ids in \[0, 10\), got \[3, 12\]"):
    sp_script.main(base + ["--old=3,12"])
  with pytest.raises(ValueError, match=r"--steps_new: expected a positive number of steps, got 0"):
    sp_script.main(base + ["--steps_old=2", "--steps_new=0"])
  with pytest.raises(ValueError, match=r"config.data_classes: must be unset"):
    sp_script.main(base + ["--config.data_classes=(1,2)"])
  with pytest.raises(app.UsageError, match="--config and --workdir are required"):
    sp_script.main(["stability_plasticity.py", f"--workdir={tmp_path}"])
