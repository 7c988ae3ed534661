"""SupCon (supervised) as a `Method`: the loss is `rl.losses.supcon` of the stacked projections, and
1 device == 8 devices (labels sharded with the views)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import supcon as supcon_config
from rl import losses
from rl import methods
from rl.methods import supcon as supcon_method
from rl.methods.two_view import build_network
from tests.methods import devices


def _method_and_batch(b=32):
  config = supcon_config.get_config("smoke")
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  labels = (np.arange(b) % 5).astype(np.int32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2, labels


def _projections(config, params, state, v1, v2):
  (h, z), new_state = build_network(config, None).apply(
      {"params": params, **state}, jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
  b = v1.shape[0]
  return h[:b], z[:b], z[b:], dict(new_state)


def test_config_and_docstring_say_supervised():
  config = supcon_config.get_config()
  assert config.uses_labels and config.method == "supcon"
  assert "SUPERVISED" in supcon_method.__doc__ and "SUPERVISED" in supcon_config.__doc__


def test_loss_is_supcon_of_the_stacked_projections():
  config, method, params, state, v1, v2, labels = _method_and_batch()
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2), "label": labels}, jax.random.key(1))
  h1, z1, z2, expected_state = _projections(config, params, state, v1, v2)
  expected = losses.supcon(jnp.stack([z1, z2], axis=1), labels, temperature=config.supcon.temperature)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["supcon"], value)
  np.testing.assert_allclose(aux["features"], h1, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state, expected_state)


def test_labels_are_used_and_unique_labels_give_nt_xent():
  config, method, params, state, v1, v2, labels = _method_and_batch()
  with_labels, _ = method.loss(params, state, {"views": (v1, v2), "label": labels}, jax.random.key(1))
  unique = np.arange(32, dtype=np.int32)
  self_sup, _ = method.loss(params, state, {"views": (v1, v2), "label": unique}, jax.random.key(1))
  assert not np.isclose(with_labels, self_sup)
  # With every example its own class, SupCon's positives are the other view only: SimCLR's NT-Xent.
  _, z1, z2, _ = _projections(config, params, state, v1, v2)
  np.testing.assert_allclose(self_sup, losses.nt_xent(z1, z2, temperature=config.supcon.temperature), rtol=1e-5)
  with pytest.raises(ValueError, match="supcon is supervised"):
    method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2, labels = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2), "label": labels}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)
