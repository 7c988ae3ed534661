"""Online Deep Clustering (ODC): a classifier trained on pseudo-labels that a memory of features keeps up to date.

The state is an `ODCMemory` (sample features, their labels, the cluster centroids), replicated on every device.
One training step is: `loss = odc(logits, indices, memory.label_bank)`, then
`memory, aux = odc_update(memory, features, indices)`; every few hundred steps `odc_fix_small_clusters`.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


class ODCMemory(NamedTuple):
  """ODC's memories (a pytree; keep it replicated and checkpoint it with the parameters).

  Attributes:
    feature_bank: [N, d] one unit-norm feature per dataset sample (an EMA of its past features).
    label_bank: [N] int32 pseudo-label (cluster id in [0, C)) of every sample.
    centroids: [C, d] unit-norm cluster centroids (zero for a cluster that was empty when last computed).
  """
  feature_bank: jax.Array
  label_bank: jax.Array
  centroids: jax.Array


def _class_directions(bank: jax.Array, labels: jax.Array, num_classes: int):
  """Normalised class means (the normalised class sums) and class sizes, by segment_sum over the bank."""
  sums = jax.ops.segment_sum(bank, labels, num_segments=num_classes)
  counts = jax.ops.segment_sum(jnp.ones(labels.shape, jnp.int32), labels, num_segments=num_classes)
  return l2_normalize(sums), counts


def _check_memory(memory: ODCMemory) -> None:
  _checks.check_array("memory.feature_bank", memory.feature_bank, ndim=2, shape_doc="[N, d]")
  _checks.check_array("memory.centroids", memory.centroids, ndim=2, shape_doc="[C, d]")
  n, d = memory.feature_bank.shape
  _checks.check_labels("memory.label_bank", memory.label_bank, n)
  if memory.centroids.shape[1] != d:
    raise ValueError(f"memory.centroids must have shape [C, {d}] to match memory.feature_bank of shape "
                     f"{(n, d)}; got shape {tuple(memory.centroids.shape)}.")


def odc_init(features: jax.Array, labels: jax.Array, num_classes: int) -> ODCMemory:
  """Builds the ODC memory from the features of the whole dataset and their initial (k-means) labels.

  Features are L2-normalised; each centroid is the normalised mean of its class's normalised features. ODC
  obtains `labels` by k-means on the features of the randomly initialised network; that clustering is the
  caller's (e.g. scikit-learn). Every class must be non-empty (checked when `labels` is concrete), as in ODC.

  Args:
    features: [N, d] features of all N training samples.
    labels: [N] int initial cluster ids in [0, num_classes).
    num_classes: C, the number of clusters (ODC: 10000 on ImageNet).

  Returns:
    An `ODCMemory` with float32 banks and int32 labels.

  Example:
    >>> m = odc_init(jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), jnp.array([0, 1, 1]), 2)
    >>> np.asarray(m.centroids, float).round(3).tolist()
    [[1.0, 0.0], [0.383, 0.924]]

  Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
  https://arxiv.org/abs/2006.10645 (Sec. 3.2, memory initialisation).
  """
  _checks.check_array("features", features, ndim=2, shape_doc="[N, d]")
  _checks.check_labels("labels", labels, features.shape[0])
  if not isinstance(labels, jax.core.Tracer):
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    if len(counts) > num_classes or (counts[:num_classes] == 0).any():
      raise ValueError(f"labels must use every class in [0, {num_classes}) and no other; got class sizes "
                       f"{counts.tolist() if len(counts) <= 20 else '(too many to show)'}.")
  bank = l2_normalize(_ops.to_float32(features).astype(jnp.float32))
  labels = jnp.asarray(labels, jnp.int32)
  centroids, _ = _class_directions(bank, labels, num_classes)
  return ODCMemory(bank, labels, centroids)


def odc_class_weights(label_bank: jax.Array, num_classes: int, *, power: float = 0.5) -> jax.Array:
  r"""ODC's loss re-weighting: class weights proportional to :math:`n_c^{-\text{power}}` (cluster size n_c).

  Weights are scaled to mean 1 over the non-empty classes, so balanced clusters give weight 1 everywhere
  (mmselfsup's `ODCHook` scales them to sum 1, which multiplies the loss by the constant 1/C); empty classes get 0.

  Args:
    label_bank: [N] int labels of all samples.
    num_classes: C.
    power: the exponent (ODC: 0.5, inverse square root).

  Returns:
    [C] float32 class weights.

  Example:
    >>> np.asarray(odc_class_weights(jnp.array([0, 0, 0, 0, 1]), 3), float).round(3).tolist()
    [0.667, 1.333, 0.0]
  
  Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
  https://arxiv.org/abs/2006.10645.
  """
  counts = jnp.bincount(jnp.asarray(label_bank), length=num_classes).astype(jnp.float32)
  raw = jnp.where(counts > 0, jnp.maximum(counts, 1.0) ** -power, 0.0)
  return raw * (jnp.sum(counts > 0) / jnp.sum(raw))


def odc(logits: jax.Array, indices: jax.Array, label_bank: jax.Array, *, class_weights: jax.Array | None = None,
        reweight: bool = True, reweight_pow: float = 0.5, axis_name: str | None = None) -> jax.Array:
  r"""ODC's classification loss: cross-entropy of the head's logits against the memory's pseudo-labels.

  With :math:`y_i` = `label_bank[indices[i]]` and class weights :math:`w` (from `odc_class_weights` unless given):

  .. math::
      L = \frac{1}{B} \sum_{i=1}^{B} w_{y_i} \Big(\log \sum_c e^{\ell_{ic}} - \ell_{i y_i}\Big).

  Caller's duties: the label bank is state (an `ODCMemory` field) updated after the step by `odc_update`; the
  weights follow the current bank (mmselfsup recomputes them every iteration).

  Args:
    logits: [b, C] classifier-head outputs of this device's samples.
    indices: [b] int dataset indices of those samples (rows of the memory).
    label_bank: [N] int pseudo-labels of all samples (replicated).
    class_weights: optional [C] weights; if None they are `odc_class_weights(label_bank, C, power=reweight_pow)`
      when `reweight` (ODC's default), else all 1 (plain cross-entropy).
    reweight: whether to re-weight when `class_weights` is None.
    reweight_pow: the exponent of the inverse cluster size (ODC: 0.5).
    axis_name: None when `logits, indices` are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar loss averaged over the global batch (float32), the same on every device.

  Example:
    >>> logits = jnp.array([[4.0, 0.0], [0.0, 4.0]])
    >>> bool(odc(logits, jnp.array([0, 1]), jnp.array([0, 1])) < odc(logits, jnp.array([1, 0]), jnp.array([0, 1])))
    True

  Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
  https://arxiv.org/abs/2006.10645 (Sec. 3.2 and 3.3, loss re-weighting).
  """
  _checks.check_array("logits", logits, ndim=2, shape_doc="[b, C]")
  b, c = logits.shape
  _checks.check_labels("indices", indices, b)
  _checks.check_array("label_bank", label_bank, ndim=1, floating=False, shape_doc="[N]")
  if not jnp.issubdtype(label_bank.dtype, jnp.integer):
    raise ValueError(f"label_bank must be an integer array; got dtype {label_bank.dtype}.")
  if class_weights is not None and tuple(class_weights.shape) != (c,):
    raise ValueError(f"class_weights must have shape [{c}] (one per class of logits); got shape "
                     f"{tuple(class_weights.shape)}.")
  logits = _ops.to_float32(logits)
  labels = label_bank[indices]
  ce = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  if class_weights is None and reweight:
    class_weights = odc_class_weights(label_bank, c, power=reweight_pow)
  if class_weights is not None:
    ce = ce * lax.stop_gradient(jnp.asarray(class_weights, logits.dtype))[labels]
  return _collectives.global_mean(jnp.sum(ce), b, axis_name)


def odc_update(memory: ODCMemory, features: jax.Array, indices: jax.Array, *, momentum: float = 0.5,
               update_centroids: bool = True, axis_name: str | None = None) -> tuple[ODCMemory, dict]:
  r"""ODC's memory update after a step: EMA the batch's bank features, re-label them, refresh touched centroids.

  For every sample i of the GLOBAL batch (gathered from all devices), with :math:`\hat f_i = f_i / \|f_i\|`:

  .. math::
      \tilde f_i \leftarrow \frac{m \tilde f_i + (1 - m) \hat f_i}{\|m \tilde f_i + (1 - m) \hat f_i\|}, \qquad
      y_i \leftarrow \arg\max_c\, \mu_c^\top \tilde f_i ,

  with the centroids :math:`\mu_c` from before the step. Then, if `update_centroids`, the centroids of the
  clusters that gained or lost a sample are recomputed as the normalised mean of the bank features carrying
  that label (a segment_sum over the whole bank: O(N d), fine for N up to ~1e5; clusters left empty keep their
  centroid). mmselfsup instead recomputes all centroids every 10 iterations: call `odc_update_centroids` at that
  cadence (also needed for clusters whose members moved without changing label).

  Differences from mmselfsup: its momentum weighs the NEW feature (`(1-m) old + m new`); with ODC's m = 0.5 the
  two agree. Its centroids are raw means and the labels the argmax of dot products; here centroids are unit
  vectors, so the argmax is over cosine similarity. `indices` must be unique within the global batch (the
  scatter order of duplicates is unspecified). No gradient flows.

  Args:
    memory: the current `ODCMemory` (replicated).
    features: [b, d] this device's features (the neck outputs of the step; normalised here).
    indices: [b] int dataset indices of those samples.
    momentum: m in [0, 1], the weight of the old bank feature (ODC: 0.5).
    update_centroids: recompute the centroids of the clusters whose membership changed.
    axis_name: None when `features, indices` are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard; the update uses the gathered global batch, so the new
      memory is the same on every device.

  Returns:
    (new_memory, aux), aux = {"num_changed": int32 number of re-labelled samples, "change_ratio": float32}.

  Example:
    >>> m = odc_init(jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1]), 2)
    >>> m, aux = odc_update(m, jnp.array([[0.0, 1.0]]), jnp.array([0]), momentum=0.0)
    >>> m.label_bank.tolist(), int(aux["num_changed"])
    ([1, 1], 1)

  Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
  https://arxiv.org/abs/2006.10645 (Sec. 3.2, memory update; mmselfsup `ODCMemory.update_samples_memory`).
  """
  _check_memory(memory)
  _checks.check_array("features", features, ndim=2, shape_doc=f"[b, {memory.feature_bank.shape[1]}]")
  if features.shape[1] != memory.feature_bank.shape[1]:
    raise ValueError(f"features must have shape [b, {memory.feature_bank.shape[1]}] to match the feature bank; "
                     f"got shape {tuple(features.shape)}.")
  _checks.check_labels("indices", indices, features.shape[0])
  _checks.check_in_range("momentum", momentum, 0.0, 1.0)
  bank, label_bank, centroids = memory
  f = l2_normalize(_ops.to_float32(lax.stop_gradient(features)).astype(bank.dtype))
  f = _collectives.all_gather_replicated(f, axis_name)
  idx = _collectives.all_gather_replicated(indices, axis_name)
  new = l2_normalize(momentum * bank[idx] + (1.0 - momentum) * f)
  bank = bank.at[idx].set(new)
  new_labels = jnp.argmax(new @ centroids.T, axis=1).astype(label_bank.dtype)
  old_labels = label_bank[idx]
  changed = new_labels != old_labels
  label_bank = label_bank.at[idx].set(new_labels)
  if update_centroids:
    num_classes = centroids.shape[0]
    touched = jnp.zeros(num_classes, bool).at[old_labels].max(changed).at[new_labels].max(changed)
    fresh, counts = _class_directions(bank, label_bank, num_classes)
    centroids = jnp.where((touched & (counts > 0))[:, None], fresh.astype(centroids.dtype), centroids)
  aux = {"num_changed": jnp.sum(changed, dtype=jnp.int32), "change_ratio": jnp.mean(changed, dtype=jnp.float32)}
  return ODCMemory(bank, label_bank, centroids), aux


def odc_update_centroids(memory: ODCMemory) -> ODCMemory:
  """Recomputes every non-empty centroid as the normalised mean of its bank features (empty ones are kept).

  mmselfsup's ODC does this every 10 iterations (`centroids_update_interval`). Deterministic and collective-free:
  run it on the replicated memory on every device.

  Args:
    memory: the `ODCMemory` (feature_bank [N, d], label_bank [N] int, centroids [C, d]).

  Returns:
    The memory with centroid c replaced by the L2-normalised mean of the bank rows labelled c, for every c with
    at least one row; the banks and the empty clusters' centroids unchanged.

  Example:
    >>> m = ODCMemory(jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 0]), jnp.zeros((2, 2)))
    >>> np.asarray(odc_update_centroids(m).centroids, float).round(3).tolist()
    [[0.707, 0.707], [0.0, 0.0]]
  
  Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
  https://arxiv.org/abs/2006.10645.
  """
  _check_memory(memory)
  fresh, counts = _class_directions(memory.feature_bank, memory.label_bank, memory.centroids.shape[0])
  centroids = jnp.where((counts > 0)[:, None], fresh.astype(memory.centroids.dtype), memory.centroids)
  return memory._replace(centroids=centroids)


def _two_means(key: jax.Array, bank: jax.Array, member: jax.Array, iters: int) -> jax.Array:
  """Splits the `member` rows of `bank` in two by k-means (k-means++ seeds); True marks the second part.

  Falls back to a random halving when k-means leaves a part empty (identical features), as mmselfsup does.
  """
  k_first, k_second, k_half = jax.random.split(key, 3)
  first = jax.random.categorical(k_first, jnp.where(member, 0.0, -jnp.inf))
  d2 = jnp.where(member, jnp.sum(jnp.square(bank - bank[first]), axis=1), 0.0)
  second = jnp.where(jnp.any(d2 > 0),
                     jax.random.categorical(k_second, jnp.where(d2 > 0, jnp.log(jnp.where(d2 > 0, d2, 1.0)),
                                                                -jnp.inf)), first)

  def assign(centers):
    # Squared distances up to the per-row |x|^2, without an [N, 2, d] temporary.
    dist = jnp.sum(jnp.square(centers), axis=1)[None, :] - 2.0 * bank @ centers.T  # [N, 2]
    return (dist[:, 1] < dist[:, 0]) & member

  def lloyd(_, centers):
    part = assign(centers)
    sums = jnp.stack([jnp.sum(jnp.where((member & ~part)[:, None], bank, 0.0), axis=0),
                      jnp.sum(jnp.where(part[:, None], bank, 0.0), axis=0)])
    sizes = jnp.stack([jnp.sum(member & ~part), jnp.sum(part)]).astype(bank.dtype)[:, None]
    return jnp.where(sizes > 0, sums / jnp.maximum(sizes, 1.0), centers)

  centers = lax.fori_loop(0, iters, lloyd, jnp.stack([bank[first], bank[second]]))
  part = assign(centers)
  n_second, n_member = jnp.sum(part), jnp.sum(member)
  u = jnp.where(member, jax.random.uniform(k_half, member.shape), jnp.inf)
  rank = jnp.argsort(jnp.argsort(u))  # members first, in random order
  half = member & (rank >= n_member // 2)
  return jnp.where((n_second > 0) & (n_second < n_member), part, half)


def odc_fix_small_clusters(memory: ODCMemory, key: jax.Array, *, min_cluster: int = 20,
                           kmeans_iters: int = 20) -> tuple[ODCMemory, dict]:
  """ODC's treatment of small clusters: dissolve them, then refill each by splitting the largest cluster.

  1. Every sample of a cluster with fewer than `min_cluster` members is re-labelled to its most similar centroid
     among the clusters that are not small (if every cluster is small nothing changes).
  2. For each such now-empty cluster e in turn, the currently largest cluster is split in two by 2-means on its
     bank features (k-means++ seeds from `key`, `kmeans_iters` Lloyd steps; a random halving if 2-means leaves
     a part empty); its second part becomes cluster e, and the centroids of both are recomputed.
  The centroids of clusters that received samples in step 1 are left for `odc_update_centroids`, as in mmselfsup.
  mmselfsup calls this every `deal_with_small_clusters_interval` iterations (1 in its ImageNet config).
  Deterministic given `key`: run it on the replicated memory with the same key on every device. Its cost is
  O(#small * kmeans_iters * N * d); clusters that are not small cost one skipped branch each.

  Args:
    memory: the current `ODCMemory`.
    key: PRNG key for the 2-means seeds (the same on every device).
    min_cluster: clusters smaller than this are dissolved (ODC: 20).
    kmeans_iters: Lloyd iterations of each 2-means split (mmselfsup's scikit-learn KMeans: max_iter 20).

  Returns:
    (new_memory, aux), aux = {"num_small": int32 number of clusters that were below `min_cluster`}.

  Example:
    >>> m = odc_init(jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), jnp.array([0, 0, 0, 1]), 2)
    >>> m, aux = odc_fix_small_clusters(m, jax.random.key(0), min_cluster=2)
    >>> m.label_bank.tolist()[:2] != m.label_bank.tolist()[2:], int(aux["num_small"])
    (True, 1)

  Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
  https://arxiv.org/abs/2006.10645 (Sec. 3.3; mmselfsup `ODCMemory.deal_with_small_clusters`).
  """
  _check_memory(memory)
  _checks.check_positive("min_cluster", min_cluster)
  bank, labels, centroids = memory
  num_classes = centroids.shape[0]
  small = jnp.bincount(labels, length=num_classes) < min_cluster
  any_big = jnp.any(~small)
  target = jnp.argmax(jnp.where(small[None, :], -jnp.inf, bank @ centroids.T), axis=1).astype(labels.dtype)
  labels = jnp.where(small[labels] & any_big, target, labels)
  classes = jnp.arange(num_classes)

  def refill(e, carry):
    labels, centroids = carry
    counts = jnp.bincount(labels, length=num_classes)
    largest = jnp.argmax(counts)

    def split(carry):
      labels, centroids = carry
      part = _two_means(jax.random.fold_in(key, e), bank, labels == largest, kmeans_iters)
      labels = jnp.where(part, e, labels).astype(labels.dtype)
      fresh, sizes = _class_directions(bank, labels, num_classes)
      redo = ((classes == largest) | (classes == e)) & (sizes > 0)
      return labels, jnp.where(redo[:, None], fresh.astype(centroids.dtype), centroids)

    return lax.cond(small[e] & any_big & (counts[largest] >= 2), split, lambda c: c, (labels, centroids))

  labels, centroids = lax.fori_loop(0, num_classes, refill, (labels, centroids))
  return ODCMemory(bank, labels, centroids), {"num_small": jnp.sum(small, dtype=jnp.int32)}
