"""Linear probe: multinomial logistic regression on frozen, standardised features.

The linear evaluation protocol of self-supervised learning (Zhang et al. 2016; Kolesnikov et al. 2019,
"Revisiting Self-Supervised Visual Representation Learning", https://arxiv.org/abs/1901.09005; the
L-BFGS variant used by CLIP, Radford et al. 2021, sec. 3.2): the encoder is frozen, features are
standardised with the mean and std of the train features only, and an L2-regularised softmax
classifier is fit; its test accuracy measures how linearly separable the representation is.

Why full-batch L-BFGS (`optax.lbfgs` with its zoom line search) rather than SGD:
  * the objective is convex, so L-BFGS reaches the exact optimum up to a gradient tolerance; the result
    depends on neither a learning rate, a schedule, a batch order nor the initialisation;
  * it is deterministic, and it runs in JAX, on the accelerator that holds the features;
  * it is the algorithm of scikit-learn's `LogisticRegression(solver="lbfgs")`, so numbers can be checked
    against it (the tests do).
The L2 strength is chosen from a small grid by accuracy on a seeded held-out part of the train set, and
the classifier is then refit on all train features with that strength.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpy.typing import ArrayLike

from rl.eval import _checks

# Penalty grid on the *mean* cross-entropy: 0.5 * l2 * ||W||^2. In scikit-learn terms C = 1 / (l2 * n);
# sklearn's default C=1 on n=5000 is l2=2e-4, inside the grid.
DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class LogisticRegressionFit(NamedTuple):
  """A fitted softmax classifier `logits = x @ weights + bias`.

  Attributes:
    weights: `[d, num_classes]` float32 array.
    bias: `[num_classes]` float32 array.
    num_iterations: L-BFGS iterations run.
    grad_norm: L2 norm of the objective's gradient at the returned parameters.
  """
  weights: np.ndarray
  bias: np.ndarray
  num_iterations: int
  grad_norm: float


def _check_features(name: str, x, dim: int | None = None) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"{name} must have shape [n, d] with n >= 1; got shape {x.shape}.")
  if dim is not None and x.shape[1] != dim:
    raise ValueError(
        f"{name} must have feature dimension {dim} like train_x; got shape {x.shape}.")
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
  _checks.check_finite(name, x)
  return x


def _check_labels(name: str, y, n: int, num_classes: int) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(f"{name} must have shape [{n}] to match the features; got shape {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class ids; got dtype {y.dtype}.")
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(
        f"{name} must lie in [0, num_classes={num_classes}); got values in [{y.min()}, {y.max()}].")
  return y.astype(np.int32)


def _check_num_classes(num_classes) -> int:
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
  return int(num_classes)


def _objective(params, x, y, sample_weight, l2, num_classes):
  weights, bias = params
  logits = jnp.dot(x, weights, precision=jax.lax.Precision.HIGHEST) + bias
  # log_softmax is a log-sum-exp, stable for the large logits of separable data.
  nll = -jnp.sum(jax.nn.one_hot(y, num_classes) * jax.nn.log_softmax(logits), axis=-1)
  data = jnp.sum(sample_weight * nll) / jnp.sum(sample_weight)
  # The bias is not penalised, as in scikit-learn.
  return data + 0.5 * l2 * jnp.sum(jnp.square(weights))


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iter"))
def _lbfgs_fit(x, y, sample_weight, l2, tol, *, num_classes, max_iter):
  fun = functools.partial(_objective, x=x, y=y, sample_weight=sample_weight, l2=l2,
                          num_classes=num_classes)
  solver = optax.lbfgs()
  # Reuses the value and gradient the line search already computed at the accepted point.
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=fun)
    return optax.apply_updates(params, updates), state

  def keep_going(carry):
    _, state = carry
    count = optax.tree.get(state, "count")
    grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
    # At count 0 the stored gradient is a zero placeholder, not the gradient at the start.
    return (count == 0) | ((count < max_iter) & (grad_norm >= tol))

  params = (jnp.zeros((x.shape[1], num_classes), jnp.float32), jnp.zeros((num_classes,), jnp.float32))
  params, state = jax.lax.while_loop(keep_going, step, (params, solver.init(params)))
  grad_norm = optax.tree.norm(jax.grad(fun)(params))
  return params, optax.tree.get(state, "count"), grad_norm


def fit_logistic_regression(x: ArrayLike, y: ArrayLike, *, num_classes: int, l2: float,
                            max_iter: int = 500, tol: float = 1e-5,
                            sample_weight: ArrayLike | None = None) -> LogisticRegressionFit:
  """Fits L2-regularised multinomial logistic regression with full-batch L-BFGS.

  Minimises, from zero parameters,

    sum_i w_i * CE(softmax(x_i @ W + b), y_i) / sum_i w_i + 0.5 * l2 * ||W||_F^2,

  which is scikit-learn's `LogisticRegression(C=1 / (l2 * n))` objective when all `w_i = 1`. The features
  are used as given (`linear_probe` standardises them first).

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> fit = fit_logistic_regression(z, y, num_classes=2, l2=1e-3)
    >>> fit.weights.shape, fit.bias.shape
    ((2, 2), (2,))
    >>> np.argmax(z @ fit.weights + fit.bias, axis=1)
    array([0, 0, 1, 1])

  Args:
    x: `[n, d]` features.
    y: `[n]` integer labels in `[0, num_classes)`.
    num_classes: number of classes (>= 2).
    l2: penalty strength (>= 0) on the weights; the bias is not penalised.
    max_iter: maximum L-BFGS iterations.
    tol: stop when the L2 norm of the gradient falls below this.
    sample_weight: optional `[n]` non-negative weights, e.g. a 0/1 mask that keeps a held-out split out of
      the fit without changing array shapes (so one compilation serves every split).

  Returns:
    A `LogisticRegressionFit` with the parameters and the solver's iteration count and final gradient norm.

  Raises:
    ValueError: on wrong shapes, non-finite values, labels out of range or bad hyper-parameters.
  """
  num_classes = _check_num_classes(num_classes)
  x = _check_features("x", x)
  y = _check_labels("y", y, x.shape[0], num_classes)
  _check_solver_args(max_iter, tol)
  _check_l2("l2", l2)
  if sample_weight is None:
    sample_weight = np.ones(x.shape[0], np.float32)
  sample_weight = np.asarray(sample_weight)
  if sample_weight.shape != (x.shape[0],):
    raise ValueError(
        f"sample_weight must have shape [{x.shape[0]}]; got shape {sample_weight.shape}.")
  if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0) or sample_weight.sum() <= 0:
    raise ValueError("sample_weight must be finite, non-negative and not all zero.")
  return _fit(jnp.asarray(x, jnp.float32), jnp.asarray(y), jnp.asarray(sample_weight, jnp.float32), l2,
              num_classes=num_classes, max_iter=max_iter, tol=tol)


def _check_solver_args(max_iter, tol):
  if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
    raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")
  if not tol > 0:
    raise ValueError(f"tol must be positive; got {tol!r}.")


def _check_l2(name, l2):
  if not np.isfinite(l2) or l2 < 0:
    raise ValueError(f"{name} must be finite and >= 0; got {l2!r}.")


def _fit(x: jax.Array, y: jax.Array, sample_weight: jax.Array, l2: float, *, num_classes: int,
         max_iter: int, tol: float) -> LogisticRegressionFit:
  """`fit_logistic_regression` on validated arrays already on the device (moved there once per probe)."""
  (weights, bias), count, grad_norm = _lbfgs_fit(
      x, y, sample_weight, jnp.float32(l2), jnp.float32(tol), num_classes=num_classes,
      max_iter=int(max_iter))
  return LogisticRegressionFit(np.asarray(weights), np.asarray(bias), int(count), float(grad_norm))


def _accuracy(fit: LogisticRegressionFit, x: np.ndarray, y: np.ndarray) -> float:
  # float64 on the host: argmax of float32 logits can flip on near-ties between platforms.
  logits = x.astype(np.float64) @ fit.weights.astype(np.float64) + fit.bias
  return float(np.mean(np.argmax(logits, axis=-1) == y))


def linear_probe(train_x: ArrayLike, train_y: ArrayLike, test_x: ArrayLike, test_y: ArrayLike, *,
                 num_classes: int, l2_grid: Sequence[float] = DEFAULT_L2_GRID, max_iter: int = 500,
                 holdout_fraction: float = 0.2, tol: float = 1e-5, seed: int = 0) -> dict[str, Any]:
  """Linear-probe accuracy of frozen features.

  1. Standardise: `(x - mean) / std` with the per-dimension mean and std of `train_x` only (constant
     dimensions get std 1), applied to both sets.
  2. Hold out a seeded `holdout_fraction` of the train rows; fit `fit_logistic_regression` on the rest
     for every `l2` in `l2_grid`; keep the `l2` with the best held-out accuracy (ties go to the larger
     `l2`, the simpler model).
  3. Refit on all train rows with that `l2`; report train and test accuracy.

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> train_z, train_y = np.concatenate([z, z + 0.05]), np.concatenate([y, y])
    >>> out = linear_probe(train_z, train_y, z, y, num_classes=2, l2_grid=(1e-3, 1.0))
    >>> out["test_accuracy"], out["l2"]
    (1.0, 1.0)

  Args:
    train_x: `[n_train, d]` frozen train features.
    train_y: `[n_train]` integer labels in `[0, num_classes)`.
    test_x: `[n_test, d]` frozen test features.
    test_y: `[n_test]` integer labels.
    num_classes: number of classes (>= 2).
    l2_grid: candidate penalties on the mean cross-entropy, `0.5 * l2 * ||W||^2`
      (`C = 1 / (l2 * n)` in scikit-learn).
    max_iter: maximum L-BFGS iterations per fit.
    holdout_fraction: share of the train rows held out to choose `l2` (unused with a single `l2`).
    tol: gradient-norm tolerance of L-BFGS.
    seed: seed of the held-out split.

  Returns:
    A dict with 'test_accuracy', 'train_accuracy' (in `[0, 1]`), 'l2' (the chosen penalty),
    'val_accuracy' (its held-out accuracy, NaN with a single `l2`), 'val_accuracies' (`{l2: accuracy}`),
    'num_iterations' and 'grad_norm' (of the final fit).

  Raises:
    ValueError: naming the argument, on wrong shapes, NaN/inf values, labels out of range or bad
      hyper-parameters.
  """
  num_classes = _check_num_classes(num_classes)
  train_x = _check_features("train_x", train_x)
  test_x = _check_features("test_x", test_x, dim=train_x.shape[1])
  train_y = _check_labels("train_y", train_y, train_x.shape[0], num_classes)
  test_y = _check_labels("test_y", test_y, test_x.shape[0], num_classes)
  l2_grid = tuple(float(v) for v in l2_grid)
  if not l2_grid:
    raise ValueError("l2_grid must hold at least one penalty; got an empty sequence.")
  for l2 in l2_grid:
    _check_l2("l2_grid", l2)
  _check_solver_args(max_iter, tol)
  if not 0 < holdout_fraction < 1:
    raise ValueError(f"holdout_fraction must lie in (0, 1); got {holdout_fraction!r}.")

  mean = train_x.mean(axis=0, dtype=np.float64)
  std = train_x.std(axis=0, dtype=np.float64)
  std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
  train_z = ((train_x - mean) / std).astype(np.float32)
  test_z = ((test_x - mean) / std).astype(np.float32)
  fit_kwargs = dict(num_classes=num_classes, max_iter=max_iter, tol=tol)
  x_dev, y_dev = jnp.asarray(train_z), jnp.asarray(train_y)

  n = train_x.shape[0]
  val_accuracies = {}
  if len(l2_grid) > 1:
    n_val = int(round(holdout_fraction * n))
    if n_val < 1 or n - n_val < 1:
      raise ValueError(
          f"train_x has {n} rows, too few to hold out holdout_fraction={holdout_fraction} of them.")
    val_idx = np.random.default_rng(seed).permutation(n)[:n_val]
    fit_mask = np.ones(n, np.float32)
    fit_mask[val_idx] = 0.0
    fit_mask = jnp.asarray(fit_mask)
    for l2 in l2_grid:
      fit = _fit(x_dev, y_dev, fit_mask, l2, **fit_kwargs)
      val_accuracies[l2] = _accuracy(fit, train_z[val_idx], train_y[val_idx])
    best = max(val_accuracies.values())
    l2 = max(v for v, acc in val_accuracies.items() if acc == best)
  else:
    (l2,) = l2_grid

  fit = _fit(x_dev, y_dev, jnp.ones((n,), jnp.float32), l2, **fit_kwargs)
  return {
      "test_accuracy": _accuracy(fit, test_z, test_y),
      "train_accuracy": _accuracy(fit, train_z, train_y),
      "l2": l2,
      "val_accuracy": val_accuracies.get(l2, float("nan")),
      "val_accuracies": val_accuracies,
      "num_iterations": fit.num_iterations,
      "grad_norm": fit.grad_norm,
  }
