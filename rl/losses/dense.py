"""Dense (pixel- and slot-level) objectives: PixContrast / PixPro and SlotCon.

PixPro's losses compare the feature maps of two crops of one image pixel by pixel; which pixels correspond is
decided geometrically, from where each feature-map pixel falls in the ORIGINAL image (`feature_coordinates`,
`pixel_positive_mask`). SlotCon groups pixels into slots with learnable prototypes (`slot_assignments`,
`slot_pooling`) and trains with a per-pixel cross-view assignment loss (`slotcon_group_loss`) and a slot-level
InfoNCE (`slotcon_slot_loss`). The Pixel Propagation Module of PixPro is a Flax module in `rl.models.dense`.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def _check_maps(**maps: jax.Array) -> None:
  """[b, h, w, d] floating maps sharing b and d (h, w may differ between views)."""
  names = list(maps)
  for name in names:
    _checks.check_array(name, maps[name], ndim=4, shape_doc="[b, h, w, d]")
  first = maps[names[0]].shape
  for other in names[1:]:
    s = maps[other].shape
    if s[0] != first[0] or s[3] != first[3]:
      raise ValueError(f"{names[0]} and {other} must share the batch size and feature size ([b, h, w, d]); "
                       f"got {tuple(first)} and {tuple(s)}.")


def _check_mask(mask, f1: jax.Array, f2: jax.Array) -> None:
  expected = (f1.shape[0], f1.shape[1] * f1.shape[2], f2.shape[1] * f2.shape[2])
  if not hasattr(mask, "shape") or tuple(mask.shape) != expected:
    got = tuple(mask.shape) if hasattr(mask, "shape") else type(mask).__name__
    raise ValueError(f"mask must have shape [b, h1 * w1, h2 * w2] = {expected}; got {got}.")


def _flat_unit(x: jax.Array) -> jax.Array:
  """[b, h, w, d] -> L2-normalised [b, h * w, d] in float32 (float64 stays float64)."""
  b, h, w, d = x.shape
  return l2_normalize(_ops.to_float32(x).reshape(b, h * w, d))


def feature_coordinates(boxes: jax.Array, size: Sequence[int]) -> jax.Array:
  r"""Where the centre of each feature-map pixel of a crop lies in the original image.

  A crop box [y0, x0, y1, x1] (original-image coordinates) resized to the network input gives an h x w feature
  map whose bin (i, j) covers 1/h of the box height and 1/w of its width; its centre is

  .. math::
      (y, x)_{ij} = \big(y_0 + (i + \tfrac12)\tfrac{y_1 - y_0}{h},\; x_0 + (j + \tfrac12)\tfrac{x_1 - x_0}{w}\big).

  A horizontally flipped crop is passed with x0 > x1 (and a vertically flipped one with y0 > y1), as in the
  PixPro code: the centres then run right to left, matching the flipped feature map.

  Args:
    boxes: [b, 4] crop boxes [y0, x0, y1, x1] in the original image (any unit: pixels or fractions).
    size: (h, w) of the feature map.

  Returns:
    [b, h, w, 2] (y, x) centre coordinates (float32; float64 stays float64). No gradient is meant to flow.

  Example:
    >>> c = feature_coordinates(jnp.array([[0.0, 0.0, 4.0, 2.0]]), (2, 2))
    >>> c[0, :, :, 0].tolist(), c[0, :, :, 1].tolist()
    ([[1.0, 1.0], [3.0, 3.0]], [[0.5, 1.5], [0.5, 1.5]])

  Xie et al., "Propagate Yourself: Exploring Pixel-Level Consistency for Unsupervised Visual Representation
  Learning" (PixPro), CVPR 2021, https://arxiv.org/abs/2011.10043 (section 3.1).
  """
  _checks.check_array("boxes", boxes, ndim=2, shape_doc="[b, 4]")
  if boxes.shape[1] != 4:
    raise ValueError(f"boxes must have shape [b, 4] ([y0, x0, y1, x1]); got shape {tuple(boxes.shape)}.")
  if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
    raise ValueError(f"size must be (h, w), two positive ints; got {size}.")
  h, w = size
  boxes = _ops.to_float32(boxes)
  y0, x0, y1, x1 = (boxes[:, k, None] for k in range(4))
  ys = y0 + (jnp.arange(h, dtype=boxes.dtype) + 0.5) * (y1 - y0) / h  # [b, h]
  xs = x0 + (jnp.arange(w, dtype=boxes.dtype) + 0.5) * (x1 - x0) / w  # [b, w]
  return jnp.stack(jnp.broadcast_arrays(ys[:, :, None], xs[:, None, :]), axis=-1)


def _bin_diagonal(coords: jax.Array) -> jax.Array:
  """Diagonal of one feature bin per image, from the spacing of neighbouring pixel centres."""
  h, w = coords.shape[1:3]
  bin_h = (coords[:, -1, 0, 0] - coords[:, 0, 0, 0]) / (h - 1)
  bin_w = (coords[:, 0, -1, 1] - coords[:, 0, 0, 1]) / (w - 1)
  return jnp.sqrt(bin_h ** 2 + bin_w ** 2)


def pixel_positive_mask(coords1: jax.Array, coords2: jax.Array, *, threshold: float = 0.7) -> jax.Array:
  r"""PixPro's positive pixel pairs: pixels of two crops whose centres are close in the original image.

  With c_i the centre of pixel i of view 1 and c'_j of pixel j of view 2 (from `feature_coordinates`), and
  the bin diagonals d_1, d_2 of the two feature maps (each view's bin is its crop size over the map size):

  .. math::
      A(i, j) = \big[\, \lVert c_i - c'_j \rVert_2 \,/\, \max(d_1, d_2) < T \,\big].

  The paper normalises the distance "to the diagonal length of a feature map bin"; with two views of different
  scale the official code divides by the larger of the two diagonals, as here. The comparison is strict as in
  the official code (the paper writes <=; they differ only at distance exactly T). Each view's bin size is
  recovered from the spacing of its grid of centres, so both maps need h, w >= 2.

  Args:
    coords1: [b, h1, w1, 2] pixel centres of view 1 in the original image.
    coords2: [b, h2, w2, 2] pixel centres of view 2.
    threshold: T > 0 (PixPro: 0.7).

  Returns:
    [b, h1 * w1, h2 * w2] boolean mask (row-major pixels), positive pairs True; it carries no gradient.

  Example:
    >>> c = feature_coordinates(jnp.array([[0.0, 0.0, 2.0, 2.0]]), (2, 2))
    >>> pixel_positive_mask(c, c)[0].astype(int).tolist()
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]

  Xie et al., "Propagate Yourself: Exploring Pixel-Level Consistency for Unsupervised Visual Representation
  Learning" (PixPro), CVPR 2021, https://arxiv.org/abs/2011.10043 (eq. 1; T = 0.7).
  """
  for name, c in (("coords1", coords1), ("coords2", coords2)):
    _checks.check_array(name, c, ndim=4, shape_doc="[b, h, w, 2]")
    if c.shape[3] != 2 or c.shape[1] < 2 or c.shape[2] < 2:
      raise ValueError(f"{name} must have shape [b, h, w, 2] with h, w >= 2 (see feature_coordinates); "
                       f"got shape {tuple(c.shape)}.")
  if coords1.shape[0] != coords2.shape[0]:
    raise ValueError(f"coords1 and coords2 must have the same batch size; got shapes {tuple(coords1.shape)} "
                     f"and {tuple(coords2.shape)}.")
  _checks.check_positive("threshold", threshold)
  c1, c2 = jax.lax.stop_gradient(_ops.to_float32(coords1, coords2))
  b = c1.shape[0]
  diag = jnp.maximum(_bin_diagonal(c1), _bin_diagonal(c2))  # [b]
  p1, p2 = c1.reshape(b, -1, 2), c2.reshape(b, -1, 2)
  dist = jnp.sqrt(jnp.sum(jnp.square(p1[:, :, None, :] - p2[:, None, :, :]), axis=-1))
  return dist / diag[:, None, None] < threshold


def pixcontrast(f1: jax.Array, f2: jax.Array, mask: jax.Array, *, temperature: float = 0.3,
                axis_name: str | None = None) -> jax.Array:
  r"""PixContrast: each pixel of view 1 must pick its positive pixels of view 2 out of all pixels of view 2.

  With u_i the normalised pixel i of view 1 (regular encoder) and u'_j those of view 2 (momentum encoder),
  Omega_p^i = {j : A(i, j)} the positives of `pixel_positive_mask` and Omega_n^i the other pixels of view 2:

  .. math::
      \ell_i = -\log \frac{\sum_{j \in \Omega_p^i} e^{u_i^\top u'_j / \tau}}
               {\sum_{j \in \Omega_p^i} e^{u_i^\top u'_j / \tau} + \sum_{k \in \Omega_n^i} e^{u_i^\top u'_k/\tau}},
      \qquad L = \frac{1}{B} \sum_{n=1}^{B} \frac{1}{|I_n|} \sum_{i \in I_n} \ell_i ,

  where I_n is the set of view-1 pixels of image n with at least one positive (the pixels in the intersection of
  the two crops). An image whose crops do not overlap contributes 0 and still counts in the 1/B, as the
  official PixPro regression loss does. Negatives come from the same image's second view only (paper, eq. 2).

  Caller's duties: `f2` comes from the momentum (EMA) encoder and carries no gradient (apply
  `jax.lax.stop_gradient`; this function differentiates through every input); the symmetric loss is
  `pixcontrast(f1, f2', A) + pixcontrast(f2, f1', A^T)` with A^T = `mask.transpose(0, 2, 1)`.

  Args:
    f1: [b, h1, w1, d] pixel features of view 1 (normalised here).
    f2: [b, h2, w2, d] pixel features of view 2 (the target; normalised here).
    mask: [b, h1 * w1, h2 * w2] boolean positive pairs (`pixel_positive_mask`).
    temperature: tau > 0 (PixPro: 0.3).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's images (the mean runs over the global batch).

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> f = jnp.eye(4).reshape(1, 2, 2, 4)
    >>> c = feature_coordinates(jnp.array([[0.0, 0.0, 2.0, 2.0]]), (2, 2))
    >>> a = pixel_positive_mask(c, c)
    >>> bool(pixcontrast(f, f, a) < pixcontrast(f, f[:, ::-1], a))
    True

  Xie et al., "Propagate Yourself: Exploring Pixel-Level Consistency for Unsupervised Visual Representation
  Learning" (PixPro), CVPR 2021, https://arxiv.org/abs/2011.10043 (eq. 2; tau = 0.3).
  """
  _check_maps(f1=f1, f2=f2)
  _check_mask(mask, f1, f2)
  _checks.check_positive("temperature", temperature)
  b = f1.shape[0]
  logits = jnp.einsum("bid,bjd->bij", _flat_unit(f1), _flat_unit(f2)) / temperature
  mask = mask.astype(bool)
  valid = jnp.any(mask, axis=2)  # [b, n1]
  # Rows with no positive get a dummy all-True mask so that every log-sum-exp (and its gradient) stays finite;
  # those rows are then dropped by `valid`.
  pos_mask = mask | ~valid[:, :, None]
  per_pixel = jax.nn.logsumexp(logits, axis=2) - jax.nn.logsumexp(jnp.where(pos_mask, logits, -jnp.inf), axis=2)
  count = jnp.sum(valid, axis=1)
  per_image = jnp.sum(jnp.where(valid, per_pixel, 0.0), axis=1) / jnp.maximum(count, 1)
  return _collectives.global_mean(jnp.sum(per_image), b, axis_name)


def pixpro(y1: jax.Array, x2_target: jax.Array, mask: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""PixPro's pixel-to-propagation consistency: propagated pixels must match their momentum-encoder positives.

  With y_i the propagated features of view 1 (regular encoder + Pixel Propagation Module,
  `rl.models.dense.PixelPropagation`) and x'_j the momentum-encoder features of view 2:

  .. math::
      L = \frac{1}{B} \sum_{n=1}^{B} \frac{-1}{|A_n|} \sum_{(i, j) : A_n(i, j)} \cos(y_i, x'_j),

  averaged over the positive pairs of each image (an image without positives contributes 0 and still counts in
  the 1/B), then over the images of the global batch. The paper's symmetric loss is the caller's:
  `pixpro(y1, x2', A) + pixpro(y2, x1', A^T)` with A^T = `mask.transpose(0, 2, 1)`; the official code
  multiplies each term by 2 (its `regression_loss` returns -2 cos, i.e. |a - b|^2 - 2 for unit vectors).

  Caller's duties: `x2_target` comes from the momentum (EMA) encoder without the propagation module and must
  carry no gradient (apply `jax.lax.stop_gradient`; this function differentiates through every input); the
  EMA update of the momentum encoder is the caller's.

  Args:
    y1: [b, h1, w1, d] propagated pixel features of view 1 (normalised here).
    x2_target: [b, h2, w2, d] momentum-encoder pixel features of view 2 (normalised here).
    mask: [b, h1 * w1, h2 * w2] boolean positive pairs (`pixel_positive_mask`).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's images (the mean runs over the global batch).

  Returns:
    The scalar loss in [-1, 1] (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> f = jnp.eye(4).reshape(1, 2, 2, 4)
    >>> c = feature_coordinates(jnp.array([[0.0, 0.0, 2.0, 2.0]]), (2, 2))
    >>> float(pixpro(f, f, pixel_positive_mask(c, c)))
    -1.0

  Xie et al., "Propagate Yourself: Exploring Pixel-Level Consistency for Unsupervised Visual Representation
  Learning" (PixPro), CVPR 2021, https://arxiv.org/abs/2011.10043 (eq. 5).
  """
  _check_maps(y1=y1, x2_target=x2_target)
  _check_mask(mask, y1, x2_target)
  b = y1.shape[0]
  cos = jnp.einsum("bid,bjd->bij", _flat_unit(y1), _flat_unit(x2_target))
  mask = mask.astype(cos.dtype)
  count = jnp.sum(mask, axis=(1, 2))
  per_image = -jnp.sum(cos * mask, axis=(1, 2)) / jnp.maximum(count, 1.0)
  return _collectives.global_mean(jnp.sum(per_image), b, axis_name)


def slot_assignments(features: jax.Array, prototypes: jax.Array, *, temperature: float = 0.07,
                     center: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  r"""SlotCon's soft assignment of every pixel to K learnable prototypes.

  With pixel features x_p and prototypes s_k, both L2-normalised, the scores are their cosines and the
  assignment is a softmax over the prototypes (a DINO-style centred and sharpened teacher when `center` is given):

  .. math::
      \text{score}_{pk} = \frac{x_p^\top s_k}{\lVert x_p\rVert\,\lVert s_k\rVert}, \qquad
      a_{pk} = \operatorname{softmax}_k\big((\text{score}_{pk} - c_k) / \tau\big).

  The scores are what `slotcon_group_loss` takes (student and teacher apply their own temperatures there); the
  assignments feed `slot_pooling`. In the official code both the student and the teacher grouping use the
  teacher temperature (0.07) and no centre for pooling; the teacher's prototypes are an EMA of the student's
  (the caller's).

  Args:
    features: [b, h, w, d] projected pixel features.
    prototypes: [K, d] prototype embeddings (normalised here).
    temperature: tau > 0 of the assignment softmax (SlotCon: 0.07).
    center: optional [K] centre subtracted from the scores before the softmax.

  Returns:
    (scores, assignments), both [b, h, w, K] (float32 for float32/bfloat16 input); assignments sum to 1 over K.

  Example:
    >>> x = jnp.array([[[[1.0, 0.0], [0.0, 2.0]]]])  # one image, 1 x 2 pixels
    >>> scores, a = slot_assignments(x, jnp.eye(2))
    >>> scores[0, 0].tolist(), a[0, 0].argmax(-1).tolist()
    ([[1.0, 0.0], [0.0, 1.0]], [0, 1])

  Wen et al., "Self-Supervised Visual Representation Learning with Semantic Grouping" (SlotCon),
  NeurIPS 2022, https://arxiv.org/abs/2205.15288 (sec. 3.1; official `SemanticGrouping`).
  """
  _checks.check_array("features", features, ndim=4, shape_doc="[b, h, w, d]")
  d = features.shape[3]
  _checks.check_array("prototypes", prototypes, ndim=2, shape_doc=f"[K, {d}]")
  if prototypes.shape[1] != d:
    raise ValueError(f"prototypes must have shape [K, {d}] (d of features); got shape {tuple(prototypes.shape)}.")
  k = prototypes.shape[0]
  if center is not None and (not hasattr(center, "shape") or tuple(center.shape) != (k,)):
    got = tuple(center.shape) if hasattr(center, "shape") else type(center).__name__
    raise ValueError(f"center must have shape [K] = ({k},); got {got}.")
  _checks.check_positive("temperature", temperature)
  scores = jnp.einsum("bhwd,kd->bhwk", l2_normalize(_ops.to_float32(features)),
                      l2_normalize(_ops.to_float32(prototypes)))
  logits = scores if center is None else scores - _ops.to_float32(center)
  return scores, jax.nn.softmax(logits / temperature, axis=-1)


def slot_pooling(features: jax.Array, assignments: jax.Array, *, eps: float = 1e-6) -> jax.Array:
  r"""SlotCon's slots: each prototype's attention-weighted average of an image's pixel features.

  .. math::
      z_k = \sum_p \frac{a_{pk} + \epsilon}{\sum_{p'} (a_{p'k} + \epsilon)}\, x_p ,

  over the h * w pixels p of one image; the epsilon (1e-6 in the official code) keeps a slot that no pixel
  chooses well defined (it becomes the plain mean of the pixels). The features are NOT normalised (the official
  code pools the projector outputs).

  Args:
    features: [b, h, w, d] pixel features.
    assignments: [b, h, w, K] soft assignments (`slot_assignments`).
    eps: epsilon >= 0 added to every assignment.

  Returns:
    [b, K, d] slots (float32 for float32/bfloat16 input).

  Example:
    >>> x = jnp.array([[[[1.0, 0.0], [0.0, 2.0]]]])
    >>> slot_pooling(x, jnp.array([[[[1.0, 0.0], [0.0, 1.0]]]]), eps=0.0)[0].tolist()
    [[1.0, 0.0], [0.0, 2.0]]

  Wen et al., "Self-Supervised Visual Representation Learning with Semantic Grouping" (SlotCon),
  NeurIPS 2022, https://arxiv.org/abs/2205.15288 (sec. 3.2, attentive pooling).
  """
  _checks.check_array("features", features, ndim=4, shape_doc="[b, h, w, d]")
  _checks.check_array("assignments", assignments, ndim=4, shape_doc="[b, h, w, K]")
  if assignments.shape[:3] != features.shape[:3]:
    raise ValueError(f"assignments must have shape [b, h, w, K] with b, h, w of features {tuple(features.shape)}; "
                     f"got shape {tuple(assignments.shape)}.")
  _checks.check_in_range("eps", eps, 0.0, float("inf"))
  x, a = _ops.to_float32(features, assignments)
  a = a + eps
  weights = a / jnp.sum(a, axis=(1, 2), keepdims=True)
  return jnp.einsum("bhwk,bhwd->bkd", weights, x)


def slotcon_group_loss(student_scores: jax.Array, teacher_scores: jax.Array, center: jax.Array, *,
                       student_temp: float = 0.1, teacher_temp: float = 0.07,
                       axis_name: str | None = None) -> jax.Array:
  r"""SlotCon's grouping loss: each pixel's student assignment predicts the teacher's of the other view.

  The two crops are first aligned on their overlap (the caller's: RoIAlign of each view's score map onto the
  intersection box, then un-flipping, as the official `invaug`), so that pixel p of `student_scores` (view 1)
  and of `teacher_scores` (view 2) show the same image location. Per pixel this is DINO's loss over prototypes:

  .. math::
      L = \frac{1}{B h w} \sum_{n, p} -\sum_k
          \operatorname{softmax}_k\Big(\frac{t_{npk} - c_k}{\tau_t}\Big)
          \log \operatorname{softmax}_k\Big(\frac{s_{npk}}{\tau_s}\Big),

  averaged over every aligned pixel of the global batch. The teacher term is wrapped in `stop_gradient`.

  Caller's duties: the teacher (encoder, projector, prototypes) is an EMA of the student; the symmetric loss
  is `slotcon_group_loss(s1, t2, c) + slotcon_group_loss(s2, t1, c)` (each weighted 0.5 in the official code);
  the centre is state updated after the step with `losses.dino_center_update(center,
  teacher_scores.reshape(-1, K), momentum=0.9, axis_name=...)` on the teacher scores of BOTH views, taken
  before alignment, exactly as SlotCon's `update_center`.

  Args:
    student_scores: [b, h, w, K] student prototype scores (cosines, `slot_assignments`) of view 1, aligned.
    teacher_scores: [b, h, w, K] teacher prototype scores of view 2, aligned to the same pixels.
    center: [K] the running centre of the teacher scores (replicated).
    student_temp: tau_s > 0 (SlotCon: 0.1).
    teacher_temp: tau_t > 0 (SlotCon: 0.07).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's images (the mean runs over all pixels of the global batch).

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> t = jnp.array([[[[1.0, -1.0]]]])
    >>> bool(slotcon_group_loss(t, t, jnp.zeros(2)) < slotcon_group_loss(-t, t, jnp.zeros(2)))
    True

  Wen et al., "Self-Supervised Visual Representation Learning with Semantic Grouping" (SlotCon),
  NeurIPS 2022, https://arxiv.org/abs/2205.15288 (sec. 3.1; official `self_distill`).
  """
  _checks.check_array("student_scores", student_scores, ndim=4, shape_doc="[b, h, w, K]")
  _checks.check_array("teacher_scores", teacher_scores, ndim=4, shape_doc="[b, h, w, K]")
  _checks.check_same_shape(student_scores=student_scores, teacher_scores=teacher_scores)
  k = student_scores.shape[3]
  _checks.check_array("center", center, ndim=1, shape_doc=f"[{k}]")
  if center.shape != (k,):
    raise ValueError(f"center must have shape [K] = ({k},); got shape {tuple(center.shape)}.")
  _checks.check_positive("student_temp", student_temp)
  _checks.check_positive("teacher_temp", teacher_temp)
  s, t, c = _ops.to_float32(student_scores, teacher_scores, center)
  target = jax.lax.stop_gradient(jax.nn.softmax((t - c) / teacher_temp, axis=-1))
  per_pixel = -jnp.sum(target * jax.nn.log_softmax(s / student_temp, axis=-1), axis=-1)
  return _collectives.global_mean(jnp.sum(per_pixel), per_pixel.size, axis_name)


def _present(assignments: jax.Array) -> jax.Array:
  """[b, K]: prototype k is the arg-max of at least one pixel of the image."""
  k = assignments.shape[-1]
  top = jnp.argmax(assignments.reshape(assignments.shape[0], -1, k), axis=-1)  # [b, hw]
  return jnp.any(top[:, :, None] == jnp.arange(k), axis=1)


def slotcon_slot_loss(q_slots: jax.Array, k_slots: jax.Array, q_assignments: jax.Array,
                      k_assignments: jax.Array, *, temperature: float = 0.2,
                      axis_name: str | None = None) -> jax.Array:
  r"""SlotCon's slot-level InfoNCE: a slot of view 1 must find the same prototype's slot of view 2 of its image.

  A slot (n, k) is present in a view when prototype k is the arg-max assignment of at least one pixel of that
  view of image n. Anchors are the student slots q_{nk} (after the caller's predictor) present in BOTH views;
  keys are the teacher slots k_{mk'} of view 2 present in view 2, over the GLOBAL batch (every device); the
  positive is k_{nk}. With u, v the normalised anchors and keys and A the set of anchors:

  .. math::
      L = \frac{1}{|A|} \sum_{(n,k) \in A} \Big(-\frac{u_{nk}^\top v_{nk}}{\tau}
          + \log \sum_{(m,k') \text{ present}} e^{u_{nk}^\top v_{mk'} / \tau}\Big).

  The mean runs over the anchors of the global batch (psum of sums and counts); the official code takes a
  per-device mean and lets DDP average the gradients, which is the same when every device has as many anchors.
  The official code also multiplies the loss by 2 tau (as MoCo v3); that scale is the caller's. Presence masks
  carry no gradient. If no slot is present in both views anywhere the loss is 0.

  Caller's duties: `k_slots` and `k_assignments` come from the teacher (EMA encoder, projector and prototypes)
  and carry no gradient (apply `jax.lax.stop_gradient`); the predictor applied to the student slots is the
  caller's (the official code runs it, with BatchNorm, on the anchor slots only); the symmetric loss is
  `slotcon_slot_loss(q1, k2, a1, b2) + slotcon_slot_loss(q2, k1, a2, b1)`.

  Args:
    q_slots: [b, K, d] predicted student slots of view 1 (normalised here).
    k_slots: [b, K, d] teacher slots of view 2 (normalised here).
    q_assignments: [b, h, w, K] student scores or assignments of view 1 (only their arg-max is used).
    k_assignments: [b, h', w', K] teacher scores or assignments of view 2.
    temperature: tau > 0 (SlotCon: 0.2).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's images and keys are gathered from every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> slots = jnp.eye(2)[None]  # one image, K = 2 slots
    >>> a = jnp.eye(2).reshape(1, 1, 2, 2)  # both prototypes present
    >>> bool(slotcon_slot_loss(slots, slots, a, a) < slotcon_slot_loss(slots, slots[:, ::-1], a, a))
    True

  Wen et al., "Self-Supervised Visual Representation Learning with Semantic Grouping" (SlotCon),
  NeurIPS 2022, https://arxiv.org/abs/2205.15288 (sec. 3.2; official `ctr_loss_filtered`).
  """
  _checks.check_array("q_slots", q_slots, ndim=3, shape_doc="[b, K, d]")
  _checks.check_array("k_slots", k_slots, ndim=3, shape_doc="[b, K, d]")
  _checks.check_same_shape(q_slots=q_slots, k_slots=k_slots)
  b, k, _ = q_slots.shape
  for name, a in (("q_assignments", q_assignments), ("k_assignments", k_assignments)):
    _checks.check_array(name, a, ndim=4, floating=False, shape_doc="[b, h, w, K]")
    if a.shape[0] != b or a.shape[3] != k:
      raise ValueError(f"{name} must have shape [b, h, w, K] with b, K = {b}, {k} (from q_slots); "
                       f"got shape {tuple(a.shape)}.")
  _checks.check_positive("temperature", temperature)
  q_present = jax.lax.stop_gradient(_present(q_assignments))
  k_present = jax.lax.stop_gradient(_present(k_assignments))
  anchor = (q_present & k_present).reshape(-1)  # [b K]
  u = l2_normalize(_ops.to_float32(q_slots)).reshape(b * k, -1)
  v = l2_normalize(_ops.to_float32(k_slots)).reshape(b * k, -1)
  keys = _collectives.all_gather(v, axis_name)  # [B K, d]
  key_ok = _collectives.all_gather(k_present.reshape(-1), axis_name)
  logits = jnp.where(key_ok[None, :], (u @ keys.T) / temperature, -jnp.inf)  # [b K, B K]
  pos_logit = jnp.sum(u * v, axis=1) / temperature
  # Non-anchor rows may have every key masked out; give them a finite dummy row, then drop them.
  logits = jnp.where(anchor[:, None], logits, 0.0)
  per_anchor = jnp.where(anchor, jax.nn.logsumexp(logits, axis=1) - pos_logit, 0.0)
  total = _collectives.psum(jnp.sum(per_anchor), axis_name)
  count = _collectives.psum(jnp.sum(anchor).astype(total.dtype), axis_name)
  return total / jnp.maximum(count, 1.0)
