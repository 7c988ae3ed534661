"""experiments/benchmarks/results_table.py (the summary of runs: mean +- std over seeds, reference rows, reasons) and
mnist1d_draws.py (a config on other draws of MNIST-1D)."""
import importlib.util
import json
import os

import numpy as np
import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "results_table.py")
_spec = importlib.util.spec_from_file_location("results_table", _PATH)
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)


def _row(name, probe, knn=0.5):
  return {"representation": name, "linear_probe_accuracy": probe, "knn_20_accuracy": knn, "alignment": 0.1,
          "uniformity": -1.0, "effective_rank": 50.0}


def _record(method, seed, probe, *, labels=False, extra=()):
  rows = [_row(f"{method} (trained)", probe)] + [_row(n, p) for n, p in extra]
  return {"method": method, "seed": seed, "steps": 2000, "batch_size": 128, "seconds": 10.0 + seed,
          "train_seconds": 5.0 + seed, "uses_labels": labels, "rows": rows}


def _supervised(seeds=3):
  return [_record("supervised", s, 0.97, labels=True, extra=[(table.RANDOM, 0.6 + s / 100), (table.RAW, 0.3)])
          for s in range(seeds)]


def test_summary_rows_reference_rows_and_the_mnist1d_bars(monkeypatch):
  monkeypatch.setattr(table, "REASONS", {"swav": "a written diagnosis"})
  probes = {"simclr": [0.96, 0.97, 0.98], "byol": [0.93, 0.94, 0.95], "simsiam": [0.95, 0.96, 0.97],
            "swav": [0.84, 0.85, 0.86], "vicreg": [0.88, 0.89, 0.90], "rotnet": [0.80, 0.81, 0.82]}
  records = [_record(m, s, p) for m, ps in probes.items() for s, p in enumerate(ps)] + _supervised()
  rows, text = table.summarise(records, variant="mnist1d")
  by_name = {r["representation"]: r for r in rows}
  mean, std = by_name["simclr"]["linear_probe_accuracy"]
  np.testing.assert_allclose([mean, std], [np.mean(probes["simclr"]), np.std(probes["simclr"], ddof=1)])
  assert by_name["simclr"]["seconds"] == pytest.approx((11.0, 1.0))
  assert by_name["simclr"]["train_seconds"] == pytest.approx((6.0, 1.0))
  assert by_name["supervised"]["kind"] == "supervised (reference)"
  assert by_name["random encoder"]["kind"] == "baseline" and by_name["random encoder"]["seconds"] is None
  assert by_name["random encoder"]["linear_probe_accuracy"][0] == pytest.approx(0.61)
  assert by_name["raw input"]["linear_probe_accuracy"][0] == pytest.approx(0.3)
  assert "| simclr | contrastive | 3 | 2000 | 97.0 ± 1.0 | 50.0 ± 0.0 |" in text
  assert "| rotnet | pretext | 3 |" in text and "| swav | clustering | 3 |" in text
  assert "Best self-supervised linear probe: **simclr** 97.0% (bar: 96%)." in text
  # rotnet (pretext) has no 90% bar; byol, simsiam, swav, vicreg, simclr do.
  assert "3 of 5 contrastive, distillation, redundancy-reduction and clustering methods reach 90%; below: swav, " \
         "vicreg." in text
  assert "BYOL and SimSiam against SimCLR (bar: within 2 points or above): byol -3.0, simsiam -1.0 points." in text
  assert "- `byol` 3.0 points behind SimCLR: **no reason recorded yet**" in text
  assert "- `swav` below 90% (85.0%): a written diagnosis" in text
  assert "- `vicreg` below 90% (89.0%): **no reason recorded yet**" in text
  assert "`simsiam`" not in text and "`rotnet`" not in text  # within their bars: no note
  assert "Methods within 5 points of their random encoder: none" in text  # 61%; the weakest is rotnet at 81%


def test_a_missed_best_bar_is_said_and_digits_lists_the_methods_above_raw_pixels():
  records = [_record("simclr", s, 0.93) for s in range(2)] + _supervised(2)
  _, text = table.summarise(records, variant="mnist1d")
  assert "**simclr** 93.0% (bar: 96%, missed)." in text
  records = [_record("simclr", s, 0.35) for s in range(2)] + [_record("byol", s, 0.25) for s in range(2)]
  _, text = table.summarise(records + _supervised(2), variant="digits")
  assert "Raw pixels: 30.0% linear probe. Above them: simclr (35.0). At or below them: byol (25.0)." in text
  assert "bar" not in text


def test_a_method_of_another_architecture_is_compared_with_its_own_random_encoder():
  # "vit" is 5 points below the conv random encoder (61%) but 10 above a random encoder of its own architecture;
  # "close" is within 5 points of the conv one.
  records = [_record("supervised", s, 0.97, labels=True, extra=[(table.RANDOM, 0.61), (table.RAW, 0.3)])
             for s in range(2)]
  records += [dict(_record("vit", s, 0.56, extra=[(table.RANDOM, 0.46), (table.RAW, 0.3)]), encoder="mae")
              for s in range(2)]
  records += [_record("close", s, 0.64) for s in range(2)]
  rows, text = table.summarise(records)
  by_name = {r["representation"]: r for r in rows}
  assert by_name["random mae encoder (for vit)"]["kind"] == "baseline"
  assert by_name["random mae encoder (for vit)"]["linear_probe_accuracy"][0] == pytest.approx(0.46)
  assert by_name["random encoder"]["linear_probe_accuracy"][0] == pytest.approx(0.61)
  assert "Methods within 5 points of their random encoder: close (64.0 vs 61.0)." in text


def test_a_finished_run_is_reused_only_if_it_ran_the_same_config(tmp_path, monkeypatch, capsys):
  run_dir = tmp_path / "simclr_s0"
  run_dir.mkdir()
  (run_dir / "table_run.json").write_text('{"steps": 1000, "batch_size": 256, "rows": []}')  # no config recorded
  trained = []

  def fake_train(config, workdir):
    trained.append((config.dataset, config.total_steps, config.optim.lr))
    config.num_train_examples = 3600  # the trainer fills this in from the data set, as the real one does
    return {"rows": [_row("simclr (trained)", 0.9)], "train_seconds": 1.5}

  from rl.train import loop
  monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
  from configs import simclr  # pylint: disable=import-outside-toplevel
  config = simclr.get_config("mnist1d")
  steps, lr = config.total_steps, config.optim.lr  # the config's own budget
  record = table.run_one("simclr", 0, None, str(tmp_path), force=False)
  assert trained == [("mnist1d", steps, lr)] and record["steps"] == steps and record["train_seconds"] == 1.5
  again = table.run_one("simclr", 0, None, str(tmp_path), force=False)  # the same config: reused
  assert len(trained) == 1 and again["rows"] == record["rows"]
  # The config changed since (a tuned lr): trained again, and the changed key is named.
  monkeypatch.setattr(simclr, "get_config", lambda arg: _with_lr(config, 2 * lr))
  table.run_one("simclr", 0, None, str(tmp_path), force=False)
  assert trained[-1] == ("mnist1d", steps, 2 * lr) and "optim.lr differ" in capsys.readouterr().out
  monkeypatch.undo()
  monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
  table.run_one("simclr", 0, None, str(tmp_path / "digits"), force=False, variant="digits")
  assert trained[-1][0] == "digits"


def _with_lr(config, lr):
  config = config.copy_and_resolve_references()
  config.optim.lr = lr
  return config


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


def test_an_interrupted_run_stops_the_table_and_is_not_recorded(tmp_path, monkeypatch, capsys):
  from rl.train import loop  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(loop, "train_and_evaluate",
                      lambda config, workdir: {"rows": [], "interrupted": {"signal": "SIGTERM", "step": 7}})
  with pytest.raises(SystemExit):
    table.run_one("simclr", 0, None, str(tmp_path), force=False)
  assert "simclr seed 0 stopped by SIGTERM at step 7" in capsys.readouterr().out
  assert not (tmp_path / "simclr_s0" / "table_run.json").exists()  # a re-run resumes it instead of reusing it


def test_a_resumed_run_counts_its_earlier_processes_in_its_seconds(tmp_path, monkeypatch):
  from rl.train import loop  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(loop, "train_and_evaluate",
                      lambda config, workdir: {"rows": [_row("simclr (trained)", 0.9)], "train_seconds": 500.0,
                                               "resumed": {"step": 7, "train_seconds": 400.0}})
  record = table.run_one("simclr", 0, None, str(tmp_path), force=False)
  assert record["train_seconds"] == 500.0 and 400.0 <= record["seconds"] < 460.0  # this process: well under a minute


def test_the_ledger_keeps_finished_runs_for_a_workdir_that_is_gone(tmp_path, monkeypatch):
  trained = []

  def fake_train(config, workdir):
    trained.append((config.seed, config.optim.lr))
    return {"rows": [_row("simclr (trained)", 0.9 + config.seed / 100)], "train_seconds": 1.5}

  from rl.train import loop  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
  ledger = str(tmp_path / "ledger.jsonl")
  for seed in (1, 0):
    table.run_one("simclr", seed, None, str(tmp_path / "first"), force=False, ledger=ledger)
  lines = [json.loads(line) for line in open(ledger)]
  assert [(r["method"], r["seed"]) for r in lines] == [("simclr", 0), ("simclr", 1)]  # sorted, one per run
  assert "config" not in lines[0] and len(lines[0]["config_digest"]) == 16 and lines[0]["machine"]
  # Another session: the first workdir is gone; the ledger's record is reused, nothing trains.
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.rmtree(tmp_path / "first")
  record = table.run_one("simclr", 1, None, str(tmp_path / "second"), force=False, ledger=ledger)
  assert len(trained) == 2 and record["rows"][0]["linear_probe_accuracy"] == pytest.approx(0.91)
  # --collect's mode: a run that is in neither is not trained.
  assert table.run_one("simclr", 2, None, str(tmp_path / "second"), force=False, ledger=ledger, train=False) is None
  assert len(trained) == 2
  # A changed config does not match the digest: trained again, and its record replaces the old one.
  from configs import simclr  # pylint: disable=import-outside-toplevel
  config = simclr.get_config("mnist1d")
  monkeypatch.setattr(simclr, "get_config", lambda arg: _with_lr(config, 2 * config.optim.lr))
  assert table.run_one("simclr", 1, None, str(tmp_path / "second"), force=False, ledger=ledger, train=False) is None
  table.run_one("simclr", 1, None, str(tmp_path / "second"), force=False, ledger=ledger)
  assert trained[-1] == (1, 2 * config.optim.lr) and len(table.read_ledger(ledger)) == 2
  assert table.read_ledger(ledger)[("simclr", 1)]["config_digest"] != lines[1]["config_digest"]
