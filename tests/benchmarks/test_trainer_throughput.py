"""experiments/benchmarks/trainer_throughput.py at a tiny size: the trainer runs on synthetic_32, the JSON and the
table report its windows, and the steady rate drops the first (compiling) window."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "trainer_throughput.py")
_SPEC = importlib.util.spec_from_file_location("trainer_throughput", _PATH)
tt = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tt)


def test_tiny_run_through_the_trainer(tmp_path, capsys):
  out = tmp_path / "trainer_throughput.json"
  result = tt.main(["--steps", "2", "--log-every", "1", "--batch", "8", "--width", "4", "--stages", "1",
                    "--workdir", str(tmp_path / "run"), "--out", str(out)])
  assert json.loads(out.read_text()) == json.loads(json.dumps(result))
  assert [w["step"] for w in result["windows"]] == [1, 2]
  assert result["steady_steps_per_s"] == result["windows"][1]["steps_per_second"]
  assert result["steady_pairs_per_s"] == pytest.approx(8 * result["steady_steps_per_s"])
  assert result["settings"]["dtype"] == "float32" and result["machine"]["platform"] == "cpu"  # auto on CPU
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["dataset"] == "synthetic_32" and saved["augment"]["views"] == ["simclr", "simclr"]
  assert saved["eval"]["final"] is False and (tmp_path / "run" / "checkpoints").is_dir()
  assert "| to 2 |" in capsys.readouterr().out


def test_steady_rate_drops_the_first_window():
  lines = [{"step": 50, "steps_per_second": 1.0}, {"step": 100, "steps_per_second": 9.0},
           {"step": 150, "steps_per_second": 11.0}, {"step": 200, "steps_per_second": 10.0}]
  rate = tt.steady_rate(lines, batch=512)
  assert rate["steady_steps_per_s"] == 10.0 and rate["steady_pairs_per_s"] == 5120.0
  assert rate["first_window_seconds"] == 50.0


@pytest.mark.parametrize("argv,message", [
    (["--steps", "3", "--log-every", "2"], "--steps must be a multiple of --log-every"),
    (["--steps", "2", "--log-every", "2"], "at least two windows"),
    (["--stages", "2,x"], "--stages: expected comma-separated positive block counts"),
])
def test_bad_flags_are_named(argv, message):
  with pytest.raises(SystemExit, match=message):
    tt.main(argv)
