"""Suite-wide set-up: 8 fake CPU devices so multi-device code is always exercised, and no GPU for TF."""
import importlib.metadata
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# The suite is compile-bound (most of its time is XLA:CPU compiling small programs). XLA:CPU's older loop emitters
# compile them faster than its fusion emitters (the default): 182 s -> 150 s for a sample of unit tests and three
# trainer runs, whose recorded metrics still match. Child processes inherit the flag (`tests.xla_flags`). It is
# set only for the jaxlib it was measured with: XLA aborts on a flag it does not know.
# LLVM's optimisation level 0 (`--xla_backend_optimization_level=0`) cuts compile time further: the 28 trainer runs
# of tests/methods/test_training.py took 115 s of CPU instead of 197 s (cold cache, 2 workers), notebook 02 38 s
# instead of 48 s. The programs run slower, but the suite's are small. The recorded smoke metrics
# (tests/methods/smoke_losses.json) are recorded under these flags: one step's online-probe accuracy differs by
# one example of 64 without them (a near-tie of the argmax), every loss agrees to the recorded tolerance.
if importlib.metadata.version("jaxlib").startswith("0.10."):
  for _flag in ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0"):
    if _flag.split("=")[0] not in os.environ["XLA_FLAGS"]:
      os.environ["XLA_FLAGS"] += " " + _flag
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# JAX's persistent compilation cache, shared by both pytest workers and the child processes of end-to-end tests:
# the many smoke runs of one config (straight, resumed, killed and restarted) compile their steps once. It lives in
# the (git-ignored) .pytest_cache of the checkout, so a clean clone starts empty. Every compilation is cached, the
# small ones too (a child process otherwise compiles again the ~70 small eager ops of initialisation and
# checkpointing): test_reliability.py took 217 s instead of 236 s with a cold cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), ".pytest_cache", "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402  (must come after XLA_FLAGS)
import pytest  # noqa: E402

import rl.data  # noqa: E402
import tests  # noqa: E402

# The longest single tests (20-50 s each on 2 cores), handed out first: xdist gives a worker its next test when it
# runs low, so a long test collected last would run alone on one worker at the end while the other sits idle.
# (Groups of several tests, `xdist_group`, are handed out first anyway: `--dist loadgroup` orders them by size.)
HEAVY_FIRST = (
    "tests/test_notebooks.py::test_notebook_runs_top_to_bottom_in_fast_mode",
    "tests/train/test_multiprocess.py",
    "tests/methods/test_training.py",
    "tests/test_imports.py",
)


def pytest_collection_modifyitems(items):
  """Moves the `HEAVY_FIRST` tests to the front, in its order, keeping the collection order within each part."""
  def rank(item):
    return next((i for i, prefix in enumerate(HEAVY_FIRST) if item.nodeid.startswith(prefix)), len(HEAVY_FIRST))
  items.sort(key=rank)


@pytest.fixture(scope="session")
def mesh8():
  """A 1-D mesh over the 8 fake devices, axis 'data'."""
  if jax.device_count() < 8:
    raise RuntimeError(
        f"the suite needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8); got {jax.device_count()}")
  return jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  """One TFDS data dir per test worker, so that what is prepared in it is prepared once."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def tfds_embedded(tfds_dir):
  """The worker's TFDS data dir with 'mnist1d_tfds' and 'digits_tfds' prepared there (built once per worker) and
  registered while the module's tests run (see `tests.register_tfds_copies`): the embedded data sets read through
  TFDS and tf.data. They are unregistered afterwards, so other modules see the registry as users do."""
  names = tests.register_tfds_copies()
  try:
    for name in names:
      rl.data.prepare(name, data_dir=tfds_dir)
    yield tfds_dir
  finally:
    for name in names:
      rl.data.unregister_dataset(name)
