"""experiments/benchmarks/step_cost.py on the smoke configs: the budget arithmetic, SimCLR as the reference row,
every row's steps in the budget from its measured ratio, and the JSON it writes."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "step_cost.py")
_spec = importlib.util.spec_from_file_location("step_cost", _PATH)
step_cost = importlib.util.module_from_spec(_spec)
sys.modules["step_cost"] = step_cost
_spec.loader.exec_module(step_cost)


def test_budget_is_five_minutes_of_simclr_steps_at_make_runs_rate():
  # 300 s at make run's 8000 steps per 135 s.
  assert step_cost.BUDGET_SIMCLR_STEPS == 17800


def test_reference_first_ratios_and_json(tmp_path, capsys):
  out = tmp_path / "cost.json"
  # No timing is asserted (no timing thresholds in unit tests): only that every row follows from its ratio.
  step_cost.main(["--variant", "smoke", "--methods", "dino", "--warmup", "1", "--steps", "2", "--rounds", "2", "--out", str(out)])
  rows = json.loads(out.read_text())["rows"]
  assert [r["method"] for r in rows] == ["simclr", "dino"]
  assert rows[0]["cost_vs_simclr"] == 1.0
  assert rows[0]["budget_steps"] == 17800
  for r in rows:
    assert r["budget_steps"] == int(17800 / r["cost_vs_simclr"])
    assert r["within_budget"] == (r["configured_steps"] <= r["budget_steps"])
  assert "| dino |" in capsys.readouterr().out


def test_unknown_method_is_named():
  with pytest.raises(SystemExit, match="nope"):
    step_cost.main(["--variant", "smoke", "--methods", "nope"])


def test_variants_without_a_budget_show_ratios_only():
  row = {"method": "dino", "ms_per_step": 2.0, "cost_vs_simclr": 1.5, "configured_steps": 500, "budget_steps": None,
         "within_budget": None}
  assert step_cost.table([row]).splitlines()[-1] == "| dino | 2.0 | 1.50 | 500 | — | — |"
  assert "digits" not in step_cost.BUDGETED
