"""SimCLR as a `Method`: one device over the global batch == 8 devices with cross-device BatchNorm."""
import jax
import numpy as np
import pytest

from configs import simclr as simclr_config
from rl import methods
from tests.methods import devices


def _method_and_batch(b=32):
  config = simclr_config.get_config("smoke")
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


def test_loss_is_nt_xent_of_the_projections():
  config, method, params, state, v1, v2 = _method_and_batch()
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  assert aux["features"].shape == (32, method.embed(params, state, v1).shape[1])
  assert set(new_state) == {"batch_stats"}
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))  # BN statistics moved
  assert np.isfinite(value) and value > 0
  np.testing.assert_allclose(aux["metrics"]["nt_xent"], value)
  # Perfectly matched views score lower than unrelated ones.
  same, _ = method.loss(params, state, {"views": (v1, v1)}, jax.random.key(1))
  assert same < value


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)


def test_unknown_method_lists_known_ones():
  config = simclr_config.get_config("smoke")
  config.method = "simclrr"
  with pytest.raises(ValueError, match="unknown method 'simclrr'; known methods: .*byol.*simclr"):
    methods.get_method(config)
