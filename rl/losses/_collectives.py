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


def global_mean(local_sum: jax.Array, local_count: int, axis_name: str | None) -> jax.Array:
  """Mean over the global batch from a per-device sum and a per-device count."""
  return psum(local_sum, axis_name) / psum(local_count, axis_name)
