"""Barlow Twins as a `Method`: the loss of per-view forward passes, and 1 device == 8 devices."""
import jax
import numpy as np

from configs import barlow_twins as barlow_twins_config
from rl import losses
from rl.methods import barlow_twins
from rl.methods.two_view import build_network
from tests.methods import devices


def _method_and_batch(b=32, **overrides):
  config = barlow_twins_config.get_config("smoke")
  config.barlow_twins.update(overrides)
  method = barlow_twins.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


def test_loss_is_scaled_barlow_twins_of_per_view_projections():
  config, method, params, state, v1, v2 = _method_and_batch(scale_loss=0.1, lambda_=0.02)
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  # Each view has its own forward pass (its own BatchNorm statistics); the running averages move once per view.
  net = build_network(config, axis_name=None)
  (h1, z1), s1 = net.apply({"params": params, **state}, v1, train=True, mutable=["batch_stats"])
  (_, z2), s2 = net.apply({"params": params, **s1}, v2, train=True, mutable=["batch_stats"])
  objective = losses.barlow_twins(z1, z2, lambda_=0.02)
  np.testing.assert_allclose(value, 0.1 * objective, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["barlow_twins"], objective, rtol=1e-6)
  np.testing.assert_allclose(aux["features"], h1, rtol=1e-6)
  assert set(new_state) == {"batch_stats"}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new_state, dict(s2))
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))
  # Matched views correlate better than noisy ones.
  same, _ = method.loss(params, state, {"views": (v1, v1)}, jax.random.key(1))
  assert same < value


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)


def test_every_variant_builds():
  for variant in barlow_twins_config.VARIANTS:
    config = barlow_twins_config.get_config(variant)
    assert len(config.augment.views) == barlow_twins.make(config).num_views == 2
