"""experiments/benchmarks/mnist1d_table.py (the summary of runs: mean +- std over seeds, reference rows, reasons) and
mnist1d_draws.py (a config on other draws of MNIST-1D)."""
import importlib.util
import json
import os

import numpy as np
import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "mnist1d_table.py")
_spec = importlib.util.spec_from_file_location("mnist1d_table", _PATH)
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)


def _row(name, probe, knn=0.5):
  return {"representation": name, "linear_probe_accuracy": probe, "knn_20_accuracy": knn, "alignment": 0.1,
          "uniformity": -1.0, "effective_rank": 50.0}


def _record(method, seed, probe, *, labels=False, extra=()):
  rows = [_row(f"{method} (trained)", probe)] + [_row(n, p) for n, p in extra]
  return {"method": method, "seed": seed, "steps": 2000, "batch_size": 128, "seconds": 10.0 + seed,
          "uses_labels": labels, "rows": rows}


def test_summary_rows_reference_rows_and_reasons(monkeypatch):
  monkeypatch.setattr(table, "REASONS", {"weak": "a written reason"})
  probes = {"good": [0.93, 0.91, 0.95], "weak": [0.70, 0.72, 0.74], "silent": [0.80, 0.82, 0.84]}
  records = [_record(m, s, p) for m, ps in probes.items() for s, p in enumerate(ps)]
  records += [_record("supervised", s, 0.97, labels=True,
                      extra=[(table.RANDOM, 0.6 + s / 100), (table.RAW, 0.3)]) for s in range(3)]
  rows, text = table.summarise(records, bar=0.85)
  by_name = {r["representation"]: r for r in rows}
  mean, std = by_name["good"]["linear_probe_accuracy"]
  np.testing.assert_allclose([mean, std], [np.mean(probes["good"]), np.std(probes["good"], ddof=1)])
  assert by_name["good"]["seconds"] == pytest.approx((11.0, 1.0))
  assert by_name["supervised"]["kind"] == "supervised (reference)"
  assert by_name["random encoder"]["kind"] == "baseline"
  assert by_name["random encoder"]["linear_probe_accuracy"][0] == pytest.approx(0.61)
  assert by_name["raw input"]["linear_probe_accuracy"][0] == pytest.approx(0.3)
  assert "| good | self-supervised | 3 | 2000 | 93.0 ± 2.0 |" in text
  assert "Best self-supervised linear probe: **good** 93.0%" in text
  assert "`weak` is below 85% (72.0%): a written reason" in text
  assert "`silent` is below 85% (82.0%): **no reason recorded yet**" in text
  assert "`good` is below" not in text
  assert "Methods within 5 points of their random encoder: none" in text  # 61%; weak is 11 points above


def test_a_method_of_another_architecture_is_compared_with_its_own_random_encoder():
  # "vit" is 5 points below the conv random encoder (61%) but 10 above a random encoder of its own architecture;
  # "close" is within 5 points of the conv one.
  records = [_record("supervised", s, 0.97, labels=True, extra=[(table.RANDOM, 0.61), (table.RAW, 0.3)])
             for s in range(2)]
  records += [dict(_record("vit", s, 0.56, extra=[(table.RANDOM, 0.46), (table.RAW, 0.3)]), encoder="mae")
              for s in range(2)]
  records += [_record("close", s, 0.64) for s in range(2)]
  rows, text = table.summarise(records, bar=0.85)
  by_name = {r["representation"]: r for r in rows}
  assert by_name["random mae encoder (for vit)"]["kind"] == "baseline"
  assert by_name["random mae encoder (for vit)"]["linear_probe_accuracy"][0] == pytest.approx(0.46)
  assert by_name["random encoder"]["linear_probe_accuracy"][0] == pytest.approx(0.61)
  assert "Methods within 5 points of their random encoder: close (64.0 vs 61.0)." in text


def test_a_finished_run_of_another_budget_is_not_reused(tmp_path, monkeypatch):
  run_dir = tmp_path / "simclr_s0"
  run_dir.mkdir()
  (run_dir / "table_run.json").write_text('{"steps": 1000, "batch_size": 256, "rows": []}')
  trained = []

  def fake_train(config, workdir):
    trained.append((config.total_steps, config.batch_size))
    return {"rows": [_row("simclr (trained)", 0.9)]}

  from rl.train import loop
  monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
  record = table.run_one("simclr", 0, None, str(tmp_path), force=False)
  from configs import simclr  # pylint: disable=import-outside-toplevel
  steps = simclr.get_config("mnist1d").total_steps  # the config's own budget (8000), not the stale 1000 of 256
  assert trained == [(steps, 128)] and record["steps"] == steps and record["batch_size"] == 128
  again = table.run_one("simclr", 0, None, str(tmp_path), force=False)  # now finished at this budget: reused
  assert trained == [(steps, 128)] and again["rows"] == record["rows"]


def test_draws_script_trains_on_another_draw_and_reuses_it(tmp_path, capsys):
  spec = importlib.util.spec_from_file_location(
      "mnist1d_draws", os.path.join(os.path.dirname(_PATH), "mnist1d_draws.py"))
  draws = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(draws)
  from rl.data import embedded  # pylint: disable=import-outside-toplevel
  shipped, other = embedded.mnist1d("train"), embedded.mnist1d("train", seed=1)
  assert other["x"].shape == shipped["x"].shape and np.abs(other["x"] - shipped["x"]).mean() > 0.5
  argv = ["--config", "configs/simclr.py:smoke", "--draws", "1", "--workdir", str(tmp_path)]
  assert draws.main(argv) == 0
  run = tmp_path / "simclr_draw1"
  config = json.loads((run / "config.json").read_text())
  assert config["dataset"] == "mnist1d_draw1" and config["total_steps"] == 6
  table = (tmp_path / "draws.md").read_text()
  assert "| 1 |" in table and "test split of each draw" in table
  mtime = (run / "results.json").stat().st_mtime
  assert draws.main(argv) == 0 and (run / "results.json").stat().st_mtime == mtime  # reused, not retrained


def test_a_new_table_keeps_the_sections_after_the_marker(tmp_path):
  path = tmp_path / "RESULTS.md"
  assert table.kept_sections(str(path)) == ""  # no file yet
  path.write_text("# old table\n\n| a |\n\n" + table.KEEP_MARKER + "\n\n## Ablation\n\n| b |\n")
  assert table.kept_sections(str(path)) == "\n" + table.KEEP_MARKER + "\n\n## Ablation\n\n| b |\n"
  path.write_text("# a table without the marker\n")
  assert table.kept_sections(str(path)) == ""
