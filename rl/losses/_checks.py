"""Trace-time argument checks shared by the losses: errors name the argument and both shapes or values."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def check_embeddings(**arrays: jax.Array) -> None:
  """Checks that each named array is a floating [b, d] matrix and that all share one shape."""
  shapes = {}
  for name, x in arrays.items():
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
      raise ValueError(f"{name} must be an array of shape [b, d]; got {type(x).__name__}.")
    if x.ndim != 2:
      raise ValueError(f"{name} must have shape [b, d]; got shape {tuple(x.shape)}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name} must be a floating array (embeddings); got dtype {x.dtype}.")
    shapes[name] = tuple(x.shape)
  names = list(shapes)
  for other in names[1:]:
    if shapes[other] != shapes[names[0]]:
      raise ValueError(
          f"{names[0]} and {other} must have the same shape; got {shapes[names[0]]} and {shapes[other]}.")


def check_positive(name: str, value) -> None:
  """Checks a hyper-parameter that must be > 0, when it is a concrete number (traced values are skipped)."""
  if isinstance(value, (int, float)) and not value > 0:
    raise ValueError(f"{name} must be > 0; got {value}.")
