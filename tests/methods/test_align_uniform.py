"""Alignment + uniformity as a `Method`: the loss is `rl.losses.alignment` + lam * mean `rl.losses.uniformity` of
the L2-normalised projections, and 1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import align_uniform as au_config
from rl import losses
from rl import methods
from rl.methods.two_view import build_network
from tests.methods import devices


def _method_and_batch(lam=1.0, b=32):
  config = au_config.get_config("smoke")
  config.align_uniform.lam = lam
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


def test_loss_is_alignment_plus_uniformity_of_the_normalised_projections():
  config, method, params, state, v1, v2 = _method_and_batch(lam=0.7)
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  (h, z), expected_state = build_network(config, None).apply(
      {"params": params, **state}, jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
  u = z / jnp.linalg.norm(z, axis=1, keepdims=True)
  u1, u2 = u[:32], u[32:]
  align = losses.alignment(u1, u2, alpha=2)
  uniform = (losses.uniformity(u1, t=2) + losses.uniformity(u2, t=2)) / 2
  np.testing.assert_allclose(value, align + 0.7 * uniform, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["align"], align, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["uniform"], uniform, rtol=1e-5)
  assert 0 <= aux["metrics"]["align"] <= 4 and aux["metrics"]["uniform"] <= 0  # unit vectors
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state, dict(expected_state))


def test_lam_weights_only_the_uniformity_term():
  _, m0, params, state, v1, v2 = _method_and_batch(lam=0.0)
  _, m1, _, _, _, _ = _method_and_batch(lam=1.0)
  batch = {"views": (v1, v2)}
  l0, (_, aux0) = m0.loss(params, state, batch, jax.random.key(1))
  l1, (_, aux1) = m1.loss(params, state, batch, jax.random.key(1))
  np.testing.assert_allclose(l0, aux0["metrics"]["align"], rtol=1e-6)
  np.testing.assert_allclose(l1 - l0, aux1["metrics"]["uniform"], rtol=1e-5, atol=1e-6)
  # Identical views are perfectly aligned.
  _, (_, aux_same) = m0.loss(params, state, {"views": (v1, v1)}, jax.random.key(1))
  np.testing.assert_allclose(aux_same["metrics"]["align"], 0.0, atol=1e-6)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)
