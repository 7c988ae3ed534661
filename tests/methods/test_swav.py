"""SwAV as a `Method`: multi-crop forward (global and local crops of different lengths), the loss is `rl.losses.swav`
of the prototype scores, the prototypes are frozen at first, the queue joins the Sinkhorn once full, and 1 device ==
8 devices (value, gradients, queue)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import swav as swav_config
from rl import losses
from rl import methods
from rl.methods import multicrop
from rl.methods import swav
from tests.methods import devices

B = 32


def _setup(**overrides):
  config = swav_config.get_config("smoke")  # 2 global views of 40, 4 local of 20; 10 prototypes; queue 128
  config.swav.update(overrides)
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  x = rng.randn(B, 40).astype(np.float32)
  views = (x, x + 0.3 * rng.randn(B, 40).astype(np.float32)) + tuple(
      rng.randn(B, 20).astype(np.float32) for _ in range(4))
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, views


def test_shape_groups_of_consecutive_views():
  a, b = jnp.zeros((2, 40)), jnp.zeros((2, 20))
  assert multicrop.shape_groups((a, a, b, b, b)) == [[0, 1], [2, 3, 4]]
  assert multicrop.shape_groups((a, b, a)) == [[0], [1], [2]]


def test_loss_is_swav_of_the_scores_of_every_crop():
  config, method, params, state, views = _setup(queue_length=0)
  state = {**state, "step": jnp.int32(5)}
  value, (new_state, aux) = method.loss(params, state, {"views": views}, jax.random.key(1))
  net = multicrop.Network(config, swav.build_head).module(None)
  # The encoder runs per resolution; features and scores are crop-major.
  h_global = net.apply({"params": params, **{"batch_stats": state["batch_stats"]}}, jnp.concatenate(views[:2]),
                       method=lambda m, x: m.encoder(x, train=True), mutable=["batch_stats"])[0]
  (h, (z, scores)), _ = net.apply({"params": params, "batch_stats": state["batch_stats"]}, views, train=True,
                                  mutable=["batch_stats"])
  np.testing.assert_allclose(h[:2 * B], h_global, rtol=1e-5, atol=1e-6)
  assert scores.shape == (6 * B, 10)
  np.testing.assert_allclose(jnp.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
  expected = losses.swav(scores, num_crops=6, crops_for_assign=(0, 1), temperature=0.1, epsilon=0.05,
                         sinkhorn_iters=3)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["features"], h[:B], rtol=1e-6)
  assert int(method.update_after_step(params, new_state, jnp.int32(5))["step"]) == 6


def test_prototypes_are_frozen_for_the_first_steps():
  _, method, params, state, views = _setup(queue_length=0, freeze_prototypes_steps=3)

  def grads(step):
    f = lambda p: method.loss(p, {**state, "step": jnp.int32(step)}, {"views": views}, jax.random.key(1))[0]
    return jax.grad(f)(params)

  frozen, free = grads(2), grads(3)
  np.testing.assert_array_equal(frozen["head"]["prototypes"]["kernel"], 0.0)
  assert float(jnp.abs(free["head"]["prototypes"]["kernel"]).max()) > 0
  jax.tree.map(np.testing.assert_array_equal, frozen["encoder"], free["encoder"])


def test_queue_fills_in_global_order_and_joins_the_sinkhorn_once_full():
  config, method, params, state, views = _setup(queue_start_step=1)  # queue 128 = 4 batches of 32
  before = method.loss(params, state, {"views": views}, jax.random.key(1))[1][0]
  assert int(before["queue_count"]) == 0  # step 0 < queue_start_step: nothing pushed
  state = {**state, "step": jnp.int32(1)}
  _, (pushed, aux) = method.loss(params, state, {"views": views}, jax.random.key(1))
  assert int(pushed["queue_count"]) == B and int(pushed["queue_ptr"]) == B
  assert float(aux["metrics"]["queue_in_use"]) == 0.0
  net = multicrop.Network(config, swav.build_head).module(None)
  (_, (z, scores)), _ = net.apply({"params": params, "batch_stats": state["batch_stats"]}, views, train=True,
                                  mutable=["batch_stats"])
  np.testing.assert_allclose(pushed["queue"][0, :B], z[:B], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pushed["queue"][1, :B], z[B:2 * B], rtol=1e-5, atol=1e-6)
  # A full queue joins the Sinkhorn batch: the loss is swav with the queue's scores.
  queue = jnp.asarray(np.random.RandomState(1).randn(2, 128, 8), jnp.float32)
  full = {**state, "queue": queue, "queue_count": jnp.int32(128)}
  value, (_, aux) = method.loss(params, full, {"views": views}, jax.random.key(1))
  kernel = params["head"]["prototypes"]["kernel"]
  q_scores = queue @ (kernel / jnp.linalg.norm(kernel, axis=0))
  expected = losses.swav(scores, num_crops=6, queue_scores=q_scores)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  assert float(aux["metrics"]["queue_in_use"]) == 1.0
  assert not np.isclose(float(value), float(losses.swav(scores, num_crops=6)), rtol=1e-4)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, views = _setup()
  queue = jnp.asarray(np.random.RandomState(1).randn(2, 128, 8), jnp.float32)
  state = {**state, "step": jnp.int32(4), "queue": queue, "queue_count": jnp.int32(128), "queue_ptr": jnp.int32(112)}

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": views}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5, check_state=False)
  (_, s_1, _), (_, s_8, _) = one, eight
  np.testing.assert_allclose(s_8["queue"], s_1["queue"], rtol=1e-4, atol=1e-5)
  assert int(s_8["queue_ptr"]) == int(s_1["queue_ptr"]) == (112 + B) % 128


def test_bad_views_and_config():
  _, method, params, state, views = _setup()
  with pytest.raises(ValueError, match="global views must have one shape"):
    method.loss(params, state, {"views": (views[0], views[2]) + views[2:]}, jax.random.key(1))
  config = swav_config.get_config("smoke")
  config.swav.crops_for_assign = (0, 2)
  with pytest.raises(ValueError, match="crops_for_assign"):
    methods.get_method(config)
