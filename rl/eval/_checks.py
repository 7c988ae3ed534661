"""Host-side input checks shared by the evaluation functions (NumPy arrays, before anything is compiled)."""
from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
  """The host (NumPy) form of `rl.losses.l2_normalize` for the evaluation's float64 arithmetic: x / max(|x|, eps)
  per row (eps = 1e-12), in the input's dtype (a JAX call would round float64 to float32)."""
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def check_finite(name: str, x: np.ndarray) -> None:
  """Raises a ValueError naming `name`, how many NaN and inf values it holds, and the first row with one.

  Args:
    name: the argument's name, quoted in the message.
    x: a numeric `[n, ...]` array.

  Raises:
    ValueError: `x` has a NaN or an infinite value.
  """
  finite = np.isfinite(x)
  if finite.all():
    return
  bad = ~finite
  row = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1))) if x.ndim else 0
  num_nan = int(np.isnan(x).sum())
  raise ValueError(f"{name} contains NaN or inf values; expected finite features, got {num_nan} NaN and "
                   f"{int(bad.sum()) - num_nan} inf among {x.size} values (the first in row {row}).")
