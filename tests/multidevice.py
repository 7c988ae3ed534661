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


# ---------------------------------------------------------------------------------------------------------------
# General form used by the loss library: some arguments sharded on the batch axis, some replicated.
# ---------------------------------------------------------------------------------------------------------------

def _pmap_split(a, num_devices):
  a = jnp.asarray(a)
  if a.shape[0] % num_devices:
    raise ValueError(f"sharded argument of shape {a.shape} does not split over {num_devices} devices")
  return a.reshape((num_devices, a.shape[0] // num_devices) + a.shape[1:])


def run_1_and_8(fn, mesh, sharded, replicated=(), *, out_specs=P(), num_devices=8):
  """Outputs of `fn(*sharded, *replicated, axis_name=...)` on one device and on 8 (shard_map and pmap).

  `sharded` arrays are split on axis 0 across devices; `replicated` ones are given whole to every device.
  `out_specs` is a pytree of `P()` (output replicated: every device must hold the same value) and `P("data")`
  (output sharded on axis 0, re-assembled here), matching the structure of `fn`'s output.

  Returns (single, under_shard_map, under_pmap), each a pytree of global arrays.
  """
  sharded, replicated = tuple(sharded), tuple(replicated)
  single = jax.jit(lambda *a: fn(*a, axis_name=None))(*sharded, *replicated)
  sm = jax.shard_map(lambda *a: fn(*a, axis_name="data"), mesh=mesh,
                     in_specs=tuple(P("data") for _ in sharded) + tuple(P() for _ in replicated),
                     out_specs=out_specs)
  placed = [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P("data"))) for a in sharded]
  placed += [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P())) for a in replicated]
  under_sm = jax.jit(sm)(*placed)
  in_axes = tuple(0 for _ in sharded) + tuple(None for _ in replicated)
  per_device = jax.pmap(lambda *a: fn(*a, axis_name="data"), axis_name="data", in_axes=in_axes)(
      *[_pmap_split(a, num_devices) for a in sharded], *replicated)

  def assemble(spec, out):
    out = np.asarray(out)
    if spec == P():
      for k in range(1, num_devices):  # a replicated output must be the same on every device
        np.testing.assert_allclose(out[k], out[0], rtol=1e-6, atol=1e-7,
                                   err_msg=f"pmap output differs between device 0 and device {k}")
      return out[0]
    return out.reshape((-1,) + out.shape[2:])

  is_spec = lambda x: isinstance(x, P)
  if is_spec(out_specs):
    under_pmap = assemble(out_specs, per_device)
  else:
    under_pmap = jax.tree.map(assemble, out_specs, per_device, is_leaf=is_spec)
  return single, under_sm, under_pmap


def grads_1_and_8(loss_fn, mesh, sharded, replicated=(), *, argnums=None, num_devices=8):
  """Value and gradients of a scalar loss on one device and on 8 devices (shard_map and pmap).

  `argnums` index into `sharded + replicated` (default: every floating sharded argument). Under pmap, gradients
  follow the pmap convention of `_collectives`: sharded-input gradients are divided by the device count and
  replicated-input gradients are averaged with `pmean`, which is what a pmap training step does.

  Returns three (value, grads) pairs: single device, shard_map, pmap; grads is a tuple ordered as `argnums`.
  """
  sharded, replicated = tuple(sharded), tuple(replicated)
  n_sh = len(sharded)
  if argnums is None:
    argnums = tuple(i for i, a in enumerate(sharded) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating))
  argnums = tuple(argnums)

  def vg(axis_name):
    return jax.value_and_grad(lambda *a: loss_fn(*a, axis_name=axis_name), argnums=argnums)

  single = jax.jit(vg(None))(*sharded, *replicated)
  grad_specs = tuple(P("data") if i < n_sh else P() for i in argnums)
  sm = jax.shard_map(vg("data"), mesh=mesh,
                     in_specs=tuple(P("data") for _ in sharded) + tuple(P() for _ in replicated),
                     out_specs=(P(), grad_specs))
  placed = [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P("data"))) for a in sharded]
  placed += [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P())) for a in replicated]
  under_sm = jax.jit(sm)(*placed)

  def pstep(*a):
    value, grads = vg("data")(*a)
    grads = tuple(g / num_devices if i < n_sh else lax.pmean(g, "data") for i, g in zip(argnums, grads))
    return value, grads

  in_axes = tuple(0 for _ in sharded) + tuple(None for _ in replicated)
  values, grads = jax.pmap(pstep, axis_name="data", in_axes=in_axes)(
      *[_pmap_split(a, num_devices) for a in sharded], *replicated)
  values = np.asarray(values)
  np.testing.assert_allclose(values, values[0], rtol=1e-6, err_msg="pmap loss differs between devices")
  pm_grads = tuple(np.asarray(g).reshape((-1,) + g.shape[2:]) if i < n_sh else np.asarray(g)[0]
                   for i, g in zip(argnums, grads))
  return single, under_sm, (values[0], pm_grads)


def assert_1_equals_8(loss_fn, mesh, sharded, replicated=(), *, argnums=None, rtol=1e-5, atol=1e-6,
                      num_devices=8):
  """Asserts value and gradients on 8 devices (shard_map and pmap) equal those on one device."""
  (v1, g1), *multi = grads_1_and_8(loss_fn, mesh, sharded, replicated, argnums=argnums, num_devices=num_devices)
  for how, (v, g) in zip(("shard_map", "pmap"), multi):
    np.testing.assert_allclose(v, v1, rtol=rtol, atol=atol, err_msg=f"value under {how}")
    for k, (a, b) in enumerate(zip(g, g1)):
      np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"gradient {k} under {how}")
  return v1, g1
