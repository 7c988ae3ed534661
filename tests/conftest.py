"""Suite-wide set-up: 8 fake CPU devices so multi-device code is always exercised, and no GPU for TF."""
import importlib.metadata
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# The suite is compile-bound (most of its time is XLA:CPU compiling small programs). XLA:CPU's older loop emitters
# compile them faster than its fusion emitters (the default): 182 s -> 150 s for a sample of unit tests and three
# trainer runs, whose recorded metrics still match. Child processes inherit the flag (`tests.xla_flags`). It is
# set only for the jaxlib it was measured with: XLA aborts on a flag it does not know.
if importlib.metadata.version("jaxlib").startswith("0.10.") and "fusion_emitters" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
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
