"""Light imports: everything but the TFDS pipeline imports, and trains on an in-memory data set, without TensorFlow.

Each check runs in a fresh interpreter and prints what it found (run pytest with -s to see it):
- the imports: `sys.meta_path` starts with a finder that refuses `tensorflow` and `tensorflow_datasets`
  (ImportError) and records every attempt, even one a library would catch;
- the training run: the child sees site-packages without TensorFlow and TFDS at all, as on a GPU machine where
  they are not installed (libraries that probe for TensorFlow with `importlib.util.find_spec`, as etils does for
  paths, get None there, which a refusing finder cannot give).
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]

MODULES = ("rl.losses", "rl.models", "rl.methods", "rl.eval", "rl.data", "rl.data.augment", "rl.train",
           "rl.train.loop", "rl.train.step", "rl.train.restore", "rl.train.evaluate", "configs.simclr")

BLOCKER = """
import importlib.abc, sys
BLOCKED = ("tensorflow", "tensorflow_datasets")
attempts = []

class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in BLOCKED:
      attempts.append(name)
      raise ImportError(f"{name} is blocked by tests/test_imports.py")
    return None

sys.meta_path.insert(0, Block())
sys.path.insert(0, ROOT)
"""


# Replaces site-packages on sys.path by a directory of links to everything in it but TensorFlow and TFDS.
UNINSTALLED = """
import os, sys, tempfile
GONE = {"tensorflow", "tensorflow_cpu", "tensorflow_datasets"}
shadow = tempfile.mkdtemp(prefix="site-without-tf-")
for i, entry in enumerate(sys.path):
  if entry.endswith("site-packages") and os.path.isdir(entry):
    own = os.path.join(shadow, str(i))
    os.mkdir(own)
    for name in os.listdir(entry):
      if name.split("-")[0].split(".")[0].lower() not in GONE:
        os.symlink(os.path.join(entry, name), os.path.join(own, name))
    sys.path[i] = own
sys.path.insert(0, ROOT)
"""


def _run(body: str, preamble: str = BLOCKER, timeout: int = 300) -> dict:
  code = f"ROOT = {str(ROOT)!r}\n" + preamble + textwrap.dedent(body)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                        cwd=ROOT, check=False)
  assert proc.returncode == 0, f"child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  print(json.dumps(result, indent=1))
  return result


def test_modules_import_without_tensorflow():
  result = _run(f"""
      import importlib, json
      for name in {MODULES!r}:
        importlib.import_module(name)
      print(json.dumps({{"imported": {MODULES!r}, "attempted_and_refused": sorted(set(attempts)),
                        "loaded": sorted(m for m in ("tensorflow", "tensorflow_datasets") if m in sys.modules)}}))
  """)
  assert result["loaded"] == [], result
  assert result["attempted_and_refused"] == [], result


def test_in_memory_dataset_trains_without_tensorflow(tmp_path):
  """The trainer reads a data set registered with an in-memory loader, and evaluates on it, with no TensorFlow."""
  result = _run(f"""
      import json
      import numpy as np
      import rl.data
      from configs import simclr
      from rl.train import loop

      rng = np.random.default_rng(0)
      arrays = {{s: {{"x": rng.normal(size=(n, 40)).astype(np.float32), "label": rng.integers(0, 4, n)}}
                for s, n in (("train", 256), ("test", 64))}}
      rl.data.register_dataset("no_tf", rl.data.DatasetSpec(kind="signal", num_classes=4, size=40,
                                                            source=lambda s: arrays[s]))
      config = simclr.get_config("smoke")
      config.dataset, config.total_steps, config.log_every_steps = "no_tf", 4, 1
      config.eval.every_steps, config.eval.final = 2, False
      loop.train_and_evaluate(config, {str(tmp_path / "run")!r})
      lines = [json.loads(l) for l in open({str(tmp_path / "run" / "metrics.jsonl")!r})]
      import importlib.util
      print(json.dumps({{"kinds": [l["kind"] for l in lines], "losses": [l["loss"] for l in lines if "loss" in l],
                        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
                        "loaded": sorted(m for m in ("tensorflow", "tensorflow_datasets") if m in sys.modules)}}))
  """, preamble=UNINSTALLED)
  assert result["loaded"] == [] and not result["tensorflow_installed"], result
  assert len(result["losses"]) == 4 and all(abs(v) < float("inf") for v in result["losses"]), result
  assert "eval" in result["kinds"], result
