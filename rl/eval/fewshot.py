"""Few-shot linear evaluation: closed-form ridge regression on a few labelled examples per class.

The `fewshot_lsr` evaluator of big_vision (`big_vision/evaluators/fewshot_lsr.py`,
https://github.com/google-research/big_vision, used in e.g. ViT, Dosovitskiy et al. 2021,
https://arxiv.org/abs/2010.11929, and "Scaling Vision Transformers", Zhai et al. 2022,
https://arxiv.org/abs/2106.04560). For each of `num_repeats` seeded draws and each shot count `s`:

1. take the first `s` examples of a seeded permutation of every class of the train set (one permutation
   per class and draw, so the 5-shot set contains the 1-shot set, as in big_vision);
2. whiten the features with the per-dimension mean and `std + 1e-5` of those few examples only, and append
   a constant feature `100` that acts as a bias (large, so its weight is almost unregularised);
3. regress the targets `2 * one_hot(y) - 1` (in `{-1, 1}`, big_vision's shifted one-hot) in closed form,
   `W = (X^T X + l2_reg I)^{-1} X^T Y`, or `X^T (X X^T + l2_reg I)^{-1} Y` when there are fewer examples
   than dimensions (the same solution, a smaller system);
4. predict `argmax(x_test @ W)` on the whole test set (whitened with the same statistics).

big_vision solves through an eigendecomposition in float32 on the host CPU; here the small systems are
solved directly in float64 NumPy, which gives the same solution up to rounding.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from rl.eval import _checks

# big_vision's default `l2_reg` (big_vision/configs/common_fewshot.py: `config.l2_reg = 2.0 ** 10`),
# with its default `num_seeds = 3`.
DEFAULT_L2_REG = 2.0**10
DEFAULT_NUM_REPEATS = 3
# big_vision's BIAS_CONSTANT and the epsilon added to the std when whitening.
BIAS_CONSTANT = 100.0
_STD_EPS = 1e-5
# Test rows whitened and scored per block, to bound the float64 copy of the test features.
_PREDICT_CHUNK = 8192


def _check_features(name: str, x, dim: int | None = None) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"{name} must have shape [n, d] with n >= 1; got shape {x.shape}.")
  if dim is not None and x.shape[1] != dim:
    raise ValueError(
        f"{name} must have feature dimension {dim} like train_features; got shape {x.shape}.")
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
  _checks.check_finite(name, x)
  return x


def _check_labels(name: str, y, n: int, features_name: str) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(f"{name} must have shape [{n}] to match {features_name}; got shape {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class ids; got dtype {y.dtype}.")
  if y.min() < 0:
    raise ValueError(f"{name} must be non-negative class ids; got a minimum of {y.min()}.")
  return y.astype(np.int64)


def _ridge_fit(x: np.ndarray, y: np.ndarray, *, num_classes: int,
              l2_reg: float = DEFAULT_L2_REG) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """big_vision's least-squares classifier on `[n, d]` features `x` and `[n]` labels `y` (float64).

  Returns:
    `(weights, mean, std)`: `[d + 1, num_classes]` weights (the last row multiplies the constant bias
    feature) and the `[d]` whitening statistics (score new rows with `_scores`).
  """
  x = np.asarray(x, np.float64)
  mean = x.mean(axis=0)
  std = x.std(axis=0) + _STD_EPS
  xb = np.pad((x - mean) / std, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
  targets = 2.0 * np.eye(num_classes)[y] - 1.0
  n, d = xb.shape
  if n >= d:
    weights = np.linalg.solve(xb.T @ xb + l2_reg * np.eye(d), xb.T @ targets)
  else:
    weights = xb.T @ np.linalg.solve(xb @ xb.T + l2_reg * np.eye(n), targets)
  return weights, mean, std


def _scores(x: np.ndarray, weights: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  xb = np.pad((np.asarray(x, np.float64) - mean) / std, ((0, 0), (0, 1)), constant_values=BIAS_CONSTANT)
  return xb @ weights


def _accuracy(test_features, test_labels, weights, mean, std) -> float:
  correct = 0
  for start in range(0, test_features.shape[0], _PREDICT_CHUNK):
    scores = _scores(test_features[start:start + _PREDICT_CHUNK], weights, mean, std)
    correct += int(np.sum(np.argmax(scores, axis=1) == test_labels[start:start + _PREDICT_CHUNK]))
  return correct / test_features.shape[0]


def fewshot_accuracy(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike,
                     test_labels: ArrayLike, *, shots: Sequence[int] = (1, 5, 10),
                     l2_reg: float = DEFAULT_L2_REG, seed: int = 0,
                     num_repeats: int = DEFAULT_NUM_REPEATS,
                     num_classes: int | None = None) -> dict[int, float]:
  """Test accuracy of big_vision's few-shot ridge-regression classifier, per shot count.

  Draw `r` (of `num_repeats`) permutes each class's train rows with `np.random.default_rng(seed + r)`
  (big_vision uses `default_rng(seed)` for its seeds 0, 1, 2, so `seed=0` draws the same examples as
  big_vision on the same data), takes the first `s` of each class for every `s` in `shots`, fits the
  ridge regression of the module docstring (whitened features plus a bias feature, targets
  `2 * one_hot - 1`, penalty `l2_reg`) and scores the whole test set; accuracies are averaged over draws.

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> train_z, train_y = np.concatenate([z, z + 0.05]), np.concatenate([y, y])
    >>> fewshot_accuracy(train_z, train_y, z, y, shots=(1, 2))
    {1: 1.0, 2: 1.0}

  Args:
    train_features: `[n_train, d]` features the few shots are drawn from.
    train_labels: `[n_train]` integer labels in `[0, num_classes)`.
    test_features: `[n_test, d]` features to classify.
    test_labels: `[n_test]` integer labels in `[0, num_classes)`.
    shots: examples per class; every class needs at least `max(shots)` train examples.
    l2_reg: ridge penalty `l2_reg * ||W||^2` on the sum of squared errors; `2 ** 10` as in big_vision.
    seed: seed of the draws.
    num_repeats: number of draws averaged (3, big_vision's `num_seeds`).
    num_classes: number of classes; `None` takes `1 + ` the largest label of either set.

  Returns:
    `{shots: mean test accuracy}`, accuracies in `[0, 1]` as Python floats.

  Raises:
    ValueError: naming the argument, on wrong shapes, NaN/inf features, labels out of range or bad
      hyper-parameters; and naming the class and its count when a class has fewer than `max(shots)` train
      examples.
  """
  train_features = _check_features("train_features", train_features)
  test_features = _check_features("test_features", test_features, dim=train_features.shape[1])
  train_labels = _check_labels("train_labels", train_labels, train_features.shape[0], "train_features")
  test_labels = _check_labels("test_labels", test_labels, test_features.shape[0], "test_features")
  top = int(max(train_labels.max(), test_labels.max()))
  if num_classes is None:
    num_classes = top + 1
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
  if top >= num_classes:
    raise ValueError(
        f"train_labels and test_labels must lie in [0, num_classes={num_classes}); got a label {top}.")
  shots = tuple(shots)
  if not shots:
    raise ValueError("shots must name at least one shot count; got an empty sequence.")
  for s in shots:
    if not isinstance(s, (int, np.integer)) or s < 1:
      raise ValueError(f"shots must hold positive integers; got {s!r}.")
  if not (np.isfinite(l2_reg) and l2_reg > 0):
    raise ValueError(f"l2_reg must be finite and positive; got {l2_reg!r}.")
  if not isinstance(num_repeats, (int, np.integer)) or num_repeats < 1:
    raise ValueError(f"num_repeats must be a positive integer; got {num_repeats!r}.")
  counts = np.bincount(train_labels, minlength=num_classes)
  short = {c: int(counts[c]) for c in range(num_classes) if counts[c] < max(shots)}
  if short:
    first = next(iter(short))
    raise ValueError(
        f"shots={max(shots)} needs {max(shots)} train examples of every class, but class {first} has "
        f"{short[first]} (classes with too few, as class: count: {short}).")

  members = [np.flatnonzero(train_labels == c) for c in range(num_classes)]
  accs = {int(s): [] for s in shots}
  for r in range(num_repeats):
    rng = np.random.default_rng(seed + r)
    perms = [rng.permutation(m) for m in members]
    for s in accs:
      idx = np.concatenate([p[:s] for p in perms])
      weights, mean, std = _ridge_fit(train_features[idx], train_labels[idx], num_classes=num_classes,
                                     l2_reg=l2_reg)
      accs[s].append(_accuracy(test_features, test_labels, weights, mean, std))
  return {int(s): float(np.mean(accs[int(s)])) for s in shots}
