"""Tests of rl.eval.metrics against explicit float64 formulas and known values."""
import itertools

import numpy as np
import pytest

from rl.eval import metrics


def _unit(z):
  return z / np.sqrt(np.sum(z * z, axis=1, keepdims=True))


def test_alignment_matches_formula():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
  u1, u2 = _unit(z1), _unit(z2)
  for alpha in (1.0, 2.0, 3.0):
    want = np.mean([np.sqrt(np.sum((a - b) ** 2)) ** alpha for a, b in zip(u1, u2)])
    assert metrics.alignment(z1, z2, alpha=alpha) == pytest.approx(want, rel=1e-12)


def test_alignment_known_values():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(10, 4))
  assert metrics.alignment(z, z) == 0.0
  # Positive rescaling of a row does not move it on the sphere.
  assert metrics.alignment(z, z * rng.uniform(0.1, 10.0, size=(10, 1))) == pytest.approx(0.0, abs=1e-12)
  assert metrics.alignment(z, -z) == pytest.approx(4.0)  # antipodal: ||2u||^2


def test_uniformity_matches_pairwise_formula():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(9, 4))
  u = _unit(z)
  for t in (0.5, 2.0, 10.0):
    pairs = [np.exp(-t * np.sum((u[i] - u[j]) ** 2))
             for i, j in itertools.product(range(9), repeat=2) if i != j]
    want = np.log(np.mean(pairs))
    assert metrics.uniformity(z, t=t) == pytest.approx(want, rel=1e-10)


def test_uniformity_known_values():
  z = np.tile([[0.3, -1.2, 2.0]], (6, 1))
  assert metrics.uniformity(z) == pytest.approx(0.0, abs=1e-12)  # collapse: every distance 0
  # Orthonormal rows: every squared distance is 2, so the value is -2t.
  assert metrics.uniformity(np.eye(5) * 3.0) == pytest.approx(-4.0)
  assert metrics.uniformity(np.eye(5), t=1.0) == pytest.approx(-2.0)
  # Two antipodal points: squared distance 4.
  assert metrics.uniformity(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-8.0)


def test_uniformity_subsample_is_seeded():
  rng = np.random.default_rng(3)
  z = rng.normal(size=(300, 8))
  full = metrics.uniformity(z)
  assert metrics.uniformity(z, max_samples=300) == full
  sub = metrics.uniformity(z, max_samples=120, seed=0)
  assert sub == metrics.uniformity(z, max_samples=120, seed=0)
  assert sub != metrics.uniformity(z, max_samples=120, seed=1)
  assert sub != full and sub == pytest.approx(full, abs=0.1)
  # The default subset size applies without being asked for.
  big = rng.normal(size=(metrics.UNIFORMITY_MAX_SAMPLES + 10, 4))
  assert metrics.uniformity(big) == metrics.uniformity(
      big, max_samples=metrics.UNIFORMITY_MAX_SAMPLES, seed=0)
  assert metrics.uniformity(big) != metrics.uniformity(big, max_samples=len(big))


def test_effective_rank_matches_formula():
  rng = np.random.default_rng(4)
  z = rng.normal(size=(20, 6)) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.1, 0.01])
  # Singular values from the eigenvalues of the Gram matrix, independently of np.linalg.svd.
  sigma = np.sqrt(np.clip(np.linalg.eigvalsh(z.T @ z), 0.0, None))
  p = sigma / sigma.sum() + 1e-7
  want = np.exp(-np.sum(p * np.log(p)))
  assert metrics.effective_rank(z) == pytest.approx(want, rel=1e-9)
  assert 1.0 < metrics.effective_rank(z) < 6.0


def test_effective_rank_known_values():
  rng = np.random.default_rng(5)
  rank_one = np.outer(rng.normal(size=50), rng.normal(size=8))
  assert metrics.effective_rank(rank_one) == pytest.approx(1.0, abs=1e-4)
  # Equal singular values give exactly the dimension (up to RankMe's epsilon).
  assert metrics.effective_rank(np.eye(7) * 2.0) == pytest.approx(7.0, rel=1e-5)
  d = 16
  isotropic = rng.normal(size=(4000, d))
  assert d - 0.5 < metrics.effective_rank(isotropic) <= d
  # Invariant to a global scale and to a rotation of the feature space.
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  assert metrics.effective_rank(3.0 * isotropic @ q) == pytest.approx(
      metrics.effective_rank(isotropic), rel=1e-9)


def test_collapse_std_matches_formula_and_known_values():
  rng = np.random.default_rng(6)
  z = rng.normal(size=(30, 5))
  u = _unit(z)
  want = np.mean([np.sqrt(np.mean((u[:, j] - u[:, j].mean()) ** 2)) for j in range(5)])
  assert metrics.collapse_std(z) == pytest.approx(want, rel=1e-12)
  # Collapse: every row points the same way, whatever its length.
  collapsed = np.outer(rng.uniform(0.5, 3.0, 40), rng.normal(size=6))
  assert metrics.collapse_std(collapsed) == pytest.approx(0.0, abs=1e-12)
  d = 64
  spread = metrics.collapse_std(rng.normal(size=(4000, d)))
  assert spread == pytest.approx(1.0 / np.sqrt(d), rel=0.05)


def test_feature_report_combines_the_metrics():
  rng = np.random.default_rng(7)
  z1 = rng.normal(size=(50, 8))
  z2 = z1 + 0.1 * rng.normal(size=(50, 8))
  report = metrics.feature_report(z1, z2)
  assert set(report) == {"alignment", "uniformity", "effective_rank", "collapse_std",
                         "collapse_std_reference"}
  assert report["alignment"] == metrics.alignment(z1, z2)
  assert report["uniformity"] == pytest.approx(
      0.5 * (metrics.uniformity(z1) + metrics.uniformity(z2)))
  assert report["effective_rank"] == pytest.approx(
      0.5 * (metrics.effective_rank(z1) + metrics.effective_rank(z2)))
  assert report["collapse_std"] == pytest.approx(
      0.5 * (metrics.collapse_std(z1) + metrics.collapse_std(z2)))
  assert report["collapse_std_reference"] == pytest.approx(1.0 / np.sqrt(8))
  assert all(isinstance(v, float) for v in report.values())


def test_errors_name_the_argument():
  rng = np.random.default_rng(8)
  z = rng.normal(size=(6, 3))
  with pytest.raises(ValueError, match=r"z1 and z2 must have the same shape.*\(6, 3\).*\(5, 3\)"):
    metrics.alignment(z, z[:5])
  with pytest.raises(ValueError, match=r"z2 must have shape \[n, d\]; got shape \(6,\)"):
    metrics.alignment(z, z[:, 0])
  with pytest.raises(ValueError, match="alpha"):
    metrics.alignment(z, z, alpha=0.0)
  with pytest.raises(ValueError, match=r"z must have at least 2 rows.*\(1, 3\)"):
    metrics.uniformity(z[:1])
  with pytest.raises(ValueError, match="t must be positive"):
    metrics.uniformity(z, t=-1.0)
  with pytest.raises(ValueError, match="max_samples"):
    metrics.uniformity(z, max_samples=1)
  bad = z.copy()
  bad[2, 2] = np.inf
  with pytest.raises(ValueError, match="z contains NaN or inf"):
    metrics.effective_rank(bad)
  with pytest.raises(ValueError, match="z contains NaN or inf"):
    metrics.collapse_std(bad)
  with pytest.raises(ValueError, match="z2 contains NaN"):
    metrics.feature_report(z, np.where(bad > 1e9, np.nan, bad))
