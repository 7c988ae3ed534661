"""Light imports and honest extras: what imports without TensorFlow, and what each extra of setup.py serves.

Each check runs in a fresh interpreter and prints what it found (run pytest with -s to see it):
- imports: `sys.meta_path` starts with a finder that refuses `tensorflow` and `tensorflow_datasets`
  (ImportError) and records every attempt, even one a library would catch; none may be loaded, none attempted.
- extras: the child sees only the installed distributions that an extra's requirements pull in (their dependency
  closure, read from the installed metadata), as after `pip install rl-replearn[extra]`, and uses what that extra
  is for. The `train` extra (no TensorFlow) trains and evaluates with `experiments/main.py` on mnist1d, and with the
  trainer on the synthetic 32 x 32 images (`rl.data.synthetic`) with the CIFAR recipe.
"""
import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from unittest import mock

from packaging.requirements import Requirement
import pytest

import tests

ROOT = pathlib.Path(__file__).resolve().parents[1]

MODULES = ("rl.losses", "rl.models", "rl.methods", "rl.eval", "rl.data", "rl.data.embedded", "rl.data.augment",
           "rl.train", "rl.train.loop", "rl.train.step", "rl.train.restore", "rl.train.evaluate", "configs.simclr")

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


def _run(code: str, *args: str, timeout: int = 300) -> dict:
  env = {**os.environ, "XLA_FLAGS": tests.xla_flags(8), "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, *args, "-c", f"ROOT = {str(ROOT)!r}\n" + code], capture_output=True,
                        text=True, timeout=timeout, env=env, cwd=ROOT, check=False)
  assert proc.returncode == 0, f"child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  print(json.dumps(result, indent=1))
  return result


def test_modules_import_without_tensorflow():
  result = _run(BLOCKER + textwrap.dedent(f"""
      import importlib, json
      for name in {MODULES!r}:
        importlib.import_module(name)
      print(json.dumps({{"imported": {MODULES!r}, "attempted_and_refused": sorted(set(attempts)),
                        "loaded": sorted(m for m in ("tensorflow", "tensorflow_datasets") if m in sys.modules)}}))
  """))
  assert result["loaded"] == [], result
  assert result["attempted_and_refused"] == [], result


# --- Extras.


def _setup_requirements() -> tuple[list[str], dict[str, list[str]]]:
  """(install_requires, extras_require) of setup.py, read without running setuptools."""
  captured = {}
  fake = type(sys)("setuptools")
  fake.setup = lambda **kwargs: captured.update(kwargs)
  fake.find_packages = lambda **kwargs: []
  source = (ROOT / "setup.py").read_text(encoding="utf-8")
  with mock.patch.dict(sys.modules, {"setuptools": fake}):
    exec(compile(source, "setup.py", "exec"), {"__name__": "setup"})  # pylint: disable=exec-used
  return captured["install_requires"], captured["extras_require"]


def _norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
  """The installed distributions that `requirements` pull in, recursively (with their extras' requirements)."""
  installed = {_norm(d.metadata["Name"]): d for d in importlib.metadata.distributions()}
  todo, seen = [Requirement(r) for r in requirements], set()
  while todo:
    req = todo.pop()
    name = _norm(req.name)
    if name in seen:
      continue
    assert name in installed, f"{req} is required but not installed"
    seen.add(name)
    for extra in req.extras | {""}:
      for sub in map(Requirement, installed[name].requires or []):
        if sub.marker is None or sub.marker.evaluate({"extra": extra}):
          todo.append(sub)
  return {name: installed[name] for name in seen}


def _site_with_only(dists: dict, shadow: pathlib.Path) -> pathlib.Path:
  """A directory of links to the top-level entries (packages, modules, metadata) of `dists`."""
  shadow.mkdir()
  for dist in dists.values():
    for file in dist.files or []:
      top = pathlib.PurePath(file).parts[0]
      source = pathlib.Path(dist.locate_file(top))
      if top not in ("..", "__pycache__") and source.exists() and not (shadow / top).exists():
        (shadow / top).symlink_to(source)
  return shadow


# experiments/main.py trains SimCLR on mnist1d (made in memory) where `import tensorflow` fails.
TRAIN_WITHOUT_TENSORFLOW = """
import runpy
try:
  import tensorflow  # noqa: F401
  tensorflow_importable = True
except ImportError:
  tensorflow_importable = False
sys.argv = ["experiments/main.py", "--config", ROOT + "/configs/simclr.py:smoke", "--workdir", tmp + "/run",
            "--config.total_steps=4", "--config.log_every_steps=1", "--config.eval.every_steps=2",
            "--config.eval.baselines=False", "--config.eval.tsne_points=0"]
try:
  runpy.run_path(ROOT + "/experiments/main.py", run_name="__main__")
except SystemExit as e:
  exit_code = e.code
lines = [json.loads(l) for l in open(tmp + "/run/metrics.jsonl")]
found = {"kinds": [l["kind"] for l in lines], "losses": [l["loss"] for l in lines if "loss" in l],
         "exit_code": exit_code, "tensorflow_importable": tensorflow_importable,
         "report": open(tmp + "/run/report.md").read()}
# The CIFAR recipe (ResNet, SimCLR's image views, LARS) on the synthetic 32 x 32 images, shrunk, with the final
# report: uint8 batches from memory, augmented on the device, and the image evaluation path.
from configs import simclr
from rl.train import loop
config = simclr.get_config("cifar10")
config.dataset, config.batch_size, config.total_steps, config.log_every_steps = "synthetic_32", 16, 2, 1
config.model.encoder_kwargs.width, config.model.encoder_kwargs.stage_sizes = 8, (1,)
config.model.projector_kwargs.hidden_dims, config.model.projector_kwargs.out_dim = (16,), 8
config.optim.warmup_steps, config.eval.every_steps, config.checkpoint.every_steps = 1, 0, 2
config.eval.baselines, config.eval.projection, config.eval.tsne_points = False, False, 0
config.eval.max_train_examples, config.eval.alignment_examples = 512, 128
rows = loop.train_and_evaluate(config, tmp + "/synthetic")["rows"]
lines = [json.loads(l) for l in open(tmp + "/synthetic/metrics.jsonl")]
found["synthetic"] = {"kinds": [l["kind"] for l in lines], "losses": [l["loss"] for l in lines if l["kind"] == "train"],
                      "rows": rows}
"""

EXTRAS = {
    # extra: (extras installed with the core, what its user runs; `found` is printed)
    "core": ((), "import jax.numpy as jnp\nfrom rl import losses\nz = jnp.ones((4, 3))\n"
                  "found = {'nt_xent': float(losses.nt_xent(z, z)), "
                  "'sinkhorn_divergence': float(losses.sinkhorn_divergence(z, z + 1))}"),
    "models": (("models",), "import rl.models\nfound = {'resnet18': type(rl.models.get_model('resnet18')).__name__}"),
    "train": (("train",), TRAIN_WITHOUT_TENSORFLOW),
    # The TFDS builder of the digits, built and read through tf.data (as a streamed data set would be).
    "data": (("train", "data"), "import rl.data, tests\ntests.register_tfds_copies()\n"
                                "rl.data.prepare('digits_tfds', data_dir=tmp)\n"
                                "batch = next(rl.data.host_train_batches('digits_tfds', local_batch_size=8, seed=0, "
                                "data_dir=tmp))\nfound = {'digits_batch': list(batch['x'].shape)}"),
}


@pytest.mark.parametrize("extra", EXTRAS)
def test_each_extra_serves_its_users(extra, tmp_path):
  core, extras = _setup_requirements()
  names, body = EXTRAS[extra]
  dists = _closure(core + [r for name in names for r in extras[name]])
  site = _site_with_only(dists, tmp_path / "site")
  # -S: no site-packages but the shadow one, so nothing outside the closure can be imported.
  result = _run(textwrap.dedent(f"""
      import json, sys
      sys.path[:] = [p for p in sys.path if "-packages" not in p] + [{str(site)!r}]
      sys.path.insert(0, ROOT)
      tmp = {str(tmp_path)!r}
  """) + body + textwrap.dedent(f"""
      print(json.dumps({{"extra": {extra!r}, "distributions": {len(dists)}, "found": found,
                        "tensorflow_loaded": "tensorflow" in sys.modules}}))
  """), "-S")
  if extra == "train":
    found = result["found"]
    assert not result["tensorflow_loaded"] and not found["tensorflow_importable"], result
    assert found["exit_code"] in (None, 0), result
    assert len(found["losses"]) == 4 and all(abs(v) < float("inf") for v in found["losses"]), result
    assert "eval" in found["kinds"] and "| simclr (trained) |" in found["report"], result
    synthetic = found["synthetic"]
    # Two train lines, the checkpoint's line at step 2 and the final evaluation's.
    assert synthetic["kinds"] == ["train", "train", "checkpoint", "final"], synthetic
    assert len(synthetic["losses"]) == 2 and all(abs(v) < float("inf") for v in synthetic["losses"]), synthetic
    [row] = synthetic["rows"]
    assert row["representation"] == "simclr (trained)" and 0 <= row["linear_probe_accuracy"] <= 1, row
  if extra == "data":
    assert result["found"]["digits_batch"] == [8, 8, 8, 1] and result["tensorflow_loaded"], result
  if extra == "core":
    assert "flax" not in {d.metadata["Name"] for d in dists.values()}, "rl.losses must not need Flax"
