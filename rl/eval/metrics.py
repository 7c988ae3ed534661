"""Diagnostics of a representation's geometry, computed in float64 NumPy on host arrays.

* `alignment` and `uniformity`: Wang & Isola 2020, "Understanding Contrastive Representation Learning
  through Alignment and Uniformity on the Hypersphere", https://arxiv.org/abs/2005.10242.
* `effective_rank`: RankMe, Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of
  Pretrained Self-Supervised Representations by Their Rank", https://arxiv.org/abs/2210.02885.
* `collapse_std`: the collapse indicator of SimSiam, Chen & He 2021, "Exploring Simple Siamese
  Representation Learning", https://arxiv.org/abs/2011.10566, sec. 4.1.

These run once per evaluation on at most a few thousand rows, so they favour float64 exactness over speed.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rl.eval import _checks

# RankMe's epsilon, added to the normalised singular values (Garrido et al. 2023, eq. 1).
RANKME_EPS = 1e-7
# Uniformity is O(n^2) in time and memory: 2048 rows are 2.1M pairs (a 32 MB float64 Gram matrix),
# enough for a standard error far below the differences between methods.
UNIFORMITY_MAX_SAMPLES = 2048


def _check(name: str, z, min_rows: int = 1) -> np.ndarray:
  z = np.asarray(z)
  if z.ndim != 2:
    raise ValueError(f"{name} must have shape [n, d]; got shape {z.shape}.")
  if z.shape[0] < min_rows or z.shape[1] < 1:
    raise ValueError(f"{name} must have at least {min_rows} rows and 1 column; got shape {z.shape}.")
  if not np.issubdtype(z.dtype, np.number):
    raise ValueError(f"{name} must be numeric; got dtype {z.dtype}.")
  z = z.astype(np.float64)
  _checks.check_finite(name, z)
  return z


def alignment(z1: ArrayLike, z2: ArrayLike, *, alpha: float = 2.0) -> float:
  """Alignment loss of Wang & Isola 2020: mean distance between the two views of each example.

    L_align = mean_i || f(x_i) - f(y_i) ||_2^alpha,  with f L2-normalised.

  0 for identical views; at most `2^alpha` (antipodal views).

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> round(alignment(z, z), 4), round(alignment(z, z[::-1]), 4)
    (0.0, 1.7791)

  Args:
    z1: `[n, d]` features of the first view.
    z2: `[n, d]` features of the second view, row `i` paired with row `i` of `z1`.
    alpha: exponent of the distance (2 as in the paper).

  Returns:
    The alignment as a Python float (lower is better aligned).

  Raises:
    ValueError: if the shapes differ, are not `[n, d]`, or hold NaN/inf, or `alpha <= 0`.
  """
  z1 = _check("z1", z1)
  z2 = _check("z2", z2)
  if z1.shape != z2.shape:
    raise ValueError(f"z1 and z2 must have the same shape; got {z1.shape} and {z2.shape}.")
  if not alpha > 0:
    raise ValueError(f"alpha must be positive; got {alpha!r}.")
  dist = np.linalg.norm(_checks.l2_normalize(z1) - _checks.l2_normalize(z2), axis=-1)
  return float(np.mean(dist**alpha))


def uniformity(z: ArrayLike, *, t: float = 2.0, max_samples: int = UNIFORMITY_MAX_SAMPLES,
               seed: int = 0) -> float:
  """Uniformity loss of Wang & Isola 2020: log of the mean Gaussian potential over distinct pairs.

    L_uniform = log( 1 / (n (n - 1)) * sum_{i != j} exp(-t || f(x_i) - f(x_j) ||_2^2) ),  f L2-normalised.

  0 when all features coincide (collapse); more negative is more uniform. With t = 2, features spread
  uniformly in high dimension give about -4 (pairs nearly orthogonal, ||a - b||^2 ~ 2).

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> round(uniformity(z), 3)
    -1.064

  Args:
    z: `[n, d]` features, n >= 2.
    t: scale of the Gaussian potential (2 as in the paper).
    max_samples: if `n` is larger, a fixed subset of this many rows, drawn with `seed`, is used.
    seed: seed of that subset, so repeated evaluations use the same rows.

  Returns:
    The uniformity as a Python float (lower is more uniform).

  Raises:
    ValueError: if `z` is not `[n, d]` with n >= 2, holds NaN/inf, or `t <= 0` or `max_samples < 2`.
  """
  z = _check("z", z, min_rows=2)
  if not t > 0:
    raise ValueError(f"t must be positive; got {t!r}.")
  if max_samples < 2:
    raise ValueError(f"max_samples must be at least 2; got {max_samples!r}.")
  if z.shape[0] > max_samples:
    z = z[np.sort(np.random.default_rng(seed).choice(z.shape[0], max_samples, replace=False))]
  z = _checks.l2_normalize(z)
  n = z.shape[0]
  # For unit vectors ||a - b||^2 = 2 - 2 a.b; the clip removes tiny negative rounding.
  sq_dist = np.maximum(2.0 - 2.0 * (z @ z.T), 0.0)
  logits = -t * sq_dist[~np.eye(n, dtype=bool)]
  # log-mean-exp, stable for large t.
  m = logits.max()
  return float(m + np.log(np.mean(np.exp(logits - m))))


def effective_rank(z: ArrayLike) -> float:
  """RankMe effective rank (Garrido et al. 2023): exp of the entropy of the normalised singular values.

    p_k = sigma_k / ||sigma||_1 + eps,   rank = exp(-sum_k p_k log p_k),   eps = 1e-7,

  with `sigma` the singular values of the (uncentred, unnormalised) feature matrix, as in the paper.
  Between ~1 (rank-one features) and `min(n, d)` (all singular values equal). An all-zero matrix gives ~1.

  Example:
    >>> round(effective_rank(np.eye(3)), 3), round(effective_rank(np.ones((4, 3))), 3)
    (3.0, 1.0)

  Args:
    z: `[n, d]` features; RankMe uses at least `d` rows (e.g. 25600 in the paper) for a stable estimate.

  Returns:
    The effective rank as a Python float.

  Raises:
    ValueError: if `z` is not `[n, d]` or holds NaN/inf.
  """
  z = _check("z", z)
  sigma = np.linalg.svd(z, compute_uv=False)
  p = sigma / max(sigma.sum(), np.finfo(np.float64).tiny) + RANKME_EPS
  return float(np.exp(-np.sum(p * np.log(p))))


def collapse_std(z: ArrayLike) -> float:
  """Collapse indicator of SimSiam (sec. 4.1): mean per-dimension std of L2-normalised features.

  0 when every example maps to the same direction (complete collapse); about `1 / sqrt(d)` when the
  normalised features spread like an isotropic Gaussian in `d` dimensions.

  Example:
    >>> round(collapse_std(np.ones((4, 3))), 4), round(collapse_std(np.eye(4)), 3)
    (0.0, 0.433)

  Args:
    z: `[n, d]` features.

  Returns:
    The mean over dimensions of the (population) std over examples, as a Python float.

  Raises:
    ValueError: if `z` is not `[n, d]` or holds NaN/inf.
  """
  z = _check("z", z)
  return float(np.mean(np.std(_checks.l2_normalize(z), axis=0)))


def feature_report(z1: ArrayLike, z2: ArrayLike) -> dict[str, float]:
  """All geometry diagnostics of paired features of two views, for logging.

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> {k: round(v, 3) for k, v in feature_report(z, z).items()}  # doctest: +NORMALIZE_WHITESPACE
    {'alignment': 0.0, 'uniformity': -1.064, 'effective_rank': 1.998, 'collapse_std': 0.472,
     'collapse_std_reference': 0.707}

  Args:
    z1: `[n, d]` features of the first view, n >= 2.
    z2: `[n, d]` features of the second view of the same examples.

  Returns:
    A dict with 'alignment' (between the views), and 'uniformity', 'effective_rank' and 'collapse_std',
    each the mean of its value on `z1` and on `z2` (as Wang & Isola average uniformity over views), plus
    'collapse_std_reference' = 1 / sqrt(d), the value of well spread features.

  Raises:
    ValueError: if the shapes differ, are not `[n, d]` with n >= 2, or hold NaN/inf.
  """
  z1 = _check("z1", z1, min_rows=2)
  z2 = _check("z2", z2, min_rows=2)
  if z1.shape != z2.shape:
    raise ValueError(f"z1 and z2 must have the same shape; got {z1.shape} and {z2.shape}.")
  return {
      "alignment": alignment(z1, z2),
      "uniformity": 0.5 * (uniformity(z1) + uniformity(z2)),
      "effective_rank": 0.5 * (effective_rank(z1) + effective_rank(z2)),
      "collapse_std": 0.5 * (collapse_std(z1) + collapse_std(z2)),
      "collapse_std_reference": float(1.0 / np.sqrt(z1.shape[1])),
  }
