"""mi_infonce, mi_nwj, mi_dv, mi_jsd: hand cases, float64 references, a Gaussian toy with known MI, gradients."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import mutual_info as M

ESTIMATORS = ["mi_infonce", "mi_nwj", "mi_dv", "mi_jsd"]


# ------------------------------------------------------------------------------------------------------------
# float64 references, one entry at a time, from Poole et al. 2019 / Hjelm et al. 2019
# ------------------------------------------------------------------------------------------------------------

def _off(s):
  n = len(s)
  return [s[i, j] for i in range(n) for j in range(n) if i != j]


def infonce_reference(s):
  s = s.astype(np.float64)
  n = len(s)
  return np.mean([s[i, i] - np.log(sum(math.exp(s[i, j]) for j in range(n))) for i in range(n)]) + math.log(n)


def nwj_reference(s):
  s = s.astype(np.float64)
  return np.mean(np.diag(s)) - math.exp(-1) * np.mean([math.exp(v) for v in _off(s)])


def dv_reference(s):
  s = s.astype(np.float64)
  return np.mean(np.diag(s)) - math.log(np.mean([math.exp(v) for v in _off(s)]))


def jsd_reference(s):
  s = s.astype(np.float64)
  softplus = lambda v: math.log1p(math.exp(v))
  return np.mean([-softplus(-v) for v in np.diag(s)]) - np.mean([softplus(v) for v in _off(s)])


REFERENCES = {"mi_infonce": infonce_reference, "mi_nwj": nwj_reference, "mi_dv": dv_reference,
              "mi_jsd": jsd_reference}


def _scores(n=7, seed=0):
  rng = np.random.RandomState(seed)
  return (rng.randn(n, n) + 2.0 * np.eye(n)).astype(np.float32)


def gaussian_toy(n, d, rho, seed=0):
  """Pairs x ~ N(0, I), y = rho x + sqrt(1 - rho^2) e; returns the log density ratio matrix and the true MI.

  scores[i, j] = log p(y_j | x_i) - log p(y_j), the optimal critic (up to constants), and
  I(X; Y) = -d/2 log(1 - rho^2).
  """
  rng = np.random.RandomState(seed)
  x = rng.randn(n, d)
  y = rho * x + np.sqrt(1 - rho ** 2) * rng.randn(n, d)
  diff = y[None, :, :] - rho * x[:, None, :]
  log_ratio = (-np.sum(diff ** 2, -1) / (2 * (1 - rho ** 2)) - d / 2 * np.log(1 - rho ** 2)
               + np.sum(y ** 2, -1)[None, :] / 2)
  return log_ratio, -d / 2 * np.log(1 - rho ** 2)


# ------------------------------------------------------------------------------------------------------------
# 1. hand cases
# ------------------------------------------------------------------------------------------------------------

def test_hand_case_two_by_two():
  # s = [[2, 0], [1, 3]]: diagonal mean 2.5; off-diagonal entries 0 and 1.
  s = jnp.array([[2.0, 0.0], [1.0, 3.0]])
  # InfoNCE: rows: 2 - log(e^2 + 1) and 3 - log(e + e^3), averaged, + log 2.
  infonce = (2 - np.log(np.e ** 2 + 1) + 3 - np.log(np.e + np.e ** 3)) / 2 + np.log(2)
  np.testing.assert_allclose(M.mi_infonce(s), infonce, rtol=1e-6)
  # NWJ: 2.5 - e^{-1} (1 + e) / 2.   DV: 2.5 - log((1 + e) / 2).
  np.testing.assert_allclose(M.mi_nwj(s), 2.5 - (1 + np.e) / (2 * np.e), rtol=1e-6)
  np.testing.assert_allclose(M.mi_dv(s), 2.5 - np.log((1 + np.e) / 2), rtol=1e-6)
  # JSD: -(softplus(-2) + softplus(-3)) / 2 - (softplus(0) + softplus(1)) / 2.
  sp = lambda v: np.log1p(np.exp(v))
  np.testing.assert_allclose(M.mi_jsd(s), -(sp(-2) + sp(-3)) / 2 - (sp(0) + sp(1)) / 2, rtol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# 2. float64 references; 3. gradients; 4. jit; 7. bfloat16
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ESTIMATORS)
def test_matches_float64_reference(name):
  for seed in range(3):
    s = _scores(seed=seed) * (seed + 1)
    np.testing.assert_allclose(getattr(M, name)(s), REFERENCES[name](s), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_gradients_float64(name):
  with jax.enable_x64(True):
    check_grads(jax.jit(getattr(M, name)), (_scores(n=5).astype(np.float64),), order=1, modes=["rev"])


@pytest.mark.parametrize("name", ESTIMATORS)
def test_jit_equals_eager(name):
  s = _scores()
  fn = getattr(M, name)
  np.testing.assert_allclose(jax.jit(fn)(s), fn(s), rtol=1e-6)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_bfloat16_scores_give_float32(name):
  s = _scores()
  got = getattr(M, name)(jnp.asarray(s, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, REFERENCES[name](s), rtol=2e-2, atol=2e-2)


def test_large_scores_do_not_overflow():
  s = _scores() * 200.0  # e^{s} overflows float32; every estimator goes through log-sum-exp or softplus
  for name in ESTIMATORS[:1] + ESTIMATORS[2:]:
    assert np.isfinite(float(getattr(M, name)(s))), name
  np.testing.assert_allclose(M.mi_dv(s), dv_reference(s), rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# The Gaussian toy: true MI known, optimal critics known
# ------------------------------------------------------------------------------------------------------------

def test_bounds_recover_true_mi_with_optimal_critic():
  # d = 2, rho = 0.5: I = -log(0.75) = 0.288 nats << log 1000 = 6.9, so InfoNCE is nearly tight.
  r, mi = gaussian_toy(n=1000, d=2, rho=0.5)
  np.testing.assert_allclose(mi, -np.log(0.75))
  assert abs(float(M.mi_infonce(r)) - mi) < 0.05
  assert abs(float(M.mi_dv(r)) - mi) < 0.05
  assert abs(float(M.mi_dv(r + 3.0)) - float(M.mi_dv(r))) < 1e-4  # DV ignores a constant shift of the critic
  # NWJ's optimal critic is 1 + log ratio: E_P[1 + r] - e^{-1} E_Q[e^{1 + r}] = 1 + I - 1. With the plain log
  # ratio it is I - e^{-1} E_Q[ratio] = I - 1/e, looser by 1/e.
  nwj_opt = float(M.mi_nwj(r + 1.0))
  assert abs(nwj_opt - mi) < 0.05
  assert abs(float(M.mi_nwj(r)) - (mi - math.exp(-1))) < 0.05


def test_infonce_saturates_at_log_n():
  # d = 4, rho = 0.99: I = -2 log(1 - 0.9801) = 7.83 nats > log 16 = 2.77; InfoNCE stays below log n.
  r, mi = gaussian_toy(n=16, d=4, rho=0.99, seed=1)
  est = float(M.mi_infonce(r))
  assert mi > math.log(16) + 4
  assert math.log(16) - 0.3 < est <= math.log(16) + 1e-6


def test_jsd_estimator_range_and_ordering():
  # With the optimal critic the estimate approaches 2 JS - log 4, in [-log 4, 0]; more dependence -> larger value,
  # and a mis-scaled critic gives a lower value (it is a lower bound maximised at the log ratio).
  r_weak, _ = gaussian_toy(n=500, d=2, rho=0.3)
  r_strong, _ = gaussian_toy(n=500, d=2, rho=0.9)
  weak, strong = float(M.mi_jsd(r_weak)), float(M.mi_jsd(r_strong))
  assert -math.log(4) < weak < strong < 0
  assert float(M.mi_jsd(2.0 * r_strong)) < strong and float(M.mi_jsd(r_strong + 2.0)) < strong
  # Independent pairs and a zero critic: exactly -log 4.
  np.testing.assert_allclose(M.mi_jsd(jnp.zeros((5, 5))), -math.log(4), rtol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# 6. bad inputs
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ESTIMATORS)
def test_bad_inputs(name):
  fn = getattr(M, name)
  with pytest.raises(ValueError, match=r"scores must be a square \[n, n\] critic matrix .*got shape \(3, 4\)"):
    fn(jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match=r"scores must have shape \[n, n\]; got shape \(3,\)"):
    fn(jnp.zeros(3))
  with pytest.raises(ValueError, match="scores must be a floating array; got dtype int32"):
    fn(jnp.zeros((3, 3), jnp.int32))
  with pytest.raises(ValueError, match=r"scores needs n >= 2 .*got shape \(1, 1\)"):
    fn(jnp.zeros((1, 1)))
