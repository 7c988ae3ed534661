"""matryoshka, nested_cluster_loss and fMRLRec's nested_weight_mask, nested_linear, nested_layer_norm, fmrlrec_loss:
hand cases, float64 NumPy references, gradients, jit, 1 device == 8."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import contrastive
from rl.losses import nested as L
from rl.losses import redundancy
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# float64 NumPy references written from the papers.
# ------------------------------------------------------------------------------------------------------------

def nt_xent_reference(z1, z2, tau):
  """SimCLR eq. 1, anchor by anchor."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  u = z / np.linalg.norm(z, axis=1, keepdims=True)
  n, b = len(u), len(z1)
  total = 0.0
  for i in range(n):
    p = (i + b) % n
    den = sum(math.exp(u[i] @ u[k] / tau) for k in range(n) if k != i)
    total += -math.log(math.exp(u[i] @ u[p] / tau) / den)
  return total / n


def normalize_np(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def sinkhorn_np(scores, eps, iters):
  """SwAV's algorithm on [B, K] scores: rows of Q^T sum to 1/K, columns to 1/B, codes = B Q."""
  q = np.exp(scores / eps).T
  k, b = q.shape
  q /= q.sum()
  for _ in range(iters):
    q /= q.sum(axis=1, keepdims=True) * k
    q /= q.sum(axis=0, keepdims=True) * b
  return (q * b).T


def nested_cluster_reference(s, t, protos, student_temp, teacher_temp, iters, teacher_protos=None):
  s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
  teacher_protos = protos if teacher_protos is None else teacher_protos
  total = 0.0
  for c, ct in zip(protos, teacher_protos):
    m = c.shape[1]
    c, ct = normalize_np(np.asarray(c, np.float64)), normalize_np(np.asarray(ct, np.float64))
    q = sinkhorn_np(normalize_np(t[:, :m]) @ ct.T, teacher_temp, iters)
    logits = normalize_np(s[:, :m]) @ c.T / student_temp
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    total += np.mean(-np.sum(q * log_p, axis=1))
  return total


def random(shape, seed, scale=1.0):
  return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# matryoshka
# ------------------------------------------------------------------------------------------------------------

def test_matryoshka_hand_case():
  # loss(z1, z2) = sum(z1 * z2) on z = [1, 2, 3, 4]: prefixes 1, 2, 4 give 1, 1 + 4 = 5, 1 + 4 + 9 + 16 = 30;
  # weights (1, 2, 3): 1 + 10 + 90 = 101.
  z = jnp.array([[1.0, 2.0, 3.0, 4.0]])
  f = L.matryoshka(lambda a, b: jnp.sum(a * b), (1, 2, 4), weights=(1.0, 2.0, 3.0), return_terms=True)
  total, terms = f(z, z)
  assert float(total) == 101.0
  assert {m: float(t) for m, t in terms.items()} == {1: 1.0, 2: 5.0, 4: 30.0}


def test_matryoshka_nt_xent_matches_paper_reference_and_kwargs_pass_through():
  z1, z2 = random((16, 8), 0), random((16, 8), 1)
  got = L.matryoshka(contrastive.nt_xent, (2, 4, 8), weights=(0.5, 1.0, 2.0))(z1, z2, temperature=0.5)
  want = sum(w * nt_xent_reference(z1[:, :m], z2[:, :m], 0.5) for w, m in zip((0.5, 1.0, 2.0), (2, 4, 8)))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_matryoshka_vicreg_equals_manual_sum_and_jit():
  z1, z2 = random((16, 8), 2), random((16, 8), 3)
  f = L.matryoshka(redundancy.vicreg, (3, 8))
  want = float(redundancy.vicreg(z1[:, :3], z2[:, :3])) + float(redundancy.vicreg(z1, z2))
  np.testing.assert_allclose(float(f(z1, z2)), want, rtol=1e-6)
  np.testing.assert_allclose(float(jax.jit(f)(z1, z2)), want, rtol=1e-6)


def test_matryoshka_slices_only_floating_rank2_args_by_default():
  # supcon(z [b, views, d], labels [b]): z is sliced on its last axis, the integer labels pass through.
  z = random((8, 2, 6), 4)
  labels = jnp.array([0, 1, 0, 1, 2, 2, 3, 3])
  got = L.matryoshka(contrastive.supcon, (2, 6))(z, labels)
  want = contrastive.supcon(z[..., :2], labels) + contrastive.supcon(z, labels)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  # Explicit argnums: only the first argument is cut, the second must then already be of the prefix size.
  sliced_first = L.matryoshka(lambda a, b: jnp.sum(a) * jnp.sum(b), (2,), argnums=(0,))
  a, b = jnp.ones((2, 4)), jnp.ones((2, 4))
  assert float(sliced_first(a, b)) == 4.0 * 8.0


def test_matryoshka_gradients_float64():
  with jax.enable_x64(True):
    z1 = jnp.asarray(random((6, 4), 5), jnp.float64)
    z2 = jnp.asarray(random((6, 4), 6), jnp.float64)
    f = L.matryoshka(contrastive.nt_xent, (2, 4), weights=(1.0, 0.5))
    check_grads(jax.jit(lambda a, b: f(a, b, temperature=0.5)), (z1, z2), order=1, modes=["rev"])


def test_matryoshka_nt_xent_1_equals_8(mesh8):
  z1, z2 = random((16, 8), 7), random((16, 8), 8)
  f = L.matryoshka(contrastive.nt_xent, (2, 4, 8))
  value, _ = multidevice.assert_1_equals_8(f, mesh8, sharded=(z1, z2))
  want = sum(nt_xent_reference(z1[:, :m], z2[:, :m], 0.1) for m in (2, 4, 8))
  np.testing.assert_allclose(float(value), want, rtol=1e-5)


def test_matryoshka_bfloat16():
  z1, z2 = random((8, 8), 9), random((8, 8), 10)
  f = L.matryoshka(contrastive.nt_xent, (4, 8))
  got = f(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), float(f(z1, z2)), rtol=2e-2)


def test_matryoshka_bad_inputs():
  with pytest.raises(ValueError, match="strictly increasing"):
    L.matryoshka(contrastive.nt_xent, (8, 4))
  with pytest.raises(ValueError, match="positive ints"):
    L.matryoshka(contrastive.nt_xent, ())
  with pytest.raises(ValueError, match=r"one entry per nesting size: len\(dims\)=2"):
    L.matryoshka(contrastive.nt_xent, (2, 4), weights=(1.0,))
  with pytest.raises(ValueError, match="weights must be in"):
    L.matryoshka(contrastive.nt_xent, (2, 4), weights=(1.0, -1.0))
  f = L.matryoshka(contrastive.nt_xent, (4, 16))
  with pytest.raises(ValueError, match=r"dims=\(4, 16\) exceed the embedding size d=8 of argument 0"):
    f(jnp.ones((4, 8)), jnp.ones((4, 8)))
  with pytest.raises(ValueError, match="found no embedding"):
    L.matryoshka(lambda x: x.sum(), (1,))(jnp.ones(4))
  with pytest.raises(ValueError, match="out of range"):
    L.matryoshka(lambda x: x.sum(), (1,), argnums=(3,))(jnp.ones((2, 4)))


# ------------------------------------------------------------------------------------------------------------
# nested_cluster_loss
# ------------------------------------------------------------------------------------------------------------

def test_nested_cluster_hand_case():
  # Two heads, each scoring the features as [[1, -1], [-1, 1]] (cosines). That matrix is already balanced, so
  # Sinkhorn keeps each row's softmax: q = (sigmoid(2), sigmoid(-2)) at tau_t = 1. With tau_s = 1 the student
  # predicts the same distribution, so each head costs the entropy H(q) and the loss (heads summed) is 2 H.
  z = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
  protos = [jnp.array([[1.0], [-1.0]]), jnp.array([[1.0, 0.0], [-1.0, 0.0]])]
  q = 1.0 / (1.0 + math.exp(-2.0))
  entropy = -(q * math.log(q) + (1 - q) * math.log(1 - q))  # 0.3655...
  got = L.nested_cluster_loss(z, z, protos, student_temp=1.0, teacher_temp=1.0)
  np.testing.assert_allclose(float(got), 2 * entropy, rtol=1e-6)


def make_cluster_inputs(seed=0, b=16):
  s, t = random((b, 8), seed), random((b, 8), seed + 1)
  protos = [random((k, m), seed + 2 + i) for i, (k, m) in enumerate(((2, 2), (4, 4), (8, 8)))]
  return s, t, protos


def test_nested_cluster_matches_reference():
  s, t, protos = make_cluster_inputs()
  got = L.nested_cluster_loss(s, t, protos, student_temp=0.2, teacher_temp=0.5, dims=(2, 4, 8))
  want = nested_cluster_reference(s, t, protos, 0.2, 0.5, 3)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # Separate (EMA) teacher prototypes, and no normalisation.
  t_protos = [p + 0.1 for p in protos]
  got = L.nested_cluster_loss(s, t, protos, teacher_prototypes=t_protos, student_temp=0.2, teacher_temp=0.5)
  np.testing.assert_allclose(float(got), nested_cluster_reference(s, t, protos, 0.2, 0.5, 3, t_protos), rtol=1e-5)
  raw = L.nested_cluster_loss(s / 4, t / 4, protos, normalize=False, teacher_temp=1.0, sinkhorn_iters=1)
  want_raw = 0.0
  for c in protos:  # raw dot products, one Sinkhorn round
    m = c.shape[1]
    q = sinkhorn_np((t[:, :m] / 4).astype(np.float64) @ c.T, 1.0, 1)
    lg = (s[:, :m] / 4).astype(np.float64) @ c.T / 0.1
    lp = lg - np.log(np.exp(lg).sum(1, keepdims=True))
    want_raw += np.mean(-np.sum(q * lp, axis=1))
  np.testing.assert_allclose(float(raw), want_raw, rtol=1e-5)


def test_nested_cluster_gradients_float64():
  s, t, protos = make_cluster_inputs(b=6)
  with jax.enable_x64(True):
    s64, t64 = jnp.asarray(s, jnp.float64), jnp.asarray(t, jnp.float64)
    p64 = [jnp.asarray(p, jnp.float64) for p in protos]
    fixed = [jnp.asarray(p, jnp.float64) for p in protos]  # the teacher head, so the codes do not move
    f = lambda x, a, b, c: L.nested_cluster_loss(x, t64, [a, b, c], teacher_prototypes=fixed, teacher_temp=0.5)
    check_grads(jax.jit(f), (s64, *p64), order=1, modes=["rev"])
    # Teacher features only shape the codes, which carry no gradient.
    g = jax.grad(lambda y: L.nested_cluster_loss(s64, y, p64))(t64)
    np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_nested_cluster_jit_and_bfloat16():
  s, t, protos = make_cluster_inputs(b=8)
  eager = L.nested_cluster_loss(s, t, protos)
  np.testing.assert_allclose(float(jax.jit(L.nested_cluster_loss)(s, t, protos)), float(eager), rtol=1e-6)
  bf = L.nested_cluster_loss(jnp.asarray(s, jnp.bfloat16), jnp.asarray(t, jnp.bfloat16),
                             [jnp.asarray(p, jnp.bfloat16) for p in protos])
  assert bf.dtype == jnp.float32
  np.testing.assert_allclose(float(bf), float(eager), rtol=5e-2)


def test_nested_cluster_1_equals_8(mesh8):
  s, t, protos = make_cluster_inputs(seed=3, b=32)
  loss = lambda s, t, p0, p1, p2, axis_name=None: L.nested_cluster_loss(
      s, t, [p0, p1, p2], student_temp=0.2, teacher_temp=0.3, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(loss, mesh8, sharded=(s, t), replicated=tuple(protos),
                                           argnums=(0, 2, 3, 4))
  np.testing.assert_allclose(float(value), nested_cluster_reference(s, t, protos, 0.2, 0.3, 3), rtol=1e-5)
  # The Sinkhorn equipartition is over the global batch: per-device losses averaged give another number.
  local = np.mean([float(loss(s[i:i + 4], t[i:i + 4], *protos)) for i in range(0, 32, 4)])
  assert abs(local - float(value)) > 1e-3


def test_nested_cluster_bad_inputs():
  s, t, protos = make_cluster_inputs(b=4)
  with pytest.raises(ValueError, match="student_feats and teacher_feats must have the same shape"):
    L.nested_cluster_loss(s, t[:, :4], protos)
  with pytest.raises(ValueError, match="strictly increasing"):
    L.nested_cluster_loss(s, t, protos[::-1])
  with pytest.raises(ValueError, match=r"dims=\(2, 4, 6\) do not match"):
    L.nested_cluster_loss(s, t, protos, dims=(2, 4, 6))
  with pytest.raises(ValueError, match="exceed the feature size d=4"):
    L.nested_cluster_loss(s[:, :4], t[:, :4], protos)
  with pytest.raises(ValueError, match=r"prototypes\[1\] must have shape \[K_m, m\]"):
    L.nested_cluster_loss(s, t, [protos[0], protos[1][0]])
  with pytest.raises(ValueError, match="non-empty list"):
    L.nested_cluster_loss(s, t, [])
  with pytest.raises(ValueError, match="teacher_prototypes must have the shapes"):
    L.nested_cluster_loss(s, t, protos, teacher_prototypes=protos[:2])
  with pytest.raises(ValueError, match="teacher_temp must be > 0"):
    L.nested_cluster_loss(s, t, protos, teacher_temp=0.0)


# ------------------------------------------------------------------------------------------------------------
# fMRLRec: nested_weight_mask, nested_linear, nested_layer_norm, fmrlrec_loss
# ------------------------------------------------------------------------------------------------------------

DIMS = (2, 3, 6)


def mrl_square_linear_reference(x, kernel, dims):
  """The released `MRLSquareLinearLayer`: block g is a separate linear map from x[:m_g] to m_g - m_{g-1} outputs;
  the block outputs are concatenated. The block weights are read out of `kernel` ([in, out]) at
  kernel[:m_g, m_{g-1}:m_g]. float64."""
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  outs, start = [], 0
  for m in dims:
    outs.append(x[..., :m] @ kernel[:m, start:m])
    start = m
  return np.concatenate(outs, axis=-1)


def mrl_layer_norm_reference(x, dims, scale, bias, eps):
  """The released `MRLLayerNorm`: torch's LayerNorm (biased variance) on each block [m_{g-1}, m_g)."""
  x = np.asarray(x, np.float64)
  outs, start = [], 0
  for m in dims:
    blk = x[..., start:m]
    mu, var = blk.mean(-1, keepdims=True), blk.var(-1, keepdims=True)
    outs.append((blk - mu) / np.sqrt(var + eps) * scale[start:m] + bias[start:m])
    start = m
  return np.concatenate(outs, axis=-1)


def fmrlrec_reference(hidden, items, labels, dims, ignore_index=0, reduction="mean"):
  """fMRLRec's training loss (trainer/lru.py): cross-entropy over all items of the scores h[:m] . E[:m], labels
  equal to ignore_index skipped, one mean over the stacked sizes; "sum": MRL's sum of per-size means."""
  h = np.asarray(hidden, np.float64).reshape(-1, np.shape(hidden)[-1])
  e, y = np.asarray(items, np.float64), np.asarray(labels).reshape(-1)
  per_size = []
  for m in dims:
    nll = []
    for t in range(len(h)):
      if ignore_index is not None and y[t] == ignore_index:
        continue
      s = e[:, :m] @ h[t, :m]
      nll.append(-(s[y[t]] - s.max() - np.log(np.exp(s - s.max()).sum())))
    per_size.append(np.mean(nll))
  return np.mean(per_size) if reduction == "mean" else np.sum(per_size)


def test_nested_weight_mask_hand_case():
  # dims (2, 3, 6): outputs 0-1 read x[:2], output 2 reads x[:3], outputs 3-5 read all 6 inputs.
  want = np.zeros((6, 6))
  want[:2, :2] = want[:3, 2] = want[:, 3:] = 1
  np.testing.assert_array_equal(L.nested_weight_mask(DIMS), want)
  np.testing.assert_array_equal(L.nested_weight_mask((4,)), np.ones((4, 4)))


def test_nested_linear_matches_released_block_layer_and_every_prefix_is_a_model():
  rng = np.random.default_rng(0)
  x, kernel, bias = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)), rng.standard_normal(6)
  got = L.nested_linear(jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32), dims=DIMS)
  np.testing.assert_allclose(got, mrl_square_linear_reference(x, kernel, DIMS), rtol=1e-5, atol=1e-6)
  with_bias = L.nested_linear(jnp.asarray(x), jnp.asarray(kernel), dims=DIMS, bias=jnp.asarray(bias))
  np.testing.assert_allclose(with_bias, mrl_square_linear_reference(x, kernel, DIMS) + bias, rtol=1e-5, atol=1e-6)
  # Train once, deploy anywhere: the first m outputs are the width-m model (top-left corner of the kernel) and do
  # not depend on the features beyond m.
  for k, m in enumerate(DIMS):
    small = L.nested_linear(jnp.asarray(x[:, :m]), jnp.asarray(kernel[:m, :m]), dims=DIMS[:k + 1])
    np.testing.assert_allclose(got[:, :m], small, rtol=1e-5, atol=1e-6)
    changed = x.copy()
    changed[:, m:] += 10.0
    np.testing.assert_allclose(L.nested_linear(jnp.asarray(changed), jnp.asarray(kernel), dims=DIMS)[:, :m],
                               got[:, :m], rtol=1e-5, atol=1e-6)


def test_nested_linear_gradients_and_masked_entries_get_none():
  rng = np.random.default_rng(1)
  x, kernel, up = rng.standard_normal((3, 6)), rng.standard_normal((6, 6)), rng.standard_normal((3, 6))
  loss = lambda a, w: jnp.sum(jnp.asarray(up) * jnp.tanh(L.nested_linear(a, w, dims=DIMS)))
  with jax.enable_x64(True):
    gx, gw = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(kernel))
    ref = lambda a, w: jnp.sum(jnp.asarray(up) * jnp.tanh(jnp.concatenate(
        [a[:, :m] @ w[:m, s:m] for s, m in zip((0,) + DIMS[:-1], DIMS)], axis=1)))  # the block form, float64
    rx, rw = jax.grad(ref, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(kernel))
  np.testing.assert_allclose(gx, rx, rtol=1e-12)
  np.testing.assert_allclose(gw, rw, rtol=1e-12)
  assert not np.any(np.asarray(gw)[np.asarray(L.nested_weight_mask(DIMS)) == 0])


def test_nested_layer_norm_matches_released_blocks_and_prefixes():
  rng = np.random.default_rng(2)
  x, scale, bias = 3 * rng.standard_normal((4, 6)) + 1, rng.standard_normal(6), rng.standard_normal(6)
  got = L.nested_layer_norm(jnp.asarray(x, jnp.float32), dims=DIMS, scale=jnp.asarray(scale, jnp.float32),
                            bias=jnp.asarray(bias, jnp.float32))
  np.testing.assert_allclose(got, mrl_layer_norm_reference(x, DIMS, scale, bias, 1e-5), rtol=1e-5, atol=1e-5)
  plain = L.nested_layer_norm(jnp.asarray(x, jnp.float32), dims=DIMS)
  np.testing.assert_allclose(plain, mrl_layer_norm_reference(x, DIMS, np.ones(6), np.zeros(6), 1e-5), rtol=1e-5,
                             atol=1e-5)
  # Unlike a LayerNorm over all 6 features, each prefix ignores the features after it.
  np.testing.assert_allclose(L.nested_layer_norm(jnp.asarray(x[:, :3]), dims=DIMS[:2]), plain[:, :3], rtol=1e-5,
                             atol=1e-6)
  assert L.nested_layer_norm(jnp.asarray(x, jnp.bfloat16), dims=DIMS).dtype == jnp.bfloat16


def _rec_inputs(b=16, t=3, d=6, n_items=7, seed=0):
  rng = np.random.default_rng(seed)
  hidden = rng.standard_normal((b, t, d)).astype(np.float32)
  items = rng.standard_normal((n_items, d)).astype(np.float32)
  labels = rng.integers(1, n_items, (b, t)).astype(np.int32)
  labels[::3, 0] = 0  # padding positions (left padding, as the code's sequences)
  return hidden, items, labels


def test_fmrlrec_loss_hand_case_and_terms():
  # One position, items e1, e2; h = e1. Size 1: scores (0, 1, 0) for items (pad, e1, e2); size 2 the same.
  h, items = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  loss, terms = L.fmrlrec_loss(h, items, jnp.array([1]), dims=(1, 2), return_terms=True)
  nll = -(1.0 - np.log(np.exp(0.0) + np.exp(1.0) + np.exp(0.0)))
  np.testing.assert_allclose([terms[1], terms[2], loss], [nll, nll, nll], rtol=1e-6)
  np.testing.assert_allclose(L.fmrlrec_loss(h, items, jnp.array([1]), dims=(1, 2), reduction="sum"), 2 * nll,
                             rtol=1e-6)
  # Another ignore value (torch's -100): that position is not scored and indexes nothing.
  two = jnp.concatenate([h, jnp.array([[0.0, 5.0]])])
  np.testing.assert_allclose(L.fmrlrec_loss(two, items, jnp.array([1, -100]), dims=(1, 2), ignore_index=-100), nll,
                             rtol=1e-6)


@pytest.mark.parametrize("ignore_index,reduction", [(0, "mean"), (None, "mean"), (0, "sum")])
def test_fmrlrec_loss_matches_float64_reference_and_jit(ignore_index, reduction):
  hidden, items, labels = _rec_inputs()
  f = lambda h, e: L.fmrlrec_loss(h, e, labels, dims=DIMS, ignore_index=ignore_index, reduction=reduction)
  got = f(hidden, items)
  np.testing.assert_allclose(got, fmrlrec_reference(hidden, items, labels, DIMS, ignore_index, reduction), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(f)(hidden, items), got, rtol=1e-6)
  low = f(jnp.asarray(hidden, jnp.bfloat16), jnp.asarray(items, jnp.bfloat16))
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, got, rtol=3e-2)


def test_fmrlrec_loss_gradients_match_finite_differences_of_reference():
  hidden, items, labels = _rec_inputs(b=2, t=2, d=3, n_items=4, seed=1)
  dims = (1, 3)
  h64, e64 = hidden.astype(np.float64), items.astype(np.float64)
  with jax.enable_x64(True):
    gh, ge = jax.grad(lambda h, e: L.fmrlrec_loss(h, e, labels, dims=dims), argnums=(0, 1))(jnp.asarray(h64),
                                                                                          jnp.asarray(e64))
  np.testing.assert_allclose(gh, numeric_grad(lambda a: fmrlrec_reference(a, e64, labels, dims), h64), rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_allclose(ge, numeric_grad(lambda a: fmrlrec_reference(h64, a, labels, dims), e64), rtol=1e-6,
                             atol=1e-9)



def test_fmrlrec_loss_1_equals_8(mesh8):
  hidden, items, labels = _rec_inputs(b=16, seed=3)
  labels[:2] = 0  # device 0 holds only padding...
  labels[:2, 2] = 3  # ...but one scored position: per-device means would over-weigh it
  fn = lambda h, y, e, axis_name=None: L.fmrlrec_loss(h, e, y, dims=DIMS, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(hidden, labels), replicated=(items,),
                                           argnums=(0, 2))
  np.testing.assert_allclose(value, fmrlrec_reference(hidden, items, labels, DIMS), rtol=1e-5)
  local = np.mean([fmrlrec_reference(hidden[k:k + 2], items, labels[k:k + 2], DIMS) for k in range(0, 16, 2)])
  assert abs(local - float(value)) > 1e-2


def test_fmrlrec_pieces_bad_inputs():
  hidden, items, labels = _rec_inputs(b=2)
  with pytest.raises(ValueError, match=r"labels must have shape \[2, 3\].*got \(2, 2\)"):
    L.fmrlrec_loss(hidden, items, labels[:, :2], dims=DIMS)
  with pytest.raises(ValueError, match=r"same feature size D; got shapes \(2, 3, 6\) and \(7, 5\)"):
    L.fmrlrec_loss(hidden, items[:, :5], labels, dims=DIMS)
  with pytest.raises(ValueError, match=r"dims=\(2, 8\) exceed the feature size D=6"):
    L.fmrlrec_loss(hidden, items, labels, dims=(2, 8))
  with pytest.raises(ValueError, match="labels must be an integer array of item ids; got dtype float32"):
    L.fmrlrec_loss(hidden, items, labels.astype(np.float32), dims=DIMS)
  with pytest.raises(ValueError, match=r'reduction must be "mean" or "sum"; got \'max\''):
    L.fmrlrec_loss(hidden, items, labels, dims=DIMS, reduction="max")
  with pytest.raises(ValueError, match=r"kernel must have shape \[6, 6\].*got shape \(6, 5\)"):
    L.nested_linear(jnp.ones((2, 6)), jnp.ones((6, 5)), dims=DIMS)
  with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., 6\] \(D = dims\[-1\].*got shape \(2, 5\)"):
    L.nested_linear(jnp.ones((2, 5)), jnp.ones((6, 6)), dims=DIMS)
  with pytest.raises(ValueError, match=r"bias must have shape \[6\]; got shape \(3,\)"):
    L.nested_linear(jnp.ones((2, 6)), jnp.ones((6, 6)), dims=DIMS, bias=jnp.ones(3))
  with pytest.raises(ValueError, match=r"scale must have shape \[6\]; got shape \(4,\)"):
    L.nested_layer_norm(jnp.ones((2, 6)), dims=DIMS, scale=jnp.ones(4))
  with pytest.raises(ValueError, match="strictly increasing"):
    L.nested_weight_mask((4, 2))
