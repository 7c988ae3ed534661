"""sinkhorn_divergence, pairwise_sinkhorn_divergence, regression_bin_centroids, enveloping_loss,
homogeneity_loss (both forms), surrogate_contrastive_loss: hand cases, float64 NumPy references, gradients, jit,
1 device == 8 devices, bad inputs, bf16."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import geometry as G
from tests import multidevice


# ---------------------------------------------------------------------------------------------------------------
# References written from the papers' formulas, float64 NumPy.
# ---------------------------------------------------------------------------------------------------------------

def _lse(v, axis):
  m = np.max(v, axis=axis, keepdims=True)
  return np.squeeze(m, axis) + np.log(np.sum(np.exp(v - m), axis=axis))


def ot_eps_reference(x, y, a, b, eps, iters=5000):
  """Genevay et al.: min <P, C> + eps KL(P | a b^T), C = |x - y|^2, by log-domain Sinkhorn on the dual.

  At the fixed point sum(P) = 1, so the dual objective <a, f> + <b, g> is the value.
  """
  c = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
  f, g = np.zeros(len(x)), np.zeros(len(y))
  for _ in range(iters):
    f_old = f
    f = -eps * _lse(np.log(b)[None, :] + (g[None, :] - c) / eps, axis=1)
    g = -eps * _lse(np.log(a)[:, None] + (f[:, None] - c) / eps, axis=0)
    if np.max(np.abs(f - f_old)) < 1e-13:  # converged to (near) float64 precision
      break
  return a @ f + b @ g


def sinkhorn_reference(x, y, eps, a=None, b=None):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  a = np.full(len(x), 1 / len(x)) if a is None else np.asarray(a, np.float64) / np.sum(a)
  b = np.full(len(y), 1 / len(y)) if b is None else np.asarray(b, np.float64) / np.sum(b)
  return (ot_eps_reference(x, y, a, b, eps)
          - 0.5 * (ot_eps_reference(x, x, a, a, eps) + ot_eps_reference(y, y, b, b, eps)))


def _trace_reference(z, labels, centers, surrogate=None):
  """Dong et al.: bin by nearest centre, mean of unit features per bin, back on the sphere; None for empty bins."""
  z = np.asarray(z, np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  trace = []
  for k, c in enumerate(centers):
    members = [z[i] for i in range(len(z)) if np.argmin(np.abs(labels[i] - np.asarray(centers))) == k]
    if members:
      m = np.mean(members, axis=0)
    elif surrogate is not None:
      m = np.asarray(surrogate[k], np.float64)
    else:
      trace.append(None)
      continue
    trace.append(m / np.linalg.norm(m))
  return trace


def enveloping_reference(z, labels, points, centers, surrogate=None):
  trace = [t for t in _trace_reference(z, labels, centers, surrogate) if t is not None]
  total = 0.0
  for p in np.asarray(points, np.float64):
    p = p / np.linalg.norm(p)
    total += max(p @ t for t in trace)
  return 1.0 - total / len(points)


def homogeneity_reference(z, labels, centers, surrogate=None):
  trace = _trace_reference(z, labels, centers, surrogate)
  kept = [(centers[k], t) for k, t in enumerate(trace) if t is not None]
  return sum(np.sum((t1 - t0) ** 2) / (y1 - y0) for (y0, t0), (y1, t1) in zip(kept[:-1], kept[1:]))


def numeric_grad(f, x, eps=1e-5):
  g = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


def _clouds(n=16, m=16, d=4, seed=0, shift=0.5):
  rng = np.random.RandomState(seed)
  return rng.randn(n, d).astype(np.float32), (rng.randn(m, d) + shift).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Sinkhorn divergence
# ---------------------------------------------------------------------------------------------------------------

def test_sinkhorn_hand_case_two_diracs():
  # One point each: the only coupling is P = [[1]], KL(P | a b^T) = 0, so OT_eps(x, y) = |x - y|^2 = 1 + 4 = 5
  # and OT_eps(x, x) = OT_eps(y, y) = 0: S = 5 for any eps.
  x, y = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 2.0]])
  for eps in (0.01, 1.0):
    np.testing.assert_allclose(G.sinkhorn_divergence(x, y, epsilon=eps), 5.0, rtol=1e-6)


def test_sinkhorn_matches_float64_reference_tiny_and_weighted():
  x = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
  y = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, -1.0]], np.float32)
  got = G.sinkhorn_divergence(x, y, epsilon=0.5, threshold=1e-6)
  np.testing.assert_allclose(got, sinkhorn_reference(x, y, 0.5), rtol=1e-5)
  wx, wy = np.array([1.0, 3.0], np.float32), np.array([2.0, 1.0, 1.0], np.float32)
  got_w = G.sinkhorn_divergence(x, y, epsilon=0.5, x_weights=wx, y_weights=wy, threshold=1e-6)
  np.testing.assert_allclose(got_w, sinkhorn_reference(x, y, 0.5, wx, wy), rtol=1e-5)
  assert abs(float(got_w) - float(got)) > 1e-2  # the weights matter


def test_sinkhorn_matches_reference_on_random_clouds():
  x, y = _clouds(n=12, m=10)
  got = G.sinkhorn_divergence(x, y, epsilon=1.0, threshold=1e-6)
  np.testing.assert_allclose(got, sinkhorn_reference(x, y, 1.0), rtol=1e-5)


def test_sinkhorn_properties_zero_nonnegative_symmetric_and_decreasing():
  x, y = _clouds(n=8, m=8, shift=1.0)
  f = jax.jit(lambda a, b: G.sinkhorn_divergence(a, b, epsilon=0.5, threshold=1e-6))
  assert abs(float(f(x, x))) < 1e-5
  sxy = float(f(x, y))
  assert sxy > 0.1
  np.testing.assert_allclose(float(f(y, x)), sxy, rtol=1e-4)
  # Moving y toward x along the straight line lowers the divergence monotonically.
  vals = [float(f(x, (1 - t) * y + t * x)) for t in (0.0, 0.3, 0.6, 0.9)]
  assert all(v1 < v0 for v0, v1 in zip(vals[:-1], vals[1:])), vals
  assert min(vals) >= -1e-5


def test_sinkhorn_gradient_matches_finite_differences_of_reference():
  x, y = _clouds(n=3, m=2, d=2, seed=3)
  x, y = x.astype(np.float64), y.astype(np.float64)
  loss = lambda a, b: G.sinkhorn_divergence(a, b, epsilon=0.5, threshold=1e-9, max_iterations=20000)
  with jax.enable_x64(True):
    gx, gy = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(y))
    gx, gy = np.asarray(gx), np.asarray(gy)
  assert gx.dtype == np.float64
  nx = numeric_grad(lambda a: sinkhorn_reference(a, y, 0.5), x)
  ny = numeric_grad(lambda b: sinkhorn_reference(x, b, 0.5), y)
  np.testing.assert_allclose(gx, nx, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(gy, ny, rtol=1e-5, atol=1e-7)


def test_sinkhorn_jit_equals_eager_and_bfloat16_gives_float32():
  x, y = _clouds(n=8, m=8)
  eager = G.sinkhorn_divergence(x, y, epsilon=1.0)
  jitted = jax.jit(lambda a, b: G.sinkhorn_divergence(a, b, epsilon=1.0))(x, y)
  np.testing.assert_allclose(jitted, eager, rtol=1e-6)
  low = G.sinkhorn_divergence(jnp.asarray(x, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16), epsilon=1.0)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, eager, rtol=3e-2)


def test_sinkhorn_one_device_equals_eight(mesh8):
  x, y = _clouds(n=16, m=16, d=4)
  fn = lambda a, b, axis_name=None: G.sinkhorn_divergence(a, b, epsilon=1.0, threshold=1e-5, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(x, y))
  # The divergence of the global clouds, not the mean of per-device divergences of 2-point shards.
  local = np.mean([float(fn(x[k:k + 2], y[k:k + 2])) for k in range(0, 16, 2)])
  assert abs(local - float(v1)) > 1e-2


def test_sinkhorn_bad_inputs():
  x = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match=r"y must have shape \[n, 3\].*got shape \(4, 2\)"):
    G.sinkhorn_divergence(x, jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match=r"x must have shape \[n, d\]; got shape \(4,\)"):
    G.sinkhorn_divergence(jnp.zeros(4), x)
  with pytest.raises(ValueError, match=r"x_weights must have shape \[4\].*got shape \(3,\)"):
    G.sinkhorn_divergence(x, x, x_weights=jnp.ones(3))
  with pytest.raises(ValueError, match="epsilon must be > 0; got 0.0"):
    G.sinkhorn_divergence(x, x, epsilon=0.0)


def test_pairwise_is_mean_over_pairs_and_checks():
  rng = np.random.RandomState(5)
  feats = [rng.randn(6, 3).astype(np.float32) + k for k in range(3)]
  got = G.pairwise_sinkhorn_divergence(feats, epsilon=1.0, threshold=1e-6)
  pairs = [(0, 1), (0, 2), (1, 2)]
  expected = np.mean([sinkhorn_reference(feats[i], feats[j], 1.0) for i, j in pairs])
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  stacked = G.pairwise_sinkhorn_divergence(jnp.stack(feats), epsilon=1.0, threshold=1e-6)
  np.testing.assert_allclose(stacked, got, rtol=1e-6)
  with pytest.raises(ValueError, match="at least 2 distributions"):
    G.pairwise_sinkhorn_divergence([feats[0]])
  with pytest.raises(ValueError, match=r"features\[1\] must have shape \[n, 3\]"):
    G.pairwise_sinkhorn_divergence([feats[0], jnp.zeros((6, 2))])


# ---------------------------------------------------------------------------------------------------------------
# Enveloping and homogeneity
# ---------------------------------------------------------------------------------------------------------------

CENTERS = np.arange(8.0)


def _regression(b=16, d=4, seed=0, missing=()):
  rng = np.random.RandomState(seed)
  labels = rng.uniform(-0.4, 7.4, size=b)
  for k in missing:  # move the labels of bin k to bin k+1 so that bin k is empty
    labels = np.where(np.abs(labels - k) <= 0.5, k + 1.0, labels)
  z = rng.randn(b, d) + 0.5 * labels[:, None] * np.eye(d)[0]
  return z.astype(np.float32), labels.astype(np.float32)


def _points(n=64, d=4, seed=1):
  return np.random.RandomState(seed).randn(n, d).astype(np.float32)


def test_geometric_hand_cases():
  # Features at angles 0, pi/2, pi for labels 0, 1, 3 on the unit circle.
  z = jnp.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  labels = jnp.array([0.0, 1.0, 3.0])
  centers = jnp.array([0.0, 1.0, 3.0])
  # Homogeneity: |c1 - c0|^2 / 1 + |c2 - c1|^2 / 2 = 2 + 1 = 3.
  np.testing.assert_allclose(G.homogeneity_loss(z, labels, bin_centers=centers), 3.0, rtol=1e-6)
  # Enveloping with probes at 45 and -90 degrees: nearest cosines cos(pi/4) and 0 -> 1 - (0.7071 + 0) / 2.
  probes = jnp.array([[1.0, 1.0], [0.0, -3.0]])
  np.testing.assert_allclose(G.enveloping_loss(z, labels, probes, bin_centers=centers),
                             1 - np.sqrt(0.5) / 2, rtol=1e-6)
  # Two examples in bin 0 average to the 45-degree direction: homogeneity gap to bin 1 is |e45 - e90|^2
  # = 2 - 2 cos(pi/4), the bin-1 -> bin-3 term stays 1.
  z2 = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
  got = G.homogeneity_loss(z2, jnp.array([0.2, -0.1, 1.0, 3.0]), bin_centers=centers)
  np.testing.assert_allclose(got, 2 - 2 * np.sqrt(0.5) + 1.0, rtol=1e-6)


@pytest.mark.parametrize("missing", [(), (2, 5)])
def test_geometric_losses_match_float64_reference(missing):
  z, labels = _regression(missing=missing)
  pts = _points()
  env = G.enveloping_loss(z, labels, pts, bin_centers=CENTERS)
  hom = G.homogeneity_loss(z, labels, bin_centers=CENTERS)
  np.testing.assert_allclose(env, enveloping_reference(z, labels, pts, CENTERS), rtol=1e-5)
  np.testing.assert_allclose(hom, homogeneity_reference(z, labels, CENTERS), rtol=1e-5)


def test_surrogate_fills_missing_bins_as_a_constant():
  z, labels = _regression(missing=(2, 5))
  sur = np.random.RandomState(9).randn(len(CENTERS), 4).astype(np.float32)
  pts = _points()
  env = G.enveloping_loss(z, labels, pts, bin_centers=CENTERS, surrogate=sur)
  hom = G.homogeneity_loss(z, labels, bin_centers=CENTERS, surrogate=sur)
  np.testing.assert_allclose(env, enveloping_reference(z, labels, pts, CENTERS, sur), rtol=1e-5)
  np.testing.assert_allclose(hom, homogeneity_reference(z, labels, CENTERS, sur), rtol=1e-5)
  g = jax.grad(lambda s: G.homogeneity_loss(z, labels, bin_centers=CENTERS, surrogate=s))(jnp.asarray(sur))
  np.testing.assert_array_equal(g, 0.0)  # detached, as in the authors' code


def test_bin_centroids_hand_case():
  z = jnp.array([[3.0, 4.0], [1.0, 0.0], [0.0, 5.0]])
  c, n = G.regression_bin_centroids(z, jnp.array([0, 2, 2]), bin_centers=jnp.array([0.0, 1.0, 2.0]))
  # Bin 0: (0.6, 0.8); bin 1: empty (zeros); bin 2: mean of (1, 0) and (0, 1).
  np.testing.assert_allclose(c, [[0.6, 0.8], [0.0, 0.0], [0.5, 0.5]], rtol=1e-6)
  np.testing.assert_allclose(n, [1.0, 0.0, 2.0])


def test_geometric_gradients_match_finite_differences_of_reference():
  z, labels = _regression(b=8, d=3, seed=2, missing=(3,))
  z64 = z.astype(np.float64)
  pts = _points(n=16, d=3)
  with jax.enable_x64(True):
    ge = jax.grad(lambda a: G.enveloping_loss(a, labels, pts, bin_centers=CENTERS))(jnp.asarray(z64))
    gh = jax.grad(lambda a: G.homogeneity_loss(a, labels, bin_centers=CENTERS))(jnp.asarray(z64))
  ne = numeric_grad(lambda a: enveloping_reference(a, labels, pts, CENTERS), z64)
  nh = numeric_grad(lambda a: homogeneity_reference(a, labels, CENTERS), z64)
  np.testing.assert_allclose(ge, ne, rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(gh, nh, rtol=1e-5, atol=1e-8)
  assert np.abs(gh).max() > 1e-3 and np.abs(ge).max() > 1e-3


def test_geometric_jit_equals_eager_and_bfloat16():
  z, labels = _regression()
  pts = _points()
  for fn in (lambda a: G.enveloping_loss(a, labels, pts, bin_centers=CENTERS),
             lambda a: G.homogeneity_loss(a, labels, bin_centers=CENTERS)):
    eager = fn(z)
    np.testing.assert_allclose(jax.jit(fn)(z), eager, rtol=1e-6)
    low = fn(jnp.asarray(z, jnp.bfloat16))
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(low, eager, rtol=2e-2)


def test_geometric_one_device_equals_eight(mesh8):
  z, labels = _regression(b=32, missing=(4,))
  pts = _points()

  def both(a, y, p, axis_name=None):
    return (G.enveloping_loss(a, y, p, bin_centers=CENTERS, axis_name=axis_name)
            + 0.1 * G.homogeneity_loss(a, y, bin_centers=CENTERS, axis_name=axis_name))

  v1, _ = multidevice.assert_1_equals_8(both, mesh8, sharded=(z, labels), replicated=(pts,), argnums=(0,))
  # Global bin centroids, not the mean of per-device losses over 4-example shards.
  local = np.mean([float(both(z[k:k + 4], labels[k:k + 4], pts)) for k in range(0, 32, 4)])
  assert abs(local - float(v1)) > 1e-2


def test_geometric_bad_inputs():
  z, labels = _regression()
  with pytest.raises(ValueError, match=r"labels must have shape \[16\].*got \(15,\)"):
    G.homogeneity_loss(z, labels[:15], bin_centers=CENTERS)
  with pytest.raises(ValueError, match="bin_centers must be strictly increasing"):
    G.homogeneity_loss(z, labels, bin_centers=CENTERS[::-1])
  with pytest.raises(ValueError, match=r"bin_centers must have shape \[K\] with K >= 2"):
    G.homogeneity_loss(z, labels, bin_centers=jnp.zeros((1,)))
  with pytest.raises(ValueError, match=r"points must have shape \[N, 4\].*got shape \(5, 3\)"):
    G.enveloping_loss(z, labels, jnp.zeros((5, 3)), bin_centers=CENTERS)
  with pytest.raises(ValueError, match=r"surrogate must have shape \[8, 4\]"):
    G.enveloping_loss(z, labels, _points(), bin_centers=CENTERS, surrogate=jnp.zeros((7, 4)))
  with pytest.raises(ValueError, match=r"features must have shape \[b, d\]"):
    G.regression_bin_centroids(z[0], labels, bin_centers=CENTERS)


# ---------------------------------------------------------------------------------------------------------------
# Homogeneity in the released code's form; the surrogate-contrastive term of SRL
# ---------------------------------------------------------------------------------------------------------------

def homogeneity_code_reference(z, labels, centers, surrogate=None, alpha=-1.0, beta=0.1):
  """The authors' `smooth_loss`: alpha * sum of cosines of consecutive trace points + beta * their unbiased
  variance (absent bins skipped, as the paper form here)."""
  trace = [t for t in _trace_reference(z, labels, centers, surrogate) if t is not None]
  cos = np.array([t0 @ t1 for t0, t1 in zip(trace[:-1], trace[1:])])
  return alpha * cos.sum() + beta * (cos.var(ddof=1) if len(cos) > 1 else 0.0)


def surrogate_contrastive_reference(z, labels, surrogate, centers, tau, weighted=False, fill=True, z_targets=None):
  """SRL's contrastive term (the code's `regression_contrastive_loss` on `dfr_simple`'s targets), float64.

  Targets: this batch's bin centroid where the bin has examples (when `fill`), else the surrogate row; computed
  from `z_targets` (default `z`) because the code detaches them. Loss: mean over i of
  -s_{i, b(i)} / tau + log sum_k w_ik exp(s_ik / tau), w = 1 or (|y_i - c_k| + 1) / max."""
  z = np.asarray(z, np.float64)
  zt = z if z_targets is None else np.asarray(z_targets, np.float64)
  centers = np.asarray(centers, np.float64)
  k = len(centers)
  bins = [int(np.argmin(np.abs(y - centers))) for y in labels]
  unit = lambda v: v / max(np.linalg.norm(v), 1e-12)
  targets = []
  for c in range(k):
    members = [unit(zt[i]) for i in range(len(z)) if bins[i] == c]
    targets.append(unit(np.mean(members, axis=0)) if fill and members else unit(np.asarray(surrogate[c], np.float64)))
  weights = np.abs(np.asarray(labels, np.float64)[:, None] - centers[None, :]) + 1.0
  weights = weights / weights.max() if weighted else np.ones_like(weights)
  total = 0.0
  for i in range(len(z)):
    s = np.array([unit(z[i]) @ t / tau for t in targets])
    total += -s[bins[i]] + np.log(np.sum(weights[i] * np.exp(s)))
  return total / len(z)


def test_homogeneity_code_form_hand_case_and_reference():
  # Unit vectors at 0, 60 and 180 degrees: cosines 0.5 and -0.5, sum 0, unbiased variance 0.5 -> 0.1 * 0.5.
  z = jnp.array([[1.0, 0.0], [0.5, np.sqrt(0.75)], [-1.0, 0.0]])
  got = G.homogeneity_loss(z, jnp.array([0.0, 1.0, 3.0]), bin_centers=jnp.array([0.0, 1.0, 3.0]), form="code")
  np.testing.assert_allclose(got, 0.05, rtol=1e-5, atol=1e-7)
  for missing in ((), (2, 5)):
    z, labels = _regression(missing=missing)
    got = G.homogeneity_loss(z, labels, bin_centers=CENTERS, form="code", alpha=-0.5, beta=0.3)
    np.testing.assert_allclose(got, homogeneity_code_reference(z, labels, CENTERS, alpha=-0.5, beta=0.3), rtol=1e-5)
  sur = np.random.RandomState(9).randn(len(CENTERS), 4).astype(np.float32)
  got = G.homogeneity_loss(z, labels, bin_centers=CENTERS, surrogate=sur, form="code")
  np.testing.assert_allclose(got, homogeneity_code_reference(z, labels, CENTERS, sur), rtol=1e-5)
  # The two forms are different objectives (the code's ignores the label gaps).
  assert abs(float(got) - float(G.homogeneity_loss(z, labels, bin_centers=CENTERS, surrogate=sur))) > 1e-2


def test_homogeneity_code_form_gradient_matches_finite_differences():
  z, labels = _regression(b=8, d=3, seed=2, missing=(3,))
  z64 = z.astype(np.float64)
  with jax.enable_x64(True):
    g = jax.grad(lambda a: G.homogeneity_loss(a, labels, bin_centers=CENTERS, form="code"))(jnp.asarray(z64))
  np.testing.assert_allclose(g, numeric_grad(lambda a: homogeneity_code_reference(a, labels, CENTERS), z64),
                             rtol=1e-5, atol=1e-8)
  assert np.abs(g).max() > 1e-3


def test_homogeneity_code_form_one_device_equals_eight(mesh8):
  z, labels = _regression(b=32, missing=(4,))
  fn = lambda a, y, axis_name=None: G.homogeneity_loss(a, y, bin_centers=CENTERS, form="code", axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(z, labels), argnums=(0,))
  np.testing.assert_allclose(v1, homogeneity_code_reference(z, labels, CENTERS), rtol=1e-5)


def _surrogate(k=len(CENTERS), d=4, seed=9):
  return np.random.RandomState(seed).randn(k, d).astype(np.float32)


def test_surrogate_contrastive_hand_case():
  # Two orthogonal unit features, each the centroid of its own bin: l_i = -1/tau + log(e^{1/tau} + e^0).
  z = jnp.array([[2.0, 0.0], [0.0, 3.0]])
  got = G.surrogate_contrastive_loss(z, jnp.array([0.1, 0.9]), jnp.zeros((2, 2)), bin_centers=jnp.arange(2.0))
  np.testing.assert_allclose(got, np.log1p(np.exp(-1 / 0.3)), rtol=1e-5)
  # Surrogate targets only, swapped: each feature's own bin is the orthogonal one: log(1 + e^{1/tau}).
  got = G.surrogate_contrastive_loss(z, jnp.array([0.1, 0.9]), z[::-1], bin_centers=jnp.arange(2.0),
                                     fill_from_batch=False)
  np.testing.assert_allclose(got, np.log1p(np.exp(1 / 0.3)), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fill", [True, False])
def test_surrogate_contrastive_matches_float64_reference_and_jit(weighted, fill):
  z, labels = _regression(missing=(2, 5))
  sur = _surrogate()
  fn = lambda a: G.surrogate_contrastive_loss(a, labels, sur, bin_centers=CENTERS, temperature=0.5,
                                              weighted=weighted, fill_from_batch=fill)
  got = fn(z)
  np.testing.assert_allclose(got, surrogate_contrastive_reference(z, labels, sur, CENTERS, 0.5, weighted, fill),
                             rtol=1e-5)
  np.testing.assert_allclose(jax.jit(fn)(z), got, rtol=1e-6)
  low = fn(jnp.asarray(z, jnp.bfloat16))
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, got, rtol=3e-2)


@pytest.mark.parametrize("weighted", [False, True])
def test_surrogate_contrastive_gradient_matches_finite_differences_and_targets_are_constant(weighted):
  z, labels = _regression(b=8, d=3, seed=4, missing=(3,))
  z64, sur = z.astype(np.float64), _surrogate(d=3).astype(np.float64)
  with jax.enable_x64(True):
    g, gs = jax.grad(lambda a, s: G.surrogate_contrastive_loss(a, labels, s, bin_centers=CENTERS,
                                                               weighted=weighted), argnums=(0, 1))(
        jnp.asarray(z64), jnp.asarray(sur))
  # The targets (batch centroids and surrogate) are held fixed, as the authors detach them.
  ref = lambda a: surrogate_contrastive_reference(a, labels, sur, CENTERS, 0.3, weighted, True, z_targets=z64)
  np.testing.assert_allclose(g, numeric_grad(ref, z64), rtol=1e-5, atol=1e-8)
  assert np.abs(g).max() > 1e-3 and not np.any(gs)


def test_surrogate_contrastive_one_device_equals_eight(mesh8):
  z, labels = _regression(b=32, missing=(4,))
  sur = _surrogate()
  fn = lambda a, y, s, axis_name=None: G.surrogate_contrastive_loss(a, y, s, bin_centers=CENTERS, weighted=True,
                                                                    axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(z, labels), replicated=(sur,), argnums=(0,))
  np.testing.assert_allclose(v1, surrogate_contrastive_reference(z, labels, sur, CENTERS, 0.3, True), rtol=1e-5)
  # Centroids of the global batch and the global weight normaliser, not per-device ones.
  local = np.mean([float(fn(z[k:k + 4], labels[k:k + 4], sur)) for k in range(0, 32, 4)])
  assert abs(local - float(v1)) > 1e-2


def test_surrogate_contrastive_and_code_form_bad_inputs():
  z, labels = _regression()
  with pytest.raises(ValueError, match=r"surrogate must have shape \[8, 4\].*got \(8, 3\)"):
    G.surrogate_contrastive_loss(z, labels, _surrogate(d=3), bin_centers=CENTERS)
  with pytest.raises(ValueError, match=r"surrogate must be a \[K, d\] array.*got None"):
    G.surrogate_contrastive_loss(z, labels, None, bin_centers=CENTERS)
  with pytest.raises(ValueError, match=r"labels must have shape \[16\].*got \(15,\)"):
    G.surrogate_contrastive_loss(z, labels[:15], _surrogate(), bin_centers=CENTERS)
  with pytest.raises(ValueError, match="temperature must be > 0; got 0.0"):
    G.surrogate_contrastive_loss(z, labels, _surrogate(), bin_centers=CENTERS, temperature=0.0)
  with pytest.raises(ValueError, match=r'form must be "paper" or "code"; got \'cosine\''):
    G.homogeneity_loss(z, labels, bin_centers=CENTERS, form="cosine")
