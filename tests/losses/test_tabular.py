"""LEGATO's latent-graph autoencoder pieces (rl.losses.tabular): float64 NumPy references of the released code
(RegLoss, GraphPooling, LearnerHead), hand-checked cases, gradients, 1 device == 8 devices, bad inputs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import tabular as T
from tests import multidevice
from tests.losses import numeric_grad

EPS = 1e-3  # nn.CosineSimilarity(dim=-1, eps=1e-3)


# ------------------------------------------------------------------------------------------------------------
# References written from the released code, float64 NumPy, one pair / one example at a time.
# ------------------------------------------------------------------------------------------------------------

def cosine_reference(x, y):
  """torch.nn.functional.cosine_similarity: x.y / (max(|x|, eps) * max(|y|, eps))."""
  return float(np.dot(x, y) / (max(np.linalg.norm(x), EPS) * max(np.linalg.norm(y), EPS)))


def graph_reference(h, threshold=0.1):
  """LearnerHead.forward: |cos(h_i, h_j)| for every pair, then nn.Threshold(threshold, 0) (keeps x > threshold)."""
  h = np.asarray(h, np.float64)
  b, n, _ = h.shape
  a = np.zeros((b, n, n))
  for e in range(b):
    for i in range(n):
      for j in range(n):
        c = abs(cosine_reference(h[e, i], h[e, j]))
        a[e, i, j] = c if c > threshold else 0.0
  return a


def pool_reference(z, adj, logits, pool=True, threshold=0.1):
  """GraphPooling.forward: softmax over dim 1 (pool) or -1 (unpool), s^T z, s^T A s, Threshold."""
  z, adj, logits = (np.asarray(v, np.float64) for v in (z, adj, logits))
  out_z, out_a, out_s = [], [], []
  for e in range(z.shape[0]):
    l = logits[e]
    axis = 0 if pool else 1  # dim=1 / dim=-1 of the batched [b, n, m] tensor
    s = np.exp(l - l.max(axis=axis, keepdims=True))
    s /= s.sum(axis=axis, keepdims=True)
    a = s.T @ adj[e] @ s
    out_z.append(s.T @ z[e])
    out_a.append(np.where(a > threshold, a, 0.0))
    out_s.append(s)
  return np.stack(out_z), np.stack(out_a), np.stack(out_s)


def loss_reference(views, recons, latent, input_graph, recon_graph, alpha=0.1, beta=0.1):
  """RegLoss.forward; `input_graph` in the code's layout: [heads, b, n, n] as the graph learner stacks it."""
  views, recons = [np.asarray(v, np.float64) for v in views], [np.asarray(r, np.float64) for r in recons]
  latent, input_graph, recon_graph = (np.asarray(v, np.float64) for v in (latent, input_graph, recon_graph))
  recon = sum(np.mean((x - r) ** 2) for x, r in zip(views, recons)) / len(views)
  b, n, _ = recon_graph.shape
  mean_graph = input_graph.mean(axis=0) if input_graph.ndim == 4 else input_graph
  graph = math.sqrt(np.sum((mean_graph - recon_graph) ** 2)) / b  # torch.norm(p=2) of the whole tensor
  k = latent.shape[1]
  cos = 0.0
  for e in range(b):
    for i in range(k):
      for j in range(k):
        cos += abs(cosine_reference(latent[e, i], latent[e, j])) - (i == j)
  cos /= b * k * (k - 1)
  sparsity = np.sum(np.abs(input_graph - np.eye(n))) / b  # torch.norm(p=1) of the whole tensor
  return recon + graph + alpha * cos + beta * sparsity, (recon, graph, cos, sparsity)


def _data(b=4, n=3, k=2, dims=(5, 2, 4), heads=0, seed=0):
  rng = np.random.RandomState(seed)
  views = [rng.randn(b, d).astype(np.float32) for d in dims]
  recons = [(x + 0.5 * rng.randn(*x.shape)).astype(np.float32) for x in views]
  latent = rng.randn(b, k, 6).astype(np.float32)
  shape = (b, heads, n, n) if heads else (b, n, n)
  off = rng.uniform(0.2, 0.9, size=shape)
  input_graph = np.where(np.eye(n, dtype=bool), 1.0, (off + np.swapaxes(off, -1, -2)) / 2).astype(np.float32)
  recon_graph = rng.uniform(0.0, 1.0, size=(b, n, n)).astype(np.float32)
  return views, recons, latent, input_graph, recon_graph


def _code_layout(input_graph):
  return np.moveaxis(input_graph, 1, 0) if input_graph.ndim == 4 else input_graph  # [b, h, n, n] -> [h, b, n, n]


# ------------------------------------------------------------------------------------------------------------
# legato_loss
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("heads", [0, 2])
@pytest.mark.parametrize("alpha,beta", [(0.1, 0.1), (0.01, 1.0)])
def test_loss_matches_reference_terms_jit_and_bfloat16(heads, alpha, beta):
  views, recons, latent, ig, rg = _data(heads=heads)
  fn = jax.jit(lambda v, r, z, a, ar: T.legato_loss(v, r, z, a, ar, alpha=alpha, beta=beta, return_terms=True))
  loss, terms = fn(views, recons, latent, ig, rg)
  ref, parts = loss_reference(views, recons, latent, _code_layout(ig), rg, alpha, beta)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose([terms[k] for k in ("reconstruction", "graph_reconstruction", "orthogonality",
                                                 "sparsity")], parts, rtol=1e-5)
  np.testing.assert_allclose(T.legato_loss(views, recons, latent, ig, rg, alpha=alpha, beta=beta), ref, rtol=1e-5)
  low = T.legato_loss([jnp.asarray(v, jnp.bfloat16) for v in views], [jnp.asarray(r, jnp.bfloat16) for r in recons],
                      *(jnp.asarray(a, jnp.bfloat16) for a in (latent, ig, rg)), alpha=alpha, beta=beta)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, ref, rtol=3e-2)


def test_loss_hand_checked_terms():
  b, n = 2, 3
  z_same = np.ones((b, 3, 2), np.float32)  # identical latent nodes: every |cos| = 1
  graph = np.broadcast_to(np.eye(n, dtype=np.float32), (b, n, n)).copy()
  noisy = graph.copy()
  noisy[:, 0, 1] = 0.6  # one edge per example, in the input graph only
  x = [np.zeros((b, 2), np.float32)]
  _, terms = T.legato_loss(x, x, z_same, noisy, graph, return_terms=True)
  assert float(terms["reconstruction"]) == 0.0
  np.testing.assert_allclose(terms["orthogonality"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(terms["sparsity"], 0.6, rtol=1e-6)  # sum |A - I| over the batch / b
  # ONE Frobenius norm over the batch, / b: sqrt(2 * 0.36) / 2, not the mean per-example norm 0.6.
  np.testing.assert_allclose(terms["graph_reconstruction"], math.sqrt(2 * 0.36) / 2, rtol=1e-6)
  z_orth = np.stack([np.eye(3, 4, dtype=np.float32)] * b)
  _, terms = T.legato_loss(x, x, z_orth, graph, graph, return_terms=True)
  assert float(terms["orthogonality"]) == 0.0 and float(terms["graph_reconstruction"]) == 0.0


def test_loss_gradients_match_finite_differences():
  views, recons, latent, ig, rg = (v if isinstance(v, list) else v.astype(np.float64)
                                   for v in _data(b=2, n=3, k=3, dims=(2, 3), heads=2, seed=1))
  views, recons = [v.astype(np.float64) for v in views], [r.astype(np.float64) for r in recons]
  args = [views[0], views[1], recons[0], recons[1], latent, ig, rg]

  def ours(*a):
    return T.legato_loss(a[:2], a[2:4], *a[4:], alpha=0.3, beta=0.2)

  def ref(i, value):
    a = list(args)
    a[i] = value
    return loss_reference(a[:2], a[2:4], a[4], _code_layout(a[5]), a[6], 0.3, 0.2)[0]

  with jax.enable_x64(True):
    grads = jax.jit(jax.grad(ours, argnums=tuple(range(7))))(*args)
  for i, g in enumerate(grads):
    np.testing.assert_allclose(g, numeric_grad(lambda v, i=i: ref(i, v), args[i]), rtol=1e-5, atol=1e-8,
                               err_msg=f"argument {i}")


def test_loss_gradient_is_finite_when_the_graph_is_reconstructed_exactly():
  views, recons, latent, ig, _ = _data()
  g = jax.grad(lambda a, r: T.legato_loss(views, recons, latent, a, r), argnums=(0, 1))(ig, ig)
  assert all(np.all(np.isfinite(np.asarray(x))) for x in g)


def test_loss_1_equals_8(mesh8):
  views, recons, latent, ig, rg = _data(b=16, n=4, k=3, dims=(3, 5), heads=2, seed=2)

  def fn(x1, x2, r1, r2, z, a, ar, axis_name=None):
    return T.legato_loss((x1, x2), (r1, r2), z, a, ar, alpha=0.5, beta=0.3, axis_name=axis_name)

  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(*views, *recons, latent, ig, rg))
  ref = loss_reference(views, recons, latent, _code_layout(ig), rg, 0.5, 0.3)[0]
  np.testing.assert_allclose(value, ref, rtol=1e-5)
  per_device = np.mean([loss_reference([v[i:i + 2] for v in views], [r[i:i + 2] for r in recons], latent[i:i + 2],
                                       _code_layout(ig[i:i + 2]), rg[i:i + 2], 0.5, 0.3)[0] for i in range(0, 16, 2)])
  assert abs(per_device - ref) > 1e-3  # the batch-wide Frobenius norm is not a mean of per-device norms


# ------------------------------------------------------------------------------------------------------------
# legato_pool, legato_graph
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("unpool", [False, True])
def test_pool_matches_reference_jit_and_normalisation(unpool):
  rng = np.random.RandomState(3)
  b, n, m, f = 3, 5, 2, 4
  z = rng.randn(b, n, f).astype(np.float32)
  adj = rng.uniform(0, 1, (b, n, n)).astype(np.float32)
  logits = (2 * rng.randn(b, n, m)).astype(np.float32)
  out = jax.jit(lambda *a: T.legato_pool(*a, unpool=unpool))(z, adj, logits)
  ref = pool_reference(z, adj, logits, pool=not unpool)
  for got, want in zip(out, ref):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  s = np.asarray(out[2])
  np.testing.assert_allclose(s.sum(axis=2 if unpool else 1), 1.0, rtol=1e-6)  # rows (unpool) / columns (pool)
  low = T.legato_pool(*(jnp.asarray(a, jnp.bfloat16) for a in (z, adj, logits)), unpool=unpool)
  assert all(x.dtype == jnp.float32 for x in low)
  np.testing.assert_allclose(low[0], ref[0], rtol=3e-2, atol=3e-2)


def test_pool_threshold_and_gradients():
  rng = np.random.RandomState(4)
  z = rng.randn(2, 4, 3)
  adj = rng.uniform(0, 1, (2, 4, 4))
  logits = rng.randn(2, 4, 2)
  _, pooled, _ = T.legato_pool(z, adj, logits, threshold=10.0)
  assert np.all(np.asarray(pooled) == 0.0)  # every entry of S^T A S is below 10
  with jax.enable_x64(True):
    for i, arg in enumerate((z, adj, logits)):
      def ours(v, i=i):
        a = [z, adj, logits]
        a[i] = v
        features, pooled_adj, _ = T.legato_pool(*a, threshold=0.0)
        return jnp.sum(features * np.arange(3.0)) + jnp.sum(pooled_adj ** 2)

      def ref(v, i=i):
        a = [z, adj, logits]
        a[i] = v
        features, pooled_adj, _ = pool_reference(*a, threshold=0.0)
        return np.sum(features * np.arange(3.0)) + np.sum(pooled_adj ** 2)

      np.testing.assert_allclose(jax.grad(ours)(arg), numeric_grad(ref, arg), rtol=1e-5, atol=1e-8)


def test_graph_matches_reference_threshold_and_small_norms():
  rng = np.random.RandomState(5)
  h = rng.randn(3, 4, 6).astype(np.float32)
  h[0, 1] = [1e-4, 0, 0, 0, 0, 0]  # below eps: the code's clamp gives this node |cos| <= 0.1 with everything
  a = jax.jit(T.legato_graph)(h)
  np.testing.assert_allclose(a, graph_reference(h), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(a, np.swapaxes(a, 1, 2), rtol=1e-6)
  np.testing.assert_allclose(np.diagonal(a, axis1=1, axis2=2)[1:], 1.0, rtol=1e-6)
  assert float(a[0, 1, 1]) == 0.0  # (1e-4)^2 / (1e-3)^2 = 0.01, not above 0.1
  c = float(T.legato_graph(h, threshold=0.0)[2, 0, 3])
  assert float(T.legato_graph(h, threshold=c)[2, 0, 3]) == 0.0  # strictly above the threshold survives
  np.testing.assert_allclose(T.legato_graph(h, threshold=0.5), graph_reference(h, 0.5), rtol=1e-5, atol=1e-6)


def test_tabular_bad_inputs():
  views, recons, latent, ig, rg = _data()
  with pytest.raises(ValueError, match=r"views and reconstructions must be sequences of the same non-zero length"):
    T.legato_loss(views, recons[:2], latent, ig, rg)
  with pytest.raises(ValueError, match=r"views\[1\] and reconstructions\[1\] must have the same shape; got \(4, 2\) "
                                       r"and \(4, 3\)"):
    T.legato_loss(views, [recons[0], np.zeros((4, 3), np.float32), recons[2]], latent, ig, rg)
  with pytest.raises(ValueError, match=r"latent_nodes must have at least 2 nodes"):
    T.legato_loss(views, recons, latent[:, :1], ig, rg)
  with pytest.raises(ValueError, match=r"input_graph must have shape \[b, 3, 3\] or \[b, heads, 3, 3\]"):
    T.legato_loss(views, recons, latent, ig[:, :2], rg)
  with pytest.raises(ValueError, match=r"views\[0\] and latent_nodes must have the same batch size; got 4 and 3"):
    T.legato_loss(views, recons, latent[:3], ig, rg)
  with pytest.raises(ValueError, match=r"adjacency must have shape \[4, 3, 3\] .*got shape \(4, 3, 2\)"):
    T.legato_pool(latent[:, :, :3].transpose(0, 2, 1), ig[..., :2], np.zeros((4, 3, 2), np.float32))
  with pytest.raises(ValueError, match=r"assignment_logits must have shape \[4, 3, m\] .*got shape \(4, 2, 2\)"):
    T.legato_pool(np.zeros((4, 3, 5), np.float32), ig, np.zeros((4, 2, 2), np.float32))
  with pytest.raises(ValueError, match=r"node_features must have shape \[b, n, d\]; got shape \(4, 3\)"):
    T.legato_graph(np.zeros((4, 3), np.float32))
