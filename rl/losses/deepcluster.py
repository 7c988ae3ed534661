"""DeepCluster-v2: prototype cross-entropy against k-means pseudo-labels of a memory of past embeddings.

The clustering stage of Nguyen et al.'s joint image-volume pre-training in its DeepCluster-v2 variant (the other
variant is SwAV, `rl.losses.swav`; the masked slice-embedding task is `rl.losses.medical`). The released code runs
it twice: on 2-D images with VISSL's `deepclusterv2_loss`, then on the volume embeddings of the slice encoder and
slice transformer (`ssl_deepcluster_3D.py`, the loss and clustering of facebookresearch/swav
`main_deepclusterv2.py`). One epoch is:

1. at its start, `deepcluster_v2_assign`: for each head h, spherical k-means (`rl.losses.spherical_kmeans`,
   10 Lloyd iterations) over the memory of the whole dataset, held in shards across devices; it returns the
   centroids (the code copies them into head h's prototype layer) and a replicated table of every sample's cluster;
2. every step, `deepcluster_v2`: cross-entropy of the prototype scores of every crop, at temperature 0.1, against
   the sample's cluster in each head, averaged over heads; then `deepcluster_v2_memory_update` writes the step's
   detached embeddings of the assignment crops into this device's memory.

State (caller's): the memory `(memory_embeddings [S, M, d], memory_indices [S], ptr)`, sharded over devices on
its first axis like the batch (ptr replicated), and the assignments `[H, N]`, replicated.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.kmeans import spherical_kmeans

_UNASSIGNED = -100  # the code's fill value (PyTorch's `ignore_index`): a sample no memory slot holds


def _check_crops(num_crops, crops_for_assign) -> tuple[int, ...]:
  if not isinstance(num_crops, int) or num_crops < 1:
    raise ValueError(f"num_crops must be an int >= 1; got {num_crops!r}.")
  crops = tuple(crops_for_assign)
  if not crops or any(not isinstance(c, int) or not 0 <= c < num_crops for c in crops):
    raise ValueError(f"crops_for_assign must be non-empty crop ids in [0, {num_crops}); got {crops}.")
  return crops


def _check_memory(memory_embeddings, memory_indices) -> None:
  _checks.check_array("memory_embeddings", memory_embeddings, ndim=3, shape_doc="[S, M, d]")
  s = memory_embeddings.shape[0]
  if not hasattr(memory_indices, "shape") or tuple(memory_indices.shape) != (s,):
    raise ValueError(f"memory_indices must have shape [{s}] (one dataset index per slot of memory_embeddings, "
                     f"[S, M, d]); got {tuple(getattr(memory_indices, 'shape', ())) or type(memory_indices).__name__}.")
  if not jnp.issubdtype(memory_indices.dtype, jnp.integer):
    raise ValueError(f"memory_indices must be an integer array; got dtype {memory_indices.dtype}.")


def deepcluster_v2_memory_update(memory_embeddings: jax.Array, memory_indices: jax.Array, ptr: jax.Array,
                                 embeddings: jax.Array, indices: jax.Array, *, num_crops: int,
                                 crops_for_assign: Sequence[int] = (0, 1)
                                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""Writes this step's embeddings of the assignment crops into this device's DeepCluster-v2 memory.

  With b samples on this device, crop-major embeddings :math:`e` ([num_crops * b, d]) and the slot pointer p:

  .. math::
      \text{mem}[(p + i) \bmod S,\ m] \leftarrow e_{c_m b + i}, \quad
      \text{idx}[(p + i) \bmod S] \leftarrow \text{indices}_i \quad (i < b,\ c_m \in \text{crops\_for\_assign}),
      \qquad p \leftarrow (p + b) \bmod S .

  Each device writes its own shard (no collective): the memory is sharded like the batch, as in the code, where
  every process keeps `local_memory_embeddings` of the samples it saw. The embeddings are stored as given, under
  `stop_gradient` (the code stores the model's detached, L2-normalised embedding; `deepcluster_v2_assign`
  normalises again). An epoch of S / b steps fills the memory once and brings p back to 0, where the code resets
  its `start_idx`. Fill the memory with one pass over the data before the first `deepcluster_v2_assign` (the
  code's `init_memory`).

  Source: `train` of ssl_deepcluster_3D.py (Self-supervised-Image-Volume-Intra-Inter-Contrastive, "update memory
  banks"), as facebookresearch/swav main_deepclusterv2.py.

  Args:
    memory_embeddings: [S, M, d] this device's memory: slot s holds, for each of the M assignment crops, an
      embedding of the sample `memory_indices[s]`.
    memory_indices: [S] int dataset index of each slot.
    ptr: int scalar, the next slot to write (the same on every device).
    embeddings: [num_crops * b, d] this step's embeddings, crop-major (rows c*b..(c+1)*b-1 are crop c).
    indices: [b] int dataset indices of this device's b samples.
    num_crops: the number of crops stacked in `embeddings`.
    crops_for_assign: the M crop ids whose embeddings are kept (the code: (0, 1)).

  Returns:
    `(memory_embeddings, memory_indices, ptr)`, the updated state (the memory in its own dtype, ptr int32).

  Example:
    >>> mem, idx, p = deepcluster_v2_memory_update(jnp.zeros((3, 2, 1)), jnp.zeros(3, jnp.int32), jnp.int32(2),
    ...                                            jnp.array([[1.0], [2.0], [3.0], [4.0]]), jnp.array([7, 8]),
    ...                                            num_crops=2)
    >>> mem[:, :, 0].tolist(), idx.tolist(), int(p)
    ([[2.0, 4.0], [0.0, 0.0], [1.0, 3.0]], [8, 0, 7], 1)

  Nguyen et al., "Joint Self-Supervised Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
  AAAI 2023, https://arxiv.org/abs/2212.01893; DeepCluster-v2: Caron et al., NeurIPS 2020,
  https://arxiv.org/abs/2006.09882.
  """
  crops = _check_crops(num_crops, crops_for_assign)
  _check_memory(memory_embeddings, memory_indices)
  s, m, d = memory_embeddings.shape
  if m != len(crops):
    raise ValueError(f"memory_embeddings must have shape [S, {len(crops)}, d] (one bank per crop of "
                     f"crops_for_assign={crops}); got shape {tuple(memory_embeddings.shape)}.")
  _checks.check_array("embeddings", embeddings, ndim=2, shape_doc=f"[num_crops * b, {d}]")
  if embeddings.shape[1] != d or embeddings.shape[0] % num_crops:
    raise ValueError(f"embeddings must have shape [num_crops * b, {d}] with num_crops={num_crops} (the embedding "
                     f"size of memory_embeddings); got shape {tuple(embeddings.shape)}.")
  b = embeddings.shape[0] // num_crops
  _checks.check_labels("indices", indices, b)
  if b > s:
    raise ValueError(f"a batch of {b} samples does not fit in a memory of {s} slots (need b <= S).")
  ptr = jnp.asarray(ptr)
  if ptr.shape != () or not jnp.issubdtype(ptr.dtype, jnp.integer):
    raise ValueError(f"ptr must be an integer scalar; got shape {tuple(ptr.shape)} and dtype {ptr.dtype}.")
  ptr = ptr.astype(jnp.int32)
  memory_embeddings, memory_indices = jnp.asarray(memory_embeddings), jnp.asarray(memory_indices)
  e = lax.stop_gradient(embeddings).reshape(num_crops, b, d)
  new = jnp.stack([e[c] for c in crops], axis=1).astype(memory_embeddings.dtype)  # [b, M, d]
  rows = (ptr + jnp.arange(b, dtype=jnp.int32)) % s  # distinct since b <= S
  memory_embeddings = memory_embeddings.at[rows].set(new, unique_indices=True)
  memory_indices = memory_indices.at[rows].set(indices.astype(memory_indices.dtype), unique_indices=True)
  return memory_embeddings, memory_indices, (ptr + b) % s


def deepcluster_v2_assign(key: jax.Array, memory_embeddings: jax.Array, memory_indices: jax.Array,
                          num_samples: int, *, num_clusters: Sequence[int], iters: int = 10,
                          axis_name: str | None = None) -> tuple[tuple[jax.Array, ...], jax.Array]:
  r"""DeepCluster-v2's clustering step: k-means of the memory for every head, and every sample's cluster.

  Head h (K_h clusters) clusters memory bank :math:`m = h \bmod M` of the GLOBAL memory (every device's shard) with
  `rl.losses.spherical_kmeans` (key `fold_in(key, h)`, `iters` Lloyd iterations on the unit sphere: assign each
  point to its most similar centroid, replace each non-empty cluster's centroid by its normalised mean):

  .. math::
      y_{h,\, \text{idx}_s} = \arg\max_k\, u_{s m}^\top c_{hk}, \qquad
      c_{hk} \leftarrow \frac{\sum_{s: y = k} u_{s m}}{\lVert \sum_{s: y = k} u_{s m} \rVert},

  with :math:`u_{sm}` the L2-normalised embedding of bank m in slot s. The assignments of every device are
  gathered and scattered by dataset index into a [H, N] table; a sample no slot holds gets -100 (the code's fill,
  PyTorch's `ignore_index`), which `deepcluster_v2` ignores. Slots must hold distinct indices (each sample once
  per epoch, as a distributed sampler gives). No gradient flows.

  Caller's duties: run it at the start of every epoch with the same key on every device; copy centroid h into
  prototype head h when the prototypes are a trained layer (`ssl_deepcluster_3D.py`, swav's
  `main_deepclusterv2.py`), or score against the centroids themselves (VISSL's `deepclusterv2_loss`, the code's
  2-D stage).

  Deviation: the initial centroids are K_h distinct slots of the global memory; the code draws them from the
  memory of process 0 only. The Lloyd iterations, empty-cluster rule and final assignment are the code's.

  Source: `cluster_memory` of ssl_deepcluster_3D.py (Self-supervised-Image-Volume-Intra-Inter-Contrastive, the
  same as facebookresearch/swav main_deepclusterv2.py and VISSL's `DeepClusterV2Loss.cluster_memory`).

  Args:
    key: PRNG key of the initial centroids (the same on every device).
    memory_embeddings: [S, M, d] this device's memory (`deepcluster_v2_memory_update`).
    memory_indices: [S] int dataset index of each slot.
    num_samples: N, the dataset size (static): the length of the assignment table.
    num_clusters: K_h of each head (the code's 3-D stage: (4, 4, 4) clusters of volumes; its 2-D stage, VISSL's
      ImageNet setting: (3000, 3000, 3000)); each at most the global number of slots.
    iters: Lloyd iterations (the code: 10).
    axis_name: None when the memory is whole; the mapped axis inside `jax.shard_map` or `jax.pmap`, where it is
      this device's shard.

  Returns:
    `(centroids, assignments)`: a tuple of H float32 [K_h, d] unit-row centroids and the int32 [H, N] table, both
    the same on every device.

  Example:
    >>> mem = jnp.array([[[1.0, 0.1]], [[1.0, -0.1]], [[0.1, 1.0]], [[-0.1, 1.0]]])  # 4 slots, 1 bank
    >>> _, a = deepcluster_v2_assign(jax.random.key(0), mem, jnp.array([4, 0, 2, 3]), 6, num_clusters=(2,))
    >>> a = a[0].tolist(); a[4] == a[0] != a[2] == a[3], a[1], a[5]  # samples 1 and 5 are in no slot
    (True, -100, -100)

  Nguyen et al., "Joint Self-Supervised Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
  AAAI 2023, https://arxiv.org/abs/2212.01893; DeepCluster-v2: Caron et al., NeurIPS 2020,
  https://arxiv.org/abs/2006.09882 (Sec. 3 and appendix, "DeepCluster-v2").
  """
  _check_memory(memory_embeddings, memory_indices)
  if not isinstance(num_samples, int) or num_samples < 1:
    raise ValueError(f"num_samples must be a positive int (static); got {num_samples!r}.")
  num_clusters = tuple(num_clusters) if isinstance(num_clusters, Sequence) else (num_clusters,)
  if not num_clusters:
    raise ValueError("num_clusters must name at least one head; got ().")
  m = memory_embeddings.shape[1]
  idx = _collectives.all_gather_replicated(memory_indices.astype(jnp.int32), axis_name)
  centroids, rows = [], []
  for h, k in enumerate(num_clusters):
    c, a = spherical_kmeans(jax.random.fold_in(key, h), memory_embeddings[:, h % m], k, iters=iters,
                            axis_name=axis_name)
    centroids.append(c)
    rows.append(jnp.full((num_samples,), _UNASSIGNED, jnp.int32).at[idx].set(
        _collectives.all_gather_replicated(a, axis_name)))
  return tuple(centroids), jnp.stack(rows)


def deepcluster_v2(scores: jax.Array | Sequence[jax.Array], assignments: jax.Array, indices: jax.Array, *,
                   num_crops: int, temperature: float = 0.1, axis_name: str | None = None) -> jax.Array:
  r"""DeepCluster-v2's loss: every crop's prototype scores predict the sample's k-means cluster, in every head.

  With :math:`s^{h}_{vi}` the scores of crop v of sample i in head h, :math:`y_{hi}` = `assignments[h,
  indices[i]]` and :math:`\mathcal{V}_h = \{(v, i): y_{hi} \ge 0\}` (samples with no cluster are ignored):

  .. math::
      L = \frac{1}{H} \sum_{h=1}^{H} \frac{1}{|\mathcal{V}_h|} \sum_{(v, i) \in \mathcal{V}_h}
          \Big( \log \sum_k e^{s^h_{vik} / \tau} - s^h_{v i y_{hi}} / \tau \Big),

  the code's `nn.CrossEntropyLoss(ignore_index=-100)` of `output[h] / temperature` against the assignments tiled
  over the crops, averaged over heads. The means run over the kept rows of the global batch (the code's
  DistributedDataParallel averages per-process means instead: the same whenever every device keeps as many rows).
  A head whose targets are all ignored contributes 0 (PyTorch returns NaN).

  Caller's duties: the scores are the prototype layer applied to the L2-normalised embedding (the prototypes
  initialised to `deepcluster_v2_assign`'s centroids each epoch and frozen for the first iterations, the code's
  `freeze_prototypes_niters`), or the embedding against the centroids themselves (VISSL); the assignments come
  from `deepcluster_v2_assign` and are constants.

  Source: `train` of ssl_deepcluster_3D.py (Self-supervised-Image-Volume-Intra-Inter-Contrastive, "deepcluster-v2
  loss"), as facebookresearch/swav main_deepclusterv2.py; temperature 0.1 is the code's `--temperature`.

  Args:
    scores: one [num_crops * b, K] array (one head) or a sequence of H arrays [num_crops * b, K_h]; rows
      c*b..(c+1)*b-1 are crop c of this device's b samples.
    assignments: [H, N] int cluster of every dataset sample (negative: none), replicated.
    indices: [b] int dataset indices of this device's samples.
    num_crops: the number of crops stacked in `scores` (the code: 2 views).
    temperature: tau > 0 (the code: 0.1).
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map` or `jax.pmap`,
      where `scores` and `indices` are this device's shard.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> s = jnp.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])  # 2 crops of 2 samples, 1 head
    >>> a = jnp.array([[0, 1, -100]])
    >>> bool(deepcluster_v2(s, a, jnp.array([0, 1]), num_crops=2) < deepcluster_v2(s, a, jnp.array([1, 0]),
    ...                                                                             num_crops=2))
    True

  Nguyen et al., "Joint Self-Supervised Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
  AAAI 2023, https://arxiv.org/abs/2212.01893; DeepCluster-v2: Caron et al., NeurIPS 2020,
  https://arxiv.org/abs/2006.09882.
  """
  heads = (scores,) if hasattr(scores, "ndim") else tuple(scores)
  if not isinstance(num_crops, int) or num_crops < 1:
    raise ValueError(f"num_crops must be an int >= 1; got {num_crops!r}.")
  if not heads:
    raise ValueError("scores must hold at least one head; got an empty sequence.")
  for h, s in enumerate(heads):
    name = "scores" if len(heads) == 1 and hasattr(scores, "ndim") else f"scores[{h}]"
    _checks.check_array(name, s, ndim=2, shape_doc="[num_crops * b, K]")
    if s.shape[0] != heads[0].shape[0] or s.shape[0] % num_crops:
      raise ValueError(f"{name} must have shape [num_crops * b, K] with num_crops={num_crops} and "
                       f"{heads[0].shape[0]} rows as every head; got shape {tuple(s.shape)}.")
  b = heads[0].shape[0] // num_crops
  _checks.check_labels("indices", indices, b)
  _checks.check_array("assignments", assignments, ndim=2, floating=False, shape_doc=f"[{len(heads)}, N]")
  if assignments.shape[0] != len(heads) or not jnp.issubdtype(assignments.dtype, jnp.integer):
    raise ValueError(f"assignments must be an integer array of shape [{len(heads)}, N] (one row per head of "
                     f"scores); got shape {tuple(assignments.shape)} and dtype {assignments.dtype}.")
  _checks.check_positive("temperature", temperature)
  total = jnp.zeros((), jnp.float32)
  for h, s in enumerate(heads):
    logits = _ops.to_float32(s) / temperature
    y = jnp.tile(lax.stop_gradient(assignments[h][indices]).astype(jnp.int32), num_crops)  # crop-major, as the code
    valid = y >= 0
    picked = jnp.take_along_axis(logits, jnp.where(valid, y, 0)[:, None], axis=1)[:, 0]
    ce = jax.nn.logsumexp(logits, axis=1) - picked
    local_sum = jnp.sum(jnp.where(valid, ce, 0.0))
    count = _collectives.psum(jnp.sum(valid, dtype=jnp.int32), axis_name)
    total = total + _collectives.psum(local_sum, axis_name) / jnp.maximum(count, 1).astype(local_sum.dtype)
  return total / len(heads)
