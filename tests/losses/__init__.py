"""Helpers shared by the loss tests."""
import numpy as np


def numeric_grad(f, x, eps=1e-6):
  """Central finite differences of a (float64 NumPy) function f at x: the reference gradients of the loss tests."""
  g = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g
