"""experiments/sweep.py: the grid, its parallel runs on a validation split, resume, and the table."""
import json
import os
import re
import sys
import textwrap

import pytest

from experiments import sweep

# A stand-in for experiments/main.py: records its arguments and writes the files a finished run leaves, with a
# probe accuracy that is a known function of the overrides (lr 4e-3 is best; seed 1 adds 0.02).
FAKE_MAIN = textwrap.dedent("""
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    workdir = args["workdir"]
    with open(os.path.join(os.path.dirname(workdir), "calls.txt"), "a") as f:
      f.write(json.dumps(args) + "\\n")
    if args.get("config.optim.lr") == "9":
      sys.exit(3)
    probe = {"1e-3": 0.80, "4e-3": 0.90}[args.get("config.optim.lr", "4e-3")] + 0.02 * int(args["config.seed"])
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump([{"representation": "m (trained)", "linear_probe_accuracy": probe, "knn_20_accuracy": 0.5}], f)
""")


@pytest.fixture
def fake_main(tmp_path, monkeypatch):
  path = tmp_path / "fake_main.py"
  path.write_text(FAKE_MAIN)
  monkeypatch.setattr(sweep, "MAIN", str(path))
  return tmp_path


def _calls(workdir):
  return [json.loads(line) for line in (workdir / "calls.txt").read_text().splitlines()]


def test_grid_runs_every_cell_on_validation_ranks_them_and_resumes(fake_main, capsys):
  workdir = fake_main / "sweep"
  argv = ["--config", "configs/simclr.py:mnist1d", "--workdir", str(workdir), "--grid", "optim.lr=1e-3,4e-3",
          "--grid", "augment.overrides.shift_range=(-8,8),(-16,16)", "--set", "total_steps=10", "--seeds", "2"]
  assert sweep.main(argv) == 0
  calls = _calls(workdir)
  assert len(calls) == 8  # 2 x 2 cells x 2 seeds
  for call in calls:  # every run: the validation split, no test-set extras, the shared and the cell's overrides
    assert call["config.eval.validation_percent"] == "10" and call["config.eval.baselines"] == "False"
    assert call["config.total_steps"] == "10" and call["config"] == "configs/simclr.py:mnist1d"
  cells = {(c["config.optim.lr"], c["config.augment.overrides.shift_range"], c["config.seed"]) for c in calls}
  assert cells == {(lr, r, s) for lr in ("1e-3", "4e-3") for r in ("(-8,8)", "(-16,16)") for s in ("0", "1")}
  table = (workdir / "sweep.md").read_text()
  assert "| `4e-3` | `(-8,8)` | 2 | 91.0 ± 1.4 | 50.0 ± 0.0 |" in table  # mean and std over the two seeds
  lines = [l for l in table.splitlines() if l.startswith("| `")]
  assert [l.split(" | ")[0] for l in lines] == ["| `4e-3`"] * 2 + ["| `1e-3`"] * 2  # best first
  assert "the test split is not read" in table and "8/8 runs finished" in table
  rows = json.loads((workdir / "sweep.json").read_text())["rows"]
  assert rows[0]["overrides"]["optim.lr"] == "4e-3" and sorted(rows[0]["probe"]) == pytest.approx([0.90, 0.92])
  assert "| optim.lr | augment.overrides.shift_range | seeds | val. linear probe %" in capsys.readouterr().out
  # Run again: every finished cell is read back, none trains again; a new value trains only its own cells.
  assert sweep.main(argv) == 0 and len(_calls(workdir)) == 8
  changed = [a if a != "total_steps=10" else "total_steps=20" for a in argv]  # the same cells, other settings
  assert sweep.main(changed) == 1 and len(_calls(workdir)) == 8  # refused, not reused, not retrained
  assert "finished with other settings" in capsys.readouterr().out
  assert "| `4e-3` | `(-8,8)` | 0 (2 failed) |" in (workdir / "sweep.md").read_text()
  argv[argv.index("optim.lr=1e-3,4e-3")] = "optim.lr=1e-3,4e-3,9"
  assert sweep.main(argv) == 1  # the failing cells are reported, and the table says so
  assert len(_calls(workdir)) == 12
  assert "| `9` | `(-8,8)` | 0 (2 failed) |" in (workdir / "sweep.md").read_text()


def test_named_cells_are_rows_of_their_own(fake_main):
  workdir = fake_main / "ablation"
  argv = ["--config", "configs/simclr.py:mnist1d", "--workdir", str(workdir), "--cell", "preset:",
          "--cell", "slow: optim.lr=1e-3; augment.overrides.shear_range=(-1,1)", "--grid", "simclr.temperature=0.1"]
  assert sweep.main(argv) == 0
  calls = {c["config.optim.lr"] if "config.optim.lr" in c else None: c for c in _calls(workdir)}
  assert set(calls) == {None, "1e-3"}  # 'preset' sets nothing of its own; the grid value reaches both
  assert calls["1e-3"]["config.augment.overrides.shear_range"] == "(-1,1)"
  assert all(c["config.simclr.temperature"] == "0.1" for c in calls.values())
  table = (workdir / "sweep.md").read_text()
  assert "| cell | simclr.temperature | seeds | val. linear probe % | Δ (points) |" in table
  lines = [l for l in table.splitlines() if l.startswith("| `")]  # in the order given, against the first
  assert lines[0].startswith("| `preset` | `0.1` | 1 | 90.0 | +0.0 |"), lines
  assert lines[1].startswith("| `slow` | `0.1` | 1 | 80.0 | -10.0 |"), lines
  with pytest.raises(SystemExit):
    sweep.main(argv + ["--cell", "bad: simclr.temperature=0.2"])  # a key the grid already sets


def test_values_and_errors(fake_main, capsys):
  assert sweep.split_values("1e-3, 4e-3") == ["1e-3", "4e-3"]
  assert sweep.split_values("(-8,8),[1,2],'a,b'") == ["(-8,8)", "[1,2]", "'a,b'"]
  with pytest.raises(ValueError, match="unbalanced"):
    sweep.split_values("(-8,8")
  workdir = str(fake_main / "bad")
  for argv, message in (
      (["--grid", "optim.lr"], "--grid: expected KEY=VALUE,VALUE... with a dotted config key, got 'optim.lr'"),
      (["--grid", "optim.lr=1,2", "--grid", "optim.lr=3"], "--grid: 'optim.lr' is given twice"),
      (["--grid", "optim.lr=1", "--set", "optim.lr=2"], r"--grid and --set both set \['optim.lr'\]"),
      (["--validation_percent", "0"], r"--validation_percent: expected an int in \[1, 99\], got 0"),
      (["--cell", "a: optim.lr=1", "--cell", "a: optim.lr=2"], "--cell: the name 'a' is given twice"),
      (["--cell", "optim.lr=1"], "--cell: expected 'NAME: KEY=VALUE; KEY=VALUE'")):
    with pytest.raises(SystemExit):
      sweep.main(["--config", "c.py", "--workdir", workdir, *argv])
    assert re.search(message, capsys.readouterr().err), message
  assert not os.path.exists(fake_main / "calls.txt")  # nothing ran


@pytest.mark.xdist_group("sweep_real")
def test_one_real_cell_trains_on_the_validation_split(tmp_path):
  # Through experiments/main.py for real: a tuple override reaches the recipe, and the run is scored on the last
  # 10% of train (3600 signals pretrain), which the report says.
  workdir = tmp_path / "sweep"
  argv = ["--config", "configs/simclr.py:smoke", "--workdir", str(workdir), "--grid",
          "augment.overrides.shear_range=(-0.5,0.5)", "--set", "total_steps=2", "--set", "eval.projection=False",
          "--set", "eval.max_train_examples=512", "--workers", "1"]
  assert sweep.main(argv) == 0, (next(workdir.iterdir()) / "log.txt").read_text()[-3000:]
  (run,) = [p for p in workdir.iterdir() if p.is_dir()]
  config = json.loads((run / "config.json").read_text())
  assert config["augment"]["overrides"]["shear_range"] == [-0.5, 0.5]
  assert config["num_train_examples"] == 3600 and config["eval"]["validation_percent"] == 10
  assert "Accuracies are on the validation split (the last 10% of the training split" in (
      run / "report.md").read_text()
  record = json.loads((run / "sweep_cell.json").read_text())
  assert 0.0 <= record["linear_probe_accuracy"] <= 1.0 and sys.executable
  assert os.path.exists(run / "results.json")
