"""node2vec_walks, walk_context_pairs, skipgram_negative_sampling: exact transition probabilities of the biased
walk, dead ends, seeding, hand cases, float64 NumPy references, gradients, jit, 1 device == 8 devices, bad inputs,
bfloat16."""
import collections
import functools

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import graph as Gr
from tests import multidevice


def to_csr(num_nodes, edges, directed=False):
  rows = collections.defaultdict(set)
  for a, b in edges:
    rows[a].add(b)
    if not directed:
      rows[b].add(a)
  indptr, indices = [0], []
  for v in range(num_nodes):
    indices += sorted(rows[v])
    indptr.append(len(indices))
  return np.array(indptr, np.int32), np.array(indices, np.int32)


def dense(indptr, indices):
  n = len(indptr) - 1
  a = np.zeros((n, n), bool)
  for v in range(n):
    a[v, indices[indptr[v]:indptr[v + 1]]] = True
  return a


# Triangles (x a neighbour of t) and open paths (x two hops from t) so that all three weights of eq. 2 occur.
EDGES = [(0, 1), (0, 2), (1, 2), (1, 3), (3, 4), (2, 4), (4, 5)]
INDPTR, INDICES = to_csr(6, EDGES)


def transition_reference(adj, t, v, p, q):
  """node2vec eq. 2 from the paper: alpha = 1/p (x = t), 1 (d_tx = 1), 1/q (d_tx = 2), normalised over N(v)."""
  xs = np.flatnonzero(adj[v])
  w = np.array([1 / p if x == t else (1.0 if adj[t, x] else 1 / q) for x in xs], np.float64)
  return xs, w / w.sum()


def chi_square(walks, adj, p, q):
  """Pearson chi-square of the observed second-order transitions against eq. 2, summed over contexts (t, v)."""
  counts = collections.Counter()
  for w in np.asarray(walks):
    for t, v, x in zip(w[:-2], w[1:-1], w[2:]):
      counts[(t, v, x)] += 1
  stat, dof, max_dev = 0.0, 0, 0.0
  for t in range(adj.shape[0]):
    for v in np.flatnonzero(adj[t]):
      xs, probs = transition_reference(adj, t, v, p, q)
      obs = np.array([counts[(t, v, x)] for x in xs], np.float64)
      n = obs.sum()
      if n < 50 or len(xs) < 2:
        continue
      stat += np.sum((obs - n * probs) ** 2 / (n * probs))
      dof += len(xs) - 1
      max_dev = max(max_dev, np.max(np.abs(obs / n - probs)))
  return stat, dof, max_dev


@functools.lru_cache(maxsize=None)
def _walks(p, q, seed=0):
  starts = jnp.tile(jnp.arange(6, dtype=jnp.int32), 400)
  return np.asarray(Gr.node2vec_walks(jax.random.key(seed), INDPTR, INDICES, starts, walk_length=12, p=p, q=q))


# ---------------------------------------------------------------------------------------------------- walks

@pytest.mark.parametrize("p,q", [(0.25, 4.0), (4.0, 0.25), (1.0, 1.0)])
def test_transition_distribution_matches_exact_probabilities(p, q):
  adj = dense(INDPTR, INDICES)
  stat, dof, max_dev = chi_square(_walks(p, q), adj, p, q)
  # 24000 transitions over 14 contexts; the chi-square mean is dof, its sd sqrt(2 dof): allow 5 sd.
  assert dof >= 20
  assert stat < dof + 5 * np.sqrt(2 * dof), (stat, dof)
  assert max_dev < 0.05


def test_chi_square_check_has_power():
  # Biased walks are clearly NOT uniform walks, and uniform walks (p = q = 1) are not biased ones.
  adj = dense(INDPTR, INDICES)
  stat, dof, _ = chi_square(_walks(0.25, 4.0), adj, 1.0, 1.0)
  assert stat > 10 * dof
  stat, dof, _ = chi_square(_walks(1.0, 1.0), adj, 4.0, 0.25)
  assert stat > 10 * dof


def test_walks_follow_edges_and_start_at_start_nodes():
  rng = np.random.RandomState(0)
  edges = [tuple(e) for e in rng.randint(0, 30, size=(60, 2)) if e[0] != e[1]]
  indptr, indices = to_csr(30, edges)
  adj = dense(indptr, indices)
  starts = np.arange(30, dtype=np.int32)
  walks = np.asarray(Gr.node2vec_walks(jax.random.key(1), indptr, indices, starts, walk_length=15, p=0.5, q=2.0))
  assert walks.shape == (30, 15) and walks.dtype == np.int32
  np.testing.assert_array_equal(walks[:, 0], starts)
  for a, b in zip(walks[:, :-1].ravel(), walks[:, 1:].ravel()):
    assert adj[a, b] or (a == b and not adj[a].any()), (a, b)


def test_dead_ends_stay_and_return_with_low_p():
  # Directed 0 -> 1 -> 2; node 2 has no out-edge (and node 3 none at all): the walk stays there.
  indptr, indices = to_csr(4, [(0, 1), (1, 2)], directed=True)
  walks = Gr.node2vec_walks(jax.random.key(0), indptr, indices, jnp.array([0, 3]), walk_length=5)
  assert walks.tolist() == [[0, 1, 2, 2, 2], [3, 3, 3, 3, 3]]
  # Undirected path 0 - 1 - 2 from 0: after 0 -> 1 the walk returns to 0 with probability (1/p) / (1/p + 1/q):
  # 1/2 for p = q = 1, 1/(1 + 1e-4) for p = 1e-4 (the return edge is drawn directly, with no rejection loop).
  indptr, indices = to_csr(3, [(0, 1), (1, 2)])
  zeros = jnp.zeros(4000, jnp.int32)
  w = np.asarray(Gr.node2vec_walks(jax.random.key(3), indptr, indices, zeros, walk_length=3))
  np.testing.assert_array_equal(w[:, 1], 1)
  np.testing.assert_allclose(np.mean(w[:, 2] == 0), 0.5, atol=0.03)
  w = np.asarray(Gr.node2vec_walks(jax.random.key(3), indptr, indices, zeros, walk_length=3, p=1e-4))
  assert np.mean(w[:, 2] == 0) > 0.99


def test_seeding_and_jit():
  starts = jnp.arange(6, dtype=jnp.int32)
  f = functools.partial(Gr.node2vec_walks, walk_length=8, p=0.5, q=2.0)
  a = f(jax.random.key(5), INDPTR, INDICES, starts)
  np.testing.assert_array_equal(f(jax.random.key(5), INDPTR, INDICES, starts), a)
  assert not np.array_equal(f(jax.random.key(6), INDPTR, INDICES, starts), a)
  np.testing.assert_array_equal(jax.jit(f)(jax.random.key(5), INDPTR, INDICES, starts), a)
  traced_pq = jax.jit(lambda p, q: Gr.node2vec_walks(jax.random.key(5), INDPTR, INDICES, starts, walk_length=8,
                                                     p=p, q=q))
  np.testing.assert_array_equal(traced_pq(0.5, 2.0), a)
  assert Gr.node2vec_walks(jax.random.key(0), INDPTR, INDICES, starts, walk_length=1).tolist() == [[i] for i in
                                                                                                  range(6)]


def test_walks_bad_inputs():
  starts = jnp.arange(3)
  with pytest.raises(ValueError, match="indptr must be an integer array"):
    Gr.node2vec_walks(jax.random.key(0), INDPTR.astype(np.float32), INDICES, starts)
  with pytest.raises(ValueError, match="sorted within each CSR row"):
    Gr.node2vec_walks(jax.random.key(0), np.array([0, 2, 2, 2]), np.array([2, 1]), starts)
  with pytest.raises(ValueError, match=r"indices must be node ids in \[0, 3\)"):
    Gr.node2vec_walks(jax.random.key(0), np.array([0, 1, 1, 1]), np.array([5]), starts)
  with pytest.raises(ValueError, match="indptr must start at 0"):
    Gr.node2vec_walks(jax.random.key(0), np.array([0, 1, 1, 3]), np.array([1]), starts)
  with pytest.raises(ValueError, match="walk_length must be an int >= 1"):
    Gr.node2vec_walks(jax.random.key(0), INDPTR, INDICES, starts, walk_length=0)
  with pytest.raises(ValueError, match="q must be > 0"):
    Gr.node2vec_walks(jax.random.key(0), INDPTR, INDICES, starts, q=0.0)
  with pytest.raises(ValueError, match=r"start_nodes must have shape \[w\]"):
    Gr.node2vec_walks(jax.random.key(0), INDPTR, INDICES, starts[:, None])


# ---------------------------------------------------------------------------------------------------- context pairs

def test_walk_context_pairs_matches_loop_reference():
  walks = np.random.RandomState(0).randint(0, 50, size=(3, 7)).astype(np.int32)
  for window in (1, 2, 10):
    c, x = Gr.walk_context_pairs(jnp.asarray(walks), window=window)
    expected = collections.Counter((w[i], w[j]) for w in walks for i in range(7) for j in range(7)
                                   if 1 <= abs(i - j) <= window)
    assert collections.Counter(zip(np.asarray(c).tolist(), np.asarray(x).tolist())) == expected
    k = min(window, 6)
    assert c.shape == (3 * sum(2 * (7 - o) for o in range(1, k + 1)),)
  jc, jx = jax.jit(functools.partial(Gr.walk_context_pairs, window=2))(walks)
  np.testing.assert_array_equal(jc, Gr.walk_context_pairs(walks, window=2)[0])
  assert Gr.walk_context_pairs(walks[:, :1], window=3)[0].shape == (0,)


def test_walk_context_pairs_bad_inputs():
  with pytest.raises(ValueError, match="window must be an int >= 1"):
    Gr.walk_context_pairs(jnp.zeros((2, 3), jnp.int32), window=0)
  with pytest.raises(ValueError, match="walks must be an integer array"):
    Gr.walk_context_pairs(jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match=r"walks must have shape \[w, l\]"):
    Gr.walk_context_pairs(jnp.zeros(3, jnp.int32))


# ---------------------------------------------------------------------------------------------------- skip-gram

def sgns_reference(u, v, n):
  """Mikolov et al. eq. 4 per pair, negated, in float64; n is [b, K, d] or shared [K, d]."""
  u, v, n = (np.asarray(a, np.float64) for a in (u, v, n))
  log_sig = lambda s: -np.logaddexp(0.0, -s)
  total = 0.0
  for i in range(len(u)):
    negs = n[i] if n.ndim == 3 else n
    total += -log_sig(u[i] @ v[i]) - sum(log_sig(-(u[i] @ nk)) for nk in negs)
  return total / len(u)


def _sg(b=16, k=3, d=5, seed=0, shared=False):
  rng = np.random.RandomState(seed)
  u, v = rng.randn(2, b, d)
  n = rng.randn(k, d) if shared else rng.randn(b, k, d)
  return [a.astype(np.float32) for a in (u, v, n)]


def test_skipgram_hand_case():
  # u.v = 1, u.n = 0: softplus(-1) + 2 * log 2.
  u = jnp.array([[1.0, 0.0]]); v = u; n = jnp.array([[[0.0, 1.0], [0.0, -1.0]]])
  np.testing.assert_allclose(Gr.skipgram_negative_sampling(u, v, n), np.log1p(np.exp(-1.0)) + 2 * np.log(2),
                             rtol=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_skipgram_matches_float64_reference(shared):
  u, v, n = _sg(shared=shared)
  np.testing.assert_allclose(Gr.skipgram_negative_sampling(u, v, n), sgns_reference(u, v, n), rtol=1e-5)
  big = [8 * a for a in (u, v, n)]  # scores in the hundreds: log_sigmoid stays finite and exact
  np.testing.assert_allclose(Gr.skipgram_negative_sampling(*big), sgns_reference(*big), rtol=1e-5)


def test_skipgram_gradients_float64():
  with jax.enable_x64(True):
    u, v, n = [a.astype(np.float64) for a in _sg(b=3, k=2, d=3, seed=1)]
    check_grads(lambda *a: Gr.skipgram_negative_sampling(*a), (u, v, n), order=1, modes=["rev"])


def test_skipgram_jit_equals_eager():
  u, v, n = _sg(seed=2)
  np.testing.assert_allclose(jax.jit(Gr.skipgram_negative_sampling)(u, v, n),
                             Gr.skipgram_negative_sampling(u, v, n), rtol=1e-6)


def test_skipgram_one_device_equals_eight(mesh8):
  u, v, n = _sg(seed=3)
  val, _ = multidevice.assert_1_equals_8(Gr.skipgram_negative_sampling, mesh8, sharded=(u, v, n))
  np.testing.assert_allclose(val, sgns_reference(u, v, n), rtol=1e-5)
  u, v, n = _sg(seed=4, shared=True)  # shared negatives, replicated on every device
  val, _ = multidevice.assert_1_equals_8(Gr.skipgram_negative_sampling, mesh8, sharded=(u, v), replicated=(n,),
                                         argnums=(0, 1, 2))
  np.testing.assert_allclose(val, sgns_reference(u, v, n), rtol=1e-5)


def test_skipgram_bad_inputs():
  u, v, n = _sg(b=4)
  with pytest.raises(ValueError, match=r"center_emb and context_emb must have the same shape"):
    Gr.skipgram_negative_sampling(u, v[:, :3], n)
  with pytest.raises(ValueError, match=r"negative_emb must have shape \[4, K, 5\] \(per pair\) or \[K, 5\]"):
    Gr.skipgram_negative_sampling(u, v, n[:3])


def test_skipgram_bfloat16_gives_float32():
  u, v, n = _sg(seed=5)
  got = Gr.skipgram_negative_sampling(*[jnp.asarray(a, jnp.bfloat16) for a in (u, v, n)])
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, sgns_reference(u, v, n), rtol=3e-2)
