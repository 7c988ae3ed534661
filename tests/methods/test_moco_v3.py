"""MoCo v3 as a `Method`: 2 tau (info_nce(q1, k2) + info_nce(q2, k1)) with keys from the momentum network, which
gets no gradient and follows the cosine momentum; 1 device == 8 devices; the trainer run is in test_training.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import moco_v3 as moco_config
from rl import losses
from rl import methods
from rl.methods import two_view
from rl.methods import moco_v3
from tests.methods import devices
from tests.methods import schedules


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "moco_v3", moco_v3.make)


def _setup(b=32):
  config = moco_config.get_config("smoke")
  method = moco_v3.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  state["target"] = jax.tree.map(lambda t: t * 0.9 + 0.01, state["target"])
  return config, method, params, state, v1, v2


def test_loss_is_scaled_symmetric_info_nce():
  config, method, params, state, v1, v2 = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  x = np.concatenate([v1, v2])
  online = two_view.build_network(config, None, predictor_kwargs=config.moco_v3.predictor_kwargs)
  (h, _, q), _ = online.apply({"params": params, "batch_stats": state["batch_stats"]}, x, train=True,
                              mutable=["batch_stats"])
  (_, k), _ = two_view.build_network(config, None).apply(state["target"], x, train=True, mutable=["batch_stats"])
  tau = config.moco_v3.temperature
  assert tau == 0.2
  want = 2 * tau * (losses.info_nce(q[:32], k[32:], temperature=tau) + losses.info_nce(q[32:], k[:32], temperature=tau))
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["moco_v3"], value)
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-5, atol=1e-6)
  assert set(new_state) == {"batch_stats", "target"}
  jax.tree.map(np.testing.assert_array_equal, new_state["target"], state["target"])


def test_momentum_network_gets_no_gradient():
  _, method, params, state, v1, v2 = _setup()
  assert set(params) == {"encoder", "projector", "predictor"}
  g_state = jax.grad(lambda s: method.loss(params, s, {"views": (v1, v2)}, jax.random.key(1))[0])(state)
  for leaf in jax.tree.leaves(g_state["target"]):
    np.testing.assert_array_equal(leaf, 0.0)


def test_update_after_step_follows_the_cosine_momentum():
  config, _, params, state, _, _ = _setup()
  config.moco_v3.base_momentum, config.moco_v3.final_momentum = schedules.BASE, schedules.FINAL
  method = moco_v3.make(config)
  online = jax.tree.map(lambda x: x + 1.0, params)
  for step in schedules.steps(config.total_steps):
    new = method.update_after_step(online, state, jnp.int32(step))
    m = schedules.cosine_momentum(step, config.total_steps)
    want = jax.tree.map(lambda t, o: m * t + (1 - m) * o, state["target"]["params"],
                        {k: online[k] for k in ("encoder", "projector")})
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new["target"]["params"], want)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5)
