"""A method's loss on one device and on 8 fake devices, for the "8 devices equal 1 device" tests.

Used by every method's test module:
`one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)`, then
`devices.assert_1_and_8_devices_equal(one, eight)`.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def loss_on_1_and_8_devices(method, params, state, batch, mesh, key=None):
  """Value, new state and parameter gradients of `method.loss` on one device and sharded over `mesh`'s "data" axis.

  One device: `method.loss(params, state, batch, key, axis_name=None)` over the whole batch, under `jax.jit`. Eight
  devices: the same under `jax.shard_map` with every leaf of `batch` split on its leading axis and params, state and
  key replicated. Gradients are w.r.t. params only. Returns `((v_1, s_1, g_1), (v_8, s_8, g_8))`.
  """
  key = jax.random.key(1) if key is None else key

  def value_and_grad(axis_name):
    def f(p, b):
      return method.loss(p, state, b, key, axis_name=axis_name)
    return jax.value_and_grad(f, has_aux=True)

  (v_1, (s_1, _)), g_1 = jax.jit(value_and_grad(None))(params, batch)
  fn = jax.shard_map(value_and_grad("data"), mesh=mesh, in_specs=(P(), P("data")),
                     out_specs=((P(), (P(), {"metrics": P(), "features": P("data")})), P()))
  sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
  (v_8, (s_8, _)), g_8 = jax.jit(fn)(params, sharded)
  return (v_1, s_1, g_1), (v_8, s_8, g_8)


def assert_1_and_8_devices_equal(one, eight, *, value_rtol=1e-5, grad_rtol=1e-4, grad_atol=1e-6, state_rtol=1e-5,
                                 state_atol=1e-6, check_state=True):
  """Checks `loss_on_1_and_8_devices`'s two results agree: value, gradients and (unless not `check_state`) state."""
  (v_1, s_1, g_1), (v_8, s_8, g_8) = one, eight
  np.testing.assert_allclose(v_8, v_1, rtol=value_rtol)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=grad_rtol, atol=grad_atol), g_8, g_1)
  if check_state:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=state_rtol, atol=state_atol), s_8, s_1)
