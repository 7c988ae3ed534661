"""Collectives keyed by `axis_name`, so that every loss reads the same with and without devices.

With `axis_name=None` the arrays are the whole batch and every helper is the identity. With a name, the arrays
are this device's shard inside `jax.shard_map` or `jax.pmap`, and the helpers reduce or gather over that axis.

Gradient convention. A loss that reduces with `psum` returns the global-batch value on every device.
- `jax.shard_map` (default `check_vma=True`): gradients with respect to the local inputs are exactly the slices
  of the single-device gradient, and gradients with respect to replicated parameters arrive already summed.
- `jax.pmap`: `psum` transposes to `psum`, so per-device cotangents carry a factor of the device count; the usual
  pmap step `grads = lax.pmean(grads, axis_name)` removes it and gives the single-device parameter gradient.
"""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp


def all_gather(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Concatenates the shards of `x` from all devices along axis 0 (in device order)."""
  if axis_name is None:
    return x
  return lax.all_gather(x, axis_name, axis=0, tiled=True)


def psum(x, axis_name: str | None):
  """Sums `x` over devices."""
  if axis_name is None:
    return x
  return lax.psum(x, axis_name)


def axis_index(axis_name: str | None) -> jax.Array:
  """This device's position on the axis (0 without an axis)."""
  if axis_name is None:
    return jnp.zeros((), jnp.int32)
  return lax.axis_index(axis_name)


def global_rows(b: int, axis_name: str | None) -> jax.Array:
  """The indices in the global batch of this device's b rows (device index * b + row; 0..b-1 without an axis)."""
  return axis_index(axis_name) * b + jnp.arange(b)


def global_mean(local_sum: jax.Array, local_count: int, axis_name: str | None) -> jax.Array:
  """Mean over the global batch from a per-device sum and a per-device count."""
  return psum(local_sum, axis_name) / psum(local_count, axis_name)


def pmax(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Maximum of `x` over devices (not differentiable: use it on stop-gradient values or as a constant shift)."""
  if axis_name is None:
    return x
  return lax.pmax(x, axis_name)


def axis_size(axis_name: str | None) -> int:
  """Number of devices on the axis, as a static int (1 without an axis)."""
  return 1 if axis_name is None else lax.axis_size(axis_name)


def all_gather_replicated(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Like `all_gather`, but the result is typed as replicated (device-invariant) under `jax.shard_map`.

  `lax.all_gather` gives the same numbers on every device, but `jax.shard_map(check_vma=True)` types its result as
  varying, so a new state (queue, memory bank) built from it could not be returned with `out_specs=P()`. Each
  device writes its rows into a zero block and the blocks are `psum`-ed: exact (one non-zero term per entry) and
  invariant. Meant for state updates, not for loss terms (it costs a psum of the full block).
  """
  if axis_name is None:
    return x
  b = x.shape[0]
  full = jnp.zeros((lax.axis_size(axis_name) * b,) + x.shape[1:], x.dtype)
  full = lax.dynamic_update_slice_in_dim(full, x, lax.axis_index(axis_name) * b, axis=0)
  return lax.psum(full, axis_name)


def global_logsumexp(x: jax.Array, axis_name: str | None) -> jax.Array:
  """log sum exp of every entry of `x` on every device, stable and with exact gradients.

  Each device reduces its own entries; the per-device results are combined around their maximum. The maximum is
  a constant shift (it cancels), so it is taken on stop-gradient values and `pmax` is never differentiated.
  """
  local = jax.nn.logsumexp(x)
  if axis_name is None:
    return local
  m = lax.pmax(lax.stop_gradient(local), axis_name)
  return m + jnp.log(lax.psum(jnp.exp(local - m), axis_name))
