"""The supervised reference: cross-entropy of a linear head on the encoder's features, global-batch mean; 1 device
== 8 devices; it needs labels; end to end."""
import jax
import numpy as np
import pytest

from configs import supervised as supervised_config
from rl import methods
from rl.methods import supervised
from tests.methods import devices

B = 32


def _setup():
  config = supervised_config.get_config("smoke")
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  x = rng.randn(B, 40).astype(np.float32)
  labels = rng.randint(0, 10, B).astype(np.int32)
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, x, labels


def test_loss_is_the_cross_entropy_of_the_linear_head():
  config, method, params, state, x, labels = _setup()
  value, (_, aux) = method.loss(params, state, {"views": (x,), "label": labels}, jax.random.key(1))
  (h, logits), _ = supervised.build_network(config, None).apply({"params": params, **state}, x, train=True,
                                                                  mutable=list(state))
  z = np.asarray(logits, np.float64)
  log_p = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
  np.testing.assert_allclose(value, -log_p[np.arange(B), labels].mean(), rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["train_accuracy"], np.mean(z.argmax(1) == labels))
  np.testing.assert_allclose(aux["features"], h, rtol=1e-6)
  with pytest.raises(ValueError, match="'label'"):
    method.loss(params, state, {"views": (x,)}, jax.random.key(1))


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x, labels = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (x,), "label": labels}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5, check_state=False)
