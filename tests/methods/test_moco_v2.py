"""MoCo v2 as a `Method`: the symmetrised `losses.moco` against per-view queues, the queue push, the key encoder gets no
gradient and follows its momentum, 1 device == 8 devices (queue and ptr included); the trainer run is in
test_training.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import moco_v2 as moco_config
from rl import losses
from rl import methods
from rl.methods import moco_v2
from rl.methods import two_view
from tests.methods import devices
from tests.methods import schedules


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "moco_v2", moco_v2.make)


def _setup(b=32):
  config = moco_config.get_config("smoke")
  method = moco_v2.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  state["target"] = jax.tree.map(lambda t: t * 0.9 + 0.01, state["target"])
  state["queue_ptr"] = jnp.int32(90)  # the push of 32 keys wraps around the queue of 100
  return config, method, params, state, v1, v2


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_initial_queue_is_random_unit_vectors():
  config, method, _, _, v1, _ = _setup()
  _, state = method.init(jax.random.key(0), v1[:2])
  assert state["queue"].shape == (2, config.moco_v2.queue_size, 8) and int(state["queue_ptr"]) == 0
  np.testing.assert_allclose(np.linalg.norm(state["queue"], axis=-1), 1.0, rtol=1e-5)
  assert abs(float(np.mean(state["queue"]))) < 0.1


def test_loss_is_symmetric_moco_and_keys_are_pushed():
  config, method, params, state, v1, v2 = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  x = np.concatenate([v1, v2])
  net = two_view.build_network(config, None)
  (h, q), _ = net.apply({"params": params, "batch_stats": state["batch_stats"]}, x, train=True,
                        mutable=["batch_stats"])
  (_, k), _ = net.apply(state["target"], x, train=True, mutable=["batch_stats"])
  k = _unit(np.asarray(k))
  queue = state["queue"]
  want = (losses.moco(q[:32], k[32:], queue[1], temperature=0.2)
          + losses.moco(q[32:], k[:32], queue[0], temperature=0.2)) / 2
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["moco"], value)
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-5, atol=1e-6)
  # Keys of view v go to queue[v], rows 90..99 then 0..21; the other rows are unchanged.
  rows = (90 + np.arange(32)) % 100
  for v, keys in enumerate((k[:32], k[32:])):
    np.testing.assert_allclose(new_state["queue"][v][rows], keys, rtol=1e-5, atol=1e-6)
    others = np.setdiff1d(np.arange(100), rows)
    np.testing.assert_array_equal(new_state["queue"][v][others], queue[v][others])
  assert int(new_state["queue_ptr"]) == 22
  jax.tree.map(np.testing.assert_array_equal, new_state["target"], state["target"])


def test_key_encoder_and_queue_get_no_gradient():
  _, method, params, state, v1, v2 = _setup()
  assert set(params) == {"encoder", "projector"}
  g_state = jax.grad(lambda s: method.loss(params, s, {"views": (v1, v2)}, jax.random.key(1))[0],
                     allow_int=True)(state)
  for leaf in jax.tree.leaves((g_state["target"], g_state["queue"])):
    np.testing.assert_array_equal(leaf, 0.0)


def test_update_after_step_follows_the_momentum_schedule():
  config, _, params, state, _, _ = _setup()
  config.moco_v2.base_momentum, config.moco_v2.final_momentum = schedules.BASE, schedules.FINAL
  method = moco_v2.make(config)
  online = jax.tree.map(lambda x: x + 1.0, params)
  for step in schedules.steps(config.total_steps):
    new = method.update_after_step(online, state, jnp.int32(step))
    m = schedules.cosine_momentum(step, config.total_steps)
    want = jax.tree.map(lambda t, o: m * t + (1 - m) * o, state["target"]["params"], online)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new["target"]["params"], want)
    np.testing.assert_array_equal(new["queue"], state["queue"])


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  # The new queue, ptr, BatchNorm statistics and target: the same on 8 devices as on 1.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5)
  (_, s_1, _), (_, s_8, _) = one, eight
  assert int(s_8["queue_ptr"]) == int(s_1["queue_ptr"]) == 22
