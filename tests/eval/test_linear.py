"""Tests of rl.eval.linear: L-BFGS logistic regression against scikit-learn, and the probe protocol."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from rl.eval import linear


# Most tests share one problem shape, so the jitted solver compiles once per test process.
N, D, C = 300, 8, 3


def _gaussians(seed, n_train=N, n_test=0, num_classes=C, dim=D, scale=1.0):
  """Isotropic Gaussian classes with random means; `scale` sets the overlap."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(num_classes, dim)) * scale
  y = rng.integers(0, num_classes, n_train + n_test)
  # Unequal per-dimension scales and offsets, so standardisation matters.
  x = (centers[y] + rng.normal(size=(y.size, dim))) * rng.uniform(0.1, 10.0, dim) + rng.normal(
      size=dim) * 5.0
  x = x.astype(np.float32)
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_fit_matches_sklearn_optimum():
  x, y, _, _ = _gaussians(0, scale=0.7)
  x = StandardScaler().fit_transform(x)
  l2 = 1e-2
  fit = linear.fit_logistic_regression(x, y, num_classes=C, l2=l2, tol=1e-6)
  ref = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=10_000).fit(x, y)
  assert fit.weights.shape == (D, C) and fit.bias.shape == (C,)
  np.testing.assert_allclose(fit.weights.T, ref.coef_, atol=2e-3)
  # The intercepts are identified only up to a common shift.
  np.testing.assert_allclose(fit.bias - fit.bias.mean(), ref.intercept_ - ref.intercept_.mean(),
                             atol=2e-3)
  logits = x @ fit.weights + fit.bias
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  np.testing.assert_allclose(probs, ref.predict_proba(x), atol=1e-3)


def test_fit_reaches_a_stationary_point():
  x, y, _, _ = _gaussians(1, scale=0.5)
  x = StandardScaler().fit_transform(x).astype(np.float64)
  l2 = 1e-3
  fit = linear.fit_logistic_regression(x, y, num_classes=C, l2=l2, tol=1e-6)
  assert fit.num_iterations < 500  # stopped by the tolerance, not the iteration cap
  # Gradient of the objective in float64, written out independently of JAX.
  w, b = fit.weights.astype(np.float64), fit.bias.astype(np.float64)
  logits = x @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  residual = (p - np.eye(C)[y]) / len(y)
  grad = np.concatenate([(x.T @ residual + l2 * w).ravel(), residual.sum(0)])
  assert np.linalg.norm(grad) < 1e-4
  assert fit.grad_norm < 2e-6  # the tolerance, up to float32 rounding of the recomputed gradient


def test_sample_weight_zero_rows_are_ignored():
  x, y, _, _ = _gaussians(2, scale=0.6)
  x = StandardScaler().fit_transform(x)
  mask = np.zeros(N, np.float32)
  mask[:200] = 1.0
  masked = linear.fit_logistic_regression(x, y, num_classes=C, l2=1e-2, sample_weight=mask)
  subset = linear.fit_logistic_regression(x[:200], y[:200], num_classes=C, l2=1e-2)
  np.testing.assert_allclose(masked.weights, subset.weights, atol=1e-4)


def test_probe_accuracy_matches_sklearn():
  train_x, train_y, test_x, test_y = _gaussians(3, n_test=1000, scale=0.5)
  scaler = StandardScaler().fit(train_x)
  # The searched l2, and a weak fixed one.
  for grid in (linear.DEFAULT_L2_GRID, (1e-4,)):
    out = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C, l2_grid=grid)
    ref = LogisticRegression(C=1.0 / (out["l2"] * len(train_y)), max_iter=5000).fit(
        scaler.transform(train_x), train_y)
    ref_acc = ref.score(scaler.transform(test_x), test_y)
    assert 0.5 < ref_acc < 0.97  # the classes overlap, so this is not trivially 1.0 == 1.0
    assert abs(out["test_accuracy"] - ref_acc) <= 0.02
    assert abs(out["train_accuracy"] - ref.score(scaler.transform(train_x), train_y)) <= 0.02


def test_probe_selects_l2_on_held_out_accuracy():
  train_x, train_y, test_x, test_y = _gaussians(4, n_test=100, scale=0.4)
  grid = (1e-4, 1e-2, 1.0)
  out = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C, l2_grid=grid)
  assert set(out["val_accuracies"]) == set(grid)
  best = max(out["val_accuracies"].values())
  assert out["val_accuracy"] == best
  assert out["l2"] == max(l2 for l2, acc in out["val_accuracies"].items() if acc == best)
  assert all(0.0 <= acc <= 1.0 for acc in out["val_accuracies"].values())
  # A single l2 skips the search.
  single = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C, l2_grid=(1e-2,))
  assert single["l2"] == 1e-2 and single["val_accuracies"] == {} and np.isnan(single["val_accuracy"])


def test_separable_blobs_and_random_labels():
  train_x, train_y, test_x, test_y = _gaussians(5, n_test=200, scale=8.0)
  out = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C)
  assert out["test_accuracy"] == 1.0 and out["train_accuracy"] == 1.0
  # Every l2 is perfect on held-out data, so the tie goes to the strongest penalty.
  assert out["l2"] == max(linear.DEFAULT_L2_GRID)

  rng = np.random.default_rng(6)
  noise = linear.linear_probe(rng.normal(size=(N, D)), rng.integers(0, C, N),
                              rng.normal(size=(1000, D)), rng.integers(0, C, 1000), num_classes=C)
  assert 0.27 < noise["test_accuracy"] < 0.40  # chance is 1/3, std ~0.015


def test_standardisation_uses_train_statistics_only():
  # Classes 0, 1, 2 sit at -1, 0, +1 on feature 0; the other features are noise. The test set is
  # shifted by +3 along feature 0: standardised with the train statistics every test point lands beyond
  # class 2 (accuracy 1/3); standardised with its own statistics the shift would vanish (accuracy 1).
  rng = np.random.default_rng(7)

  def make(shift):
    y = np.repeat(np.arange(C), N // C)
    x = rng.normal(size=(N, D))
    x[:, 0] = y - 1.0 + 0.05 * rng.normal(size=N) + shift
    return x, y

  train_x, train_y = make(0.0)
  test_x, test_y = make(3.0)
  out = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C)
  assert out["train_accuracy"] == 1.0
  assert out["test_accuracy"] == pytest.approx(1.0 / 3.0)


def test_probe_is_invariant_to_per_dimension_affine_maps_and_deterministic():
  train_x, train_y, test_x, test_y = _gaussians(8, n_test=200, scale=0.5)
  out = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C, seed=1)
  again = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C, seed=1)
  assert out == again
  scale = np.linspace(0.5, 20.0, D)
  offset = np.linspace(-30.0, 30.0, D)
  moved = linear.linear_probe(train_x * scale + offset, train_y, test_x * scale + offset, test_y,
                              num_classes=C, seed=1)
  assert moved["l2"] == out["l2"]
  assert abs(moved["test_accuracy"] - out["test_accuracy"]) <= 1.0 / 200  # float32 near-ties only


def test_constant_feature_does_not_break_standardisation():
  train_x, train_y, test_x, test_y = _gaussians(9, n_test=100, dim=D - 1, scale=3.0)
  train_x = np.concatenate([train_x, np.full((N, 1), 7.0, np.float32)], 1)
  test_x = np.concatenate([test_x, np.full((100, 1), 7.0, np.float32)], 1)
  out = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=C)
  assert np.isfinite(out["grad_norm"]) and out["test_accuracy"] > 0.9


def test_errors_name_the_argument():
  train_x, train_y, test_x, test_y = _gaussians(10, 40, 10, 2, 3, scale=1.0)
  kwargs = dict(num_classes=2, l2_grid=(1e-2,))
  bad = train_x.copy()
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match="train_x contains NaN or inf"):
    linear.linear_probe(bad, train_y, test_x, test_y, **kwargs)
  bad = test_x.copy()
  bad[0, 0] = np.inf
  with pytest.raises(ValueError, match="test_x contains NaN or inf"):
    linear.linear_probe(train_x, train_y, bad, test_y, **kwargs)
  with pytest.raises(ValueError, match=r"test_x must have feature dimension 3.*\(10, 4\)"):
    linear.linear_probe(train_x, train_y, np.zeros((10, 4)), test_y, **kwargs)
  with pytest.raises(ValueError, match=r"train_y must have shape \[40\].*\(39,\)"):
    linear.linear_probe(train_x, train_y[:39], test_x, test_y, **kwargs)
  with pytest.raises(ValueError, match="test_y must lie in"):
    linear.linear_probe(train_x, train_y, test_x, test_y + 2, **kwargs)
  with pytest.raises(ValueError, match="train_y must hold integer"):
    linear.linear_probe(train_x, train_y.astype(np.float32), test_x, test_y, **kwargs)
  with pytest.raises(ValueError, match="num_classes"):
    linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=1)
  with pytest.raises(ValueError, match="l2_grid"):
    linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=2, l2_grid=())
  with pytest.raises(ValueError, match="l2_grid"):
    linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=2, l2_grid=(-1.0,))
  with pytest.raises(ValueError, match="holdout_fraction"):
    linear.linear_probe(train_x, train_y, test_x, test_y, num_classes=2, holdout_fraction=1.0)
  with pytest.raises(ValueError, match="max_iter"):
    linear.fit_logistic_regression(train_x, train_y, num_classes=2, l2=0.1, max_iter=0)
  with pytest.raises(ValueError, match="sample_weight"):
    linear.fit_logistic_regression(train_x, train_y, num_classes=2, l2=0.1,
                                   sample_weight=np.ones(39))
