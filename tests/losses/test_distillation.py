"""csd, simplex_prototypes, simplex_classifier_loss, cl2r_stationarity, mokd_self_distillation,
mokd_cross_distillation, feature_regression, attention_transfer: hand cases, float64 NumPy references written
from the papers' formulas, gradients, jit, bfloat16, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import distillation as L
from tests import multidevice


def _rng(seed):
  return np.random.default_rng(seed)


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(x):
  m = x.max(axis=-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _softmax(x):
  return np.exp(_log_softmax(x))


# ------------------------------------------------------------------------------------------------------------
# CSD
# ------------------------------------------------------------------------------------------------------------

def csd_reference(s, t, y, tau, contrast_students=False):
  """Loop over anchors: positives are the same-class teacher features (and students, except self)."""
  u, v = _normalize(np.asarray(s, np.float64)), _normalize(np.asarray(t, np.float64))
  total = 0.0
  for i in range(len(u)):
    keys = [(v[a], y[a] == y[i]) for a in range(len(v))]
    if contrast_students:
      keys += [(u[a], y[a] == y[i]) for a in range(len(u)) if a != i]
    logits = np.array([u[i] @ k / tau for k, _ in keys])
    log_den = np.log(np.sum(np.exp(logits)))
    pos = [logits[j] - log_den for j, (_, is_pos) in enumerate(keys) if is_pos]
    total += -np.mean(pos)
  return total / len(u)


def _csd_inputs(b=16, d=6, seed=0):
  r = _rng(seed)
  return (r.normal(size=(b, d)).astype(np.float32), r.normal(size=(b, d)).astype(np.float32),
          r.integers(0, 4, size=b).astype(np.int32))


def test_csd_hand_case():
  # u = v = (e1, e2), labels 0, 1, tau = 1: l_i = -log(e / (e + 1)) = log(1 + 1/e) for both anchors.
  e = jnp.eye(2)
  np.testing.assert_allclose(L.csd(e, e, jnp.arange(2), temperature=1.0), np.log1p(np.exp(-1.0)), rtol=1e-6)
  # One class: both teacher features are positives, log_prob of each is 1 - log(e + 1) and 0 - log(e + 1).
  want = -np.mean([1 - np.log(np.e + 1), -np.log(np.e + 1)])
  np.testing.assert_allclose(L.csd(e, e, jnp.zeros(2, jnp.int32), temperature=1.0), want, rtol=1e-6)


@pytest.mark.parametrize("contrast_students", [False, True])
def test_csd_reference(contrast_students):
  s, t, y = _csd_inputs()
  got = L.csd(s, t, y, temperature=0.5, contrast_students=contrast_students)
  np.testing.assert_allclose(got, csd_reference(s, t, y, 0.5, contrast_students), rtol=1e-5)


def test_csd_gradients_teacher_frozen_jit_bf16():
  s, t, y = _csd_inputs(b=6, d=4, seed=1)
  with jax.enable_x64(True):
    s64, t64 = jnp.asarray(s, jnp.float64), jnp.asarray(t, jnp.float64)
    for cs in (False, True):
      check_grads(jax.jit(lambda x: L.csd(x, t64, y, temperature=0.5, contrast_students=cs)), (s64,),
                  order=1, modes=["rev"])
    gt = jax.grad(lambda x: L.csd(s64, x, y))(t64)
  np.testing.assert_array_equal(gt, 0.0)  # the teacher is frozen
  eager = L.csd(s, t, y)
  np.testing.assert_allclose(jax.jit(L.csd)(s, t, y), eager, rtol=1e-6)
  got = L.csd(jnp.asarray(s, jnp.bfloat16), jnp.asarray(t, jnp.bfloat16), y)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, eager, rtol=5e-2)


@pytest.mark.parametrize("contrast_students", [False, True])
def test_csd_8_devices_equals_1_device(mesh8, contrast_students):
  s, t, y = _csd_inputs(seed=2)
  fn = lambda a, b, lab, axis_name=None: L.csd(a, b, lab, contrast_students=contrast_students,
                                               axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (s, t, y), argnums=(0,))
  np.testing.assert_allclose(v1, csd_reference(s, t, y, 0.07, contrast_students), rtol=1e-5)
  # Positives and negatives come from the global batch: the mean of per-device losses differs.
  local = np.mean([L.csd(a, b, c) for a, b, c in zip(np.split(s, 8), np.split(t, 8), np.split(y, 8))])
  assert abs(local - v1) > 1e-2


def test_csd_bad_inputs():
  s = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match=r"student and teacher must have the same shape; got \(4, 3\) and \(4, 2\)"):
    L.csd(s, jnp.zeros((4, 2)), jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match=r"labels must have shape \[4\]"):
    L.csd(s, s, jnp.zeros(3, jnp.int32))
  with pytest.raises(ValueError, match="temperature must be > 0"):
    L.csd(s, s, jnp.zeros(4, jnp.int32), temperature=0.0)


# ------------------------------------------------------------------------------------------------------------
# CL2R
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,d", [(2, 1), (3, 2), (5, 4), (10, 9), (4, 7)])
def test_simplex_prototypes_properties(k, d):
  p = np.asarray(L.simplex_prototypes(k, d), np.float64)
  assert p.shape == (k, d)
  np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-6)
  gram = p @ p.T
  off = gram[~np.eye(k, dtype=bool)]
  np.testing.assert_allclose(off, -1.0 / (k - 1), atol=1e-6)  # equal angles, the regular-simplex value
  np.testing.assert_allclose(p.sum(axis=0), 0.0, atol=1e-6)  # centred
  np.testing.assert_array_equal(p[:, k - 1:], 0.0)  # embedded in the first K-1 coordinates
  assert L.simplex_prototypes(k, d).dtype == jnp.float32


def test_simplex_prototypes_bad_inputs():
  with pytest.raises(ValueError, match=r"num_classes=5 vertices needs dim >= num_classes - 1 = 4; got dim=3"):
    L.simplex_prototypes(5, 3)
  with pytest.raises(ValueError, match="num_classes must be an int >= 2; got 1"):
    L.simplex_prototypes(1, 3)


def test_simplex_classifier_loss_hand_reference_grads():
  p = L.simplex_prototypes(4, 3)
  # Zero features: uniform softmax over K = 4 classes, CE = log 4.
  np.testing.assert_allclose(L.simplex_classifier_loss(jnp.zeros((2, 3)), jnp.array([0, 3]), p), np.log(4),
                             rtol=1e-6)
  r = _rng(3)
  f, y = r.normal(size=(16, 3)).astype(np.float32), r.integers(0, 4, size=16).astype(np.int32)
  pn = np.asarray(p, np.float64)
  logits = f.astype(np.float64) @ pn.T
  want = -np.mean([_log_softmax(logits[i])[y[i]] for i in range(16)])
  np.testing.assert_allclose(L.simplex_classifier_loss(f, y, p), want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.simplex_classifier_loss)(f, y, p), want, rtol=1e-5)
  got = L.simplex_classifier_loss(jnp.asarray(f, jnp.bfloat16), y, p)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=2e-2)
  with jax.enable_x64(True):
    p64 = L.simplex_prototypes(4, 3, dtype=jnp.float64)
    check_grads(jax.jit(lambda x: L.simplex_classifier_loss(x, y[:5], p64)), (jnp.asarray(f[:5], jnp.float64),),
                order=1, modes=["rev"])
    gp = jax.grad(lambda w: L.simplex_classifier_loss(jnp.asarray(f, jnp.float64), y, w))(p64)
  np.testing.assert_array_equal(gp, 0.0)  # the classifier is fixed


def test_simplex_classifier_loss_8_devices_and_bad_inputs(mesh8):
  p = L.simplex_prototypes(4, 3)
  r = _rng(4)
  f, y = r.normal(size=(16, 3)).astype(np.float32), r.integers(0, 4, size=16).astype(np.int32)
  multidevice.assert_1_equals_8(L.simplex_classifier_loss, mesh8, (f, y), (p,), argnums=(0,))
  with pytest.raises(ValueError, match=r"prototypes must have shape \[K, 3\].*got shape \(4, 5\)"):
    L.simplex_classifier_loss(jnp.asarray(f), jnp.asarray(y), jnp.zeros((4, 5)))
  with pytest.raises(ValueError, match=r"labels must be an integer array"):
    L.simplex_classifier_loss(jnp.asarray(f), jnp.asarray(f[:, 0]), p)


def cl2r_reference(new, old, mask):
  d = [1 - new[i] @ old[i] / np.linalg.norm(new[i]) / np.linalg.norm(old[i]) for i in range(len(new)) if mask[i]]
  return float(np.mean(d)) if d else 0.0


def test_cl2r_stationarity_hand_reference_grads_jit_bf16():
  f, old = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([[3.0, 0.0], [1.0, 0.0]])
  # Row 0 keeps its direction (distance 0), row 1 turned by 90 degrees (distance 1).
  np.testing.assert_allclose(L.cl2r_stationarity(f, old), 0.5, rtol=1e-6)
  np.testing.assert_allclose(L.cl2r_stationarity(f, old, mask=jnp.array([False, True])), 1.0, rtol=1e-6)
  np.testing.assert_allclose(L.cl2r_stationarity(f, old, mask=jnp.array([False, False])), 0.0)
  r = _rng(5)
  a, b = r.normal(size=(16, 5)).astype(np.float32), r.normal(size=(16, 5)).astype(np.float32)
  m = r.random(16) < 0.5
  np.testing.assert_allclose(L.cl2r_stationarity(a, b, mask=m), cl2r_reference(a.astype(np.float64), b, m),
                             rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.cl2r_stationarity)(a, b, mask=m), L.cl2r_stationarity(a, b, mask=m),
                             rtol=1e-6)
  got = L.cl2r_stationarity(jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, cl2r_reference(a, b, np.ones(16, bool)), rtol=3e-2)
  with jax.enable_x64(True):
    a64, b64 = jnp.asarray(a, jnp.float64), jnp.asarray(b, jnp.float64)
    check_grads(jax.jit(lambda x: L.cl2r_stationarity(x, b64, mask=m)), (a64,), order=1, modes=["rev"])
    g_old = jax.grad(lambda x: L.cl2r_stationarity(a64, x))(b64)
  np.testing.assert_array_equal(g_old, 0.0)


def test_cl2r_stationarity_8_devices_and_bad_inputs(mesh8):
  r = _rng(6)
  a, b = r.normal(size=(16, 5)).astype(np.float32), r.normal(size=(16, 5)).astype(np.float32)
  m = np.zeros(16, bool)
  m[[0, 1, 2, 9]] = True  # uneven across devices: the global mean is over 4 rows, not a mean of device means
  fn = lambda x, y, mask, axis_name=None: L.cl2r_stationarity(x, y, mask=mask, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (a, b, m), argnums=(0,))
  np.testing.assert_allclose(v1, cl2r_reference(a, b, m), rtol=1e-5)
  shards = zip(np.split(a, 8), np.split(b, 8), np.split(m, 8))
  local = np.mean([L.cl2r_stationarity(x, y, mask=k) for x, y, k in shards])
  assert abs(local - v1) > 1e-2
  with pytest.raises(ValueError, match=r"new_features and old_features must have the same shape"):
    L.cl2r_stationarity(jnp.zeros((4, 3)), jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match=r"mask must have shape \[4\].*got shape \(3,\)"):
    L.cl2r_stationarity(jnp.zeros((4, 3)), jnp.zeros((4, 3)), mask=jnp.ones(3, bool))


# ------------------------------------------------------------------------------------------------------------
# MOKD
# ------------------------------------------------------------------------------------------------------------

def crop_major(x):
  """[b, crops, K] -> [crops * b, K]."""
  return jnp.swapaxes(x, 0, 1).reshape(-1, x.shape[-1])


def dino_reference(s, t, c, ts, tt, g):
  """DINO's `DINOLoss.forward`, one (teacher crop, student crop) pair at a time."""
  b = len(t) // g
  s_crops = [s[v * b:(v + 1) * b] for v in range(len(s) // b)]
  total, n = 0.0, 0
  for iq in range(g):
    q = _softmax((t[iq * b:(iq + 1) * b] - c) / tt)
    for v, sv in enumerate(s_crops):
      if v != iq:
        total += np.mean(np.sum(-q * _log_softmax(sv / ts), axis=-1))
        n += 1
  return total / n


def search_reference(s, t, ts, tt):
  return np.mean([-np.sum(_softmax(t[n] / tt) * _log_softmax(s[n] / ts)) for n in range(len(s))])


def _mokd_inputs(b=16, crops=3, k=5, seed=0):
  r = _rng(seed)
  f = lambda *shape: r.normal(size=shape).astype(np.float32)
  return dict(s_mlp=f(b, crops, k), t_mlp=f(b, 2, k), c_mlp=0.1 * f(k), s_th=f(b, crops, k), t_th=f(b, 2, k),
              c_th=0.1 * f(k), s_search=f(b, 2, k), t_search=f(b, 2, k))


def test_mokd_hand_case():
  # All-zero logits: every softmax is uniform over K = 4, each cross-entropy is log 4.
  z2, z3, c = jnp.zeros((4, 4)), jnp.zeros((6, 4)), jnp.zeros(4)
  np.testing.assert_allclose(L.mokd_self_distillation(z3, z2, c, z3, z2, c), 2 * np.log(4), rtol=1e-6)
  np.testing.assert_allclose(L.mokd_cross_distillation(z3, z2, c, z2, z2), 2 * np.log(4), rtol=1e-6)


def test_mokd_reference():
  x = {k: np.asarray(v, np.float64) for k, v in _mokd_inputs().items()}
  cm = lambda a: np.asarray(crop_major(jnp.asarray(a)))
  got = L.mokd_self_distillation(cm(x["s_mlp"]), cm(x["t_mlp"]), x["c_mlp"], cm(x["s_th"]), cm(x["t_th"]),
                                 x["c_th"], teacher_temp=0.07)
  want = (dino_reference(cm(x["s_mlp"]), cm(x["t_mlp"]), x["c_mlp"], 0.1, 0.07, 2)
          + dino_reference(cm(x["s_th"]), cm(x["t_th"]), x["c_th"], 0.1, 0.07, 2))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  got = L.mokd_cross_distillation(cm(x["s_mlp"]), cm(x["t_mlp"]), x["c_mlp"], cm(x["s_search"]),
                                  cm(x["t_search"]))
  want = (dino_reference(cm(x["s_mlp"]), cm(x["t_mlp"]), x["c_mlp"], 0.1, 0.04, 2)
          + search_reference(cm(x["s_search"]), cm(x["t_search"]), 0.1, 0.04))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_mokd_gradients_jit_bf16():
  x = {k: crop_major(jnp.asarray(v)) if v.ndim == 3 else jnp.asarray(v)
       for k, v in _mokd_inputs(b=3, k=4, seed=1).items()}
  with jax.enable_x64(True):
    y = {k: v.astype(jnp.float64) for k, v in x.items()}
    check_grads(jax.jit(lambda a, b: L.mokd_self_distillation(a, y["t_mlp"], y["c_mlp"], b, y["t_th"], y["c_th"])),
                (y["s_mlp"], y["s_th"]), order=1, modes=["rev"])
    cross = lambda a, b, t1, t2: L.mokd_cross_distillation(a, t1, y["c_mlp"], b, t2)
    check_grads(jax.jit(lambda a, b: cross(a, b, y["t_mlp"], y["t_search"])), (y["s_mlp"], y["s_search"]),
                order=1, modes=["rev"])
    g1, g2 = jax.grad(lambda t1, t2: cross(y["s_mlp"], y["s_search"], t1, t2), argnums=(0, 1))(
        y["t_mlp"], y["t_search"])
  np.testing.assert_array_equal(g1, 0.0)  # the peer teacher is a target
  np.testing.assert_array_equal(g2, 0.0)
  args = (x["s_mlp"], x["t_mlp"], x["c_mlp"], x["s_search"], x["t_search"])
  eager = L.mokd_cross_distillation(*args)
  np.testing.assert_allclose(jax.jit(L.mokd_cross_distillation)(*args), eager, rtol=1e-6)
  got = L.mokd_cross_distillation(*[a.astype(jnp.bfloat16) if a.ndim == 2 else a for a in args])
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, eager, rtol=5e-2)
  args = (x["s_mlp"], x["t_mlp"], x["c_mlp"], x["s_th"], x["t_th"], x["c_th"])
  np.testing.assert_allclose(jax.jit(L.mokd_self_distillation)(*args), L.mokd_self_distillation(*args),
                             rtol=1e-6)


def test_mokd_8_devices_equals_1_device(mesh8):
  x = _mokd_inputs(seed=2)

  def self_fn(a, b, c, d, cm, ct, axis_name=None):
    return L.mokd_self_distillation(crop_major(a), crop_major(b), cm, crop_major(c), crop_major(d), ct,
                                    axis_name=axis_name)

  def cross_fn(a, b, c, d, cm, axis_name=None):
    return L.mokd_cross_distillation(crop_major(a), crop_major(b), cm, crop_major(c), crop_major(d),
                                     axis_name=axis_name)

  multidevice.assert_1_equals_8(self_fn, mesh8, (x["s_mlp"], x["t_mlp"], x["s_th"], x["t_th"]),
                                (x["c_mlp"], x["c_th"]), argnums=(0, 2))
  multidevice.assert_1_equals_8(cross_fn, mesh8, (x["s_mlp"], x["t_mlp"], x["s_search"], x["t_search"]),
                                (x["c_mlp"],), argnums=(0, 2))


def test_mokd_bad_inputs():
  z2, z3, c = jnp.zeros((4, 4)), jnp.zeros((6, 4)), jnp.zeros(4)
  with pytest.raises(ValueError, match=r"student_search and peer_teacher_search must have the same shape; "
                                       r"got \(4, 4\) and \(4, 3\)"):
    L.mokd_cross_distillation(z3, z2, c, z2, jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match=r"center must have shape \[4\]"):
    L.mokd_self_distillation(z3, z2, c, z3, z2, jnp.zeros(3))
  with pytest.raises(ValueError, match="student_temp must be > 0"):
    L.mokd_cross_distillation(z3, z2, c, z2, z2, student_temp=-1.0)


# ------------------------------------------------------------------------------------------------------------
# DreamTeacher: feature regression and attention transfer
# ------------------------------------------------------------------------------------------------------------

def feature_regression_reference(s_levels, t_levels, eps=1e-5):
  total = 0.0
  for s, t in zip(s_levels, t_levels):
    per_image = []
    for i in range(len(s)):
      ti = np.asarray(t[i], np.float64)
      w = (ti - ti.mean()) / np.sqrt(ti.var() + eps)  # LayerNorm over [h, w, c], no affine
      per_image.append(np.mean((np.asarray(s[i], np.float64) - w) ** 2))
    total += np.mean(per_image)
  return total / len(s_levels)


def at_reference(s_levels, t_levels, p=2.0):
  total = 0.0
  for s, t in zip(s_levels, t_levels):
    d = []
    for i in range(len(s)):
      qs = (np.abs(np.asarray(s[i], np.float64)) ** p).sum(-1).ravel()
      qt = (np.abs(np.asarray(t[i], np.float64)) ** p).sum(-1).ravel()
      d.append(np.linalg.norm(qs / np.linalg.norm(qs) - qt / np.linalg.norm(qt)))
    total += np.mean(d)
  return total / len(s_levels)


def _maps(b=16, seed=0, t_channels=(3, 5)):
  r = _rng(seed)
  s = [r.normal(size=(b, 4, 4, 3)).astype(np.float32), r.normal(size=(b, 2, 2, 5)).astype(np.float32)]
  t = [(2 + 3 * r.normal(size=(b, 4, 4, t_channels[0]))).astype(np.float32),
       r.normal(size=(b, 2, 2, t_channels[1])).astype(np.float32)]
  return s, t


def test_feature_regression_hand_case():
  # A constant teacher map whitens to 0 (zero variance); a student of ones then has MSE 1. Two levels average.
  s = [jnp.ones((2, 2, 2, 3)), jnp.zeros((2, 1, 1, 2))]
  t = [jnp.full((2, 2, 2, 3), 7.0), jnp.full((2, 1, 1, 2), -1.0)]
  np.testing.assert_allclose(L.feature_regression(s, t), 0.5, rtol=1e-6)
  # Without whitening: level 0 has (1 - 7)^2 = 36, level 1 has (0 + 1)^2 = 1.
  np.testing.assert_allclose(L.feature_regression(s, t, whiten=False), 18.5, rtol=1e-6)


def test_feature_regression_reference_grads_jit_bf16():
  s, t = _maps()
  np.testing.assert_allclose(L.feature_regression(s, t), feature_regression_reference(s, t), rtol=1e-5)
  np.testing.assert_allclose(L.feature_regression(s[0], t[0]), feature_regression_reference(s[:1], t[:1]),
                             rtol=1e-5)  # a single map is one level
  np.testing.assert_allclose(jax.jit(L.feature_regression)(s, t), L.feature_regression(s, t), rtol=1e-6)
  got = L.feature_regression([jnp.asarray(x, jnp.bfloat16) for x in s], [jnp.asarray(x, jnp.bfloat16) for x in t])
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, feature_regression_reference(s, t), rtol=3e-2)
  s, t = _maps(b=2, seed=1)
  with jax.enable_x64(True):
    s64, t64 = [jnp.asarray(x, jnp.float64) for x in s], [jnp.asarray(x, jnp.float64) for x in t]
    check_grads(jax.jit(lambda a, b: L.feature_regression([a, b], t64)), tuple(s64), order=1, modes=["rev"])
    gt = jax.grad(lambda x: L.feature_regression(s64, x))(t64)
  for g in gt:
    np.testing.assert_array_equal(g, 0.0)


def test_attention_transfer_hand_reference_grads_jit_bf16():
  # Attention maps (1, 0) and (0, 1) over two positions: distance sqrt(2).
  s, t = jnp.array([[[[1.0], [0.0]]]]), jnp.array([[[[0.0, 0.0], [2.0, 0.0]]]])
  np.testing.assert_allclose(L.attention_transfer(s, t), np.sqrt(2.0), rtol=1e-6)
  s, t = _maps(t_channels=(7, 2))  # the channel counts may differ
  np.testing.assert_allclose(L.attention_transfer(s, t), at_reference(s, t), rtol=1e-5)
  np.testing.assert_allclose(L.attention_transfer(s, t, p=1.0), at_reference(s, t, p=1.0), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.attention_transfer)(s, t), at_reference(s, t), rtol=1e-5)
  got = L.attention_transfer([jnp.asarray(x, jnp.bfloat16) for x in s], [jnp.asarray(x, jnp.bfloat16) for x in t])
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, at_reference(s, t), rtol=3e-2)
  s, t = _maps(b=2, seed=1, t_channels=(2, 4))
  with jax.enable_x64(True):
    s64, t64 = [jnp.asarray(x, jnp.float64) for x in s], [jnp.asarray(x, jnp.float64) for x in t]
    check_grads(jax.jit(lambda a, b: L.attention_transfer([a, b], t64)), tuple(s64), order=1, modes=["rev"])
    g_same = jax.grad(lambda x: L.attention_transfer([x], [2.0 * s64[0]]))(s64[0])
  np.testing.assert_array_equal(g_same, 0.0)  # equal maps: zero loss and a finite, zero gradient


def test_feature_losses_8_devices_equal_1_device(mesh8):
  s, t = _maps(seed=3)
  fr = lambda a, b, c, d, axis_name=None: L.feature_regression([a, b], [c, d], axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fr, mesh8, (s[0], s[1], t[0], t[1]), argnums=(0, 1))
  np.testing.assert_allclose(v1, feature_regression_reference(s, t), rtol=1e-5)
  s, t = _maps(seed=4, t_channels=(6, 1))
  at = lambda a, b, c, d, axis_name=None: L.attention_transfer([a, b], [c, d], axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(at, mesh8, (s[0], s[1], t[0], t[1]), argnums=(0, 1))
  np.testing.assert_allclose(v1, at_reference(s, t), rtol=1e-5)


def test_feature_losses_bad_inputs():
  s, t = _maps(b=2)
  with pytest.raises(ValueError, match=r"student_feats\[1\] and teacher_feats\[1\] must have the same shape; "
                                       r"got \(2, 2, 2, 5\) and \(2, 2, 2, 4\)"):
    L.feature_regression(s, [t[0], t[1][..., :4]])
  with pytest.raises(ValueError, match="the same number of levels; got 2 and 1"):
    L.feature_regression(s, t[:1])
  with pytest.raises(ValueError, match=r"student_feats\[0\] must have shape \[b, h, w, c\]; got shape \(2, 48\)"):
    L.feature_regression([s[0].reshape(2, -1)], [t[0]])
  with pytest.raises(ValueError, match=r"must have the same \[b, h, w\]; got \(2, 4, 4, 3\) and \(2, 2, 2, 3\)"):
    L.attention_transfer(s[0], t[0][:, :2, :2])
  with pytest.raises(ValueError, match="non-empty list"):
    L.attention_transfer([], [])
  with pytest.raises(ValueError, match="p must be > 0"):
    L.attention_transfer(s, t, p=0.0)
