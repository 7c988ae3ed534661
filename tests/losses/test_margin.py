"""partial_margin_softmax (Unicom), multilabel_cluster_loss (MLCD), arcface_logit: hand cases, float64 NumPy
references from the papers' formulas, gradients, jit, 1 device == 8 devices with SHARDED prototypes, C = 10^6."""
import functools
import math

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import margin as L
from tests import multidevice

KEY = jax.random.key(3)


# ------------------------------------------------------------------ NumPy references (float64, loop-based) --

def np_arcface(c, m):
  """ArcFace target logit with insightface's threshold, via arccos (the code uses the sin/cos expansion)."""
  theta = math.acos(min(1.0, max(-1.0, c)))
  return math.cos(theta + m) if theta + m < math.pi else c - math.sin(math.pi - m) * m


def sampling(key, num_classes, d, ratio, feature_ratio):
  """The documented sampling contract: key -> (class key, feature key); per-class uniform of fold_in(k, c)."""
  class_key, feature_key = jax.random.split(key)
  u = np.asarray(jax.vmap(lambda c: jax.random.uniform(jax.random.fold_in(class_key, c), dtype=jnp.float32))(
      jnp.arange(num_classes)))
  n = max(1, int(round(d * feature_ratio)))
  dims = np.arange(d) if n >= d else np.sort(np.asarray(jax.random.permutation(feature_key, d))[:n])
  return u, dims


def unit(a):
  a = np.asarray(a, np.float64)
  return a / np.linalg.norm(a, axis=1, keepdims=True)


def pms_reference(x, y, w, key, class_ratio, feature_ratio, m, s):
  """Unicom: ArcFace softmax over the positive classes of the batch plus the sampled classes, on sampled dims."""
  u, dims = sampling(key, len(w), x.shape[1], class_ratio, feature_ratio)
  xs, ws = unit(np.asarray(x)[:, dims]), unit(np.asarray(w)[:, dims])
  kept = set(np.flatnonzero(u < class_ratio)) | set(int(t) for t in y)
  total = 0.0
  for i in range(len(xs)):
    logits = [s * np_arcface(xs[i] @ ws[c], m) if c == y[i] else s * (xs[i] @ ws[c]) for c in sorted(kept)]
    top = max(logits)
    lse = top + math.log(sum(math.exp(v - top) for v in logits))
    total += lse - s * np_arcface(xs[i] @ ws[y[i]], m)
  return total / len(xs)


def mlcd_reference(x, ids, w, key, negative_ratio, m, s):
  """MLCD: log(1 + sum_neg e^{s cos}) + log(1 + sum_pos e^{-s phi(cos)}), negatives = sampled minus own positives."""
  u, _ = sampling(key, len(w), x.shape[1], negative_ratio, 1.0)
  xs, ws = unit(x), unit(w)
  batch_pos = set(int(c) for c in np.ravel(ids) if c >= 0)
  kept = set(np.flatnonzero(u < negative_ratio)) | batch_pos
  total = 0.0
  for i in range(len(xs)):
    pos = set(int(c) for c in ids[i] if c >= 0)
    neg = kept - pos
    total += math.log1p(sum(math.exp(s * (xs[i] @ ws[c])) for c in neg))
    total += math.log1p(sum(math.exp(-s * np_arcface(xs[i] @ ws[c], m)) for c in pos))
  return total / len(xs)


def data(b=16, c=32, d=8, k=3, seed=0):
  rng = np.random.RandomState(seed)
  x = rng.randn(b, d).astype(np.float32)
  w = rng.randn(c, d).astype(np.float32)
  y = rng.randint(0, c, size=b).astype(np.int32)
  ids = rng.randint(0, c, size=(b, k)).astype(np.int32)
  ids[::3, -1] = -1  # padding
  ids[1, 1] = ids[1, 0]  # a duplicate positive counts once
  return x, y, w, ids


# --------------------------------------------------------------------------------------------- arcface ------

def test_arcface_both_branches_by_hand():
  m = 0.5
  # theta = pi/3: theta + m < pi, so cos(pi/3 + 0.5).
  np.testing.assert_allclose(L.arcface_logit(jnp.array(0.5), m), math.cos(math.pi / 3 + 0.5), rtol=1e-6)
  # theta = pi: past pi - m, so cos(pi) - m sin(pi - m) = -1 - 0.5 sin(0.5) (insightface's "cos(theta) - mm").
  np.testing.assert_allclose(L.arcface_logit(jnp.array(-1.0), m), -1 - 0.5 * math.sin(0.5), rtol=1e-6)
  # The gradient stays finite at cos = 1, where d cos(arccos(c) + m)/dc is infinite.
  assert np.isfinite(jax.grad(lambda c: L.arcface_logit(c, m))(1.0))


# ---------------------------------------------------------------------------- partial_margin_softmax -------

def test_partial_margin_softmax_hand_case():
  # One example x = e1, prototypes e1 (its class) and e2; s = 1, m = 0.5, everything kept:
  # l = -cos(0.5) + log(e^{cos 0.5} + e^0).
  x = jnp.array([[1.0, 0.0]])
  w = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  got = L.partial_margin_softmax(x, jnp.array([0]), w, key=KEY, class_ratio=1.0, feature_ratio=1.0, margin=0.5,
                                 scale=1.0)
  expected = -math.cos(0.5) + math.log(math.exp(math.cos(0.5)) + 1.0)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("class_ratio,feature_ratio,m,s", [(1.0, 1.0, 0.3, 64.0), (0.4, 0.5, 0.3, 64.0),
                                                           (0.5, 0.75, 0.5, 16.0)])
def test_partial_margin_softmax_matches_reference(class_ratio, feature_ratio, m, s):
  x, y, w, _ = data()
  got = L.partial_margin_softmax(x, y, w, key=KEY, class_ratio=class_ratio, feature_ratio=feature_ratio, margin=m,
                                 scale=s)
  np.testing.assert_allclose(got, pms_reference(x, y, w, KEY, class_ratio, feature_ratio, m, s), rtol=1e-5)


def test_class_sampling_drops_negatives_and_is_reproducible():
  x, y, w, _ = data()
  f = functools.partial(L.partial_margin_softmax, x, y, w, feature_ratio=1.0, scale=16.0)
  full, sub = f(key=KEY, class_ratio=1.0), f(key=KEY, class_ratio=0.2)
  assert float(sub) < float(full)  # fewer negatives in the normaliser
  np.testing.assert_array_equal(sub, f(key=KEY, class_ratio=0.2))
  assert float(sub) != float(f(key=jax.random.key(4), class_ratio=0.2))


def test_partial_margin_softmax_gradients_float64():
  x, y, w, _ = data(b=4, c=6, d=4, seed=1)
  with jax.enable_x64(True):
    f = lambda a, b: L.partial_margin_softmax(a, y, b, key=KEY, class_ratio=0.5, feature_ratio=0.75, scale=4.0)
    check_grads(jax.jit(f), (x.astype(np.float64), w.astype(np.float64)), order=1, modes=["rev"])


def test_partial_margin_softmax_jit_and_bfloat16():
  x, y, w, _ = data()
  f = lambda a, b: L.partial_margin_softmax(a, y, b, key=KEY, class_ratio=0.5, feature_ratio=0.5)
  eager = f(x, w)
  np.testing.assert_allclose(jax.jit(f)(x, w), eager, rtol=1e-6)
  half = f(jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16))
  assert half.dtype == jnp.float32
  np.testing.assert_allclose(half, eager, rtol=5e-2)


def test_partial_margin_softmax_1_equals_8_with_sharded_classes(mesh8):
  x, y, w, _ = data(b=16, c=32)
  loss = lambda a, lab, b, axis_name=None: L.partial_margin_softmax(
      a, lab, b, key=KEY, class_ratio=0.5, feature_ratio=0.75, scale=16.0, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(loss, mesh8, sharded=(x, y, w))
  np.testing.assert_allclose(v1, pms_reference(x, y, w, KEY, 0.5, 0.75, 0.3, 16.0), rtol=1e-5)


def test_partial_margin_softmax_one_million_classes():
  # C = 10^6, d = 16 (64 MB of prototypes) on one device: logits are [8, 10^6], the reference runs in chunks.
  rng = np.random.RandomState(5)
  b, d, c = 8, 16, 1_000_000
  x = rng.randn(b, d).astype(np.float32)
  w = rng.randn(c, d).astype(np.float32)
  y = rng.randint(0, c, size=b).astype(np.int32)
  got = L.partial_margin_softmax(x, y, w, key=KEY, class_ratio=0.1, feature_ratio=0.5)
  u, dims = sampling(KEY, c, d, 0.1, 0.5)
  xs = unit(x[:, dims])
  pos = np.array([64 * np_arcface(xs[i] @ unit(w[y[i]:y[i] + 1, dims])[0], 0.3) for i in range(b)])
  keep = u < 0.1
  keep[y] = True
  sums, top = np.zeros(b), 64.0  # cos <= 1, so 64 bounds every logit
  for start in range(0, c, 200_000):
    block = unit(w[start:start + 200_000, dims])
    logits = 64 * (xs @ block.T)
    logits[:, ~keep[start:start + 200_000]] = -np.inf
    cols = np.arange(start, start + len(block))
    logits[y[:, None] == cols[None, :]] = -np.inf  # the positive enters with its margin below
    sums += np.exp(logits - top).sum(axis=1)
  expected = np.mean(top + np.log(sums + np.exp(pos - top)) - pos)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_partial_margin_softmax_bad_inputs():
  x, y, w, _ = data()
  kw = dict(key=KEY, class_ratio=0.5, feature_ratio=1.0)
  with pytest.raises(ValueError, match=r"prototypes must have shape \[C_local, 8\]"):
    L.partial_margin_softmax(x, y, w[:, :4], **kw)
  with pytest.raises(ValueError, match=r"labels must have shape \[16\]"):
    L.partial_margin_softmax(x, y[:3], w, **kw)
  with pytest.raises(ValueError, match=r"class_ratio must be in \(0.0, 1.0\]; got 1.5"):
    L.partial_margin_softmax(x, y, w, key=KEY, class_ratio=1.5, feature_ratio=1.0)
  with pytest.raises(ValueError, match=r"feature_ratio must be in \(0.0, 1.0\]; got 0"):
    L.partial_margin_softmax(x, y, w, key=KEY, class_ratio=0.5, feature_ratio=0)


# --------------------------------------------------------------------------- multilabel_cluster_loss -------

def test_mlcd_hand_case():
  # x = e1; prototypes e1 (positive), e2, -e1 (negatives, cos 0 and -1); s = 1, m = 0:
  # l = log(1 + e^0 + e^-1) + log(1 + e^{-1}).
  x = jnp.array([[1.0, 0.0]])
  w = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  got = L.multilabel_cluster_loss(x, jnp.array([[0, -1]]), w, key=KEY, margin=0.0, scale=1.0, negative_ratio=1.0)
  np.testing.assert_allclose(got, math.log(2 + math.exp(-1)) + math.log(1 + math.exp(-1)), rtol=1e-6)


@pytest.mark.parametrize("negative_ratio,m,s", [(1.0, 0.3, 64.0), (0.3, 0.3, 32.0)])
def test_mlcd_matches_reference(negative_ratio, m, s):
  x, _, w, ids = data()
  got = L.multilabel_cluster_loss(x, ids, w, key=KEY, margin=m, scale=s, negative_ratio=negative_ratio)
  np.testing.assert_allclose(got, mlcd_reference(x, ids, w, KEY, negative_ratio, m, s), rtol=1e-5)


def test_mlcd_positives_do_not_compete():
  # Two positives equally close: a softmax over them would cap each probability at 1/2; here the loss -> 0
  # as both move far from every negative.
  x = jnp.array([[1.0, 0.0, 0.0]])
  w = jnp.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
  got = L.multilabel_cluster_loss(x, jnp.array([[0, 1]]), w, key=KEY, margin=0.0, scale=32.0, negative_ratio=1.0)
  assert float(got) < 1e-12 + 3 * math.exp(-32)


def test_mlcd_gradients_jit_bfloat16():
  x, _, w, ids = data(b=4, c=6, d=4, k=2, seed=2)
  with jax.enable_x64(True):
    f = lambda a, b: L.multilabel_cluster_loss(a, ids, b, key=KEY, scale=4.0, negative_ratio=0.5)
    check_grads(jax.jit(f), (x.astype(np.float64), w.astype(np.float64)), order=1, modes=["rev"])
  g = lambda a, b: L.multilabel_cluster_loss(a, ids, b, key=KEY, negative_ratio=0.5)
  eager = g(x, w)
  np.testing.assert_allclose(jax.jit(g)(x, w), eager, rtol=1e-6)
  half = g(jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16))
  assert half.dtype == jnp.float32
  np.testing.assert_allclose(half, eager, rtol=5e-2)


def test_mlcd_1_equals_8_with_sharded_classes(mesh8):
  x, _, w, ids = data(b=16, c=32)
  loss = lambda a, i, b, axis_name=None: L.multilabel_cluster_loss(
      a, i, b, key=KEY, scale=16.0, negative_ratio=0.4, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(loss, mesh8, sharded=(x, ids, w))
  np.testing.assert_allclose(v1, mlcd_reference(x, ids, w, KEY, 0.4, 0.3, 16.0), rtol=1e-5)


def test_mlcd_bad_inputs():
  x, _, w, ids = data()
  with pytest.raises(ValueError, match=r"positive_ids must have shape \[16, k\]; got \(16,\)"):
    L.multilabel_cluster_loss(x, ids[:, 0], w, key=KEY)
  with pytest.raises(ValueError, match="positive_ids must be an integer array"):
    L.multilabel_cluster_loss(x, ids.astype(np.float32), w, key=KEY)
  with pytest.raises(ValueError, match=r"negative_ratio must be in \(0.0, 1.0\]; got 0.0"):
    L.multilabel_cluster_loss(x, ids, w, key=KEY, negative_ratio=0.0)
  with pytest.raises(ValueError, match="scale must be > 0"):
    L.multilabel_cluster_loss(x, ids, w, key=KEY, scale=-1.0)
