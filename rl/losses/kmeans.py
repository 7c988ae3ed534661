"""Cosine (spherical) k-means and chunked top-k cluster assignment, the clustering step of Unicom and MLCD.

Unicom and MLCD cluster LAION-400M CLIP features into one million clusters with faiss k-means on GPUs, once,
offline; the pseudo-labels then train `rl.losses.margin`. `spherical_kmeans` is the same Lloyd iteration for
the scale that fits a training step (a global batch of thousands of points, K up to thousands): each device
holds its shard of the points, the centroids are replicated and rebuilt from `psum`s of per-device segment
sums. `assign_topk` scans up to millions of centroids in chunks, so it can label data against a large fixed
codebook (MLCD's k positive labels per image) without ever forming the [n, C] similarity matrix.
"""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def _assign(x: jax.Array, centroids: jax.Array) -> jax.Array:
  return jnp.argmax(x @ centroids.T, axis=1).astype(jnp.int32)


def spherical_kmeans(key: jax.Array, features: jax.Array, num_clusters: int, *, iters: int = 10,
                     axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  r"""Cosine k-means (Lloyd iterations on the unit sphere) over the global batch.

  Points are L2-normalised to u_i. Initial centroids are K distinct points of the GLOBAL batch chosen with
  `key`. Each iteration assigns every point to its most similar centroid and replaces each centroid by the
  normalised sum of its points (empty clusters keep their previous centroid):

  .. math::
      a_i = \arg\max_k\, u_i^\top c_k, \qquad c_k \leftarrow
      \frac{\sum_{i: a_i = k} u_i}{\big\|\sum_{i: a_i = k} u_i\big\|} .

  Per-cluster sums and counts are `psum`s of per-device segment sums, so the centroids are the same on every
  device and equal to the single-device result. This is a clustering routine, not a loss: the features are
  wrapped in `stop_gradient`. The returned assignments are those against the returned centroids.

  Args:
    key: PRNG key choosing the initial centroids (the same on every device).
    features: [b, d] points (this device's shard with `axis_name`).
    num_clusters: K, at most the global batch size B.
    iters: number of Lloyd iterations (>= 0).
    axis_name: None, or the mapped axis over which the points are sharded.

  Returns:
    (centroids [K, d] unit rows, float32, replicated; assignments [b] int32 of this device's points).

  Example:
    >>> from rl.losses.kmeans import spherical_kmeans
    >>> x = jnp.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])
    >>> c, a = spherical_kmeans(jax.random.key(0), x, 2)
    >>> bool(a[0] == a[1]) and bool(a[2] == a[3]) and bool(a[0] != a[2])
    True

  Unicom (An et al., ICLR 2023, https://arxiv.org/abs/2304.05884) and MLCD (An et al., ECCV 2024,
  https://arxiv.org/abs/2407.17331) cluster LAION-400M into 10^6 classes with faiss k-means; spherical k-means:
  Dhillon & Modha, "Concept Decompositions for Large Sparse Text Data Using Clustering", Machine Learning 2001,
  https://doi.org/10.1023/A:1007612920971.
  """
  _checks.check_array("features", features, ndim=2, shape_doc="[b, d]")
  if not isinstance(iters, int) or iters < 0:
    raise ValueError(f"iters must be an integer >= 0; got {iters}.")
  global_b = features.shape[0] * _collectives.axis_size(axis_name)
  if not isinstance(num_clusters, int) or not 1 <= num_clusters <= global_b:
    raise ValueError(f"num_clusters must be an integer in [1, {global_b}] (the global batch size); "
                     f"got {num_clusters}.")
  x = l2_normalize(_ops.to_float32(lax.stop_gradient(features)))
  x_all = _collectives.all_gather_replicated(x, axis_name)  # [B, d], invariant
  init = jax.random.choice(key, global_b, (num_clusters,), replace=False)
  centroids = x_all[init]

  def step(_, c):
    a = _assign(x, c)
    sums = _collectives.psum(jax.ops.segment_sum(x, a, num_segments=num_clusters), axis_name)
    counts = _collectives.psum(jax.ops.segment_sum(jnp.ones_like(a), a, num_segments=num_clusters), axis_name)
    return jnp.where((counts > 0)[:, None], l2_normalize(sums), c)

  centroids = lax.fori_loop(0, iters, step, centroids)
  return centroids, _assign(x, centroids)


def assign_topk(features: jax.Array, centroids: jax.Array, k: int, *, chunk: int = 8192
                ) -> tuple[jax.Array, jax.Array]:
  r"""The k most cosine-similar centroids of each feature, scanning the centroids in chunks.

  .. math::
      \mathrm{top}_k\big(\{\, u_i^\top v_c : c = 1..C \,\}\big), \quad u = x / \|x\|,\ v = \text{centroid} / \|\cdot\|.

  A `lax.scan` over ceil(C / chunk) blocks keeps a running top-k ([n, k]) and merges each block's [n, chunk]
  similarities into it, so memory is O(n (k + chunk) + C d) and the [n, C] matrix never exists (C = 10^6 is
  fine). The last block is padded; padded columns score -inf. Ties go to the lower centroid index. MLCD takes
  the k nearest clusters as an image's positive labels: `positive_ids = assign_topk(features, centroids, k)[1]`
  for `multilabel_cluster_loss`. Not differentiable (indices); values follow `lax.top_k`.

  Args:
    features: [n, d] points (normalised here).
    centroids: [C, d] cluster centres (normalised here, one chunk at a time).
    k: number of neighbours, 1 <= k <= C.
    chunk: centroids per scan step (> 0).

  Returns:
    (values [n, k] float32 cosine similarities in decreasing order, indices [n, k] int32).

  Example:
    >>> from rl.losses.kmeans import assign_topk
    >>> c = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> vals, idx = assign_topk(jnp.array([[1.0, 0.2]]), c, 2, chunk=2)
    >>> idx.tolist()
    [[0, 2]]

  MLCD: An et al., "Multi-label Cluster Discrimination for Visual Representation Learning", ECCV 2024,
  https://arxiv.org/abs/2407.17331.
  """
  _checks.check_array("features", features, ndim=2, shape_doc="[n, d]")
  _checks.check_array("centroids", centroids, ndim=2, shape_doc="[C, d]")
  if centroids.shape[1] != features.shape[1]:
    raise ValueError(f"centroids must have shape [C, {features.shape[1]}] (the embedding size of features); "
                     f"got shape {tuple(centroids.shape)}.")
  num_c = centroids.shape[0]
  if not isinstance(k, int) or not 1 <= k <= num_c:
    raise ValueError(f"k must be an integer in [1, {num_c}] (the number of centroids); got {k}.")
  if not isinstance(chunk, int) or chunk <= 0:
    raise ValueError(f"chunk must be a positive integer; got {chunk}.")
  chunk = min(chunk, num_c)
  n_blocks = -(-num_c // chunk)
  u = l2_normalize(_ops.to_float32(features))
  c = _ops.to_float32(centroids)
  c = jnp.pad(c, ((0, n_blocks * chunk - num_c), (0, 0))).reshape(n_blocks, chunk, -1)

  def merge(carry, block):
    vals, idx = carry
    b, ids = block
    sims = u @ l2_normalize(b).T  # [n, chunk]
    sims = jnp.where(ids[None, :] < num_c, sims, -jnp.inf)
    all_vals = jnp.concatenate([vals, sims], axis=1)
    all_ids = jnp.concatenate([idx, jnp.broadcast_to(ids, sims.shape)], axis=1)
    top_vals, pos = lax.top_k(all_vals, k)  # the carry comes first: ties keep the earlier (lower) index
    return (top_vals, jnp.take_along_axis(all_ids, pos, axis=1)), None

  n = u.shape[0]
  init = (jnp.full((n, k), -jnp.inf, u.dtype), jnp.full((n, k), -1, jnp.int32))
  ids = jnp.arange(n_blocks * chunk, dtype=jnp.int32).reshape(n_blocks, chunk)
  (vals, idx), _ = lax.scan(merge, init, (c, ids))
  return vals, idx
