"""Trace-time argument checks shared by the losses: errors name the argument and both shapes or values."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_embeddings(**arrays: jax.Array) -> None:
  """Checks that each named array is a floating [b, d] matrix and that all share one shape.

  Floating dtypes may differ (a float32 view against a bfloat16 one): the losses compute in float32 whatever
  they get, and mixed precision produces such pairs (`hallucinate` returns float32 for bfloat16 views).
  """
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
  if isinstance(value, (int, float, np.integer, np.floating)) and not value > 0:
    raise ValueError(f"{name} must be > 0; got {value}.")


def check_center(center, teacher_logits) -> None:
  """Checks a DINO-style centre: a float [K] array, K = `teacher_logits.shape[1]` (one entry per output dim)."""
  k = teacher_logits.shape[1]
  check_array("center", center, ndim=1, shape_doc=f"[{k}]")
  if center.shape != (k,):
    raise ValueError(f"center must have shape [{k}] to match teacher_logits of shape {tuple(teacher_logits.shape)} "
                     f"(one entry per output dim); got shape {tuple(center.shape)}.")


def check_array(name: str, x, *, ndim: int | None = None, floating: bool = True, shape_doc: str = "") -> None:
  """Checks that `x` is an array with `ndim` dimensions and, when `floating`, a floating dtype.

  `shape_doc` (e.g. "[b, views, d]") is quoted in the message so the caller sees the expected layout.
  """
  expected = shape_doc or (f"{ndim} dimensions" if ndim is not None else "an array")
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise ValueError(f"{name} must be an array of shape {expected}; got {type(x).__name__}.")
  if ndim is not None and x.ndim != ndim:
    raise ValueError(f"{name} must have shape {expected}; got shape {tuple(x.shape)}.")
  if floating and not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating array; got dtype {x.dtype}.")


def check_labels(name: str, labels, batch: int) -> None:
  """Checks integer class labels of shape [batch]."""
  if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
    raise ValueError(f"{name} must be an integer array of shape [{batch}]; got {type(labels).__name__}.")
  if tuple(labels.shape) != (batch,):
    raise ValueError(f"{name} must have shape [{batch}] (one label per example); got shape {tuple(labels.shape)}.")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"{name} must be an integer array; got dtype {labels.dtype}.")


def check_same_shape(**arrays) -> None:
  """Checks that all named arrays share one shape; the message names the first two that differ."""
  names = list(arrays)
  first = tuple(arrays[names[0]].shape)
  for other in names[1:]:
    if tuple(arrays[other].shape) != first:
      raise ValueError(
          f"{names[0]} and {other} must have the same shape; got {first} and {tuple(arrays[other].shape)}.")


def check_in_range(name: str, value, low: float, high: float, *, low_inclusive: bool = True,
                   high_inclusive: bool = True) -> None:
  """Checks low <(=) value <(=) high when `value` is a concrete number (traced values are skipped)."""
  if not isinstance(value, (int, float, np.integer, np.floating)):
    return
  ok_low = value >= low if low_inclusive else value > low
  ok_high = value <= high if high_inclusive else value < high
  if not (ok_low and ok_high):
    lb, hb = ("[" if low_inclusive else "("), ("]" if high_inclusive else ")")
    raise ValueError(f"{name} must be in {lb}{low}, {high}{hb}; got {value}.")
