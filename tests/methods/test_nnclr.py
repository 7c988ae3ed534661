"""NNCLR as a `Method`: the loss is `rl.losses.nnclr` of the projections and predictions against the support set,
the support set is a FIFO of normalised first-view projections, and 1 device == 8 devices (support and ptr too)."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import nnclr as nnclr_config
from rl import losses
from rl import methods
from rl.methods import two_view
from tests.methods import devices

B = 32


def _method_and_batch():
  config = nnclr_config.get_config("smoke")  # support_size 128, 8-d projections
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(B, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(B, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


def _outputs(config, params, state, v1, v2):
  net_state = {"batch_stats": state["batch_stats"]}
  (h, z, p), new_bn = two_view.build_network(config, None, predictor_kwargs=config.nnclr.predictor_kwargs).apply(
      {"params": params, **net_state}, jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
  return h, z, p, dict(new_bn)


def test_init_state_holds_a_random_unit_support_set():
  config, _, params, state, _, _ = _method_and_batch()
  assert set(state) == {"batch_stats", "support", "ptr"}
  assert set(params) == {"encoder", "projector", "predictor"}
  assert state["support"].shape == (config.nnclr.support_size, 8) and state["ptr"].dtype == jnp.int32
  np.testing.assert_allclose(jnp.linalg.norm(state["support"], axis=1), 1.0, rtol=1e-5)
  assert int(state["ptr"]) == 0


def test_loss_is_nnclr_and_the_support_set_gets_normalised_first_view_projections():
  config, method, params, state, v1, v2 = _method_and_batch()
  state = {**state, "ptr": jnp.int32(120)}  # the push wraps around the end of the 128-row support set
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  h, z, p, new_bn = _outputs(config, params, state, v1, v2)
  expected = losses.nnclr(z[:B], z[B:], state["support"], p1=p[:B], p2=p[B:], temperature=config.nnclr.temperature)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["nnclr"], value)
  np.testing.assert_allclose(aux["features"], h[:B], rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state["batch_stats"], new_bn["batch_stats"])
  rows = (120 + np.arange(B)) % 128
  u1 = z[:B] / jnp.linalg.norm(z[:B], axis=1, keepdims=True)
  np.testing.assert_allclose(new_state["support"][rows], u1, rtol=1e-5, atol=1e-7)
  untouched = np.setdiff1d(np.arange(128), rows)
  np.testing.assert_array_equal(new_state["support"][untouched], state["support"][untouched])
  assert int(new_state["ptr"]) == (120 + B) % 128


def test_neighbours_are_constants_and_the_predictor_is_trained():
  _, method, params, state, v1, v2 = _method_and_batch()

  def f(p, support):
    return method.loss(p, {**state, "support": support}, {"views": (v1, v2)}, jax.random.key(1))[0]

  g_params, g_support = jax.grad(f, argnums=(0, 1))(params, state["support"])
  np.testing.assert_array_equal(g_support, 0.0)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(g_params["predictor"]))


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _method_and_batch()
  state = {**state, "ptr": jnp.int32(112)}

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  # atol 1e-5: gradients of order 1 (temperature 0.1, three BN layers) carry the BN psum's rounding.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5, check_state=False)
  (_, s_1, _), (_, s_8, _) = one, eight
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_8["batch_stats"],
               s_1["batch_stats"])
  # The support set (same rows, in global batch order) and the pointer are the same on 1 and 8 devices; the pushed
  # rows differ only by the float rounding of the cross-device BatchNorm statistics.
  np.testing.assert_allclose(s_8["support"], s_1["support"], rtol=1e-4, atol=1e-5)
  assert int(s_8["ptr"]) == int(s_1["ptr"]) == (112 + B) % 128
  np.testing.assert_array_equal(s_8["support"][16:112], state["support"][16:112])  # rows 112..127, 0..15 written
