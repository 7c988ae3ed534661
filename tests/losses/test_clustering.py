"""sinkhorn_knopp, swav, dino, dino_center_update: hand cases, float64 NumPy references, gradients, jit,
1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import clustering as L
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References in float64, written from the papers' algorithms (SwAV appendix / `distributed_sinkhorn`,
# DINO Alg. 1 / `DINOLoss`), one crop pair at a time.
# ------------------------------------------------------------------------------------------------------------

def sinkhorn_reference(scores, epsilon, num_iters):
  q = np.exp(np.asarray(scores, np.float64) / epsilon).T  # [K, B], no stabilising shift
  k, b = q.shape
  q /= q.sum()
  for _ in range(num_iters):
    q /= q.sum(axis=1, keepdims=True) * k
    q /= q.sum(axis=0, keepdims=True) * b
  return (q * b).T


def log_softmax_np(x):
  m = x.max(axis=1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def swav_reference(scores, num_crops, crops_for_assign, temperature, epsilon, iters, queue=None, codes_from=None):
  """`codes_from` (default `scores`) gives the Sinkhorn input, so gradients can be taken with the codes fixed."""
  s = np.asarray(scores, np.float64)
  src = s if codes_from is None else np.asarray(codes_from, np.float64)
  b = len(s) // num_crops
  crop = lambda x, c: x[c * b:(c + 1) * b]
  total = 0.0
  for i, a in enumerate(crops_for_assign):
    sink_in = crop(src, a) if queue is None else np.concatenate([queue[i], crop(src, a)])
    q = sinkhorn_reference(sink_in, epsilon, iters)[-b:]
    sub = 0.0
    for v in range(num_crops):
      if v != a:
        sub += -np.mean(np.sum(q * log_softmax_np(crop(s, v) / temperature), axis=1))
    total += sub / (num_crops - 1)
  return total / len(crops_for_assign)


def dino_reference(student, teacher, center, student_temp, teacher_temp, num_global):
  s, t = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
  b = len(t) // num_global
  v_crops = len(s) // b
  total, terms = 0.0, 0
  for iq in range(num_global):
    logits = (t[iq * b:(iq + 1) * b] - center) / teacher_temp
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    for v in range(v_crops):
      if v == iq:
        continue
      total += np.mean(np.sum(-q * log_softmax_np(s[v * b:(v + 1) * b] / student_temp), axis=1))
      terms += 1
  return total / terms



def crop_major(x):
  """[b, V, K] (sample-major, so sharding axis 0 gives each device all crops of its samples) -> [V*b, K]."""
  return jnp.swapaxes(x, 0, 1).reshape(-1, x.shape[-1])


def _cosine_scores(n, k, d=8, seed=0):
  rng = np.random.RandomState(seed)
  z = rng.randn(n, d)
  c = rng.randn(k, d)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  return (z @ c.T).astype(np.float32)


def _multi_crop(b=16, crops=4, k=6, seed=0):
  """[b, crops, K] cosine scores, crops of one sample correlated."""
  rng = np.random.RandomState(seed)
  base = _cosine_scores(b, k, seed=seed)
  x = base[:, None, :] + 0.2 * rng.randn(b, crops, k)
  return np.clip(x, -1, 1).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# sinkhorn_knopp
# ------------------------------------------------------------------------------------------------------------

def test_sinkhorn_hand_case():
  # Q = exp(S/eps) = [[e^a, 1], [1, e^a]] with a = 1/eps is already symmetric with equal row/column sums, so
  # every normalisation keeps its shape: code = [e^a, 1] / (e^a + 1).
  eps = 0.5
  q = L.sinkhorn_knopp(jnp.array([[1.0, 0.0], [0.0, 1.0]]), epsilon=eps)
  p = np.exp(2.0) / (np.exp(2.0) + 1)
  np.testing.assert_allclose(q, [[p, 1 - p], [1 - p, p]], rtol=1e-6)
  # Equal scores: the uniform code 1/K.
  np.testing.assert_allclose(L.sinkhorn_knopp(jnp.zeros((4, 3))), np.full((4, 3), 1 / 3), rtol=1e-6)


@pytest.mark.parametrize("epsilon,num_iters", [(0.05, 3), (0.1, 1), (0.05, 0)])
def test_sinkhorn_matches_float64_reference(epsilon, num_iters):
  s = _cosine_scores(24, 5)
  got = L.sinkhorn_knopp(jnp.asarray(s), epsilon=epsilon, num_iters=num_iters)
  np.testing.assert_allclose(got, sinkhorn_reference(s, epsilon, num_iters), rtol=1e-5, atol=1e-7)


def test_sinkhorn_marginals_and_large_scores():
  s = _cosine_scores(32, 4, seed=3)
  q = np.asarray(L.sinkhorn_knopp(jnp.asarray(s), num_iters=3))
  np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-5)  # each sample's code is a distribution
  q = np.asarray(L.sinkhorn_knopp(jnp.asarray(s), num_iters=300))
  np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(q.sum(axis=0), 32 / 4, rtol=1e-3)  # converged: equipartition B/K per prototype
  # Unnormalised logits of size 50 overflow exp(s/eps) without the per-prototype shift; the codes stay finite
  # and equal to those of the shifted scores (the shift cancels exactly).
  big = 50.0 * s
  got = L.sinkhorn_knopp(jnp.asarray(big), epsilon=1.0)
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, sinkhorn_reference(big - big.max(axis=0), 1.0, 3), rtol=1e-5, atol=1e-7)


def test_sinkhorn_has_no_gradient_and_jit_equals_eager():
  s = jnp.asarray(_cosine_scores(8, 3))
  w = jnp.arange(24.0).reshape(8, 3)
  g = jax.grad(lambda x: jnp.sum(L.sinkhorn_knopp(x) * w))(s)
  np.testing.assert_array_equal(g, 0.0)
  np.testing.assert_allclose(jax.jit(L.sinkhorn_knopp)(s), L.sinkhorn_knopp(s), rtol=1e-6)


def test_sinkhorn_8_devices_equals_1_device(mesh8):
  s = _cosine_scores(32, 5, seed=4)
  fn = lambda x, axis_name=None: L.sinkhorn_knopp(x, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (s,), out_specs=jax.sharding.PartitionSpec("data"))
  np.testing.assert_allclose(single, sinkhorn_reference(s, 0.05, 3), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(sm, single, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(pm, single, rtol=1e-5, atol=1e-7)
  # The equipartition is global: Sinkhorn run on each 4-sample shard alone gives other codes.
  local = np.concatenate([np.asarray(L.sinkhorn_knopp(jnp.asarray(c))) for c in np.split(s, 8)])
  assert np.max(np.abs(local - np.asarray(single))) > 1e-2


def test_sinkhorn_bfloat16_and_bad_inputs():
  s = _cosine_scores(8, 3)
  got = L.sinkhorn_knopp(jnp.asarray(s, jnp.bfloat16))
  assert got.dtype == jnp.float32
  want = L.sinkhorn_knopp(jnp.asarray(s, jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  np.testing.assert_allclose(got, L.sinkhorn_knopp(jnp.asarray(s)), atol=0.05)
  with pytest.raises(ValueError, match=r"scores must have shape \[b, K\]; got shape \(8,\)"):
    L.sinkhorn_knopp(jnp.zeros(8))
  with pytest.raises(ValueError, match="epsilon must be > 0"):
    L.sinkhorn_knopp(jnp.zeros((2, 2)), epsilon=0.0)
  with pytest.raises(ValueError, match="num_iters must be a non-negative int"):
    L.sinkhorn_knopp(jnp.zeros((2, 2)), num_iters=-1)


# ------------------------------------------------------------------------------------------------------------
# swav
# ------------------------------------------------------------------------------------------------------------

def test_swav_hand_case():
  # b = 1: each prototype row of Q has one entry, so the row step makes it 1/K and the code is uniform [1/2, 1/2]
  # for any scores. Crop 0 scores [0, 0], crop 1 scores [1, 0], tau = 0.1:
  #   assign 0, predict with crop 1: -1/2 (log p1 + log p2) with p = softmax([10, 0]) = 5 + log(1 + e^-10);
  #   assign 1, predict with crop 0: -1/2 (2 log 1/2) = log 2;   loss = the mean of the two.
  s = jnp.array([[0.0, 0.0], [1.0, 0.0]])
  expected = 0.5 * (5 + np.log1p(np.exp(-10.0)) + np.log(2.0))
  np.testing.assert_allclose(L.swav(s, num_crops=2, temperature=0.1), expected, rtol=1e-6)


@pytest.mark.parametrize("crops_for_assign,temperature", [((0, 1), 0.1), ((1,), 0.5)])
def test_swav_multicrop_matches_float64_reference(crops_for_assign, temperature):
  x = crop_major(_multi_crop(b=16, crops=4))  # 2 global + 2 local crops, same embedding dim
  got = L.swav(x, num_crops=4, crops_for_assign=crops_for_assign, temperature=temperature)
  want = swav_reference(np.asarray(x), 4, crops_for_assign, temperature, 0.05, 3)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_swav_queue_joins_sinkhorn_only():
  x = crop_major(_multi_crop(b=8, crops=3, k=5, seed=1))
  queue = np.stack([_cosine_scores(12, 5, seed=7), _cosine_scores(12, 5, seed=8)])
  got = L.swav(x, num_crops=3, queue_scores=jnp.asarray(queue))
  want = swav_reference(np.asarray(x), 3, (0, 1), 0.1, 0.05, 3, queue=queue)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert abs(float(got) - swav_reference(np.asarray(x), 3, (0, 1), 0.1, 0.05, 3)) > 1e-3  # the queue matters


def test_swav_gradient_treats_codes_as_constants():
  x = np.asarray(crop_major(_multi_crop(b=4, crops=3, k=3, seed=2)), np.float64)
  # The codes are stop-gradient'ed, so the gradient is that of the reference with the codes held fixed
  # (check_grads on swav itself would differentiate through the codes).
  with jax.enable_x64(True):
    g = jax.grad(lambda s: L.swav(s, num_crops=3, temperature=0.5))(jnp.asarray(x))
  n = numeric_grad(lambda s: swav_reference(s, 3, (0, 1), 0.5, 0.05, 3, codes_from=x), x.copy())
  np.testing.assert_allclose(g, n, atol=1e-7, rtol=1e-6)


def test_swav_jit_and_bfloat16():
  x = crop_major(_multi_crop(b=8, crops=4))
  eager = L.swav(x, num_crops=4)
  np.testing.assert_allclose(jax.jit(lambda s: L.swav(s, num_crops=4))(x), eager, rtol=1e-6)
  xb = x.astype(jnp.bfloat16)
  got = L.swav(xb, num_crops=4)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, L.swav(xb.astype(jnp.float32), num_crops=4), rtol=1e-5)
  np.testing.assert_allclose(got, eager, rtol=5e-2)


def test_swav_8_devices_equals_1_device(mesh8):
  x = _multi_crop(b=16, crops=4)
  fn = lambda a, axis_name=None: L.swav(crop_major(a), num_crops=4, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (x,))
  np.testing.assert_allclose(v1, swav_reference(np.asarray(crop_major(x)), 4, (0, 1), 0.1, 0.05, 3), rtol=1e-5)
  # Not the mean of per-device losses: those would use each shard's own equipartition.
  local = np.mean([float(fn(jnp.asarray(c))) for c in np.split(x, 8)])
  assert abs(local - float(v1)) > 1e-3


def test_swav_with_queue_8_devices_equals_1_device(mesh8):
  x = _multi_crop(b=16, crops=3, k=5, seed=5)
  queue = np.stack([_cosine_scores(16, 5, seed=9), _cosine_scores(16, 5, seed=10)], axis=1)  # [n, A, K]
  fn = lambda a, qu, axis_name=None: L.swav(crop_major(a), num_crops=3, queue_scores=jnp.swapaxes(qu, 0, 1),
                                            axis_name=axis_name)
  multidevice.assert_1_equals_8(fn, mesh8, (x, queue))


def test_swav_bad_inputs():
  with pytest.raises(ValueError, match=r"scores must have shape \[num_crops \* b, K\] with num_crops=4; "
                                       r"got shape \(6, 3\)"):
    L.swav(jnp.zeros((6, 3)), num_crops=4)
  with pytest.raises(ValueError, match=r"crops_for_assign must be non-empty crop ids in \[0, 2\)"):
    L.swav(jnp.zeros((4, 3)), num_crops=2, crops_for_assign=(0, 2))
  with pytest.raises(ValueError, match=r"queue_scores must have shape \[2, n, 3\]"):
    L.swav(jnp.zeros((4, 3)), num_crops=2, queue_scores=jnp.zeros((2, 5, 4)))
  with pytest.raises(ValueError, match="temperature must be > 0"):
    L.swav(jnp.zeros((4, 3)), num_crops=2, temperature=-1.0)


# ------------------------------------------------------------------------------------------------------------
# dino, dino_center_update
# ------------------------------------------------------------------------------------------------------------

def _dino_inputs(b=16, crops=4, k=6, seed=0):
  """Sample-major [b, V, K] student and [b, G, K] teacher (G = 2), and a centre."""
  rng = np.random.RandomState(seed)
  s = rng.randn(b, crops, k).astype(np.float32)
  t = (s[:, :2] + 0.5 * rng.randn(b, 2, k)).astype(np.float32)
  return s, t, (0.3 * rng.randn(k)).astype(np.float32)


def test_dino_hand_case():
  # b = 1, K = 2, two global crops only (pairs (0, 1) and (1, 0)), centre 0, tau_t = 0.04, tau_s = 0.1.
  # Teacher crop 0 = [0, 0] -> q0 = [1/2, 1/2]; teacher crop 1 = [0.04 log 3, 0] -> q1 = [3/4, 1/4].
  # Student crop 0 = [0, 0] -> p0 = [1/2, 1/2]; student crop 1 = [0.1 log 3, 0] -> p1 = [3/4, 1/4].
  # Pair (0, 1): -(1/2 log 3/4 + 1/2 log 1/4); pair (1, 0): log 2; loss = their mean.
  t = jnp.array([[0.0, 0.0], [0.04 * np.log(3.0), 0.0]])
  s = jnp.array([[0.0, 0.0], [0.1 * np.log(3.0), 0.0]])
  expected = 0.5 * (-(0.5 * np.log(0.75) + 0.5 * np.log(0.25)) + np.log(2.0))
  np.testing.assert_allclose(L.dino(s, t, jnp.zeros(2)), expected, rtol=1e-5)


@pytest.mark.parametrize("teacher_temp", [0.04, 0.07])
def test_dino_multicrop_matches_float64_reference(teacher_temp):
  s, t, c = _dino_inputs()
  got = L.dino(crop_major(s), crop_major(t), c, teacher_temp=teacher_temp)
  want = dino_reference(np.asarray(crop_major(s)), np.asarray(crop_major(t)), c, 0.1, teacher_temp, 2)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_dino_gradients():
  s, t, c = _dino_inputs(b=3, crops=3, k=3, seed=1)
  s, t = np.asarray(crop_major(s), np.float64), np.asarray(crop_major(t), np.float64)
  with jax.enable_x64(True):
    check_grads(lambda x: L.dino(x, jnp.asarray(t), jnp.asarray(c, jnp.float64)), (jnp.asarray(s),), order=1,
                modes=["rev"])
    gt = jax.grad(lambda y: L.dino(jnp.asarray(s), y, jnp.asarray(c, jnp.float64)))(jnp.asarray(t))
    gs = jax.grad(lambda x: L.dino(x, jnp.asarray(t), jnp.asarray(c, jnp.float64)))(jnp.asarray(s))
  np.testing.assert_array_equal(gt, 0.0)  # the teacher is a target
  n = numeric_grad(lambda x: dino_reference(x, t, c, 0.1, 0.04, 2), s.copy())
  np.testing.assert_allclose(gs, n, atol=1e-7, rtol=1e-6)


def test_dino_jit_and_bfloat16():
  s, t, c = _dino_inputs()
  s, t = crop_major(s), crop_major(t)
  eager = L.dino(s, t, c)
  np.testing.assert_allclose(jax.jit(L.dino)(s, t, c), eager, rtol=1e-6)
  sb, tb = s.astype(jnp.bfloat16), t.astype(jnp.bfloat16)
  got = L.dino(sb, tb, c)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, L.dino(sb.astype(jnp.float32), tb.astype(jnp.float32), c), rtol=1e-5)
  np.testing.assert_allclose(got, eager, rtol=5e-2)


def test_dino_8_devices_equals_1_device(mesh8):
  s, t, c = _dino_inputs()
  fn = lambda a, b, cen, axis_name=None: L.dino(crop_major(a), crop_major(b), cen, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (s, t), (c,))
  want = dino_reference(np.asarray(crop_major(s)), np.asarray(crop_major(t)), c, 0.1, 0.04, 2)
  np.testing.assert_allclose(v1, want, rtol=1e-5)


def test_dino_bad_inputs():
  s, t, c = jnp.zeros((8, 3)), jnp.zeros((4, 3)), jnp.zeros(3)
  with pytest.raises(ValueError, match=r"student_logits must have shape \[num_crops \* 2, 3\].*got shape \(8, 4\)"):
    L.dino(jnp.zeros((8, 4)), t, c)
  with pytest.raises(ValueError, match=r"teacher_logits must have shape \[num_crops \* b, K\] with num_crops=2"):
    L.dino(s, jnp.zeros((5, 3)), c)
  with pytest.raises(ValueError, match=r"center must have shape \[3\].*got shape \(1, 3\)"):
    L.dino(s, t, jnp.zeros((1, 3)))
  with pytest.raises(ValueError, match="teacher_temp must be > 0"):
    L.dino(s, t, c, teacher_temp=0.0)


def test_dino_center_update_hand_and_reference():
  # mean of [1, 3] and [3, 1] is [2, 2]; 0.5 * [0, 4] + 0.5 * [2, 2] = [1, 3].
  got = L.dino_center_update(jnp.array([0.0, 4.0]), jnp.array([[1.0, 3.0], [3.0, 1.0]]), momentum=0.5)
  np.testing.assert_allclose(got, [1.0, 3.0], rtol=1e-6)
  _, t, c = _dino_inputs()
  t = np.asarray(crop_major(t))
  want = 0.9 * c.astype(np.float64) + 0.1 * t.astype(np.float64).mean(axis=0)
  np.testing.assert_allclose(L.dino_center_update(c, t), want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.dino_center_update)(c, t), want, rtol=1e-5)
  got = L.dino_center_update(c, jnp.asarray(t, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, atol=2e-3)
  with pytest.raises(ValueError, match=r"center must have shape \[6\] to match teacher_logits"):
    L.dino_center_update(jnp.zeros(5), t)
  with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\]; got 1.5"):
    L.dino_center_update(c, t, momentum=1.5)


def test_dino_center_update_8_devices_equals_1_device(mesh8):
  _, t, c = _dino_inputs(seed=3)
  fn = lambda a, cen, axis_name=None: L.dino_center_update(cen, crop_major(a), axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (t,), (c,))
  want = 0.9 * c.astype(np.float64) + 0.1 * np.asarray(t, np.float64).reshape(-1, t.shape[-1]).mean(axis=0)
  np.testing.assert_allclose(single, want, rtol=1e-5)
  np.testing.assert_allclose(sm, single, rtol=1e-5)
  np.testing.assert_allclose(pm, single, rtol=1e-5)
  # Equal shards make the mean of local centres equal the global one; the psum is what keeps every device on
  # the SAME centre (checked by run_1_and_8 under pmap, where a local update would differ between devices).
  local = [np.asarray(L.dino_center_update(c, crop_major(jnp.asarray(x)))) for x in np.split(t, 8)]
  assert max(np.max(np.abs(x - local[0])) for x in local) > 1e-3
