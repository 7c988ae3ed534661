"""byol, negative_cosine, barlow_twins, vicreg, wmse: hand cases, float64 references, gradients, 1 == 8 devices."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import redundancy as L
from tests import multidevice


# ------------------------------------------------------------------------------------------------------------
# float64 references written from the papers' formulas
# ------------------------------------------------------------------------------------------------------------

def byol_reference(p, z):
  """Grill et al. eq. 2: ||p/|p| - z/|z|||^2, averaged over examples."""
  total = 0.0
  for pi, zi in zip(p.astype(np.float64), z.astype(np.float64)):
    total += np.sum((pi / np.linalg.norm(pi) - zi / np.linalg.norm(zi)) ** 2)
  return total / len(p)


def negative_cosine_reference(p, z):
  """Chen & He eq. 1: -p.z / (|p||z|), averaged over examples."""
  p, z = p.astype(np.float64), z.astype(np.float64)
  return -np.mean([pi @ zi / (np.linalg.norm(pi) * np.linalg.norm(zi)) for pi, zi in zip(p, z)])


def barlow_reference(z1, z2, lambda_):
  """Zbontar et al. eq. 1-2 with BatchNorm1d(affine=False) standardisation (biased var, eps 1e-5)."""
  def bn(z):
    z = z.astype(np.float64)
    return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
  a, b = bn(z1), bn(z2)
  n, d = a.shape
  loss = 0.0
  for i in range(d):
    for j in range(d):
      c_ij = sum(a[k, i] * b[k, j] for k in range(n)) / n
      loss += (1 - c_ij) ** 2 if i == j else lambda_ * c_ij ** 2
  return loss


def vicreg_reference(z1, z2, sim=25.0, std=25.0, cov=1.0):
  """Bardes et al. eq. 1-6 as in main_vicreg.py: unbiased var and cov (np.cov uses N - 1)."""
  z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
  d = z1.shape[1]
  inv = np.mean((z1 - z2) ** 2)
  var = sum(np.mean(np.maximum(0, 1 - np.sqrt(np.var(z, axis=0, ddof=1) + 1e-4))) for z in (z1, z2)) / 2
  cv = 0.0
  for z in (z1, z2):
    c = np.cov(z, rowvar=False)
    cv += (np.sum(c ** 2) - np.sum(np.diag(c) ** 2)) / d
  return sim * inv + std * var + cov * cv


def wmse_reference(z, num_views, w, eps=0.0, order=None):
  """Ermolov et al. Algorithm 1: per sub-batch and view, Cholesky whitening with np.cov (N - 1); 2 - 2 cos."""
  z = z.astype(np.float64)
  b = len(z) // num_views
  order = np.arange(b) if order is None else order  # order[k] = example drawn k-th
  white = np.zeros_like(z)
  for start in range(0, b, w):
    idx = order[start:start + w]
    for v in range(num_views):
      x = z[v * b + idx]
      cov = (1 - eps) * np.cov(x, rowvar=False).reshape(z.shape[1], z.shape[1]) + eps * np.eye(z.shape[1])
      w_mat = np.linalg.inv(np.linalg.cholesky(cov))
      white[v * b + idx] = (x - x.mean(0)) @ w_mat.T
  losses = []
  for i, j in itertools.combinations(range(num_views), 2):
    for k in range(b):
      u, t = white[i * b + k], white[j * b + k]
      losses.append(2 - 2 * u @ t / (np.linalg.norm(u) * np.linalg.norm(t)))
  return np.mean(losses)


def _pairs(b=16, d=8, seed=0, noise=0.5):
  rng = np.random.RandomState(seed)
  z1 = rng.randn(b, d).astype(np.float32)
  z2 = (z1 + noise * rng.randn(b, d)).astype(np.float32)
  return z1, z2


def _views(b=32, d=4, num_views=2, seed=0):
  rng = np.random.RandomState(seed)
  base = rng.randn(b, d)
  return np.concatenate([base + 0.7 * rng.randn(b, d) for _ in range(num_views)]).astype(np.float32)


PAIRWISE = {  # name -> (function, reference) for the two-argument losses at their defaults
    "byol": (L.byol, byol_reference),
    "negative_cosine": (L.negative_cosine, negative_cosine_reference),
    "barlow_twins": (L.barlow_twins, lambda a, b: barlow_reference(a, b, 5e-3)),
    "vicreg": (L.vicreg, vicreg_reference),
}


# ------------------------------------------------------------------------------------------------------------
# 1. hand cases
# ------------------------------------------------------------------------------------------------------------

def test_byol_and_negative_cosine_hand_case():
  # Row 0: p, z at 60 degrees (cos 1/2): byol 2 - 1 = 1. Row 1: opposite (cos -1): byol 4. Mean 2.5.
  p = jnp.array([[2.0, 0.0], [0.0, 1.0]])
  z = jnp.array([[1.0, np.sqrt(3.0)], [0.0, -5.0]])
  np.testing.assert_allclose(L.byol(p, z), 2.5, rtol=1e-6)
  np.testing.assert_allclose(L.negative_cosine(p, z), -(0.5 - 1.0) / 2, rtol=1e-6)


def test_barlow_twins_hand_case_perfectly_correlated_dimensions():
  # z = [[1, 1], [-1, -1]]: each dimension standardises to +-1/sqrt(1 + 1e-5), so every C_ij = 1 / (1 + 1e-5):
  # L = 2 (1 - 1/(1+1e-5))^2 + lambda * 2 / (1 + 1e-5)^2.
  z = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
  c = 1 / (1 + 1e-5)
  np.testing.assert_allclose(L.barlow_twins(z, z, lambda_=0.1), 2 * (1 - c) ** 2 + 0.1 * 2 * c ** 2, rtol=1e-5)


def test_vicreg_hand_cases():
  # Same views, z = [[1, 1], [-1, -1]] (B = 2): var 2 per dim (std > 1: no variance term); cov = [[2, 2], [2, 2]],
  # off-diagonal sum of squares 8, / d = 4 per branch, summed over the branches: 8.
  z = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
  np.testing.assert_allclose(L.vicreg(z, z), 8.0, rtol=1e-6)
  # z1 = [[1, 0], [-1, 0]], z2 = [[0, 1], [0, -1]]: MSE = (1 + 1 + 1 + 1) / 4 = 1; each branch has one constant
  # dimension, relu(1 - sqrt(1e-4)) = 0.99, mean over dims 0.495, averaged over branches 0.495; no covariance.
  z1 = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
  z2 = jnp.array([[0.0, 1.0], [0.0, -1.0]])
  np.testing.assert_allclose(L.vicreg(z1, z2), 25 * 1 + 25 * 0.495, rtol=1e-6)
  terms = L.vicreg_terms(z1, z2)
  np.testing.assert_allclose([terms["invariance"], terms["variance"], terms["covariance"]], [1.0, 0.495, 0.0],
                             atol=1e-7)


def test_wmse_hand_case_one_dimension():
  # d = 1, w = 2: whitening a pair of numbers gives +-1/sqrt(2) by the sign of z - mean, so 2 - 2 cos is 0 when the
  # two views order the pair the same way and 4 otherwise. Sub-batch {0, 1}: (1, 2) and (0, 1) agree -> 0, 0;
  # sub-batch {2, 3}: (5, 3) and (2, 7) disagree -> 4, 4. Mean over 4 examples: 2.
  z = jnp.array([[1.0], [2.0], [5.0], [3.0], [0.0], [1.0], [2.0], [7.0]])
  np.testing.assert_allclose(L.wmse(z, whitening_size=2), 2.0, rtol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# 2. float64 references; 3. gradients; 4. jit
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PAIRWISE))
def test_pairwise_losses_match_float64_reference(name):
  fn, ref = PAIRWISE[name]
  z1, z2 = _pairs()
  np.testing.assert_allclose(fn(z1, z2), ref(z1, z2), rtol=1e-5)


def test_barlow_and_vicreg_hyperparameters_match_reference():
  z1, z2 = _pairs(seed=1, noise=1.0)
  np.testing.assert_allclose(L.barlow_twins(z1, z2, lambda_=0.3), barlow_reference(z1, z2, 0.3), rtol=1e-5)
  np.testing.assert_allclose(L.vicreg(z1 * 0.3, z2 * 0.3, sim_coeff=1.0, std_coeff=2.0, cov_coeff=3.0),
                             vicreg_reference(z1 * 0.3, z2 * 0.3, 1.0, 2.0, 3.0), rtol=1e-5)


@pytest.mark.parametrize("num_views,w,eps", [(2, 8, 0.0), (3, 16, 0.0), (2, 4, 0.1)])
def test_wmse_matches_float64_reference(num_views, w, eps):
  z = _views(b=32, d=4 if w > 4 else 6, num_views=num_views)
  np.testing.assert_allclose(L.wmse(z, num_views=num_views, whitening_size=w, eps=eps),
                             wmse_reference(z, num_views, w, eps), rtol=1e-5)


def test_wmse_key_permutes_examples_into_sub_batches():
  z = _views(b=32, d=4)
  key = jax.random.key(7)
  order = np.asarray(jax.random.permutation(key, 32))
  got = L.wmse(z, whitening_size=8, key=key)
  np.testing.assert_allclose(got, wmse_reference(z, 2, 8, order=order), rtol=1e-5)
  assert abs(float(got) - wmse_reference(z, 2, 8)) > 1e-3  # the permutation matters


@pytest.mark.parametrize("name", list(PAIRWISE) + ["wmse"])
def test_gradients_float64(name):
  with jax.enable_x64(True):
    if name == "wmse":
      z = _views(b=12, d=3).astype(np.float64)
      check_grads(jax.jit(lambda a: L.wmse(a, whitening_size=6)), (z,), order=1, modes=["rev"])
    else:
      z1, z2 = (a.astype(np.float64) for a in _pairs(b=6, d=4, seed=2))
      check_grads(jax.jit(PAIRWISE[name][0]), (z1 * 0.5, z2 * 0.5), order=1, modes=["rev"])


def test_gradients_reach_both_arguments_no_hidden_stop_gradient():
  # The caller, not the loss, stops the gradient of the target: both arguments must receive a gradient.
  z1, z2 = _pairs(b=4, d=3)
  for fn in (L.byol, L.negative_cosine):
    g1, g2 = jax.grad(fn, argnums=(0, 1))(z1, z2)
    assert np.abs(g1).max() > 1e-3 and np.abs(g2).max() > 1e-3
    g2_stopped = jax.grad(lambda a, b: fn(a, jax.lax.stop_gradient(b)), argnums=1)(z1, z2)
    np.testing.assert_array_equal(g2_stopped, 0.0)


@pytest.mark.parametrize("name", list(PAIRWISE) + ["wmse"])
def test_jit_equals_eager(name):
  if name == "wmse":
    z = _views()
    fn = lambda a: L.wmse(a, whitening_size=8)
    np.testing.assert_allclose(jax.jit(fn)(z), fn(z), rtol=1e-6)
  else:
    fn = PAIRWISE[name][0]
    z1, z2 = _pairs()
    np.testing.assert_allclose(jax.jit(fn)(z1, z2), fn(z1, z2), rtol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# 5. one device == eight devices
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PAIRWISE))
def test_pairwise_8_devices_equal_1_device(name, mesh8):
  fn = PAIRWISE[name][0]
  z1, z2 = _pairs(b=32, d=6, seed=3)
  multidevice.assert_1_equals_8(lambda a, b, axis_name=None: fn(a, b, axis_name=axis_name), mesh8, (z1, z2))


def _local_mean(fn, z1, z2, devices=8):
  step = len(z1) // devices
  return np.mean([float(fn(z1[k:k + step], z2[k:k + step])) for k in range(0, len(z1), step)])


def test_barlow_and_vicreg_use_global_batch_statistics(mesh8):
  z1, z2 = _pairs(b=32, d=6, seed=3)
  for fn in (L.barlow_twins, L.vicreg):
    single, sm, pm = multidevice.run_1_and_8(lambda a, b, axis_name=None: fn(a, b, axis_name=axis_name),
                                             mesh8, (z1, z2))
    np.testing.assert_allclose(sm, single, rtol=1e-5)
    np.testing.assert_allclose(pm, single, rtol=1e-5)
    assert abs(float(single) - _local_mean(fn, z1, z2)) > 1e-2 * abs(float(single))


@pytest.mark.parametrize("b,w", [(32, 8), (64, 4)])  # sub-batches spanning 2 devices; 2 sub-batches per device
def test_wmse_8_devices_equal_1_device(b, w, mesh8):
  z = _views(b=b, d=3)
  # Per-device arrays are view-major locally: regroup the global [view0; view1] into 8 blocks [v0_k; v1_k].
  local = z.reshape(2, 8, b // 8, 3).transpose(1, 0, 2, 3).reshape(2 * b, 3)
  fn = lambda a, axis_name=None: L.wmse(a, whitening_size=w, axis_name=axis_name)
  v8, _ = multidevice.assert_1_equals_8(lambda a, axis_name=None: _unstack_then(fn, a, axis_name), mesh8, (local,))
  np.testing.assert_allclose(v8, wmse_reference(z, 2, w), rtol=1e-5)
  if w > b // 8:  # sub-batches span devices: per-device whitening on local statistics is not possible
    with pytest.raises(ValueError, match="multiple of whitening_size"):
      L.wmse(local[:2 * b // 8], whitening_size=w)


def _unstack_then(fn, local, axis_name):
  """The single-device run sees the 8 local blocks concatenated; reorder them to view-major global rows."""
  if axis_name is not None:
    return fn(local, axis_name=axis_name)
  n, d = local.shape
  return fn(local.reshape(8, 2, n // 16, d).transpose(1, 0, 2, 3).reshape(n, d))


def test_wmse_with_key_8_devices_equal_1_device(mesh8):
  z = _views(b=32, d=4, seed=5)
  local = z.reshape(2, 8, 4, 4).transpose(1, 0, 2, 3).reshape(64, 4)
  key = jax.random.PRNGKey(3)
  fn = lambda a, k, axis_name=None: L.wmse(a, whitening_size=8, key=k, axis_name=axis_name)
  v8, _ = multidevice.assert_1_equals_8(
      lambda a, k, axis_name=None: _unstack_then(lambda x, axis_name=None: fn(x, k, axis_name=axis_name),
                                                 a, axis_name),
      mesh8, (local,), (key,), argnums=(0,))
  order = np.asarray(jax.random.permutation(key, 32))
  np.testing.assert_allclose(v8, wmse_reference(z, 2, 8, order=order), rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# 6. bad inputs; 7. bfloat16
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PAIRWISE))
def test_pairwise_bad_inputs_name_the_argument(name):
  fn = PAIRWISE[name][0]
  first = "p" if name in ("byol", "negative_cosine") else "z1"
  second = "z" if first == "p" else "z2"
  with pytest.raises(ValueError, match=rf"{first} and {second} must have the same shape; got \(4, 3\) and \(4, 2\)"):
    fn(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match=rf"{first} must have shape \[b, d\]; got shape \(4,\)"):
    fn(jnp.ones(4), jnp.ones(4))
  with pytest.raises(ValueError, match=f"{first} must be a floating array"):
    fn(jnp.ones((4, 3), jnp.int32), jnp.ones((4, 3), jnp.int32))


def test_hyperparameter_checks():
  with pytest.raises(ValueError, match=r"lambda_ must be in \[0.0, inf\]; got -1.0"):
    L.barlow_twins(jnp.ones((4, 3)), jnp.ones((4, 3)), lambda_=-1.0)
  with pytest.raises(ValueError, match=r"std_coeff must be in \[0.0, inf\]; got -2.0"):
    L.vicreg(jnp.ones((4, 3)), jnp.ones((4, 3)), std_coeff=-2.0)
  with pytest.raises(ValueError, match="at least 2 examples"):
    L.vicreg(jnp.ones((1, 3)), jnp.ones((1, 3)))


def test_wmse_bad_inputs():
  z = jnp.ones((32, 4))
  with pytest.raises(ValueError, match=r"z must have shape \[num_views \* b, d\]; got shape \(32,\)"):
    L.wmse(jnp.ones(32))
  with pytest.raises(ValueError, match=r"z must have num_views \* b rows; got shape \(32, 4\) with num_views=3"):
    L.wmse(z, num_views=3, whitening_size=8)
  with pytest.raises(ValueError, match="global batch size B=16 must be a multiple of whitening_size=6"):
    L.wmse(z, whitening_size=6)
  with pytest.raises(ValueError, match="whitening_size=4 must be greater than the embedding dimension d=4"):
    L.wmse(z, whitening_size=4)
  with pytest.raises(ValueError, match="num_views must be an int >= 2"):
    L.wmse(z, num_views=1)


@pytest.mark.parametrize("name", list(PAIRWISE) + ["wmse"])
def test_bfloat16_inputs_give_float32(name):
  if name == "wmse":
    z = _views()
    fn = lambda a: L.wmse(a, whitening_size=16)
    ref = wmse_reference(np.asarray(jnp.asarray(z, jnp.bfloat16), np.float32), 2, 16)
    got = fn(jnp.asarray(z, jnp.bfloat16))
  else:
    fn, reference = PAIRWISE[name]
    z1, z2 = _pairs()
    got = fn(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16))
    ref = reference(z1, z2)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, ref, rtol=2e-2, atol=1e-3)
