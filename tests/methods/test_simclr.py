"""SimCLR as a `Method`: one device over the global batch == 8 devices with cross-device BatchNorm."""
import jax
import numpy as np
import pytest

from configs import simclr as simclr_config
from rl import losses
from rl import methods
from rl.methods import two_view
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
  config.simclr.temperature = 0.3  # not the smoke default: the method must read it
  method = methods.get_method(config)
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  # The reference: the projections (not the features) of both views in one training pass, NT-Xent at 0.3, view 1
  # as the anchors of the first half.
  net = two_view.build_network(config, None)
  (h, z), expected_state = net.apply({"params": params, **state}, np.concatenate([v1, v2]), train=True,
                                     mutable=["batch_stats"])
  expected = losses.nt_xent(z[:32], z[32:], temperature=0.3)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["nt_xent"], expected, rtol=1e-6)
  assert not np.isclose(value, losses.nt_xent(z[:32], z[32:], temperature=0.1), rtol=1e-3)  # the temperature matters
  assert not np.isclose(value, losses.nt_xent(h[:32], h[32:], temperature=0.3), rtol=1e-3)  # features are not it
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-6)  # the probe trains on view 1's features
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new_state, dict(expected_state))
  # Perfectly matched views score lower than the augmented pair.
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
