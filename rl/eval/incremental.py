"""Stability and plasticity of a representation across a class-incremental split.

After Kim & Han, "On the Stability-Plasticity Dilemma of Class-Incremental Learning" (CVPR 2023,
https://arxiv.org/abs/2304.01663), which measures the stability and plasticity of the *feature extractor* rather
than of a classifier: a fresh linear classifier is fit on frozen features and its accuracy is read on subsets of
classes (the old classes, seen in the first phase; the new ones, seen later), and the features of successive
models are compared with centred kernel alignment (CKA).

Here the classifier is `rl.eval.linear_probe` restricted to a class subset (`class_subset_probe`: train and test
examples of those classes only, labels renumbered), and the comparison of two phases is
`stability_plasticity`:

  stability             = acc_old(after) - acc_old(before)    (0: nothing forgotten; < 0: forgetting)
  plasticity            = acc_new(after) - acc_new(before)    (what training on the new classes added)
  plasticity_vs_random  = acc_new(after) - acc_new(random)
  forward_transfer      = acc_new(before) - acc_new(random)   (what the old classes alone taught about new ones)

Works on arrays only, like the rest of `rl.eval`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from rl.eval.linear import linear_probe


def _check_classes(classes: Sequence[int], name: str = "classes") -> np.ndarray:
  classes = np.asarray(classes)
  if classes.ndim != 1 or classes.size < 2 or not np.issubdtype(classes.dtype, np.integer):
    raise ValueError(f"{name} must be a sequence of at least 2 integer class ids; got {classes.tolist()!r}.")
  if np.unique(classes).size != classes.size:
    raise ValueError(f"{name} must hold distinct class ids; got {classes.tolist()!r}.")
  return np.sort(classes)


def class_subset_probe(train_x: ArrayLike, train_y: ArrayLike, test_x: ArrayLike, test_y: ArrayLike, *,
                       classes: Sequence[int], seed: int = 0, **probe_kwargs) -> dict[str, Any]:
  """Linear-probe accuracy of frozen features on a subset of the classes.

  Keeps the train and test examples whose label is in `classes`, renumbers those labels 0..k-1 (in ascending
  order of class id) and runs `rl.eval.linear_probe` with `num_classes=k`: a k-way classifier, so its accuracy
  does not suffer from confusions with classes outside the subset.

  Example:
    >>> x = np.concatenate([np.eye(4), np.eye(4) + 0.1]); y = np.tile(np.arange(4), 2)  # 4 classes
    >>> out = class_subset_probe(x, y, np.eye(4), np.arange(4), classes=(1, 3))
    >>> out["accuracy"], out["classes"], out["num_test"]
    (1.0, [1, 3], 2)

  Args:
    train_x: `[n_train, d]` frozen train features.
    train_y: `[n_train]` integer labels (any class ids; other classes are dropped).
    test_x: `[n_test, d]` frozen test features.
    test_y: `[n_test]` integer labels.
    classes: at least 2 distinct class ids; every one must occur in `train_y`.
    seed: seed of the probe's held-out split (`linear_probe`).
    **probe_kwargs: further `linear_probe` arguments (`l2_grid`, `max_iter`, ...).

  Returns:
    A dict with 'accuracy' (test accuracy on the subset, in [0, 1]), 'train_accuracy', 'l2' (the chosen
    penalty), 'num_train' and 'num_test' (examples of the subset) and 'classes' (sorted, as a list).

  Raises:
    ValueError: naming the argument, on bad `classes`, a class absent from `train_y`, no test example of the
      subset, or mismatched shapes.
  """
  classes = _check_classes(classes)
  train_x, train_y = np.asarray(train_x), np.asarray(train_y)
  test_x, test_y = np.asarray(test_x), np.asarray(test_y)
  for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
    if y.ndim != 1 or x.ndim != 2 or x.shape[0] != y.shape[0]:
      raise ValueError(f"{name}_x and {name}_y must have shapes [n, d] and [n]; got {x.shape} and {y.shape}.")
  missing = [int(c) for c in classes if not np.any(train_y == c)]
  if missing:
    raise ValueError(f"classes: no train example of class(es) {missing}; train_y has classes "
                     f"{np.unique(train_y).tolist()}.")
  keep_train, keep_test = np.isin(train_y, classes), np.isin(test_y, classes)
  if not keep_test.any():
    raise ValueError(f"classes: no test example of classes {classes.tolist()}; test_y has classes "
                     f"{np.unique(test_y).tolist()}.")
  out = linear_probe(train_x[keep_train], np.searchsorted(classes, train_y[keep_train]),
                     test_x[keep_test], np.searchsorted(classes, test_y[keep_test]),
                     num_classes=len(classes), seed=seed, **probe_kwargs)
  return {"accuracy": float(out["test_accuracy"]), "train_accuracy": float(out["train_accuracy"]),
          "l2": float(out["l2"]), "num_train": int(keep_train.sum()), "num_test": int(keep_test.sum()),
          "classes": classes.tolist()}


def old_new_accuracies(train_x: ArrayLike, train_y: ArrayLike, test_x: ArrayLike, test_y: ArrayLike, *,
                       old: Sequence[int], new: Sequence[int], seed: int = 0,
                       **probe_kwargs) -> dict[str, float]:
  """`class_subset_probe` accuracies on the old and on the new classes of one representation.

  Example:
    >>> x = np.concatenate([np.eye(4), np.eye(4) + 0.1]); y = np.tile(np.arange(4), 2)  # 4 classes
    >>> old_new_accuracies(x, y, np.eye(4), np.arange(4), old=(0, 1), new=(2, 3))
    {'old': 1.0, 'new': 1.0}

  Args:
    train_x: `[n_train, d]` frozen train features.
    train_y: `[n_train]` integer labels.
    test_x: `[n_test, d]` frozen test features.
    test_y: `[n_test]` integer labels.
    old: class ids of the first phase (at least 2).
    new: class ids of the later phase (at least 2, disjoint from `old`).
    seed: seed of the probes' held-out splits.
    **probe_kwargs: further `linear_probe` arguments.

  Returns:
    {'old': accuracy on the old classes, 'new': accuracy on the new classes}, each in [0, 1].

  Raises:
    ValueError: naming the argument, if `old` and `new` overlap or are otherwise invalid.
  """
  old_ids, new_ids = _check_classes(old, "old"), _check_classes(new, "new")
  both = np.intersect1d(old_ids, new_ids)
  if both.size:
    raise ValueError(f"old and new must be disjoint; both hold {both.tolist()}.")
  return {name: class_subset_probe(train_x, train_y, test_x, test_y, classes=ids, seed=seed,
                                   **probe_kwargs)["accuracy"]
          for name, ids in (("old", old_ids), ("new", new_ids))}


def stability_plasticity(random: Mapping[str, float], before: Mapping[str, float],
                         after: Mapping[str, float]) -> dict[str, float]:
  """The deltas between old/new-class accuracies of a representation before and after the new classes.

  Example:
    >>> d = stability_plasticity({"old": 0.5, "new": 0.5}, {"old": 0.9, "new": 0.6}, {"old": 0.8, "new": 0.9})
    >>> {k: round(v, 3) for k, v in d.items()}
    {'stability': -0.1, 'plasticity': 0.3, 'plasticity_vs_random': 0.4, 'forward_transfer': 0.1}

  Args:
    random: {'old': ..., 'new': ...} of a randomly initialised encoder (the reference).
    before: the same after the first phase (trained on the old classes only).
    after: the same after the second phase (continued on the new classes).

  Returns:
    {'stability': after.old - before.old, 'plasticity': after.new - before.new,
    'plasticity_vs_random': after.new - random.new, 'forward_transfer': before.new - random.new}.

  Raises:
    ValueError: if a mapping lacks the 'old' or 'new' key.
  """
  for name, row in (("random", random), ("before", before), ("after", after)):
    if not {"old", "new"} <= set(row):
      raise ValueError(f"{name} must have the keys 'old' and 'new'; got {sorted(row)}.")
  return {"stability": float(after["old"] - before["old"]),
          "plasticity": float(after["new"] - before["new"]),
          "plasticity_vs_random": float(after["new"] - random["new"]),
          "forward_transfer": float(before["new"] - random["new"])}


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
  """Linear centred kernel alignment of two representations of the same examples (Kornblith et al. 2019).

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F),  Xc, Yc: column-centred X and Y

  1 for representations equal up to an orthogonal transform and isotropic scaling; invariant to neither
  non-isotropic scaling nor non-orthogonal maps. Computed in float64.

  Example:
    >>> x = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]])
    >>> round(linear_cka(x, 2 * x + 1), 4)  # invariant to isotropic scaling and offset
    1.0
    >>> round(linear_cka(x, np.array([[0.], [1.], [0.], [1.]])), 4)  # unrelated to both columns
    0.0

  Args:
    x: `[n, d1]` features.
    y: `[n, d2]` features of the same n examples, in the same order.

  Returns:
    The CKA in [0, 1].

  Raises:
    ValueError: if the shapes do not match, or a representation is constant (zero after centring).
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
    raise ValueError(f"x and y must have shapes [n, d1] and [n, d2] with the same n >= 2; got {x.shape} and "
                     f"{y.shape}.")
  x, y = x - x.mean(0), y - y.mean(0)
  xx, yy = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
  if xx == 0 or yy == 0:
    raise ValueError("x and y must vary across examples; one of them is constant.")
  return float(np.linalg.norm(y.T @ x) ** 2 / (xx * yy))
