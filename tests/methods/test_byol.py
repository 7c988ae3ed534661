"""BYOL as a `Method`: the loss is `losses.byol` of online predictions vs EMA-target projections, the target gets
no gradient and follows the cosine momentum, 1 device == 8 devices (its trainer run is in test_training.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import byol as byol_config
from rl import losses
from rl import methods
from rl.methods import two_view
from rl.methods import byol
from tests.methods import devices
from tests.methods import schedules


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "byol", byol.make)


def _setup(b=32):
  config = byol_config.get_config("smoke")
  method = byol.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  # A target different from the online network, as after some training.
  state["target"] = jax.tree.map(lambda t: t * 0.9 + 0.01, state["target"])
  return config, method, params, state, v1, v2


def test_loss_is_byol_of_predictions_and_target_projections():
  config, method, params, state, v1, v2 = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  x = np.concatenate([v1, v2])
  online = two_view.build_network(config, None, predictor_kwargs=config.byol.predictor_kwargs)
  (h, _, p), _ = online.apply({"params": params, "batch_stats": state["batch_stats"]}, x, train=True,
                              mutable=["batch_stats"])
  (_, zt), _ = two_view.build_network(config, None).apply(state["target"], x, train=True, mutable=["batch_stats"])
  want = losses.byol(p[:32], zt[32:]) + losses.byol(p[32:], zt[:32])  # summed, as in the paper and solo-learn
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["byol"], value)
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-5, atol=1e-6)
  assert set(new_state) == {"batch_stats", "target"}
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state["batch_stats"], state["batch_stats"]))
  jax.tree.map(np.testing.assert_array_equal, new_state["target"], state["target"])  # moves only after the step


def test_target_gets_no_gradient():
  _, method, params, state, v1, v2 = _setup()
  assert set(params) == {"encoder", "projector", "predictor"}  # the optimizer never sees the target
  g_state = jax.grad(lambda s: method.loss(params, s, {"views": (v1, v2)}, jax.random.key(1))[0],
                     allow_int=True)(state)
  for leaf in jax.tree.leaves(g_state["target"]):
    np.testing.assert_array_equal(leaf, 0.0)
  g = jax.grad(lambda p: method.loss(p, state, {"views": (v1, v2)}, jax.random.key(1))[0])(params)
  assert all(np.any(leaf != 0) for leaf in jax.tree.leaves(g["predictor"]))


def test_update_after_step_follows_the_cosine_momentum():
  config, _, params, state, _, _ = _setup()
  config.byol.base_momentum, config.byol.final_momentum = schedules.BASE, schedules.FINAL
  method = byol.make(config)
  online = jax.tree.map(lambda x: x + 1.0, params)
  state["batch_stats"] = jax.tree.map(lambda x: x + 2.0, state["batch_stats"])
  for step in schedules.steps(config.total_steps):
    new = method.update_after_step(online, state, jnp.int32(step))
    m = schedules.cosine_momentum(step, config.total_steps)
    want = jax.tree.map(lambda t, o: m * t + (1 - m) * o, state["target"],
                        {"params": {k: online[k] for k in ("encoder", "projector")},
                         "batch_stats": {k: state["batch_stats"][k] for k in ("encoder", "projector")}})
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new["target"], want)
    jax.tree.map(np.testing.assert_array_equal, new["batch_stats"], state["batch_stats"])


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5)
