"""Weighted k-nearest-neighbour evaluation of frozen features.

The classifier of Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination" (NPID, https://arxiv.org/abs/1805.01978), sec. 3.4, used by most self-supervised papers
since (InstDisc, MoCo, DINO, solo-learn): features are L2-normalised, the `k` train examples with the
highest cosine similarity to a test example vote for their class with weight `exp(sim / temperature)`,
and the class with the largest total vote wins.

The similarity matrix is computed in chunks of test rows, each reduced at once with `lax.top_k`, so
memory is `O(chunk_size * n_train)` rather than `O(n_test * n_train)`.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from rl import losses
from rl.eval import _checks


def _check_features(name: str, x) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [n, d]; got shape {x.shape}.")
  if x.shape[0] == 0:
    raise ValueError(f"{name} must have at least one row; got shape {x.shape}.")
  if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
    raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
  _checks.check_finite(name, x)
  return x


def _check_labels(name: str, y, n: int, num_classes: int) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(f"{name} must have shape [{n}] to match the features; got shape {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class ids; got dtype {y.dtype}.")
  if n and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(
        f"{name} must lie in [0, num_classes={num_classes}); got values in [{y.min()}, {y.max()}].")
  return y.astype(np.int32)


def _check_args(train_features, train_labels, test_features, num_classes, ks, temperature,
                chunk_size):
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
  train_features = _check_features("train_features", train_features)
  test_features = _check_features("test_features", test_features)
  if train_features.shape[1] != test_features.shape[1]:
    raise ValueError(
        "train_features and test_features must have the same feature dimension; got shapes "
        f"{train_features.shape} and {test_features.shape}.")
  n_train = train_features.shape[0]
  train_labels = _check_labels("train_labels", train_labels, n_train, num_classes)
  for k in ks:
    if not isinstance(k, (int, np.integer)) or k < 1:
      raise ValueError(f"k must be a positive integer; got k={k!r}.")
    if k > n_train:
      raise ValueError(
          f"k={k} is larger than the train set size {n_train}; use k <= {n_train}.")
  if not temperature > 0:
    raise ValueError(f"temperature must be positive; got {temperature!r}.")
  if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}.")
  return train_features, train_labels, test_features


def _normalize(x: jax.Array) -> jax.Array:
  return losses.l2_normalize(jnp.asarray(x, jnp.float32))


@functools.partial(jax.jit, static_argnames=("num_classes", "ks", "chunk_size"))
def _knn_votes(train_features, train_labels, test_features, temperature, *, num_classes, ks,
               chunk_size):
  """Normalised class votes, one `[n_test, num_classes]` array per k in `ks`."""
  train = _normalize(train_features)
  test = _normalize(test_features)
  n_test = test.shape[0]
  num_chunks = -(-n_test // chunk_size)
  # Padding rows are zero vectors; their votes are computed and dropped.
  test = jnp.pad(test, ((0, num_chunks * chunk_size - n_test), (0, 0)))
  chunks = test.reshape(num_chunks, chunk_size, test.shape[1])
  k_max = max(ks)

  def one_chunk(chunk):
    sim = jnp.matmul(chunk, train.T, precision=jax.lax.Precision.HIGHEST)
    # Sorted, largest first. The barrier keeps XLA:CPU from rewriting TopK into a full sort of every
    # [n_train] row (about 15x slower at n_train = 50k), which it does when it fuses the consumers in.
    top_sim, top_idx = jax.lax.optimization_barrier(jax.lax.top_k(sim, k_max))
    # Subtracting the row maximum rescales every weight of a row by the same factor, so the vote
    # shares are exactly NPID's, and a small temperature cannot overflow exp.
    weights = jnp.exp((top_sim - top_sim[:, :1]) / temperature)
    one_hot = jax.nn.one_hot(train_labels[top_idx], num_classes, dtype=jnp.float32)
    out = []
    for k in ks:
      votes = jnp.einsum("nk,nkc->nc", weights[:, :k], one_hot[:, :k])
      out.append(votes / jnp.sum(votes, axis=-1, keepdims=True))
    return tuple(out)

  votes = jax.lax.map(one_chunk, chunks)
  return tuple(v.reshape(-1, num_classes)[:n_test] for v in votes)


def knn_scores(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike, *,
               num_classes: int, k: int = 200, temperature: float = 0.07,
               chunk_size: int = 1024) -> np.ndarray:
  """Per-class vote shares of the NPID weighted k-nearest-neighbour classifier.

  For a test feature `q` and L2-normalised train features `x_i` with labels `y_i`, the vote of class `c` is

    score_c(q) = sum_{i in top_k(q)} exp(cos(q, x_i) / temperature) * [y_i == c],

  returned divided by its sum over classes (the shares; the argmax is unchanged).

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> knn_scores(z, y, z, num_classes=2, k=2).round(3)
    array([[1., 0.],
           [1., 0.],
           [0., 1.],
           [0., 1.]]...)

  Args:
    train_features: `[n_train, d]` features of the labelled (train) set.
    train_labels: `[n_train]` integer labels in `[0, num_classes)`.
    test_features: `[n_test, d]` features to classify.
    num_classes: number of classes.
    k: number of neighbours; NPID and solo-learn use 200, DINO uses 20.
    temperature: temperature of the vote weights; 0.07 as in NPID.
    chunk_size: test rows per block of the `[chunk_size, n_train]` similarity matrix.

  Returns:
    `[n_test, num_classes]` float32 NumPy array of vote shares; each row sums to 1.

  Raises:
    ValueError: on wrong shapes, non-finite features, labels out of range, or `k > n_train`.
  """
  train_features, train_labels, test_features = _check_args(
      train_features, train_labels, test_features, num_classes, (k,), temperature, chunk_size)
  (votes,) = _knn_votes(train_features, train_labels, test_features, float(temperature),
                        num_classes=int(num_classes), ks=(int(k),),
                        chunk_size=int(min(chunk_size, test_features.shape[0])))
  return np.asarray(votes)


def knn_predict(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike, *,
                num_classes: int, k: int = 200, temperature: float = 0.07,
                chunk_size: int = 1024) -> np.ndarray:
  """Predicts labels with the NPID weighted kNN classifier (Wu et al. 2018).

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> knn_predict(z, y, z[::-1], num_classes=2, k=2)
    array([1, 1, 0, 0]...)

  Args:
    train_features: `[n_train, d]` features of the labelled (train) set.
    train_labels: `[n_train]` integer labels in `[0, num_classes)`.
    test_features: `[n_test, d]` features to classify.
    num_classes: number of classes.
    k: number of neighbours (200 as in NPID).
    temperature: temperature of the vote weights `exp(sim / temperature)` (0.07 as in NPID).
    chunk_size: test rows per block of the similarity matrix.

  Returns:
    `[n_test]` int32 NumPy array of predicted labels (ties go to the smallest class id).

  Raises:
    ValueError: on wrong shapes, non-finite features, labels out of range, or `k > n_train`.
  """
  scores = knn_scores(train_features, train_labels, test_features, num_classes=num_classes, k=k,
                      temperature=temperature, chunk_size=chunk_size)
  return np.argmax(scores, axis=-1).astype(np.int32)


def knn_accuracy(train_features: ArrayLike, train_labels: ArrayLike, test_features: ArrayLike,
                 test_labels: ArrayLike, *, num_classes: int, ks: Sequence[int] = (20, 200),
                 temperature: float = 0.07, chunk_size: int = 1024) -> dict[int, float]:
  """Top-1 accuracy of the NPID weighted kNN classifier for several k at once.

  The top `max(ks)` neighbours are found once per chunk and every k reuses their prefix.

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> knn_accuracy(z, y, z, y, num_classes=2, ks=(1, 3))
    {1: 1.0, 3: 1.0}

  Args:
    train_features: `[n_train, d]` features of the labelled (train) set.
    train_labels: `[n_train]` integer labels in `[0, num_classes)`.
    test_features: `[n_test, d]` features to classify.
    test_labels: `[n_test]` integer labels in `[0, num_classes)`.
    num_classes: number of classes.
    ks: neighbour counts to evaluate (20 as in DINO, 200 as in NPID).
    temperature: temperature of the vote weights (0.07 as in NPID).
    chunk_size: test rows per block of the similarity matrix.

  Returns:
    `{k: accuracy}` with accuracies in `[0, 1]` as Python floats.

  Raises:
    ValueError: on wrong shapes, non-finite features, labels out of range, or any `k > n_train`.
  """
  ks = tuple(ks)
  if not ks:
    raise ValueError("ks must name at least one k; got an empty sequence.")
  train_features, train_labels, test_features = _check_args(
      train_features, train_labels, test_features, num_classes, ks, temperature, chunk_size)
  test_labels = _check_labels("test_labels", test_labels, test_features.shape[0], num_classes)
  unique_ks = tuple(sorted({int(k) for k in ks}))
  votes = _knn_votes(train_features, train_labels, test_features, float(temperature),
                     num_classes=int(num_classes), ks=unique_ks,
                     chunk_size=int(min(chunk_size, test_features.shape[0])))
  acc = {k: float(np.mean(np.argmax(np.asarray(v), axis=-1) == test_labels))
         for k, v in zip(unique_ks, votes)}
  return {int(k): acc[int(k)] for k in ks}
