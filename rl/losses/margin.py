"""Margin-based classification over very many class prototypes (Unicom, MLCD), with model-parallel classes.

The class matrix is SHARDED over devices like Partial FC: with `axis_name`, `prototypes` is this device's slice
[C_local, d] of a [C, d] matrix (device k holds classes k*C_local .. (k+1)*C_local - 1), while `features` and the
labels are this device's shard of the batch. Features and labels are gathered, so every device scores the WHOLE
global batch against ITS classes ([B, C_local] logits); the softmax normaliser is the `psum` of per-device exp
sums around a `pmax` shift, and the positive logit a `psum` to which only the owning device contributes. The full
class matrix is never gathered.

Why the gradients are exact (1 device == 8 devices): the loss is built from `psum`s of per-device partial sums, so
it is the same (device-invariant) value everywhere. Each device's logits depend on its own class slice only, so
the gradient with respect to the local prototypes is the local slice of the single-device gradient; the gradient
with respect to the gathered features arrives through the transpose of `all_gather` (`psum_scatter`), which adds
up the contributions of every device's class slice -- exactly the sum over classes of the single-device gradient.
"""
from __future__ import annotations

import math

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def arcface_logit(cos: jax.Array, margin: float) -> jax.Array:
  r"""ArcFace's additive angular margin cos(theta + m) on a cosine, with insightface's threshold trick.

  .. math::
      \phi(\cos\theta) = \begin{cases} \cos(\theta + m) & \text{if } \cos\theta > \cos(\pi - m)
      \ (\text{i.e. } \theta + m < \pi) \\ \cos\theta - m \sin(\pi - m) & \text{otherwise} \end{cases}

  The second branch ("easy_margin = False" in insightface) keeps the target logit monotonically decreasing in
  theta past pi - m, where cos(theta + m) would turn back up. cos(theta + m) is computed as
  cos(theta) cos(m) - sin(theta) sin(m) with sin(theta) = sqrt(max(1 - cos^2, 1e-12)), which keeps the gradient
  finite at cos = +-1 (where the exact derivative of cos(arccos(c) + m) is infinite).

  Args:
    cos: cosine similarities, any shape (clipped to [-1, 1]).
    margin: the additive angular margin m in radians (ArcFace and Unicom use 0.5 and 0.3).

  Returns:
    phi(cos), the same shape as `cos`.

  Example:
    >>> from rl.losses.margin import arcface_logit
    >>> round(float(arcface_logit(jnp.array(1.0), 0.5)), 4)  # cos(0 + 0.5)
    0.8776

  Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019,
  https://arxiv.org/abs/1801.07698 (eq. 3; the threshold follows insightface's implementation).
  """
  cos = jnp.clip(cos, -1.0, 1.0)
  sin = jnp.sqrt(jnp.maximum(1.0 - cos * cos, 1e-12))
  shifted = cos * math.cos(margin) - sin * math.sin(margin)
  threshold = math.cos(math.pi - margin)
  return jnp.where(cos > threshold, shifted, cos - math.sin(math.pi - margin) * margin)


def _class_ids(c_local: int, axis_name: str | None) -> jax.Array:
  """Global ids of this device's class slice."""
  return _collectives.axis_index(axis_name) * c_local + jnp.arange(c_local)


def _class_uniforms(class_key: jax.Array, class_ids: jax.Array) -> jax.Array:
  """One uniform per class from fold_in(class_key, global id): the same draw on any number of devices."""
  # float32 draws so that the kept set does not depend on jax_enable_x64.
  return jax.vmap(lambda c: jax.random.uniform(jax.random.fold_in(class_key, c), dtype=jnp.float32))(class_ids)


def _kept_classes(class_key: jax.Array, cols: jax.Array, is_pos: jax.Array, ratio) -> jax.Array:
  """[C_local] mask: the batch's positive classes, plus each other class with probability `ratio`."""
  if isinstance(ratio, (int, float)) and ratio >= 1.0:
    return jnp.ones(cols.shape, bool)
  return jnp.any(is_pos, axis=0) | (_class_uniforms(class_key, cols) < ratio)


def _feature_subset(feature_key: jax.Array, d: int, feature_ratio: float) -> jax.Array | None:
  """Sorted indices of round(d * feature_ratio) random dimensions (None: keep all)."""
  n = max(1, int(round(d * feature_ratio)))
  if n >= d:
    return None
  return jnp.sort(jax.random.permutation(feature_key, d)[:n])


def _row_logsumexp(z: jax.Array, mask: jax.Array, axis_name: str | None, *, with_one: bool = False) -> jax.Array:
  """Per row of z [B, C_local], log(sum over ALL devices' masked entries of exp(z)) (+1 inside when `with_one`).

  The shift is a stop-gradient `pmax` (a constant that cancels), so `pmax` is never differentiated. Masked
  entries become -inf BEFORE exp so that neither the value nor the gradient sees exp of a large unused logit.
  """
  masked = jnp.where(mask, z, -jnp.inf)
  shift = _collectives.pmax(lax.stop_gradient(jnp.max(masked, axis=1)), axis_name)
  if with_one:
    shift = jnp.maximum(shift, 0.0)  # the implicit logit 0 of the "1 +"
  shift = jnp.where(jnp.isfinite(shift), shift, 0.0)  # rows with nothing kept anywhere
  total = _collectives.psum(jnp.sum(jnp.exp(masked - shift[:, None]), axis=1), axis_name)
  if with_one:
    total = total + jnp.exp(-shift)
  return shift + jnp.log(total)


def _prepare(features, prototypes, key, feature_ratio, axis_name):
  """Feature-subset, normalise, gather: (gathered unit features [B, d'], local unit prototypes [C_local, d'])."""
  class_key, feature_key = jax.random.split(key)
  idx = _feature_subset(feature_key, features.shape[1], feature_ratio)
  x, w = _ops.to_float32(features, prototypes)
  if idx is not None:
    x, w = x[:, idx], w[:, idx]
  x_all = _collectives.all_gather(l2_normalize(x), axis_name)
  return class_key, x_all, l2_normalize(w)


def _check_common(features, prototypes, feature_ratio, scale, name_ratio, ratio):
  _checks.check_array("features", features, ndim=2, shape_doc="[b, d]")
  _checks.check_array("prototypes", prototypes, ndim=2, shape_doc="[C_local, d]")
  if prototypes.shape[1] != features.shape[1]:
    raise ValueError(f"prototypes must have shape [C_local, {features.shape[1]}] (the embedding size of "
                     f"features); got shape {tuple(prototypes.shape)}.")
  _checks.check_in_range(name_ratio, ratio, 0.0, 1.0, low_inclusive=False)
  _checks.check_in_range("feature_ratio", feature_ratio, 0.0, 1.0, low_inclusive=False)
  _checks.check_positive("scale", scale)


def partial_margin_softmax(features: jax.Array, labels: jax.Array, prototypes: jax.Array, *, key: jax.Array,
                           class_ratio: float, feature_ratio: float, margin: float = 0.3, scale: float = 64.0,
                           axis_name: str | None = None) -> jax.Array:
  r"""Unicom's ArcFace softmax over a random subset of class prototypes and of feature dimensions.

  A random subset D of round(d * feature_ratio) dimensions (one draw from `key`, the same for features and
  prototypes) is kept; features x_i and prototypes w_c are restricted to D and L2-normalised, giving
  cos_ic = x_i^T w_c. A random subset S of classes is kept: class c is in S if u_c < class_ratio, with
  u_c = uniform(fold_in(k_class, c)) (a float32 draw), or if c is the label of any example of the GLOBAL
  batch. With the ArcFace margin phi (see `arcface_logit`) on the positive:

  .. math::
      \ell_i = -s\,\phi(\cos_{i y_i}) + \log\Big(e^{s\,\phi(\cos_{i y_i})}
               + \sum_{c \in S,\, c \ne y_i} e^{s \cos_{ic}}\Big), \qquad L = \frac{1}{B}\sum_{i=1}^{B} \ell_i .

  Differences from the authors' code (deepglint/unicom `partial_fc.py`), all documented choices: classes are
  kept by an independent Bernoulli(class_ratio) draw per class (Partial FC keeps a fixed count
  class_ratio * C_local per device), so the same classes are kept on 1 and on 8 devices; the margin is
  differentiated (their code adds it under `no_grad`, a straight-through margin) and uses insightface's
  threshold for theta + m > pi (their Unicom code does not). `key` is split in two: one half draws D, the other
  is k_class above.

  Args:
    features: [b, d] embeddings (normalised here after the dimension subset).
    labels: [b] integer class ids in [0, C), C = C_local * number of devices.
    prototypes: [C_local, d] this device's slice of the [C, d] class matrix (the whole matrix without
      `axis_name`); a trained parameter kept by the caller, sharded on the class axis.
    key: PRNG key of this step, the SAME on every device.
    class_ratio: probability in (0, 1] that a non-positive class enters the softmax (Partial FC's sample rate;
      1.0 keeps every class).
    feature_ratio: fraction in (0, 1] of the d dimensions kept (1.0 keeps all).
    margin: ArcFace additive angular margin m (Unicom: 0.3).
    scale: logit scale s > 0 (Unicom: 64).
    axis_name: None when the arrays are the whole batch and class matrix; inside `jax.shard_map` / `jax.pmap`,
      the mapped axis over which both the batch and the classes are sharded.

  Returns:
    The scalar mean loss over the B examples of the global batch (float32 for float32/bfloat16 input), the same
    on every device. Memory is O(B * C_local): C = 10^6 classes fit on one CPU at small B.

  Example:
    >>> from rl.losses.margin import partial_margin_softmax
    >>> x = jnp.eye(4); w = jnp.eye(4); y = jnp.arange(4)
    >>> k = jax.random.key(0)
    >>> good = partial_margin_softmax(x, y, w, key=k, class_ratio=1.0, feature_ratio=1.0)
    >>> bad = partial_margin_softmax(x, y[::-1], w, key=k, class_ratio=1.0, feature_ratio=1.0)
    >>> bool(good < bad)
    True

  An et al., "Unicom: Universal and Compact Representation Learning for Image Retrieval", ICLR 2023,
  https://arxiv.org/abs/2304.05884; class sharding and sampling: An et al., "Killing Two Birds with One Stone:
  Efficient and Robust Training of Face Recognition CNNs by Partial FC", CVPR 2022,
  https://arxiv.org/abs/2203.15565; margin: Deng et al., ArcFace, CVPR 2019, https://arxiv.org/abs/1801.07698.
  """
  _check_common(features, prototypes, feature_ratio, scale, "class_ratio", class_ratio)
  _checks.check_labels("labels", labels, features.shape[0])
  class_key, x_all, w = _prepare(features, prototypes, key, feature_ratio, axis_name)
  labels_all = _collectives.all_gather(labels, axis_name)  # [B]
  cols = _class_ids(w.shape[0], axis_name)  # [C_local] global ids
  is_pos = labels_all[:, None] == cols[None, :]  # [B, C_local]; one True per row, on one device only
  cos = x_all @ w.T
  logits = scale * jnp.where(is_pos, arcface_logit(cos, margin), cos)
  keep = _kept_classes(class_key, cols, is_pos, class_ratio)
  lse = _row_logsumexp(logits, jnp.broadcast_to(keep, logits.shape), axis_name)
  pos = _collectives.psum(jnp.sum(jnp.where(is_pos, logits, 0.0), axis=1), axis_name)
  return jnp.mean(lse - pos)


def multilabel_cluster_loss(features: jax.Array, positive_ids: jax.Array, prototypes: jax.Array, *,
                            key: jax.Array, margin: float = 0.3, scale: float = 64.0, negative_ratio: float = 0.1,
                            feature_ratio: float = 1.0, axis_name: str | None = None) -> jax.Array:
  r"""MLCD's multi-label cluster discrimination loss: positive and negative classes in separate terms.

  Each example i has a set P_i of positive clusters (the top-k nearest centroids, `assign_topk(...)[1]`; -1
  entries are padding). Its negatives N_i are the sampled classes that are not in P_i: class c is sampled if
  u_c < negative_ratio with u_c = uniform(fold_in(k_class, c)) (a float32 draw), or if c is a positive of any
  example of the GLOBAL batch (as Partial FC, on which MLCD is built, always keeps the batch's positive classes). With
  cos_ic the cosine between the normalised feature and prototype and phi the ArcFace margin of `arcface_logit`:

  .. math::
      \ell_i = \log\Big(1 + \sum_{c \in N_i} e^{s \cos_{ic}}\Big)
             + \log\Big(1 + \sum_{c \in P_i} e^{-s\,\phi(\cos_{ic})}\Big),
      \qquad L = \frac{1}{B} \sum_{i=1}^{B} \ell_i .

  Unlike a softmax over all positives, each positive is compared with the threshold 0 rather than with the other
  positives, so several positives do not compete (the paper's "separates losses from positive classes and
  negative classes"). I could not read the paper's method section here: the form above (the multi-label
  extension of softmax cross-entropy with a threshold at 0, scale s and the additive angular margin on the
  positive logits, Unicom's s = 64, m = 0.3 and Partial FC's 0.1 sampling) is the most standard reading of the
  abstract and of the authors' Partial FC code, not a transcription of the paper's equation.

  Args:
    features: [b, d] embeddings (normalised here).
    positive_ids: [b, k] integer positive cluster ids in [0, C), -1 for padding; duplicates count once.
    prototypes: [C_local, d] this device's slice of the [C, d] class matrix (trained, kept by the caller).
    key: PRNG key of this step, the SAME on every device.
    margin: additive angular margin m on the positive logits.
    scale: logit scale s > 0.
    negative_ratio: probability in (0, 1] that a class not positive in the batch is used as a negative.
    feature_ratio: fraction in (0, 1] of random feature dimensions kept, as in `partial_margin_softmax`
      (1.0: all, the MLCD setting).
    axis_name: None, or the mapped axis over which batch and classes are sharded (see the module docstring).

  Returns:
    The scalar mean loss over the B examples of the global batch (float32), the same on every device.

  Example:
    >>> from rl.losses.margin import multilabel_cluster_loss
    >>> x = jnp.eye(4); w = jnp.eye(4); k = jax.random.key(0)
    >>> pos = jnp.array([[0, -1], [1, -1], [2, -1], [3, -1]])
    >>> good = multilabel_cluster_loss(x, pos, w, key=k, negative_ratio=1.0)
    >>> bad = multilabel_cluster_loss(x, pos[::-1], w, key=k, negative_ratio=1.0)
    >>> bool(good < bad)
    True

  An et al., "Multi-label Cluster Discrimination for Visual Representation Learning", ECCV 2024,
  https://arxiv.org/abs/2407.17331 (code: github.com/deepglint/unicom).
  """
  _check_common(features, prototypes, feature_ratio, scale, "negative_ratio", negative_ratio)
  if not hasattr(positive_ids, "shape") or positive_ids.ndim != 2 or positive_ids.shape[0] != features.shape[0]:
    got = tuple(positive_ids.shape) if hasattr(positive_ids, "shape") else type(positive_ids).__name__
    raise ValueError(f"positive_ids must have shape [{features.shape[0]}, k]; got {got}.")
  if not jnp.issubdtype(positive_ids.dtype, jnp.integer):
    raise ValueError(f"positive_ids must be an integer array; got dtype {positive_ids.dtype}.")
  class_key, x_all, w = _prepare(features, prototypes, key, feature_ratio, axis_name)
  ids_all = _collectives.all_gather(positive_ids, axis_name)  # [B, k]
  cols = _class_ids(w.shape[0], axis_name)
  # OR over the k positives one at a time: never materialises a [B, k, C_local] tensor.
  is_pos = jnp.zeros((ids_all.shape[0], cols.shape[0]), bool)
  for j in range(ids_all.shape[1]):
    is_pos = is_pos | (ids_all[:, j:j + 1] == cols[None, :])
  cos = x_all @ w.T
  keep = _kept_classes(class_key, cols, is_pos, negative_ratio)
  neg = _row_logsumexp(scale * cos, keep[None, :] & ~is_pos, axis_name, with_one=True)
  pos = _row_logsumexp(-scale * arcface_logit(cos, margin), is_pos, axis_name, with_one=True)
  return jnp.mean(neg + pos)
