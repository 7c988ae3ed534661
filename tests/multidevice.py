"""Helpers that run a loss on 1 device and on 8 devices, so tests compare value and gradients.

Used by every loss test: the single-device computation over the global batch must equal the 8-device one,
under `jax.shard_map` (gradients with respect to the sharded inputs) and under `jax.pmap` (gradients of a
replicated linear map applied before the loss, averaged with `lax.pmean` as every pmap training step does).
"""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def shard_map_value_and_grad(loss_fn, mesh, *arrays):
  """Value and input-gradients of `loss_fn(*arrays, axis_name='data')` with every array sharded on axis 0."""
  fn = jax.shard_map(
      jax.value_and_grad(lambda *a: loss_fn(*a, axis_name="data"), argnums=tuple(range(len(arrays)))),
      mesh=mesh, in_specs=tuple(P("data") for _ in arrays), out_specs=(P(), tuple(P("data") for _ in arrays)))
  placed = [jax.device_put(a, NamedSharding(mesh, P("data"))) for a in arrays]
  return jax.jit(fn)(*placed)


def single_value_and_grad(loss_fn, *arrays):
  return jax.jit(jax.value_and_grad(loss_fn, argnums=tuple(range(len(arrays)))))(*arrays)


def _projected(loss_fn, w, arrays, axis_name=None):
  return loss_fn(*[a @ w for a in arrays], axis_name=axis_name) if axis_name else loss_fn(*[a @ w for a in arrays])


def single_param_grad(loss_fn, w, *arrays):
  """Value and gradient w.r.t. a linear map `w` applied to every input before the loss, on one device."""
  return jax.jit(jax.value_and_grad(lambda w: _projected(loss_fn, w, arrays)))(w)


def pmap_param_grad(loss_fn, w, *arrays, num_devices=8):
  """The same under `jax.pmap` with `w` replicated and gradients averaged with `lax.pmean`."""
  def step(w, *shards):
    value, grad = jax.value_and_grad(lambda w: _projected(loss_fn, w, shards, "data"))(w)
    return value, lax.pmean(grad, "data")
  split = [a.reshape((num_devices, a.shape[0] // num_devices) + a.shape[1:]) for a in arrays]
  ws = jnp.broadcast_to(w, (num_devices,) + w.shape)
  values, grads = jax.pmap(step, axis_name="data")(ws, *split)
  np.testing.assert_allclose(np.asarray(values), np.asarray(values)[0], rtol=1e-6)  # same on every device
  return values[0], grads[0]


def shard_map_param_grad(loss_fn, mesh, w, *arrays):
  """Under `jax.shard_map`: `w` replicated (P()), inputs sharded; gradients of replicated inputs arrive summed."""
  fn = jax.shard_map(jax.value_and_grad(lambda w, *a: _projected(loss_fn, w, a, "data")), mesh=mesh,
                     in_specs=(P(),) + tuple(P("data") for _ in arrays), out_specs=(P(), P()))
  placed = [jax.device_put(a, NamedSharding(mesh, P("data"))) for a in arrays]
  return jax.jit(fn)(w, *placed)
