"""dwc_teacher_targets, dwc_contrast_loss, dwc_loss (distillation with contrast, Fu et al. 2022, after the same
authors' released DINO-3D code): hand cases, float64 NumPy references, the released code's indexing, gradients, jit,
bfloat16, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import losses
from rl.losses import point_cloud as PC
from tests import multidevice
from tests.losses import numeric_grad


def crop_major(x):
  """[b, V, ...] (sample-major, so sharding axis 0 gives each device all views of its shapes) -> [V*b, ...]."""
  return jnp.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])


def _softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _logsumexp(z):
  m = np.max(z)
  return m + np.log(np.sum(np.exp(z - m)))


def targets_reference(t, c, tau_t=0.04):
  """softmax((t - c) / tau_t), row by row, float64."""
  return np.stack([_softmax((np.asarray(row, np.float64) - np.asarray(c, np.float64)) / tau_t) for row in t])


def contrast_reference(p, s, g_crops, tau_s=0.1, scale=64.0):
  """The n-pair term one anchor at a time, float64: for global view g, student view v and shape i,
  -log softmax_j(scale * p_gi . s_vj / tau_s) at j = i, averaged over (g, v, i)."""
  p, s = np.asarray(p, np.float64), np.asarray(s, np.float64)
  b = p.shape[0] // g_crops
  v_crops = s.shape[0] // b
  terms = []
  for g in range(g_crops):
    for v in range(v_crops):
      for i in range(b):
        scores = np.array([scale * p[g * b + i] @ s[v * b + j] / tau_s for j in range(b)])
        terms.append(_logsumexp(scores) - scores[i])
  return float(np.mean(terms))


def dino_reference(s, t, c, tau_s=0.1, tau_t=0.04, g_crops=2):
  """DINO's multi-crop cross-entropy, float64: mean over pairs (g, v != g) of the batch-mean cross-entropy."""
  s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
  b = t.shape[0] // g_crops
  v_crops = s.shape[0] // b
  pt = targets_reference(t, c, tau_t)
  pair_losses = []
  for g in range(g_crops):
    for v in range(v_crops):
      if v == g:
        continue
      logp = np.stack([np.log(_softmax(s[v * b + i] / tau_s)) for i in range(b)])
      pair_losses.append(np.mean(-(pt[g * b:(g + 1) * b] * logp).sum(axis=-1)))
  return float(np.mean(pair_losses))


def dwc_reference(s, t, c, tau_s=0.1, tau_t=0.04, g_crops=2, weight=0.01, scale=64.0):
  distill = dino_reference(s, t, c, tau_s, tau_t, g_crops)
  contrast = contrast_reference(targets_reference(t, c, tau_t), s, g_crops, tau_s, scale)
  return distill + weight * contrast, distill, contrast


def released_npair(x, ref, scale=64.0):
  """`get_npair_loss` of the released code, its reshapes transcribed to NumPy: x [b, K], ref [b, K, V]."""
  bs, n_rkhs, n_loc = ref.shape
  ref = np.transpose(ref, (1, 0, 2)).reshape(n_rkhs, -1)
  score = (x @ ref) * scale
  score = np.transpose(score.reshape(bs, bs, n_loc), (0, 2, 1)).reshape(bs * n_loc, bs)
  label = np.repeat(np.arange(bs), n_loc)
  return float(np.mean([_logsumexp(row) - row[y] for row, y in zip(score, label)]))


def _inputs(b=4, g_crops=2, v_crops=5, k=6, seed=0, spread=1.0):
  """Sample-major student [b, V, K] and teacher [b, G, K] logits (the teacher close to the student's global views)
  and a centre."""
  rng = np.random.RandomState(seed)
  s = (spread * rng.randn(b, v_crops, k)).astype(np.float32)
  t = (s[:, :g_crops] + 0.3 * spread * rng.randn(b, g_crops, k)).astype(np.float32)
  return s, t, (0.1 * rng.randn(k)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# dwc_teacher_targets
# ----------------------------------------------------------------------------------------------------------------

def test_teacher_targets_hand_case_reference_and_no_gradient():
  # centre [1, 0] removes the first row's lead: uniform; tau_t = 0.5 sharpens [log 3 / 2, 0] -> [3/4, 1/4].
  got = PC.dwc_teacher_targets(jnp.array([[1.0, 0.0], [1.0 + 0.5 * np.log(3.0), 0.0]]), jnp.array([1.0, 0.0]),
                               teacher_temp=0.5)
  np.testing.assert_allclose(got, [[0.5, 0.5], [0.75, 0.25]], rtol=1e-6)
  _, t, c = _inputs(seed=1)
  t = np.asarray(crop_major(t))
  np.testing.assert_allclose(PC.dwc_teacher_targets(t, c), targets_reference(t, c), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(jax.jit(PC.dwc_teacher_targets)(t, c), targets_reference(t, c), rtol=1e-5, atol=1e-7)
  assert PC.dwc_teacher_targets(jnp.asarray(t, jnp.bfloat16), c).dtype == jnp.float32
  g = jax.grad(lambda x: jnp.sum(PC.dwc_teacher_targets(x, c) * jnp.arange(6.0)))(jnp.asarray(t))
  np.testing.assert_array_equal(g, 0.0)  # a target: never trained through


# ----------------------------------------------------------------------------------------------------------------
# dwc_contrast_loss
# ----------------------------------------------------------------------------------------------------------------

def test_contrast_hand_case():
  # b = 2, K = 2, G = V = 1, scale = tau_s = 1: scores of shape 0 are [a, 0], of shape 1 [0, a], a = log 3, so each
  # anchor's loss is log(1 + e^-a) = log(4/3); with the student rows swapped it is log(1 + e^a) = log 4.
  p = jnp.eye(2)
  s = np.log(3.0) * jnp.eye(2)
  kw = dict(num_global_crops=1, student_temp=1.0, scale=1.0)
  np.testing.assert_allclose(PC.dwc_contrast_loss(p, s, **kw), np.log(4 / 3), rtol=1e-6)
  np.testing.assert_allclose(PC.dwc_contrast_loss(p, s[::-1], **kw), np.log(4.0), rtol=1e-6)


def test_contrast_follows_the_released_code_indexing():
  # get_npair_loss(q, cat(student views, dim=2)) for each teacher view q, averaged over q: the anchor (i, view l)
  # must pick shape i among the batch's view-l outputs.
  s, t, c = _inputs(b=5, v_crops=4, seed=2, spread=0.05)
  p = targets_reference(np.asarray(crop_major(t)), c)
  b = 5
  ref = np.stack([np.asarray(s[:, v], np.float64) / 0.1 for v in range(4)], axis=2)  # [b, K, V]
  want = np.mean([released_npair(p[g * b:(g + 1) * b], ref) for g in range(2)])
  np.testing.assert_allclose(PC.dwc_contrast_loss(p.astype(np.float32), crop_major(s)), want, rtol=1e-5)


@pytest.mark.parametrize("g_crops,v_crops", [(1, 1), (2, 2), (2, 6)])
def test_contrast_matches_float64_reference_and_jit(g_crops, v_crops):
  s, t, c = _inputs(g_crops=g_crops, v_crops=v_crops, seed=3, spread=0.05)
  p = targets_reference(np.asarray(crop_major(t)), c).astype(np.float32)
  s = crop_major(s)
  want = contrast_reference(p, s, g_crops)
  np.testing.assert_allclose(PC.dwc_contrast_loss(p, s, num_global_crops=g_crops), want, rtol=1e-5)
  fn = jax.jit(lambda a, b: PC.dwc_contrast_loss(a, b, num_global_crops=g_crops))
  np.testing.assert_allclose(fn(p, s), want, rtol=1e-5)
  other = dict(student_temp=0.5, scale=3.0)
  np.testing.assert_allclose(PC.dwc_contrast_loss(p, s, num_global_crops=g_crops, **other),
                             contrast_reference(p, s, g_crops, tau_s=0.5, scale=3.0), rtol=1e-5)


def test_contrast_gradients_match_finite_differences_and_targets_get_none():
  s, t, c = _inputs(b=3, v_crops=3, k=4, seed=4)
  p = targets_reference(np.asarray(crop_major(t), np.float64), c, tau_t=0.5)
  s = np.asarray(crop_major(s), np.float64)
  kw = dict(student_temp=0.5, scale=2.0)
  with jax.enable_x64(True):
    gp, gs = jax.grad(lambda a, b: PC.dwc_contrast_loss(a, b, **kw), argnums=(0, 1))(jnp.asarray(p), jnp.asarray(s))
  n = numeric_grad(lambda x: contrast_reference(p, x, 2, tau_s=0.5, scale=2.0), s.copy())
  np.testing.assert_allclose(gs, n, rtol=1e-6, atol=1e-9)
  np.testing.assert_array_equal(gp, 0.0)


def test_contrast_bfloat16_gives_float32():
  s, t, c = _inputs(seed=5, spread=0.05)
  p = PC.dwc_teacher_targets(crop_major(t), c)
  sb = crop_major(s).astype(jnp.bfloat16)
  got = PC.dwc_contrast_loss(p.astype(jnp.bfloat16), sb)
  assert got.dtype == jnp.float32
  want = PC.dwc_contrast_loss(p.astype(jnp.bfloat16).astype(jnp.float32), sb.astype(jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_contrast_8_devices_equals_1_device_and_is_not_a_mean_of_local_losses(mesh8):
  s, t, c = _inputs(b=16, v_crops=4, seed=6, spread=0.05)
  p = np.asarray(jax.vmap(lambda row: PC.dwc_teacher_targets(row, c))(jnp.asarray(t)))  # [b, G, K]
  fn = lambda a, b, axis_name=None: PC.dwc_contrast_loss(crop_major(a), crop_major(b), axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (p, s))
  np.testing.assert_allclose(value, contrast_reference(crop_major(p), crop_major(s), 2), rtol=1e-5)
  local = np.mean([fn(p[k:k + 2], s[k:k + 2]) for k in range(0, 16, 2)])  # negatives from each device only
  assert abs(local - value) > 1e-3 * abs(value)


# ----------------------------------------------------------------------------------------------------------------
# dwc_loss
# ----------------------------------------------------------------------------------------------------------------

def test_dwc_loss_is_dino_plus_weighted_contrast():
  s, t, c = _inputs(seed=7, spread=0.05)
  s, t = crop_major(s), crop_major(t)
  loss, terms = PC.dwc_loss(s, t, c, return_terms=True)
  np.testing.assert_allclose(terms["distillation"], losses.dino(s, t, c), rtol=1e-6)
  np.testing.assert_allclose(terms["contrast"], PC.dwc_contrast_loss(PC.dwc_teacher_targets(t, c), s), rtol=1e-6)
  np.testing.assert_allclose(loss, terms["distillation"] + 0.01 * terms["contrast"], rtol=1e-6)
  np.testing.assert_allclose(PC.dwc_loss(s, t, c, contrast_weight=0.0), losses.dino(s, t, c), rtol=1e-6)


@pytest.mark.parametrize("g_crops,v_crops,teacher_temp", [(2, 5, 0.04), (1, 3, 0.07), (2, 2, 0.04)])
def test_dwc_loss_matches_float64_reference_jit_and_bfloat16(g_crops, v_crops, teacher_temp):
  s, t, c = _inputs(g_crops=g_crops, v_crops=v_crops, seed=8, spread=0.05)
  s, t = crop_major(s), crop_major(t)
  kw = dict(num_global_crops=g_crops, teacher_temp=teacher_temp)
  want, distill, contrast = dwc_reference(s, t, c, tau_t=teacher_temp, g_crops=g_crops)
  loss, terms = PC.dwc_loss(s, t, c, return_terms=True, **kw)
  np.testing.assert_allclose([loss, terms["distillation"], terms["contrast"]], [want, distill, contrast], rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda *a: PC.dwc_loss(*a, **kw))(s, t, c), want, rtol=1e-5)
  sb, tb = s.astype(jnp.bfloat16), t.astype(jnp.bfloat16)
  low = PC.dwc_loss(sb, tb, c, **kw)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, PC.dwc_loss(sb.astype(jnp.float32), tb.astype(jnp.float32), c, **kw), rtol=1e-5)


def test_dwc_loss_gradients_match_finite_differences_and_the_teacher_gets_none():
  s, t, c = _inputs(b=2, v_crops=3, k=3, seed=9)
  s, t = (np.asarray(crop_major(v), np.float64) for v in (s, t))
  c = c.astype(np.float64)
  kw = dict(teacher_temp=0.5, scale=2.0, contrast_weight=0.3)
  with jax.enable_x64(True):
    gs, gt = jax.grad(lambda a, b: PC.dwc_loss(a, b, jnp.asarray(c), **kw), argnums=(0, 1))(
        jnp.asarray(s), jnp.asarray(t))
  n = numeric_grad(lambda x: dwc_reference(x, t, c, tau_t=0.5, weight=0.3, scale=2.0)[0], s.copy())
  np.testing.assert_allclose(gs, n, rtol=1e-6, atol=1e-9)
  np.testing.assert_array_equal(gt, 0.0)


def test_dwc_loss_8_devices_equals_1_device(mesh8):
  s, t, c = _inputs(b=16, v_crops=4, seed=10, spread=0.05)
  fn = lambda a, b, cen, axis_name=None: PC.dwc_loss(crop_major(a), crop_major(b), cen, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (s, t), (c,), argnums=(0,))
  np.testing.assert_allclose(value, dwc_reference(crop_major(s), crop_major(t), c)[0], rtol=1e-5)


def test_bad_inputs():
  t, s, c = jnp.zeros((4, 3)), jnp.zeros((8, 3)), jnp.zeros(3)
  with pytest.raises(ValueError, match=r"center must have shape \[3\].*got shape \(2,\)"):
    PC.dwc_teacher_targets(t, jnp.zeros(2))
  with pytest.raises(ValueError, match=r"teacher_logits must have shape \[n, K\]; got shape \(4,\)"):
    PC.dwc_teacher_targets(t[:, 0], c)
  with pytest.raises(ValueError, match=r"teacher_temp must be > 0; got 0.0"):
    PC.dwc_teacher_targets(t, c, teacher_temp=0.0)
  with pytest.raises(ValueError, match=r"teacher_targets must have shape \[num_crops \* b, K\] with num_crops=2"):
    PC.dwc_contrast_loss(t[:3], s)
  with pytest.raises(ValueError, match=r"student_logits must have shape \[num_crops \* 2, 3\].*got shape \(7, 3\)"):
    PC.dwc_contrast_loss(t, s[:7])
  with pytest.raises(ValueError, match=r"student_logits must have shape \[num_crops \* 2, 3\].*got shape \(8, 4\)"):
    PC.dwc_contrast_loss(t, jnp.zeros((8, 4)))
  with pytest.raises(ValueError, match=r"num_global_crops must be an int >= 1; got 0"):
    PC.dwc_contrast_loss(t, s, num_global_crops=0)
  with pytest.raises(ValueError, match=r"scale must be > 0; got -1.0"):
    PC.dwc_contrast_loss(t, s, scale=-1.0)
  with pytest.raises(ValueError, match=r"student_temp must be > 0; got 0.0"):
    PC.dwc_contrast_loss(t, s, student_temp=0.0)
  with pytest.raises(ValueError, match=r"teacher_targets must be a floating array; got dtype int32"):
    PC.dwc_contrast_loss(jnp.zeros((4, 3), jnp.int32), s)
  with pytest.raises(ValueError, match=r"contrast_weight must be in \[0.0, inf\]; got -0.1"):
    PC.dwc_loss(s, t, c, contrast_weight=-0.1)
  with pytest.raises(ValueError, match=r"student_logits must have shape \[num_crops \* 2, 3\]"):
    PC.dwc_loss(jnp.zeros((8, 4)), t, c)
