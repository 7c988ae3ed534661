"""hallucinate, semantic_adversarial, scfs_feature_search, scfs_loss: hand cases, float64 NumPy references, gradients,
jit, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import _collectives
from rl.losses import feature_augment as A
from tests import multidevice
from tests.losses import numeric_grad

KEY = jax.random.key(3)


def _pairs(b=16, d=6, seed=0):
  rng = np.random.RandomState(seed)
  z1 = rng.randn(b, d).astype(np.float32)
  z2 = (z1 + 0.5 * rng.randn(b, d)).astype(np.float32)
  return z1, z2



# ----------------------------------------------------------------------------------------------------------------
# hallucinate
# ----------------------------------------------------------------------------------------------------------------

def _ratios(key, n, max_ratio):
  """The per-example ratios as documented: uniform(fold_in(key, global index)) * max_ratio."""
  return np.array([float(jax.random.uniform(jax.random.fold_in(key, i))) for i in range(n)]) * max_ratio


def hallucinate_reference(z1, z2, lam):
  """Asymmetric feature extrapolation of the paper, in float64: h = z1 + lam (z1 - z2), one row at a time."""
  z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
  return np.stack([z1[i] + lam[i] * (z1[i] - z2[i]) for i in range(len(z1))])


def test_hallucinate_hand_case():
  # z1 = e1, z2 = e2: h = (1 + lam) e1 - lam e2, so h[0] - 1 = -h[1] = lam in [0, 0.1]; max_ratio = 0 gives z1.
  z1, z2 = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])
  h = np.asarray(A.hallucinate(KEY, z1, z2))
  lam = h[0, 0] - 1.0
  assert 0.0 <= lam <= 0.1
  np.testing.assert_allclose(h[0, 1], -lam, atol=1e-7)
  np.testing.assert_allclose(A.hallucinate(KEY, z1, z2, max_ratio=0.0), z1)


def test_hallucinate_matches_reference_and_ratio_distribution():
  z1, z2 = _pairs()
  got = A.hallucinate(KEY, jnp.asarray(z1), jnp.asarray(z2), max_ratio=0.3)
  np.testing.assert_allclose(got, hallucinate_reference(z1, z2, _ratios(KEY, 16, 0.3)), rtol=1e-5, atol=1e-6)
  # Many examples: ratios are per example, uniform on [0, max_ratio] (mean max/2, variance max^2/12).
  ones, zeros = jnp.ones((4000, 1)), jnp.zeros((4000, 1))  # h = 1 + lam (1 - 0)
  lam = np.asarray(A.hallucinate(jax.random.key(7), ones, zeros, max_ratio=0.5))[:, 0] - 1.0
  assert lam.min() >= 0.0 and lam.max() <= 0.5 and len(np.unique(lam)) > 3900
  np.testing.assert_allclose(lam.mean(), 0.25, atol=0.01)
  np.testing.assert_allclose(lam.var(), 0.25 / 12, rtol=0.1)


def test_hallucinate_gradients_reach_both_views_and_smoother():
  z1, z2 = _pairs(b=4, d=3, seed=1)
  lam = _ratios(KEY, 4, 0.1)[:, None]
  c = np.random.RandomState(2).randn(4, 3)
  g1, g2 = jax.grad(lambda a, b: jnp.sum(A.hallucinate(KEY, a, b) * c), argnums=(0, 1))(z1, z2)
  np.testing.assert_allclose(g1, (1 + lam) * c, rtol=1e-5)  # d h / d z1 = 1 + lam
  np.testing.assert_allclose(g2, -lam * c, rtol=1e-5, atol=1e-8)  # d h / d z2 = -lam, not zero
  assert np.all(np.abs(g2) > 0)
  rng = np.random.RandomState(3)
  w1, w2 = rng.randn(6, 5), rng.randn(5, 3)
  with jax.enable_x64(True):
    def f(a, b, w1, w2):
      smoother = lambda x: jnp.tanh(x @ w1) @ w2  # a non-linear smoothing MLP on [z1; h]
      return jnp.sum(jnp.sin(A.hallucinate(KEY, a, b, smoother=smoother)))
    args = tuple(jnp.asarray(x, jnp.float64) for x in (z1, z2, w1, w2))
    check_grads(f, args, order=1, modes=["rev"])


def test_hallucinate_jit_smoother_shape_and_bfloat16():
  z1, z2 = _pairs()
  eager = A.hallucinate(KEY, z1, z2)
  np.testing.assert_allclose(jax.jit(lambda a, b: A.hallucinate(KEY, a, b))(z1, z2), eager, rtol=1e-6)
  out = A.hallucinate(KEY, z1, z2, smoother=lambda x: x[:, :3])
  assert out.shape == (16, 3)
  np.testing.assert_allclose(out, z1[:, :3])  # the smoother sees [z1; h]
  got = A.hallucinate(KEY, jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, eager, rtol=3e-2, atol=3e-2)


def test_hallucinate_8_devices_equals_1_device(mesh8):
  z1, z2 = _pairs(b=32)
  fn = lambda a, b, axis_name=None: A.hallucinate(KEY, a, b, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (z1, z2), out_specs=P("data"))
  np.testing.assert_allclose(sm, single, rtol=1e-6)
  np.testing.assert_allclose(pm, single, rtol=1e-6)
  c = np.random.RandomState(4).randn(32, 6).astype(np.float32)
  loss = lambda a, b, c, axis_name=None: _collectives.psum(
      jnp.sum(jnp.square(A.hallucinate(KEY, a, b, axis_name=axis_name) - c)), axis_name)
  multidevice.assert_1_equals_8(loss, mesh8, (z1, z2, c), argnums=(0, 1))


def test_hallucinate_bad_inputs():
  with pytest.raises(ValueError, match=r"z1 and z2 must have the same shape; got \(4, 3\) and \(4, 2\)"):
    A.hallucinate(KEY, jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match=r"max_ratio must be in \[0.0, inf\]; got -0.1"):
    A.hallucinate(KEY, jnp.ones((4, 3)), jnp.ones((4, 3)), max_ratio=-0.1)


# ----------------------------------------------------------------------------------------------------------------
# semantic_adversarial
# ----------------------------------------------------------------------------------------------------------------

def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def sea_direction(x, g, temperature):
  """The semantic direction of the paper / authors' code, float64: softmax over the OTHER examples."""
  x, g = _unit(x.astype(np.float64)), _unit(g.astype(np.float64))
  a = np.zeros_like(x)
  for i in range(len(x)):
    others = [j for j in range(len(x)) if j != i]
    s = np.array([g[i] @ x[j] / temperature for j in others])
    p = np.exp(s - s.max())
    p /= p.sum()
    a[i] = _unit(sum(p[k] * x[j] for k, j in enumerate(others)))
  return a


def sea_reference(features, grads, epsilon, temperature, direction=None):
  a = sea_direction(features, grads, temperature) if direction is None else direction
  return _unit(_unit(features.astype(np.float64)) + epsilon * a)


def _features(b=16, d=6, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, d).astype(np.float32), rng.randn(b, d).astype(np.float32)


def test_sea_hand_case():
  # x = (e1, e2, e3), g_0 = e2, alpha = 1: weights of x1, x2 are e/(e+1), 1/(e+1), so a_0 = (0, e, 1)/sqrt(e^2+1);
  # with epsilon = 1 and x_0 orthogonal to a_0, out_0 = (e1 + a_0)/sqrt(2).
  x = jnp.eye(3)
  g = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
  out = A.semantic_adversarial(x, g, epsilon=1.0, temperature=1.0)
  e = np.e
  expected = np.array([1.0, e / np.sqrt(e * e + 1), 1 / np.sqrt(e * e + 1)]) / np.sqrt(2.0)
  np.testing.assert_allclose(out[0], expected, rtol=1e-6)


@pytest.mark.parametrize("epsilon,temperature", [(0.8, 0.01), (0.3, 0.5)])
def test_sea_matches_reference(epsilon, temperature):
  f, g = _features()
  got = A.semantic_adversarial(jnp.asarray(f), jnp.asarray(g), epsilon=epsilon, temperature=temperature)
  np.testing.assert_allclose(got, sea_reference(f, g, epsilon, temperature), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_sea_gradient_treats_the_direction_as_constant():
  f, g = _features(b=5, d=3, seed=1)
  c = np.random.RandomState(5).randn(5, 3)
  fn = lambda x, gr: jnp.sum(A.semantic_adversarial(x, gr, epsilon=0.5, temperature=0.3) * c)
  gf, gg = jax.grad(fn, argnums=(0, 1))(f, g)
  a = sea_direction(f, g, 0.3)  # fixed at the base point: finite differences through x and the normalisation only
  num = numeric_grad(lambda x: np.sum(sea_reference(x, g, 0.5, 0.3, direction=a) * c), f.astype(np.float64))
  np.testing.assert_allclose(gf, num, atol=2e-5)
  np.testing.assert_allclose(gg, 0.0)  # grads are a constant input


def test_sea_jit_and_bfloat16():
  f, g = _features()
  eager = A.semantic_adversarial(f, g)
  # alpha = 0.01 multiplies float32 rounding of g^T x by 100 inside the softmax: compare at 1e-5.
  np.testing.assert_allclose(jax.jit(lambda a, b: A.semantic_adversarial(a, b))(f, g), eager, atol=1e-5)
  got = A.semantic_adversarial(jnp.asarray(f, jnp.bfloat16), jnp.asarray(g, jnp.bfloat16), temperature=0.5)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, A.semantic_adversarial(f, g, temperature=0.5), atol=3e-2)


def test_sea_8_devices_equals_1_device(mesh8):
  f, g = _features(b=32)
  fn = lambda a, b, axis_name=None: A.semantic_adversarial(a, b, temperature=0.2, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (f, g), out_specs=P("data"))
  np.testing.assert_allclose(single, sea_reference(f, g, 0.8, 0.2), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sm, single, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pm, single, rtol=1e-5, atol=1e-6)
  c = np.random.RandomState(6).randn(32, 6).astype(np.float32)
  loss = lambda a, b, c, axis_name=None: _collectives.psum(
      jnp.sum(A.semantic_adversarial(a, b, temperature=0.2, axis_name=axis_name) * c), axis_name)
  multidevice.assert_1_equals_8(loss, mesh8, (f, g, c), argnums=(0,))


def test_sea_bad_inputs():
  with pytest.raises(ValueError, match=r"features and grads must have the same shape; got \(4, 3\) and \(4, 2\)"):
    A.semantic_adversarial(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match=r"at least 2 examples.*got shape \(1, 3\)"):
    A.semantic_adversarial(jnp.ones((1, 3)), jnp.ones((1, 3)))
  with pytest.raises(ValueError, match=r"epsilon must be > 0; got 0.0"):
    A.semantic_adversarial(jnp.ones((4, 3)), jnp.ones((4, 3)), epsilon=0.0)


# ----------------------------------------------------------------------------------------------------------------
# scfs_feature_search, scfs_loss (SCFS, after the authors' models/scfs.py and main_scfs.py)
# ----------------------------------------------------------------------------------------------------------------

def search_reference(maps, queries, weights_at=None):
  """TeacherWrapper.forward, in float64: for crop k of image i, a = <F_i(p) / |F_i(p)|, q_ki / |q_ki|> at each
  position p, output a * F_i (crop-major rows k * b + i). `weights_at` computes a from other maps (held fixed)."""
  maps, queries = np.asarray(maps, np.float64), np.asarray(queries, np.float64)
  src = maps if weights_at is None else np.asarray(weights_at, np.float64)
  b = maps.shape[0]
  out = []
  for row in range(queries.shape[0]):
    k, i = divmod(row, b)
    q = queries[row] / np.linalg.norm(queries[row])
    a = np.einsum("hwc,c->hw", src[i] / np.linalg.norm(src[i], axis=-1, keepdims=True), q)
    out.append(a[..., None] * maps[i])
  return np.stack(out)


def _softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _xent(p, s):
  """Mean over rows of -sum_k p_k log softmax(s)_k."""
  s = np.asarray(s, np.float64)
  logp = s - s.max(axis=-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
  return np.mean(-(p * logp).sum(axis=-1))


def scfs_reference(sg, tg, center, ss, ts, tau_s=0.1, tau_t=0.04):
  """DINOShallowLoss.forward and (loss_g + loss_l) * 0.5, float64: global = (H(t1 - c, s2) + H(t2 - c, s1)) / 2 on
  the two global views, search = mean over crops of H(t_k, s_k) with no centre."""
  sg, tg, ss, ts = (np.asarray(v, np.float64) for v in (sg, tg, ss, ts))
  b = sg.shape[0] // 2
  pt = _softmax((tg - np.asarray(center, np.float64)) / tau_t)
  glob = 0.5 * (_xent(pt[:b], sg[b:] / tau_s) + _xent(pt[b:], sg[:b] / tau_s))
  n = ss.shape[0] // b
  search = np.mean([_xent(_softmax(ts[k * b:(k + 1) * b] / tau_t), ss[k * b:(k + 1) * b] / tau_s) for k in range(n)])
  return 0.5 * (glob + search), glob, search


def _search_inputs(b=4, h=3, w=2, c=5, n=3, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, h, w, c).astype(np.float32), rng.randn(n * b, c).astype(np.float32)


def _scfs_inputs(b=4, n=3, k=6, seed=0):
  """Sample-major [b, 2, K], [b, 2, K], [b, n, K], [b, n, K] (crop_major turns them into the documented layout)."""
  rng = np.random.RandomState(seed)
  sg, ss = rng.randn(b, 2, k).astype(np.float32), rng.randn(b, n, k).astype(np.float32)
  tg = (sg + 0.5 * rng.randn(b, 2, k)).astype(np.float32)
  ts = (ss + 0.5 * rng.randn(b, n, k)).astype(np.float32)
  return sg, tg, (0.3 * rng.randn(k)).astype(np.float32), ss, ts


def crop_major(x):
  """[b, V, ...] (sample-major, so sharding axis 0 gives each device all crops of its samples) -> [V*b, ...]."""
  return jnp.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])


def test_scfs_feature_search_hand_case():
  f = jnp.array([[[[1.0, 0.0], [0.0, 2.0]]]])  # [1, 1, 2, 2]: a "red" and a "blue" position
  out = A.scfs_feature_search(f, jnp.array([[3.0, 0.0], [1.0, 1.0]]))  # two crops of the one image
  np.testing.assert_allclose(out[0], [[[1.0, 0.0], [0.0, 0.0]]], atol=1e-7)
  r = 1 / np.sqrt(2)
  np.testing.assert_allclose(out[1], [[[r, 0.0], [0.0, 2 * r]]], rtol=1e-6)


def test_scfs_feature_search_matches_float64_reference_and_jit():
  maps, queries = _search_inputs(seed=1)
  np.testing.assert_allclose(A.scfs_feature_search(maps, queries), search_reference(maps, queries), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(jax.jit(A.scfs_feature_search)(maps, queries), search_reference(maps, queries),
                             rtol=1e-5, atol=1e-6)
  low = A.scfs_feature_search(jnp.asarray(maps, jnp.bfloat16), jnp.asarray(queries, jnp.bfloat16))
  assert low.dtype == jnp.float32


def test_scfs_feature_search_gradient_holds_the_weights_constant():
  maps, queries = (v.astype(np.float64) for v in _search_inputs(b=2, h=2, w=2, c=3, n=2, seed=2))
  up = np.random.RandomState(3).randn(4, 2, 2, 3)
  with jax.enable_x64(True):
    gm, gq = jax.grad(lambda m, q: jnp.sum(jnp.asarray(up) * A.scfs_feature_search(m, q)), argnums=(0, 1))(
        jnp.asarray(maps), jnp.asarray(queries))
  # The released code computes the weights under no_grad: d/dF of sum(u * a F) with a fixed at the current maps.
  n = numeric_grad(lambda m: np.sum(up * search_reference(m, queries, weights_at=maps)), maps.copy())
  np.testing.assert_allclose(gm, n, rtol=1e-6, atol=1e-9)
  np.testing.assert_array_equal(gq, 0.0)


def test_scfs_loss_hand_case():
  # b = 1, K = 2, one local crop, centre 0. Teacher global rows 0 and 0.04 log 3: q = (1/2, 1/2), (3/4, 1/4);
  # student global 0 and 0.1 log 3: p = (1/2, 1/2), (3/4, 1/4). Search: teacher 0 (q = 1/2, 1/2), student 0.
  t = jnp.array([[0.0, 0.0], [0.04 * np.log(3.0), 0.0]])
  s = jnp.array([[0.0, 0.0], [0.1 * np.log(3.0), 0.0]])
  glob = 0.5 * (-(0.5 * np.log(0.75) + 0.5 * np.log(0.25)) + np.log(2.0))
  loss, terms = A.scfs_loss(s, t, jnp.zeros(2), jnp.zeros((1, 2)), jnp.zeros((1, 2)), return_terms=True)
  np.testing.assert_allclose([terms["global"], terms["search"], loss], [glob, np.log(2.0), 0.5 * (glob + np.log(2))],
                             rtol=1e-5)


def test_scfs_loss_matches_float64_reference_jit_and_bfloat16():
  sg, tg, c, ss, ts = _scfs_inputs(seed=4)
  args = [crop_major(v) for v in (sg, tg)] + [c] + [crop_major(v) for v in (ss, ts)]
  want, glob, search = scfs_reference(*args)
  loss, terms = A.scfs_loss(*args, return_terms=True)
  np.testing.assert_allclose([loss, terms["global"], terms["search"]], [want, glob, search], rtol=1e-5)
  np.testing.assert_allclose(jax.jit(A.scfs_loss)(*args), want, rtol=1e-5)
  low = A.scfs_loss(*[jnp.asarray(a, jnp.bfloat16) for a in args])
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, want, rtol=5e-2)


def test_scfs_loss_gradients_match_finite_differences_and_teachers_get_none():
  sg, tg, c, ss, ts = _scfs_inputs(b=2, n=2, k=3, seed=5)
  sg, tg, ss, ts = (np.asarray(crop_major(v), np.float64) for v in (sg, tg, ss, ts))
  c = c.astype(np.float64)
  with jax.enable_x64(True):
    grads = jax.grad(lambda *a: A.scfs_loss(a[0], a[1], jnp.asarray(c), a[2], a[3]), argnums=(0, 1, 2, 3))(
        *(jnp.asarray(v) for v in (sg, tg, ss, ts)))
  np.testing.assert_allclose(grads[0], numeric_grad(lambda x: scfs_reference(x, tg, c, ss, ts)[0], sg.copy()),
                             rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(grads[2], numeric_grad(lambda x: scfs_reference(sg, tg, c, x, ts)[0], ss.copy()),
                             rtol=1e-6, atol=1e-9)
  np.testing.assert_array_equal(grads[1], 0.0)  # teacher outputs are targets
  np.testing.assert_array_equal(grads[3], 0.0)


def test_scfs_loss_8_devices_equals_1_device(mesh8):
  sg, tg, c, ss, ts = _scfs_inputs(b=8, seed=6)
  fn = lambda a, b, s, t, cen, axis_name=None: A.scfs_loss(crop_major(a), crop_major(b), cen, crop_major(s),
                                                            crop_major(t), axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (sg, tg, ss, ts), (c,), argnums=(0, 2))
  want = scfs_reference(*[crop_major(v) for v in (sg, tg)], c, *[crop_major(v) for v in (ss, ts)])[0]
  np.testing.assert_allclose(value, want, rtol=1e-5)


def test_scfs_bad_inputs():
  maps, queries = _search_inputs()
  with pytest.raises(ValueError, match=r"queries must have shape \[n \* b, c\] = \[n \* 4, 5\].*got shape \(6, 5\)"):
    A.scfs_feature_search(maps, queries[:6])
  with pytest.raises(ValueError, match=r"queries must have shape \[n \* 4, 5\]; got shape \(12,\)"):
    A.scfs_feature_search(maps, queries[:, 0])
  with pytest.raises(ValueError, match=r"feature_maps must have shape \[b, h, w, c\]; got shape \(4, 3, 2\)"):
    A.scfs_feature_search(maps[..., 0], queries)
  g, s = jnp.zeros((4, 6)), jnp.zeros((6, 6))
  with pytest.raises(ValueError, match=r"student_global must have shape \[2 \* b, K\].*got shape \(3, 6\)"):
    A.scfs_loss(g[:3], g[:3], jnp.zeros(6), s, s)
  with pytest.raises(ValueError, match=r"student_search must have shape \[n \* b, K\] = \[n \* 2, 6\].*\(5, 6\)"):
    A.scfs_loss(g, g, jnp.zeros(6), s[:5], s[:5])
  with pytest.raises(ValueError, match=r"student_search and teacher_search must have the same shape"):
    A.scfs_loss(g, g, jnp.zeros(6), s, s[:4])
  with pytest.raises(ValueError, match=r"center must have shape \[6\]"):
    A.scfs_loss(g, g, jnp.zeros(5), s, s)
  with pytest.raises(ValueError, match=r"teacher_temp must be > 0; got 0.0"):
    A.scfs_loss(g, g, jnp.zeros(6), s, s, teacher_temp=0.0)
