"""GraphSAGE: inductive node embeddings from sampled, aggregated neighbourhoods (Flax linen).

Hamilton, Ying & Leskovec, "Inductive Representation Learning on Large Graphs", NeurIPS 2017,
https://arxiv.org/abs/1706.02216 (Algorithm 1; aggregators of Section 3.3).

A layer k (Algorithm 1, lines 4-7) computes, for each target node v with a fixed-size sample N(v) of neighbours,

  h_N(v) = AGGREGATE({h_u : u in N(v)}),  h_v' = ReLU(W [h_v ; h_N(v)]),  h_v' = h_v' / ||h_v'||_2.

Neighbourhoods are sampled with `rl.losses.graph.sample_neighbors` (uniform, with replacement, S per node:
Section 3.1, which uses S_1 = 25, S_2 = 10). The graph is in CSR form (`indptr` [N + 1], `indices` [E]), as in `rl.losses.graph`.

Unsupervised training (paper eq. 1) is skip-gram with negative sampling over nodes that co-occur on short random
walks: embed the nodes with `SAGEConv` layers, form pairs with `rl.losses.graph.walk_context_pairs` on walks from
`rl.losses.graph.node2vec_walks` (p = q = 1 are the paper's uniform walks) and apply
`rl.losses.graph.skipgram_negative_sampling(z[center], z[context], z[negatives])`, with the negatives drawn
from the degree^{3/4} unigram distribution (Q negatives: the K of that function).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl import losses
from rl.models.heads import check_rank


class SAGEConv(nn.Module):
  """One GraphSAGE layer (Algorithm 1): concatenate self and aggregated neighbours, Dense, ReLU, L2-normalise.

  Aggregators (Section 3.3): "mean", the masked element-wise mean of the neighbour features; "maxpool", the
  element-wise max over neighbours of ReLU(W_pool h_u + b) (a one-layer MLP applied to each neighbour). Masked
  neighbour slots are ignored; a node with no neighbours aggregates to zeros.

  Algorithm 1 writes W^k without a bias, hence `use_bias=False` by default. The authors' code applies no
  non-linearity on the last layer and L2-normalises only the final output; use `activate=False` and
  `normalize=False` on the layers where that is wanted. It also keeps separate self and neighbour weights
  and concatenates their outputs, which is the same family of functions as W [h_v ; h_N(v)] here.

  Attributes:
    features: output width.
    aggregator: "mean" or "maxpool".
    pool_features: width of the maxpool MLP (None: `features`; the authors' code uses 512 or 1024).
    use_bias: a bias in the main Dense layer.
    activate: apply ReLU (sigma of Algorithm 1).
    normalize: L2-normalise each output row (Algorithm 1, line 7).
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> x = jnp.ones((3, 4)); nb = jnp.array([[1, 2], [0, 0], [0, 1]]); mask = jnp.ones((3, 2), bool)
    >>> layer = SAGEConv(features=8)
    >>> params = layer.init(jax.random.key(0), x, nb, mask)
    >>> layer.apply(params, x, nb, mask).shape
    (3, 8)

  Hamilton, Ying & Leskovec, "Inductive Representation Learning on Large Graphs", NeurIPS 2017,
  https://arxiv.org/abs/1706.02216 (Algorithm 1, Section 3.3).
  """
  features: int
  aggregator: str = "mean"
  pool_features: int | None = None
  use_bias: bool = False
  activate: bool = True
  normalize: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, neighbors: jax.Array, mask: jax.Array | None = None, *,
               nodes: jax.Array | None = None) -> jax.Array:
    """Embeds the target nodes.

    Args:
      x: [N, d] features h^{k-1} of every node that `neighbors` (and `nodes`) refer to.
      neighbors: [n, S] indices into `x` of each target node's sampled neighbours (e.g. `sample_neighbors`).
      mask: [n, S] bool, True for real neighbours (None: all real).
      nodes: [n] indices into `x` of the target nodes; None when the targets are all N rows of `x` (n = N).

    Returns:
      [n, features] embeddings h^k, unit-norm rows when `normalize`.
    """
    if self.aggregator not in ("mean", "maxpool"):
      raise ValueError(f"aggregator must be 'mean' or 'maxpool'; got {self.aggregator!r}.")
    check_rank(x, name="x", ranks=(2,), layout="[N, d]")
    check_rank(neighbors, name="neighbors", ranks=(2,), layout="[n, S]")
    if not jnp.issubdtype(neighbors.dtype, jnp.integer):
      raise ValueError(f"neighbors must be an integer array of node ids; got dtype {neighbors.dtype}.")
    n = neighbors.shape[0]
    if mask is None:
      mask = jnp.ones(neighbors.shape, bool)
    if tuple(mask.shape) != tuple(neighbors.shape):
      raise ValueError(f"mask must have the shape of neighbors, {tuple(neighbors.shape)}; "
                       f"got shape {tuple(mask.shape)}.")
    if nodes is None:
      if n != x.shape[0]:
        raise ValueError(f"neighbors must have one row per row of x when nodes is None; got shapes "
                         f"{tuple(neighbors.shape)} and {tuple(x.shape)}.")
      h_self = x
    else:
      if tuple(nodes.shape) != (n,):
        raise ValueError(f"nodes must have shape [{n}] (one per row of neighbors); got shape {tuple(nodes.shape)}.")
      h_self = x[nodes]
    h_nb = x[neighbors].astype(self.dtype)  # [n, S, d]
    m = mask.astype(self.dtype)[..., None]
    if self.aggregator == "mean":
      agg = jnp.sum(h_nb * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
    else:
      pooled = nn.relu(nn.Dense(self.pool_features or self.features, dtype=self.dtype, name="pool")(h_nb))
      # ReLU outputs are >= 0, so filling masked slots with 0 leaves the max unchanged (0 if none is real).
      agg = jnp.max(pooled * m, axis=1)
    h = nn.Dense(self.features, use_bias=self.use_bias, dtype=self.dtype, name="dense")(
        jnp.concatenate([h_self.astype(self.dtype), agg], axis=-1))
    if self.activate:
      h = nn.relu(h)
    if self.normalize:
      # An all-zero row (possible after ReLU) keeps a finite gradient.
      h = losses.l2_normalize(h.astype(jnp.promote_types(h.dtype, jnp.float32))).astype(h.dtype)
    return h
