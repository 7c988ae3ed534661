"""Graph representation learning: node2vec's biased random walks and the skip-gram negative-sampling objective.

Graphs are given in CSR form: `indptr` [N + 1] and `indices` [E] (int), the neighbours of node v being
`indices[indptr[v]:indptr[v + 1]]`, each row SORTED in increasing order (scipy: `csr.sort_indices()`), without
duplicate edges. An undirected graph stores each edge in both rows. Walks are JAX arrays, so the whole pipeline
(walks -> context pairs -> embeddings -> loss) can run under `jax.jit`.
"""
from __future__ import annotations

import functools
import math

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops

# Safety net for the rejection loop (reached only with NaN p or q, or with p, q astronomically far from 1).
_MAX_TRIALS = 10_000


def _check_int_vector(name: str, x, shape_doc: str) -> None:
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise ValueError(f"{name} must be an integer array of shape {shape_doc}; got {type(x).__name__}.")
  if x.ndim != 1:
    raise ValueError(f"{name} must have shape {shape_doc}; got shape {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise ValueError(f"{name} must be an integer array; got dtype {x.dtype}.")


def _check_csr(indptr, indices) -> None:
  _check_int_vector("indptr", indptr, "[N + 1]")
  _check_int_vector("indices", indices, "[E]")
  if indptr.shape[0] < 2:
    raise ValueError(f"indptr must have shape [N + 1] with N >= 1 nodes; got shape {tuple(indptr.shape)}.")
  try:  # concrete arrays: check the CSR invariants the binary search relies on (skipped under jit)
    ip, ix = np.asarray(indptr), np.asarray(indices)
  except jax.errors.TracerArrayConversionError:
    return
  if ip[0] != 0 or ip[-1] != ix.shape[0] or np.any(np.diff(ip) < 0):
    raise ValueError(f"indptr must start at 0, be non-decreasing and end at len(indices) = {ix.shape[0]}; "
                     f"got indptr[0] = {ip[0]}, indptr[-1] = {ip[-1]}.")
  n = ip.shape[0] - 1
  if ix.size and (ix.min() < 0 or ix.max() >= n):
    raise ValueError(f"indices must be node ids in [0, {n}); got values in [{ix.min()}, {ix.max()}].")
  rows = np.repeat(np.arange(n), np.diff(ip))
  if ix.size > 1 and np.any((np.diff(ix) <= 0) & (rows[1:] == rows[:-1])):
    raise ValueError("indices must be sorted within each CSR row, without duplicate edges "
                     "(scipy: csr.sum_duplicates(); csr.sort_indices()).")


def _lower_bound(indices: jax.Array, lo: jax.Array, hi: jax.Array, x: jax.Array) -> jax.Array:
  """First position in the sorted slice indices[lo:hi] whose value is >= x (hi if none), elementwise."""
  last = indices.shape[0] - 1

  def halve(_, bounds):
    lo, hi = bounds
    active = lo < hi
    mid = (lo + hi) // 2
    go_right = indices[jnp.clip(mid, 0, last)] < x
    return jnp.where(active & go_right, mid + 1, lo), jnp.where(active & ~go_right, mid, hi)

  # A fixed number of halvings covers any row of a graph with E edges, so the loop has a static trip count.
  lo, _ = lax.fori_loop(0, max(1, math.ceil(math.log2(indices.shape[0] + 1))), halve, (lo, hi))
  return lo


def _has_edge(indptr, indices, src, dst) -> jax.Array:
  """Whether dst is in the (sorted) CSR row of src, by binary search: O(log deg) per query."""
  end = indptr[src + 1]
  pos = _lower_bound(indices, indptr[src], end, dst)
  return (pos < end) & (indices[jnp.clip(pos, 0, indices.shape[0] - 1)] == dst)


def _uniform_step(key, indptr, indices, cur):
  """One unbiased step: a uniformly chosen neighbour; dead ends (degree 0) stay where they are."""
  start, deg = indptr[cur], indptr[cur + 1] - indptr[cur]
  slot = jax.random.randint(key, cur.shape, 0, jnp.maximum(deg, 1))
  nxt = indices[jnp.clip(start + slot, 0, indices.shape[0] - 1)]
  return jnp.where(deg > 0, nxt, cur)


def _biased_step(key, indptr, indices, prev, cur, inv_p, inv_q):
  """One second-order step from `cur` having come from `prev`, by exact rejection sampling.

  Target weights over the neighbours x of v = cur: 1/p for x = t = prev, 1 if x is a neighbour of t, else 1/q.
  The return edge x = t is a single known "outlier" slot, so it is drawn with its exact share of the envelope
  mass, 1/p against M = max(1, 1/q) for each other slot; any other slot is drawn uniformly and accepted with
  probability w(x) / M. The acceptance rate per trial is at least min(1, 1/q) / max(1, 1/q), whatever p is.
  """
  start, end = indptr[cur], indptr[cur + 1]
  deg = end - start
  pos_t = _lower_bound(indices, start, end, prev)
  t_in = (pos_t < end) & (indices[jnp.clip(pos_t, 0, indices.shape[0] - 1)] == prev)
  others = deg - t_in.astype(deg.dtype)  # non-return slots
  env = jnp.maximum(1.0, inv_q)
  mass_t = jnp.where(t_in, inv_p, 0.0)
  mass_rest = others.astype(jnp.float32) * env

  def trial(k):
    k_branch, k_slot, k_accept = jax.random.split(k, 3)
    pick_t = jax.random.uniform(k_branch, cur.shape) * (mass_t + mass_rest) < mass_t
    s = jax.random.randint(k_slot, cur.shape, 0, jnp.maximum(others, 1))
    s = s + (t_in & (start + s >= pos_t)).astype(s.dtype)  # skip the return slot
    x = indices[jnp.clip(start + s, 0, indices.shape[0] - 1)]
    w = jnp.where(_has_edge(indptr, indices, prev, x), 1.0, inv_q)
    ok = pick_t | (jax.random.uniform(k_accept, cur.shape) * env < w)
    return jnp.where(pick_t, prev, x), ok

  def body(state):
    i, done, out = state
    x, ok = trial(jax.random.fold_in(key, i))
    return i + 1, done | ok, jnp.where(ok & ~done, x, out)

  def cond(state):
    i, done, _ = state
    return jnp.any(~done) & (i < _MAX_TRIALS)

  _, _, out = lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), deg == 0, cur))
  return out


def node2vec_walks(key: jax.Array, indptr: jax.Array, indices: jax.Array, start_nodes: jax.Array, *,
                   walk_length: int = 80, p: float = 1.0, q: float = 1.0) -> jax.Array:
  r"""node2vec's biased second-order random walks on a CSR graph, one walk per start node.

  Having stepped t -> v, the walk moves to a neighbour x of v with probability proportional to

  .. math::
      \alpha_{pq}(t, x) = \begin{cases} 1/p & d_{tx} = 0 \ (x = t) \\ 1 & d_{tx} = 1 \ (x \text{ a neighbour of }
      t) \\ 1/q & d_{tx} = 2 \end{cases}

  (paper eq. 2 and Fig. 2, unweighted graph). Low p favours returning, low q outward (DFS-like) exploration and
  high q local (BFS-like) exploration; p = q = 1 is the uniform random walk of DeepWalk. The first step, which
  has no previous node, is uniform over the start node's neighbours (as in the authors' code).

  Method: all walks advance together, one `lax.scan` step per position. Each step samples exactly by rejection
  (as KnightKing and PyTorch Geometric do, instead of the authors' per-edge alias tables, which need O(sum of
  squared degrees) memory): the return edge to t gets its exact share of the envelope, any other neighbour is
  proposed uniformly and accepted with probability alpha / max(1, 1/q), and "is x a neighbour of t" is a binary
  search in t's sorted CSR row. Memory is O(walks + E) and each trial costs O(walks * log max-degree), so it
  scales to large, heavy-tailed graphs; the expected number of trials per walk is at most max(q, 1/q).
  For a directed graph "x is a neighbour of t" means the edge t -> x is stored.

  Dead ends (out-degree 0, e.g. in a directed graph) are absorbing: the walk stays at that node for the rest of
  its length (so every walk has exactly `walk_length` entries).

  Args:
    key: a `jax.random` key; the same key gives the same walks.
    indptr: [N + 1] CSR row pointers (int).
    indices: [E] CSR column indices (int), sorted within each row, no duplicate edges.
    start_nodes: [w] start node of each walk (the paper starts r = 10 walks at every node).
    walk_length: l >= 1, the number of nodes per walk including the start (80).
    p: return parameter > 0 (1.0).
    q: in-out parameter > 0 (1.0).

  Returns:
    [w, walk_length] int32 node ids; column 0 is `start_nodes`.

  Example:
    >>> indptr, indices = jnp.array([0, 1, 3, 4]), jnp.array([1, 0, 2, 1])  # the path 0 - 1 - 2
    >>> node2vec_walks(jax.random.key(0), indptr, indices, jnp.array([0]), walk_length=3, p=1e-3).tolist()
    [[0, 1, 0]]

  Grover & Leskovec, "node2vec: Scalable Feature Learning for Networks", KDD 2016,
  https://arxiv.org/abs/1607.00653 (Section 3.2, Algorithm 1).
  """
  _check_csr(indptr, indices)
  _check_int_vector("start_nodes", start_nodes, "[w]")
  if not isinstance(walk_length, int) or walk_length < 1:
    raise ValueError(f"walk_length must be an int >= 1; got {walk_length!r}.")
  _checks.check_positive("p", p)
  _checks.check_positive("q", q)
  indptr = jnp.asarray(indptr, jnp.int32)
  indices = jnp.asarray(indices, jnp.int32)
  start = jnp.asarray(start_nodes, jnp.int32)
  if walk_length == 1 or indices.shape[0] == 0:  # no edges: every walk stays at its start
    return jnp.tile(start[:, None], (1, walk_length))
  return _walks(key, indptr, indices, start, 1.0 / jnp.asarray(p, jnp.float32), 1.0 / jnp.asarray(q, jnp.float32),
                walk_length=walk_length)


@functools.partial(jax.jit, static_argnames=("walk_length",))
def _walks(key, indptr, indices, start, inv_p, inv_q, *, walk_length: int):
  # Jitted once per (shapes, walk_length): p and q are traced, so new values do not recompile.
  keys = jax.random.split(key, walk_length - 1)
  first = _uniform_step(keys[0], indptr, indices, start)

  def step(carry, k):
    prev, cur = carry
    nxt = _biased_step(k, indptr, indices, prev, cur, inv_p, inv_q)
    return (cur, nxt), nxt

  _, rest = lax.scan(step, (start, first), keys[1:])
  return jnp.concatenate([start[:, None], first[:, None], rest.T], axis=1)


def walk_context_pairs(walks: jax.Array, *, window: int = 10) -> tuple[jax.Array, jax.Array]:
  r"""The (center, context) pairs of skip-gram: every two nodes at most `window` steps apart on a walk.

  For a walk :math:`(u_1, \dots, u_l)` the pairs are :math:`(u_i, u_j)` for all :math:`1 \le |i - j| \le k`,
  in both orders (node2vec's neighbourhood N_S(u) of Section 3.2; the authors train word2vec with window k = 10).
  A fixed window is used rather than word2vec's randomly shrunk one, so the number of pairs is static:
  w * sum_{o=1}^{min(k, l-1)} 2 (l - o). A walk stuck at a dead end yields pairs of a node with itself; filter
  them (center == context) if unwanted.

  Args:
    walks: [w, l] integer node ids (e.g. from `node2vec_walks`).
    window: k >= 1, the context size (10).

  Returns:
    (center, context): two [P] integer arrays; pair n is `(center[n], context[n])`.

  Example:
    >>> c, x = walk_context_pairs(jnp.array([[7, 8, 9]]), window=1)
    >>> list(zip(c.tolist(), x.tolist()))
    [(7, 8), (8, 9), (8, 7), (9, 8)]

  Grover & Leskovec, "node2vec: Scalable Feature Learning for Networks", KDD 2016,
  https://arxiv.org/abs/1607.00653 (Section 3.2); skip-gram: Mikolov et al., "Distributed Representations of
  Words and Phrases and their Compositionality", NeurIPS 2013, https://arxiv.org/abs/1310.4546.
  """
  _checks.check_array("walks", walks, ndim=2, floating=False, shape_doc="[w, l]")
  if not jnp.issubdtype(walks.dtype, jnp.integer):
    raise ValueError(f"walks must be an integer array of node ids; got dtype {walks.dtype}.")
  if not isinstance(window, int) or window < 1:
    raise ValueError(f"window must be an int >= 1; got {window!r}.")
  l = walks.shape[1]
  ci, xi = [], []
  for o in range(1, min(window, l - 1) + 1):  # static positions: forward pairs (i, i+o), then backward
    i = np.arange(l - o)
    ci += [i, i + o]
    xi += [i + o, i]
  if not ci:
    empty = jnp.zeros((0,), walks.dtype)
    return empty, empty
  ci, xi = np.concatenate(ci), np.concatenate(xi)
  return walks[:, ci].reshape(-1), walks[:, xi].reshape(-1)


def skipgram_negative_sampling(center_emb: jax.Array, context_emb: jax.Array, negative_emb: jax.Array, *,
                               axis_name: str | None = None) -> jax.Array:
  r"""Skip-gram with negative sampling: score true (center, context) pairs up and sampled negatives down.

  For a center embedding u, its context v and K negatives n_1..n_K (nodes drawn from a noise distribution):

  .. math::
      \ell = -\log\sigma(u^\top v) - \sum_{k=1}^{K} \log\sigma(-u^\top n_k),
      \qquad L = \frac{1}{B}\sum_{i=1}^{B} \ell_i

  over the B pairs of the GLOBAL batch (log sigma computed as `log_sigmoid`, finite for any score). This is
  node2vec's objective (eq. 1, approximated with negative sampling) and GraphSAGE's unsupervised loss (its eq. 1,
  with Q = K negatives), where the pairs co-occur on random walks (`walk_context_pairs`) and the noise
  distribution is the degree^{3/4} unigram one. The caller draws the negatives and picks the embedding tables
  (word2vec keeps separate "input" and "output" tables; GraphSAGE uses one encoder for all three). Gradients
  flow into all three arguments; no stop-gradient is needed.

  Args:
    center_emb: [b, d] center-node embeddings u.
    context_emb: [b, d] context-node embeddings v; row i is the positive of row i.
    negative_emb: [b, K, d] negatives per pair, or [K, d] negatives shared by every pair of this shard (as
      GraphSAGE's code shares them across its batch; replicate them over devices to share them globally).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar mean loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> u = jnp.array([[2.0, 0.0]]); v = u; neg = jnp.array([[[-2.0, 0.0]]])
    >>> round(float(skipgram_negative_sampling(u, v, neg)), 4)  # 2 * softplus(-4)
    0.0363

  Mikolov et al., "Distributed Representations of Words and Phrases and their Compositionality", NeurIPS 2013,
  https://arxiv.org/abs/1310.4546 (eq. 4); Grover & Leskovec, "node2vec", KDD 2016,
  https://arxiv.org/abs/1607.00653; Hamilton et al., "Inductive Representation Learning on Large Graphs",
  NeurIPS 2017, https://arxiv.org/abs/1706.02216 (eq. 1).
  """
  _checks.check_embeddings(center_emb=center_emb, context_emb=context_emb)
  b, d = center_emb.shape
  _checks.check_array("negative_emb", negative_emb, shape_doc=f"[{b}, K, {d}] or [K, {d}]")
  shared = negative_emb.ndim == 2
  if not ((shared and negative_emb.shape[1] == d) or
          (negative_emb.ndim == 3 and negative_emb.shape[0] == b and negative_emb.shape[2] == d)):
    raise ValueError(f"negative_emb must have shape [{b}, K, {d}] (per pair) or [K, {d}] (shared); "
                     f"got shape {tuple(negative_emb.shape)}.")
  u, v, n = _ops.to_float32(center_emb, context_emb, negative_emb)
  pos = jnp.sum(u * v, axis=-1)  # [b]
  neg = u @ n.T if shared else jnp.einsum("bd,bkd->bk", u, n)  # [b, K]
  per_pair = -jax.nn.log_sigmoid(pos) - jnp.sum(jax.nn.log_sigmoid(-neg), axis=-1)
  return _collectives.global_mean(jnp.sum(per_pair), b, axis_name)


def sample_neighbors(key: jax.Array, indptr: jax.Array, indices: jax.Array, nodes: jax.Array, *,
                     num_samples: int = 25) -> tuple[jax.Array, jax.Array]:
  """A fixed-size neighbour sample per node: uniform over each node's neighbours, with replacement.

  GraphSAGE's fixed-size sampling (Section 3.1) keeps every mini-batch the same shape. A node without neighbours
  gets `num_samples` copies of itself with a False mask, so aggregators see an empty neighbourhood.

  Args:
    key: a `jax.random` key; the same key gives the same sample.
    indptr: [N + 1] CSR row pointers (int).
    indices: [E] CSR column indices (int).
    nodes: [n] the nodes whose neighbours to sample.
    num_samples: S >= 1, samples per node (25, the paper's S_1).

  Returns:
    (neighbors, mask): [n, S] int32 node ids and [n, S] bool, True where the entry is a real neighbour.

  Example:
    >>> nb, mask = sample_neighbors(jax.random.key(0), jnp.array([0, 1, 1]), jnp.array([1]), jnp.array([0, 1]),
    ...                             num_samples=2)
    >>> nb.tolist(), mask.tolist()  # node 0's only neighbour is 1; node 1 has none
    ([[1, 1], [1, 1]], [[True, True], [False, False]])

  Hamilton, Ying & Leskovec, "Inductive Representation Learning on Large Graphs", NeurIPS 2017,
  https://arxiv.org/abs/1706.02216 (Section 3.1).
  """
  _check_csr(indptr, indices)
  _check_int_vector("nodes", nodes, "[n]")
  if not isinstance(num_samples, int) or num_samples < 1:
    raise ValueError(f"num_samples must be an int >= 1; got {num_samples!r}.")
  indptr, indices = jnp.asarray(indptr, jnp.int32), jnp.asarray(indices, jnp.int32)
  nodes = jnp.asarray(nodes, jnp.int32)
  start, deg = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
  n = nodes.shape[0]
  slot = jax.random.randint(key, (n, num_samples), 0, jnp.maximum(deg, 1)[:, None])
  if indices.shape[0] == 0:
    picked = jnp.broadcast_to(nodes[:, None], (n, num_samples))
  else:
    picked = indices[jnp.clip(start[:, None] + slot, 0, indices.shape[0] - 1)]
  mask = jnp.broadcast_to((deg > 0)[:, None], (n, num_samples))
  return jnp.where(mask, picked, nodes[:, None]), mask
