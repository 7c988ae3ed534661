"""experiments/benchmarks/augment_throughput.py: rows, rates, JSON and the GPU-bar row, at tiny sizes."""
import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "augment_throughput.py")
_spec = importlib.util.spec_from_file_location("augment_throughput", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_main_writes_rows_with_positive_rates(tmp_path, capsys):
  out = tmp_path / "augment_throughput.json"
  result = bench.main(["--sizes", "8", "--input-sizes", "10", "--batch32", "4", "--repeats", "2",
                       "--json", str(out)])
  assert json.loads(out.read_text()) == json.loads(json.dumps(result))
  rows = {(r["size"], r["impl"]): r for r in result["rows"]}
  assert set(rows) == {(8, "fused"), (8, "op_by_op")}
  for r in rows.values():
    assert (r["batch"], r["input_size"], r["recipe"]) == (4, 10, "simclr")
    assert len(r["seconds"]) == 2 and min(r["seconds"]) > 0
    assert r["views_per_s"] > 0 and r["ms_per_batch"] > 0
    assert r["views_per_s"] == pytest.approx(4 / (r["ms_per_batch"] / 1e3))
  assert result["speedup_fused_over_op_by_op"]["8"] == pytest.approx(
      rows[8, "op_by_op"]["ms_per_batch"] / rows[8, "fused"]["ms_per_batch"])
  machine = result["machine"]
  assert machine["cpu_count"] > 0 and machine["jax"] and machine["device_kind"] and machine["node"] is not None
  assert result["gpu_bar"]["result"] == "not measured (no GPU)"  # the suite runs on CPU
  text = capsys.readouterr().out
  assert "| size | batch | input | impl | views/s | ms/batch | device |" in text
  assert "| 8^2 | 4 | 10^2 uint8 | fused |" in text and "not measured (no GPU)" in text


def test_gpu_bar_passes_or_fails_only_on_a_gpu():
  gpu = {"platform": "gpu"}
  rows = [{"size": 32, "impl": "op_by_op", "views_per_s": 300_000.0},
          {"size": 32, "impl": "fused", "views_per_s": 250_000.0}]
  assert bench.gpu_bar(rows, gpu)["result"] == "pass"
  rows[1]["views_per_s"] = 150_000.0  # the op-by-op row does not count
  assert bench.gpu_bar(rows, gpu)["result"] == "fail"
  assert bench.gpu_bar(rows[:1], gpu)["result"] == "not measured (32^2 not in --sizes)"
  assert bench.gpu_bar(rows, {"platform": "cpu"}) == {
      "check": "fused >= 200,000 views/s at 32^2", "result": "not measured (no GPU)", "views_per_s": None}


def test_bad_flags_raise():
  with pytest.raises(ValueError, match="--sizes must hold positive integers"):
    bench.main(["--sizes", "0"])
  with pytest.raises(ValueError, match="--input-sizes must give one side per size; got 1 for 2"):
    bench.main(["--sizes", "8,16", "--input-sizes", "8"])
  with pytest.raises(ValueError, match="--repeats must be > 0"):
    bench.main(["--sizes", "8", "--repeats", "0"])
