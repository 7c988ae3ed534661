"""The GPU scripts without a GPU or a network (experiments/benchmarks/gpu_suite.sh, gpu_wheels.sh, their Python
halves gpu_wheels.py and gpu_summary.py): the wheel list of gpu_wheels.txt is exactly what the GPU path needs beyond
the GPU image's packages and its pins satisfy every requirement on them; the offline install skips what is present
and imports what it installed; the summary reads every part's outcome and JSON; the scripts parse. (Downloading
the wheels is gpu_wheels.sh's dry run, not a test: it needs the network.)"""
import importlib.metadata
import importlib.util
import json
import pathlib
import re
import subprocess
import sys
from unittest import mock
import zipfile

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "experiments" / "benchmarks"
# What the issue says the GPU machines have (with what these depend on): Python 3.12, JAX with CUDA and the rest.
GPU_IMAGE = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "absl-py", "etils[epath]", "numpy",
             "scipy", "scikit-learn", "matplotlib", "tqdm", "torch", "pytest", "pytest-xdist", "PyYAML")


def _load(name):
  spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


gpu_wheels = _load("gpu_wheels")
gpu_summary = _load("gpu_summary")


def _norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
  lines = (line.split("#")[0].strip() for line in (BENCHMARKS / "gpu_wheels.txt").read_text().splitlines())
  pins = {}
  for line in filter(None, lines):
    name, version = line.split("==")
    pins[_norm(name)] = version
  return pins


def _setup_requirements() -> tuple[list[str], dict[str, list[str]]]:
  captured = {}
  fake = type(sys)("setuptools")
  fake.setup = lambda **kwargs: captured.update(kwargs)
  fake.find_packages = lambda **kwargs: []
  with mock.patch.dict(sys.modules, {"setuptools": fake}):
    source = (ROOT / "setup.py").read_text()
    exec(compile(source, "setup.py", "exec"), {"__name__": "setup"})  # pylint: disable=exec-used
  return captured["install_requires"], captured["extras_require"]


def _closure(requirements) -> tuple[set[str], dict[str, list[Requirement]]]:
  """The installed distributions `requirements` pull in (missing ones are skipped), and every requirement met."""
  installed = {_norm(d.metadata["Name"]): d for d in importlib.metadata.distributions()}
  todo, seen, met = [Requirement(r) for r in requirements], set(), {}
  while todo:
    req = todo.pop()
    name = _norm(req.name)
    met.setdefault(name, []).append(req)
    if name in seen or name not in installed:
      continue
    seen.add(name)
    for extra in req.extras | {""}:
      for sub in map(Requirement, installed[name].requires or []):
        if sub.marker is None or sub.marker.evaluate({"extra": extra}):
          todo.append(sub)
  return seen, met


def test_the_wheels_are_what_the_gpu_path_needs_beyond_the_image():
  core, extras = _setup_requirements()
  # The trainer (train extra; the core's ott-jax for losses.sinkhorn_divergence) and the GPU part of the tests.
  needed, met = _closure(core + extras["train"] + ["pytest", "pytest-xdist", "chex"])
  image, _ = _closure(GPU_IMAGE)
  pins = _pins()
  assert set(pins) == needed - image, (sorted(needed - image - set(pins)), sorted(set(pins) - (needed - image)))
  for name, version in pins.items():
    for req in met[name]:
      assert req.specifier.contains(version, prereleases=True), f"{name}=={version} does not meet {req}"
  assert not {"tensorflow", "tensorflow-cpu", "tensorflow-datasets"} & set(pins)


def test_the_gpu_scripts_parse():
  for script in ("gpu_suite.sh", "gpu_wheels.sh"):
    subprocess.run(["bash", "-n", str(BENCHMARKS / script)], check=True)


def _wheel(folder: pathlib.Path, name: str, version: str, body: str = "VALUE = 1\n") -> pathlib.Path:
  """A minimal pure-Python wheel of one module `name`."""
  info = f"{name}-{version}.dist-info"
  path = folder / f"{name}-{version}-py3-none-any.whl"
  files = {f"{name}.py": body,
           f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
           f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
  files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{info}/RECORD,,\n"
  with zipfile.ZipFile(path, "w") as archive:
    for file, text in files.items():
      archive.writestr(file, text)
  return path


def test_install_puts_only_the_missing_wheels_into_the_target(tmp_path, monkeypatch):
  wheels = tmp_path / "whl"
  wheels.mkdir()
  _wheel(wheels, "rl_gpu_toy", "0.1")
  _wheel(wheels, "rl_gpu_broken", "0.1", body="raise RuntimeError('broken on import')\n")
  _wheel(wheels, "packaging", "0.0")  # installed here: never shadowed
  path = list(sys.path)
  monkeypatch.setattr(sys, "path", list(path))  # install() puts its target first, to import from it
  result = gpu_wheels.install(wheels, tmp_path / "site")
  assert result["installed"] == ["rl_gpu_broken-0.1-py3-none-any.whl", "rl_gpu_toy-0.1-py3-none-any.whl"]
  assert result["present"] == {"packaging": importlib.metadata.version("packaging")}
  assert result["how"] == "pip install --no-index --no-deps --target" and result["import_failed"] == ["rl_gpu_broken"]
  assert (tmp_path / "site" / "rl_gpu_toy.py").exists() and not (tmp_path / "site" / "packaging").exists()
  assert gpu_wheels.top_level_modules(tmp_path / "site" / "rl_gpu_toy-0.1.dist-info") == ["rl_gpu_toy"]
  # Without pip, a wheel is unpacked.
  monkeypatch.setattr(gpu_wheels.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
  (wheels / "rl_gpu_broken-0.1-py3-none-any.whl").unlink()
  monkeypatch.delitem(sys.modules, "rl_gpu_toy")
  monkeypatch.setattr(sys, "path", list(path))
  result = gpu_wheels.install(wheels, tmp_path / "unzipped")
  assert result["how"] == "unzipped (no pip)" and result["import_failed"] == []
  assert (tmp_path / "unzipped" / "rl_gpu_toy.py").exists()


def test_summary_reads_every_part(tmp_path, capsys):
  parts = [("wheels", 0, 3.0, 20), ("step_throughput", 0, 80.0, 100), ("trainer_throughput", 0, 60.0, 75),
           ("loss_scaling_tiled", 124, 65.0, 65), ("simclr_mnist1d", 1, 10.0, 120), ("tests", 124, 120.0, 120)]
  (tmp_path / "parts.jsonl").write_text("".join(
      json.dumps({"part": p, "rc": rc, "seconds": s, "limit": limit}) + "\n" for p, rc, s, limit in parts))
  (tmp_path / "wheels.json").write_text(json.dumps({"installed": ["a.whl"], "present": {"b": "1"},
                                                    "import_failed": []}))
  (tmp_path / "step_throughput.json").write_text(json.dumps({
      "rows": [{"name": "end-to-end", "pairs_per_s": 40000.0, "mfu_spec": 0.25}],
      "bars": [{"bar": "end-to-end >= 50k pairs/s (H200)", "status": "fail"}]}))
  (tmp_path / "trainer_throughput.json").write_text(json.dumps({
      "steady_pairs_per_s": 36000.0, "settings": {"batch": 512, "dtype": "bfloat16"}}))
  (tmp_path / "tests.jsonl").write_text("".join(json.dumps({"test": f"t{i}", "outcome": o}) + "\n"
                                                for i, o in enumerate(["passed"] * 3 + ["skipped", "failed"])))
  summary = gpu_summary.main(["--out", str(tmp_path), "--wall", "400.5"])
  rows = {r["part"]: r for r in summary["parts"]}
  assert [r["status"] for r in summary["parts"]] == ["ok", "ok", "ok", "timed out", "failed (rc 1)", "timed out"]
  assert rows["wheels"]["headline"] == "1 installed offline, 1 already present"
  assert rows["step_throughput"]["headline"].startswith("end-to-end 40,000 pairs/s, MFU 25.0%; end-to-end >= 50k")
  assert rows["trainer_throughput"]["headline"] == ("36,000 pairs/s steady (batch 512, bfloat16); 0.90 x "
                                                    "step_throughput's end-to-end step")
  assert rows["loss_scaling_tiled"]["headline"] == rows["simclr_mnist1d"]["headline"] == "—"  # no JSON written
  assert rows["tests"]["headline"] == "3 passed, 1 failed, 1 skipped"  # how far the cut-short run got
  assert summary["wall_seconds"] == 400.5 and not summary["all_ok"]
  assert json.loads((tmp_path / "summary.json").read_text()) == summary
  assert "| tests | timed out | 120 | 120 | 3 passed, 1 failed, 1 skipped |" in capsys.readouterr().out
