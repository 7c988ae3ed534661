"""Numerical building blocks shared by the loss modules (private: the public API is in `rl.losses`)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def to_float32(*arrays: jax.Array):
  """Upcasts half-precision inputs so that reductions accumulate in float32 (float64 stays float64)."""
  out = tuple(a.astype(jnp.promote_types(a.dtype, jnp.float32)) for a in arrays)
  return out[0] if len(out) == 1 else out


def off_diagonal(m: jax.Array) -> jax.Array:
  """The n(n-1) off-diagonal entries of a square matrix, as a flat vector."""
  n = m.shape[0]
  return m.reshape(-1)[:-1].reshape(n - 1, n + 1)[:, 1:].reshape(-1)
