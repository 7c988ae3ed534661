"""experiments/benchmarks/loss_scaling.py: one child process per measurement, the table and JSON, and an
implementation stopped at its first out-of-memory (XLA's buffer assignment over the limit) and said so."""
import importlib.util
import json
import os

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "loss_scaling.py")
_spec = importlib.util.spec_from_file_location("loss_scaling", _PATH)
loss_scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loss_scaling)


def test_small_sizes_run_for_both_implementations(tmp_path):
  out = loss_scaling.main(["--rows", "256,512", "--tile", "128", "--dim", "16", "--repeats", "1",
                           "--json", str(tmp_path / "s.json")])
  recs = out["records"]
  assert [(r["impl"], r["rows"], r["status"]) for r in recs] == [
      ("plain", 256, "ok"), ("plain", 512, "ok"), ("tiled", 256, "ok"), ("tiled", 512, "ok")]
  assert all(r["seconds"] > 0 and r["peak_bytes"] > 0 and r["floor_flops"] == 6 * r["rows"] ** 2 * 16
             for r in recs)
  assert json.load(open(tmp_path / "s.json"))["records"] == recs
  assert "| nt_xent | tiled | 512 | 256 | float32 | ok |" in loss_scaling.table(recs)


def test_out_of_memory_stops_the_implementation_and_says_why(tmp_path):
  # 65,536 rows of plain nt_xent need a 16 GiB logits matrix; under a 4 GiB limit XLA's buffer assignment
  # refuses it before anything runs, and the larger size is not attempted.
  out = loss_scaling.main(["--rows", "65536,131072", "--impls", "plain", "--mem-limit-gb", "4",
                           "--json", str(tmp_path / "o.json")])
  (rec,) = out["records"]
  assert rec["status"] == "OOM" and "buffer assignment needs" in rec["detail"], rec
  assert rec["xla_bytes"] > 16 * 2 ** 30
