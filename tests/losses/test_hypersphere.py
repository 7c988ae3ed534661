"""alignment and uniformity: hand cases, float64 NumPy references, gradients, jit, 1 device == 8 devices."""
import itertools

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.eval import metrics
from rl.losses import hypersphere as L
from tests import multidevice


def _unit(x):
  x = np.asarray(x, np.float64)
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def alignment_reference(z1, z2, alpha):
  """Wang & Isola sec. 4.1: mean over pairs of ||z1_i - z2_i||^alpha, in float64."""
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  return np.mean([np.linalg.norm(a - b) ** alpha for a, b in zip(z1, z2)])


def uniformity_reference(z, t):
  """Wang & Isola sec. 4.1 as their code computes it (pdist: pairs i < j), in float64."""
  z = np.asarray(z, np.float64)
  pots = [np.exp(-t * np.sum((z[i] - z[j]) ** 2)) for i, j in itertools.combinations(range(len(z)), 2)]
  return np.log(np.mean(pots))


def _features(b=16, d=8, seed=0):
  rng = np.random.RandomState(seed)
  z1 = _unit(rng.randn(b, d))
  return z1, _unit(z1 + 0.5 * rng.randn(b, d))


# alignment ------------------------------------------------------------------------------------------------------

def test_alignment_hand_case():
  # Pairs (e1, e2) and (e1, e1): distances sqrt(2) and 0. alpha = 2: (2 + 0) / 2 = 1; alpha = 1: sqrt(2) / 2.
  z1 = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  z2 = jnp.array([[0.0, 1.0], [1.0, 0.0]])
  np.testing.assert_allclose(L.alignment(z1, z2), 1.0, rtol=1e-6)
  np.testing.assert_allclose(L.alignment(z1, z2, alpha=1), np.sqrt(2) / 2, rtol=1e-6)


@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_alignment_matches_reference_eval_metric_and_jit(alpha):
  z1, z2 = _features(seed=1)
  got = L.alignment(z1, z2, alpha=alpha)
  np.testing.assert_allclose(got, alignment_reference(z1, z2, alpha), rtol=1e-5)
  np.testing.assert_allclose(got, metrics.alignment(z1, z2, alpha=alpha), rtol=1e-5)  # independent code
  jitted = jax.jit(lambda a, b: L.alignment(a, b, alpha=alpha))(z1, z2)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_alignment_inputs_are_not_normalised_inside():
  # As in the paper's code: the caller normalises. Scaling both views by 3 scales the squared distance by 9.
  z1, z2 = _features(seed=2)
  np.testing.assert_allclose(L.alignment(3 * z1, 3 * z2), 9 * alignment_reference(z1, z2, 2), rtol=1e-5)


def test_alignment_gradients_float64_and_finite_at_identical_views():
  z1, z2 = _features(b=4, d=3, seed=3)
  with jax.enable_x64(True):
    for alpha in (1.0, 2.0):
      f = jax.jit(lambda a, b, alpha=alpha: L.alignment(a, b, alpha=alpha))
      check_grads(f, (jnp.asarray(z1, jnp.float64), jnp.asarray(z2, jnp.float64)), order=1, modes=["rev"])
  # Identical views: ||d||^alpha has gradient 0 at d = 0 for alpha > 1 (and we pick the subgradient 0 at 1).
  g = jax.grad(lambda a: L.alignment(a, jnp.asarray(z1), alpha=1.0))(jnp.asarray(z1))
  np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_alignment_8_devices_equals_1_device(mesh8):
  z1, z2 = _features(b=32, seed=4)
  fn = lambda a, b, axis_name=None: L.alignment(a, b, alpha=2, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (z1, z2))
  np.testing.assert_allclose(v1, alignment_reference(z1, z2, 2), rtol=1e-5)


def test_alignment_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"z1 and z2 must have the same shape; got \(4, 3\) and \(4, 2\)"):
    L.alignment(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match="alpha must be > 0; got 0"):
    L.alignment(jnp.ones((4, 3)), jnp.ones((4, 3)), alpha=0)
  z1, z2 = _features(seed=5)
  got = L.alignment(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, alignment_reference(z1, z2, 2), rtol=2e-2)


# uniformity -----------------------------------------------------------------------------------------------------

def test_uniformity_hand_case():
  # Three points: e1, e1, -e1 with t = 2. Pairs (i < j): distance^2 0, 4, 4, so potentials 1, e^-8, e^-8 and
  # the loss is log((1 + 2 e^-8) / 3).
  z = jnp.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
  np.testing.assert_allclose(L.uniformity(z), np.log((1 + 2 * np.exp(-8.0)) / 3), rtol=1e-6)


@pytest.mark.parametrize("t", [0.5, 2.0, 10.0])
def test_uniformity_matches_reference_eval_metric_and_jit(t):
  z, _ = _features(b=16, seed=6)
  got = L.uniformity(z, t=t)
  np.testing.assert_allclose(got, uniformity_reference(z, t), rtol=1e-5)
  np.testing.assert_allclose(got, metrics.uniformity(z, t=t), rtol=1e-5)  # independent code
  jitted = jax.jit(lambda a: L.uniformity(a, t=t))(z)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_uniformity_gradients_float64():
  z, _ = _features(b=5, d=3, seed=7)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a: L.uniformity(a, t=2.0)), (jnp.asarray(z, jnp.float64),), order=1,
                modes=["rev"])


def test_uniformity_8_devices_equals_1_device(mesh8):
  z, _ = _features(b=32, seed=8)
  fn = lambda a, axis_name=None: L.uniformity(a, t=2.0, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (z,))
  np.testing.assert_allclose(v1, uniformity_reference(z, 2.0), rtol=1e-5)
  # All pairs of the global batch, not the mean of per-device uniformities over local pairs.
  local_only = np.mean([uniformity_reference(z[i:i + 4], 2.0) for i in range(0, 32, 4)])
  assert abs(float(v1) - local_only) > 1e-3


def test_uniformity_8_devices_exact_when_every_potential_underflows(mesh8):
  # The closest pair of this batch has ||z_i - z_j||^2 = 0.21, so with t = 500 every potential is below
  # exp(-105), under float32's smallest subnormal: a sum of exps is 0 and its log -inf. Log-sum-exps combined
  # around the global maximum stay exact in value and gradient on 8 devices.
  z, _ = _features(b=32, seed=9)
  sq = np.sum((z[:, None] - z[None]) ** 2, axis=-1)[~np.eye(32, dtype=bool)]
  with np.errstate(divide="ignore"):
    assert np.log(np.mean(np.exp(np.float32(-500.0) * sq))) == -np.inf  # the naive float32 formula fails
  fn = lambda a, axis_name=None: L.uniformity(a, t=500.0, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (z,))
  np.testing.assert_allclose(v1, uniformity_reference(z, 500.0), rtol=1e-5)


def test_uniformity_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"z must have shape \[b, d\]; got shape \(4,\)"):
    L.uniformity(jnp.ones(4))
  with pytest.raises(ValueError, match=r"at least 2 rows in the global batch; got z of shape \(1, 3\)"):
    L.uniformity(jnp.ones((1, 3)))
  with pytest.raises(ValueError, match="t must be > 0; got -2"):
    L.uniformity(jnp.ones((4, 3)), t=-2)
  z, _ = _features(seed=10)
  got = L.uniformity(jnp.asarray(z, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, uniformity_reference(z, 2.0), rtol=2e-2)


def l2_normalize_reference(x, axis, eps=1e-12):
  """x / max(||x||, eps) along `axis`, one slice at a time, in float64 (torch.nn.functional.normalize)."""
  x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
  out = np.stack([row / max(np.sqrt(np.sum(row ** 2)), eps) for row in x.reshape(-1, x.shape[-1])])
  return np.moveaxis(out.reshape(x.shape), -1, axis)


@pytest.mark.parametrize("axis", [-1, 0])
def test_l2_normalize_matches_reference_and_jit(axis):
  x = np.random.RandomState(0).randn(5, 3, 4).astype(np.float32) * np.float32(10.0) ** np.arange(-2, 2)
  np.testing.assert_allclose(L.l2_normalize(x, axis=axis), l2_normalize_reference(x, axis), rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(jax.jit(lambda v: L.l2_normalize(v, axis=axis))(x), L.l2_normalize(x, axis=axis),
                             rtol=1e-6)
  assert L.l2_normalize(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16  # computes in the input dtype


def test_l2_normalize_zero_rows_and_gradients():
  x = np.array([[0.0, 0.0, 0.0], [1e-13, 0.0, 0.0], [3.0, 0.0, 4.0]], np.float32)
  out = np.asarray(L.l2_normalize(x))
  np.testing.assert_array_equal(out[0], 0.0)  # an all-zero row stays zero ...
  np.testing.assert_allclose(out[1], [0.1, 0.0, 0.0], rtol=1e-5)  # ... a tiny one is divided by eps, not its norm
  np.testing.assert_allclose(out[2], [0.6, 0.0, 0.8], rtol=1e-6)
  grads = jax.grad(lambda v: jnp.sum(L.l2_normalize(v) * jnp.arange(3.0)))(jnp.asarray(x))
  assert np.all(np.isfinite(grads))  # x / ||x|| would give NaN at the zero row
  # Away from zero, the gradient is the float64 finite-difference one.
  check_grads(lambda v: L.l2_normalize(v), (np.random.RandomState(1).randn(4, 3),), order=1, modes=("rev",))
