"""MIRROR (rl.losses.pathology): float64 NumPy references of the released loss, gradients, 1 device == 8 devices,
bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import pathology as M
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References written from MIRRORLoss.forward (losses/mirror_loss.py of the released code), float64 NumPy.
# ------------------------------------------------------------------------------------------------------------

def _log_softmax(s):
  s = s - s.max(axis=1, keepdims=True)
  return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def clip_reference(u, v, scale):
  """ClipLoss: (CE(scale u v^T, arange) + CE(scale v u^T, arange)) / 2 on the embeddings as given."""
  idx = np.arange(len(u))
  return 0.5 * (-_log_softmax(scale * u @ v.T)[idx, idx].mean() - _log_softmax(scale * v @ u.T)[idx, idx].mean())


def retention_reference(pred, target, mask):
  """WSI: ((e - t)^2).mean(-1) * mask summed / mask summed; RNA ([b, g]): (e - t)^2 * mask summed / mask summed."""
  err = (pred - target) ** 2
  if err.ndim == 3:
    err = err.mean(axis=-1)
  return (err * mask).sum() / mask.sum()


def style_reference(mu, lv):
  """One modality's half of 0.5 * (sum(exp(logstd) + mu^2 - 1 - logstd, 1).mean() + ...)."""
  return 0.5 * np.sum(np.exp(lv) + mu ** 2 - 1.0 - lv, axis=1).mean()


def cluster_reference(sw, sr):
  """0.5 (kl_div(log p_wsi, p_rna, batchmean) + kl_div(log p_rna, p_wsi, batchmean)); kl_div(x, y) = y (log y - x)."""
  lp, lq = _log_softmax(sw), _log_softmax(sr)
  p, q = np.exp(lp), np.exp(lq)
  return 0.5 * ((q * (lq - lp)).sum() / len(sw) + (p * (lp - lq)).sum() / len(sw))


def total_reference(x, weights=(0.5, 0.15, 0.15, 0.1, 0.1)):
  u, v, scale, wr, rr, ws, rs, sw, sr = x
  terms = [clip_reference(u, v, scale), retention_reference(*wr), retention_reference(*rr),
           style_reference(*ws) + style_reference(*rs), cluster_reference(sw, sr)]
  return sum(w * t for w, t in zip(weights, terms)), terms



def _inputs(b=8, n=6, d=3, g=7, e=4, k=5, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  r = lambda *s: rng.randn(*s).astype(dtype)
  wsi_mask = (rng.rand(b, n) < 0.6).astype(dtype)
  wsi_mask[:, 0] = 1
  rna_mask = (rng.rand(b, g) < 0.6).astype(dtype)
  rna_mask[:, 0] = 1
  return (r(b, e), r(b, e), 2.5, (r(b, n, d), r(b, n, d), wsi_mask), (r(b, g), r(b, g), rna_mask),
          (r(b, k), 0.5 * r(b, k)), (r(b, k), 0.5 * r(b, k)), r(b, k), r(b, k))


def test_terms_match_float64_references_and_jit():
  x = _inputs()
  loss, terms = M.mirror_loss(*x, return_terms=True)
  ref, ref_terms = total_reference([np.asarray(a, np.float64) if isinstance(a, np.ndarray) else
                                    tuple(np.asarray(c, np.float64) for c in a) if isinstance(a, tuple) else a
                                    for a in x])
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  got = [terms[k] for k in ("alignment", "wsi_retention", "rna_retention", "style", "cluster")]
  np.testing.assert_allclose(got, ref_terms, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda *a: M.mirror_loss(*a))(*x), loss, rtol=1e-6)
  weighted = M.mirror_loss(*x, alignment_weight=1.0, wsi_retention_weight=2.0, rna_retention_weight=3.0,
                           style_weight=4.0, cluster_weight=5.0)
  np.testing.assert_allclose(weighted, np.dot([1, 2, 3, 4, 5], ref_terms), rtol=1e-5)
  # normalize=True is CLIP's alignment of the L2-normalised embeddings.
  u, v = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x[0].astype(np.float64), x[1].astype(np.float64)))
  _, t = M.mirror_loss(*x, normalize=True, return_terms=True)
  np.testing.assert_allclose(t["alignment"], clip_reference(u, v, 2.5), rtol=1e-5)


def test_single_terms_and_bfloat16():
  _, _, _, wr, rr, ws, _, sw, sr = _inputs(seed=1)
  np.testing.assert_allclose(M.mirror_retention_loss(*wr), retention_reference(*(a.astype(np.float64) for a in wr)),
                             rtol=1e-5)
  np.testing.assert_allclose(M.mirror_retention_loss(*rr), retention_reference(*(a.astype(np.float64) for a in rr)),
                             rtol=1e-5)
  np.testing.assert_allclose(M.mirror_style_loss(*ws), style_reference(*(a.astype(np.float64) for a in ws)),
                             rtol=1e-5)
  np.testing.assert_allclose(M.mirror_cluster_loss(sw, sr), cluster_reference(sw.astype(np.float64),
                                                                              sr.astype(np.float64)), rtol=1e-5)
  low = M.mirror_cluster_loss(jnp.asarray(sw, jnp.bfloat16), jnp.asarray(sr, jnp.bfloat16))
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, M.mirror_cluster_loss(sw, sr), rtol=5e-2)


def test_gradients_match_finite_differences():
  x = _inputs(b=3, n=2, d=2, g=3, e=2, k=3, seed=2, dtype=np.float64)
  u, v, scale, wr, rr, ws, rs, sw, sr = x

  def ref_of(i, j=None):
    def f(val):
      y = list(x)
      if j is None:
        y[i] = val
      else:
        y[i] = tuple(val if t == j else c for t, c in enumerate(y[i]))
      return total_reference(y)[0]
    return f

  with jax.enable_x64(True):
    grads = jax.jit(jax.grad(lambda a, b, p, t, m, lv, s1, s2: M.mirror_loss(
        a, b, scale, (p, t, wr[2]), rr, (m, lv), rs, s1, s2), argnums=tuple(range(8))))(
            u, v, wr[0], wr[1], ws[0], ws[1], sw, sr)
  for g, (i, j, val) in zip(grads, [(0, None, u), (1, None, v), (3, 0, wr[0]), (3, 1, wr[1]), (5, 0, ws[0]),
                                    (5, 1, ws[1]), (7, None, sw), (8, None, sr)]):
    np.testing.assert_allclose(g, numeric_grad(ref_of(i, j), val), rtol=1e-5, atol=1e-8)


def test_retention_and_style_1_equal_8(mesh8):
  _, _, _, wr, rr, ws, _, _, _ = _inputs(b=16, seed=3)

  def fn(p, t, m, mu, lv, axis_name=None):
    return (M.mirror_retention_loss(p, t, m, axis_name=axis_name)
            + M.mirror_style_loss(mu, lv, axis_name=axis_name))

  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(*wr, *ws), argnums=(0, 1, 3, 4))
  np.testing.assert_allclose(value, M.mirror_retention_loss(*wr) + M.mirror_style_loss(*ws), rtol=1e-5)


def test_alignment_and_cluster_1_equal_8(mesh8):
  u, v, scale, _, _, _, _, sw, sr = _inputs(b=16, seed=4)

  def fn(a, b, s1, s2, axis_name=None):  # the alignment term of mirror_loss, and the clustering term
    return M._symmetric_cross_entropy(a, b, scale, axis_name) + M.mirror_cluster_loss(s1, s2, axis_name=axis_name)

  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(u, v, sw, sr))
  np.testing.assert_allclose(value, clip_reference(u.astype(np.float64), v.astype(np.float64), scale)
                             + cluster_reference(sw.astype(np.float64), sr.astype(np.float64)), rtol=1e-5)


def test_mirror_bad_inputs():
  u, v, scale, wr, rr, ws, rs, sw, sr = _inputs()
  with pytest.raises(ValueError, match=r"mask must have shape \[8, 6\] \(the \[b, n\] of pred\); got shape \(8, 5\)"):
    M.mirror_retention_loss(wr[0], wr[1], wr[2][:, :5])
  with pytest.raises(ValueError, match=r"pred and target must have the same shape"):
    M.mirror_retention_loss(wr[0], wr[1][:, :5], wr[2])
  with pytest.raises(ValueError, match=r"log_var must have shape \[8, 5\]; got shape \(8, 4\)"):
    M.mirror_style_loss(ws[0], ws[1][:, :4])
  with pytest.raises(ValueError, match=r"rna_scores must have shape \[8, 5\]; got shape \(7, 5\)"):
    M.mirror_cluster_loss(sw, sr[:7])
  with pytest.raises(ValueError, match=r"wsi_style must be a tuple \(mu, log_var\); got tuple of length 3"):
    M.mirror_loss(u, v, scale, wr, rr, wr, rs, sw, sr)
  with pytest.raises(ValueError, match=r"rna_embedding must have shape \[8, 4\]; got shape \(8, 3\)"):
    M.mirror_loss(u, v[:, :3], scale, wr, rr, ws, rs, sw, sr)
