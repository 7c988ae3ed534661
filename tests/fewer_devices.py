"""`pytest -p tests.fewer_devices`: the suite on a machine whose default backend has fewer than 8 devices (one GPU).

The suite proves that 8 devices compute what one does (`mesh8`, tests/conftest.py: XLA fakes 8 CPU devices), but
one GPU is one device. With this plugin, the tests that need the 8-device mesh are skipped when the default
backend has fewer than 8 devices, each with that reason, and every other test runs on that backend.
experiments/benchmarks/gpu_suite.sh runs tests/losses and tests/methods this way on the GPU
(`JAX_PLATFORMS=cuda`); on CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=1` shows the same split.
With 8 devices or more it skips nothing.

With `RL_TEST_OUTCOMES=<path>`, each test's outcome is also appended to that file as one JSON line as soon as it
is known (`{"test": nodeid, "outcome": "passed" | "failed" | "skipped", "seconds": ...}`; by the pytest-xdist
controller only), so a run cut short by a time limit still says how far it got.
"""
import json
import os

import pytest


def pytest_collection_modifyitems(items):
  """Marks the tests that use the `mesh8` fixture (directly or through another fixture) as skipped."""
  import jax  # pylint: disable=import-outside-toplevel  (after tests/conftest.py has set XLA_FLAGS)
  count = jax.device_count()
  if count >= 8:
    return
  skip = pytest.mark.skip(reason=f"needs the 8-device mesh; the default backend has {count} "
                                 f"{jax.devices()[0].platform} device(s)")
  for item in items:
    if "mesh8" in getattr(item, "fixturenames", ()):
      item.add_marker(skip)


def pytest_runtest_logreport(report):
  """Appends the outcome of each test (its call, or the setup that failed or skipped it) to $RL_TEST_OUTCOMES."""
  path = os.environ.get("RL_TEST_OUTCOMES")
  if not path or os.environ.get("PYTEST_XDIST_WORKER"):  # the controller writes what the workers report
    return
  if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
    with open(path, "a", encoding="utf-8") as f:
      f.write(json.dumps({"test": report.nodeid, "outcome": report.outcome,
                          "seconds": round(report.duration, 3)}) + "\n")
