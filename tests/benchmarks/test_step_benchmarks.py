"""experiments/benchmarks/step_throughput.py and scaling.py at tiny sizes: their JSON rows, the FLOP count against a
hand count of the network, MFU and efficiency arithmetic, the peak table and the bars' statuses."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import jax
import pytest

_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks")


def _load(name):
  if _DIR not in sys.path:
    sys.path.insert(0, _DIR)  # scaling.py imports step_throughput beside it
  spec = importlib.util.spec_from_file_location(name, os.path.join(_DIR, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module  # dataclasses look their module up; scaling.py then reuses this step_throughput
  spec.loader.exec_module(module)
  return module


st = _load("step_throughput")
scaling = _load("scaling")

# The tiny network of the tests: ResNet with the CIFAR stem, width 4, one stage of one basic block; the cifar10
# config's projector (2048 hidden, 256 out); batch 8 pairs of 32 x 32 x 3 images.
TINY = ["--width", "4", "--stages", "1", "--steps", "2", "--warmup", "1"]


def _conv3x3_flop(side, c_in, c_out):
  """2 x multiply-adds of a 3x3, stride-1, padding-1 convolution on side x side, counting only the taps that fall
  inside the image (as XLA's cost analysis does: (3 side - 2) valid taps per dimension, summed over outputs)."""
  return 2 * (3 * side - 2) ** 2 * c_in * c_out


def _matmul_flop_per_pair(width=4, hidden=2048, out=256, side=32):
  """Convolutions and dense layers of forward and backward of both views, counted by hand.

  The backward of a conv/dense layer costs two forwards (input and weight gradients), except the stem's, which
  needs no input gradient.
  """
  stem = _conv3x3_flop(side, 3, width)
  block = 2 * _conv3x3_flop(side, width, width)  # two 3x3 convs, stride 1, no projection shortcut
  projector = 2 * width * hidden + 2 * hidden * out
  forward = stem + block + projector
  return 2 * (3 * forward - stem)


def test_step_throughput_rows(tmp_path, capsys):
  out = tmp_path / "step_throughput.json"
  result = st.main(["--batch", "8", "--skip-torch", "--out", str(out)] + TINY)
  assert json.loads(out.read_text()) == json.loads(json.dumps(result))
  rows = {r["name"]: r for r in result["rows"]}
  assert list(rows) == ["model-only", "end-to-end", "PyTorch eager (model-only)",
                        "PyTorch torch.compile (model-only)"]
  for name in ("model-only", "end-to-end"):
    r = rows[name]
    assert r["status"] == "measured" and r["pairs_per_s"] > 0
    assert r["ms_per_step"] == pytest.approx(1e3 * 8 / r["pairs_per_s"])
  assert rows["PyTorch eager (model-only)"]["status"] == "not measured (--skip-torch)"
  # XLA also counts the element-wise work (BatchNorm, ReLU, loss, LARS), a minor part.
  matmuls = _matmul_flop_per_pair()
  assert matmuls <= rows["model-only"]["flop_per_pair"] <= 1.5 * matmuls
  assert rows["end-to-end"]["flop_per_pair"] == rows["model-only"]["flop_per_pair"]  # MFU counts model FLOP
  assert result["end_to_end_flop_per_pair"] > rows["model-only"]["flop_per_pair"]  # + the augmentation
  machine = result["machine"]
  assert machine["platform"] == "cpu" and machine["cpu_count"] == os.cpu_count() and machine["jax"] == jax.__version__
  assert result["settings"]["dtype"] == "float32"  # auto on CPU
  assert rows["model-only"]["mfu_spec"] is None  # no peak for a CPU
  assert [b["status"] for b in result["bars"]] == [st.NO_GPU] * 3
  printed = capsys.readouterr().out
  assert "| model-only |" in printed and "not measured (no GPU)" in printed and "31.8k" in printed


def test_torch_rows_without_torch(monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  rows = st.torch_rows(None, None, warmup=1, steps=1, flop_per_pair=1e9, peaks=st.peak_flops("cpu"), bf16=False)
  assert [r["status"] for r in rows] == ["not measured (no PyTorch)"] * 2
  assert all(r["pairs_per_s"] is None for r in rows)


def test_peak_table_and_mfu():
  assert st.peak_flops("NVIDIA H200")["spec"] == 989e12
  assert st.peak_flops("NVIDIA H200")["achievable"] == 790e12
  assert st.peak_flops("NVIDIA H100 80GB HBM3")["spec"] == 989e12
  assert st.peak_flops("NVIDIA H100 80GB HBM3")["achievable"] is None
  assert st.peak_flops("NVIDIA H100 PCIe")["spec"] == 756e12
  assert st.peak_flops("cpu") == {"spec": None, "spec_source": None, "achievable": None, "achievable_source": None}
  row = st.measured_row("x", 0.01, 512, 6.7e9, st.peak_flops("NVIDIA H200"), "")
  assert row["pairs_per_s"] == pytest.approx(51200)
  assert row["mfu_spec"] == pytest.approx(51200 * 6.7e9 / 989e12)
  assert row["mfu_achievable"] == pytest.approx(51200 * 6.7e9 / 790e12)


def _rows(e2e, model, compiled):
  rows = {"end-to-end": {"pairs_per_s": e2e}, "model-only": {"pairs_per_s": model}}
  rows["PyTorch torch.compile (model-only)"] = ({"pairs_per_s": compiled, "status": "measured"} if compiled
                                               else {"pairs_per_s": None, "status": st.NO_TORCH})
  return rows


def test_bars_pass_and_fail_on_a_gpu():
  bars = st.bar_rows(_rows(52e3, 55e3, 44e3), kind="NVIDIA H200", on_gpu=True)
  assert [b["status"] for b in bars] == ["pass", "pass", "pass"]
  assert bars[1]["value"] == pytest.approx(52 / 55) and bars[2]["value"] == pytest.approx(52 / 44)
  bars = st.bar_rows(_rows(40e3, 50e3, 40e3), kind="NVIDIA H200", on_gpu=True)
  assert [b["status"] for b in bars] == ["fail", "fail", "fail"]
  bars = st.bar_rows(_rows(40e3, 41e3, None), kind="NVIDIA H100 80GB HBM3", on_gpu=True)
  assert bars[0]["status"].startswith("not measured (the bar is for an H200")
  assert [b["status"] for b in bars[1:]] == ["pass", st.NO_TORCH]


def test_scaling_rows(tmp_path, capsys):
  # The model-only step only (the end-to-end one compiles the augmentation too, tested above), in bfloat16.
  out = tmp_path / "scaling.json"
  result = scaling.main(["--devices", "1,2,16", "--per-device-batch", "4", "--kinds", "model_only", "--dtype",
                         "bfloat16", "--out", str(out)] + TINY)
  assert json.loads(out.read_text()) == json.loads(json.dumps(result))
  assert result["settings"]["dtype"] == "bfloat16"
  one, two, sixteen = result["rows"]
  assert (one["devices"], one["global_batch"], two["devices"], two["global_batch"]) == (1, 4, 2, 8)
  assert one["status"] == two["status"] == "measured"
  assert one["model_only_efficiency"] == 1.0 and one["model_only_pairs_per_s"] > 0
  rate1, rate2 = one["model_only_pairs_per_s"], two["model_only_pairs_per_s"]
  assert two["model_only_efficiency"] == pytest.approx(rate2 / (2 * rate1))
  assert two["model_only_throughput_vs_1"] == pytest.approx(2 * two["model_only_efficiency"])
  assert one["end_to_end_pairs_per_s"] is None and two["end_to_end_efficiency"] is None  # not asked for
  assert sixteen["status"] == f"not measured (only {jax.device_count()} devices)"
  assert sixteen["model_only_pairs_per_s"] is None
  assert "share the same CPU cores" in result["note"] and "share the same CPU cores" in capsys.readouterr().out
