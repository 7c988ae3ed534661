"""SimCLR as a `Method`: one device over the global batch == 8 devices with cross-device BatchNorm."""
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import simclr as simclr_config
from rl import methods


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
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  assert aux["features"].shape == (32, method.embed(params, state, v1).shape[1])
  assert set(new_state) == {"batch_stats"}
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))  # BN statistics moved
  assert np.isfinite(value) and value > 0
  np.testing.assert_allclose(aux["metrics"]["nt_xent"], value)
  # Perfectly matched views score lower than unrelated ones.
  same, _ = method.loss(params, state, {"views": (v1, v1)}, jax.random.key(1))
  assert same < value


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _method_and_batch()

  def value_and_grad(axis_name):
    def f(p, a, b):
      return method.loss(p, state, {"views": (a, b)}, jax.random.key(1), axis_name=axis_name)
    return jax.value_and_grad(f, has_aux=True)

  (v_1, (s_1, _)), g_1 = jax.jit(value_and_grad(None))(params, v1, v2)
  fn = jax.shard_map(value_and_grad("data"), mesh=mesh8, in_specs=(P(), P("data"), P("data")),
                     out_specs=((P(), (P(), {"metrics": P(), "features": P("data")})), P()))
  put = lambda x: jax.device_put(x, NamedSharding(mesh8, P("data")))
  (v_8, (s_8, _)), g_8 = jax.jit(fn)(params, put(v1), put(v2))
  np.testing.assert_allclose(v_8, v_1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_8, g_1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_8, s_1)


def test_unknown_method_lists_known_ones():
  config = simclr_config.get_config("smoke")
  config.method = "simclrr"
  with pytest.raises(ValueError, match="unknown method 'simclrr'; known methods: .*byol.*simclr"):
    methods.get_method(config)
