"""Point-cloud self-supervision: distilling a global-view teacher into local views, with a contrastive term.

Fu et al., "Distillation with Contrast is All You Need for Self-Supervised Point Cloud Representation Learning"
(arXiv 2202.04241): an EMA teacher sees the global views of a shape, the student sees them and local crops,
and the student learns (i) the teacher's sharpened output on the other views (knowledge distillation: DINO's
loss, `rl.losses.dino`, reused as it is) and (ii) to tell its own shape's teacher output from the other shapes'
(the contrastive term, `dwc_contrast_loss`, new here). `dwc_loss` adds them; `dwc_teacher_targets` builds the
teacher targets both terms read, and `rl.losses.dino_center_update` keeps the centre.

Sources. Our stored copies of the paper have its abstract and introduction only, and we found no release of its
own code (the paper says "our code will be released soon"). The terms and weights follow the same authors' DINO-3D
pre-training code released with their next paper, POS-BERT (github.com/fukexue/POS-BERT, pretrain.py,
`DINOLoss.forward` with `use_npair_loss=True`, the branch marked "compute pointglr npair-loss", which also still
calls the one-argument centre update of an earlier version); its n-pair term is PointGLR's metric loss
(github.com/raoyongming/PointGLR, models/rscnn_ssn_ss.py, `MetricLoss`). That this branch is the 2022 paper's
objective is our reading, not something we could check against the paper's equations.

Not here: GaussianCross (Yao et al., arXiv 2508.02172). Its pre-training code is unreleased (the authors'
repository RayYoh/GaussianCross ships downstream configs only) and our stored copies of the paper stop after the
abstract; the pipeline figure names an image, a depth and a semantic-feature term (L_img, L_dep, L_sem) but not
their form or weights, so nothing of it is implemented.
"""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.clustering import dino


def _check_crop_major(name: str, x, num_crops: int) -> int:
  """Checks a crop-major [num_crops * b, K] stack and returns b."""
  _checks.check_array(name, x, ndim=2, shape_doc="[num_crops * b, K]")
  if x.shape[0] == 0 or x.shape[0] % num_crops:
    raise ValueError(f"{name} must have shape [num_crops * b, K] with num_crops={num_crops}; got shape "
                     f"{tuple(x.shape)} ({x.shape[0]} rows is not a positive multiple of {num_crops}).")
  return x.shape[0] // num_crops


def _check_num_global_crops(num_global_crops) -> None:
  if not isinstance(num_global_crops, int) or num_global_crops < 1:
    raise ValueError(f"num_global_crops must be an int >= 1; got {num_global_crops!r}.")


def dwc_teacher_targets(teacher_logits: jax.Array, center: jax.Array, *, teacher_temp: float = 0.04) -> jax.Array:
  r"""The teacher targets of distillation with contrast: centred, sharpened softmax, without gradient.

  .. math::
      P_t(t_i) = \operatorname{softmax}\big((t_i - c) / \tau_t\big),

  DINO's target (the same computation `rl.losses.dino` runs inside), which the authors' code feeds to both the
  distillation and the contrastive term. Row-wise: it works on any stack of teacher outputs. The centre `c` is
  the caller's state, updated after the step with `rl.losses.dino_center_update` on the same teacher logits
  (momentum 0.9 in the code); the teacher is an EMA of the student (the caller's).

  Args:
    teacher_logits: [n, K] teacher head outputs (the global views, any order).
    center: [K] the running centre of the teacher outputs.
    teacher_temp: tau_t > 0 (0.04 in the authors' code, which also offers a linear warm-up from 0.04).

  Returns:
    [n, K] probabilities (rows sum to 1), float32 (float64 stays float64), wrapped in `stop_gradient`.

  Example:
    >>> p = dwc_teacher_targets(jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.zeros(2), teacher_temp=1.0)
    >>> [round(float(x), 4) for x in p[0]], [round(float(x), 4) for x in p[1]]
    ([0.7311, 0.2689], [0.5, 0.5])

  Fu et al., "Distillation with Contrast is All You Need for Self-Supervised Point Cloud Representation
  Learning", 2022, https://arxiv.org/abs/2202.04241 (targets as in the authors' DINO-3D code, POS-BERT's
  pretrain.py); centring and sharpening: DINO, https://arxiv.org/abs/2104.14294 (Alg. 1).
  """
  _checks.check_array("teacher_logits", teacher_logits, ndim=2, shape_doc="[n, K]")
  _checks.check_center(center, teacher_logits)
  _checks.check_positive("teacher_temp", teacher_temp)
  t, c = _ops.to_float32(teacher_logits, center)
  return lax.stop_gradient(jax.nn.softmax((t - c) / teacher_temp, axis=-1))


def dwc_contrast_loss(teacher_targets: jax.Array, student_logits: jax.Array, *, num_global_crops: int = 2,
                      student_temp: float = 0.1, scale: float = 64.0,
                      axis_name: str | None = None) -> jax.Array:
  r"""The contrastive term of distillation with contrast: n-pair loss from each teacher target to student views.

  With teacher targets :math:`p^{(g)}_i` of global view g of shape i (`dwc_teacher_targets`, no gradient) and
  student logits :math:`s^{(v)}_j` of view v of shape j (all V views: the G global ones and the local crops),
  each (g, v) pair scores shape i against every shape j of the GLOBAL batch, and shape i must pick itself:

  .. math::
      \ell^{(g, v)}_i = -\log \frac{\exp\big(\alpha\, p^{(g)\top}_i s^{(v)}_i / \tau_s\big)}
      {\sum_{j=1}^{B} \exp\big(\alpha\, p^{(g)\top}_i s^{(v)}_j / \tau_s\big)}, \qquad
      L_{\text{con}} = \frac{1}{G\,V\,B} \sum_{g=1}^{G} \sum_{v=1}^{V} \sum_{i=1}^{B} \ell^{(g, v)}_i ,

  alpha = `scale`. Every student view counts, the one the teacher saw included. Neither side is L2-normalised:
  the targets are probabilities and the student side is its tempered logits, as in the code. This is PointGLR's
  metric loss (the global feature against every local one, scale 64) with the teacher target as the global
  feature; it is InfoNCE without the normalisation, so `rl.losses.info_nce` (cosine) does not compute it.

  Source: `DINOLoss.get_npair_loss` and the `use_npair_loss` branch of `DINOLoss.forward` in the same authors'
  released DINO-3D code (github.com/fukexue/POS-BERT, pretrain.py); the paper's equation could not be read (see
  the module docstring). The released code draws the negatives from each GPU's batch; here they come from the
  global batch, so the value does not depend on the device count.

  Args:
    teacher_targets: [G * b, K] targets of the G global views, crop-major (rows g*b..(g+1)*b-1 are view g);
      gradients are stopped here.
    student_logits: [V * b, K] student head outputs of all V views, crop-major, the same b shapes in the same
      order (V >= 1).
    num_global_crops: G (2 in the code).
    student_temp: tau_s > 0 (0.1, DINO's).
    scale: alpha > 0 (64, PointGLR's).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's crop-major shard and the student views are gathered from every
      device.

  Returns:
    The scalar loss averaged over the G V B anchors of the global batch (float32), the same on every device.

  Example:
    >>> p = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # G = 1 global view of 2 shapes
    >>> s = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # V = 1 student view
    >>> bool(dwc_contrast_loss(p, s, num_global_crops=1) < dwc_contrast_loss(p, s[::-1], num_global_crops=1))
    True

  Fu et al., "Distillation with Contrast is All You Need for Self-Supervised Point Cloud Representation
  Learning", 2022, https://arxiv.org/abs/2202.04241; n-pair metric loss: Rao et al., "Global-Local
  Bidirectional Reasoning for Unsupervised Representation Learning of 3D Point Clouds", CVPR 2020,
  https://arxiv.org/abs/2003.12971.
  """
  _check_num_global_crops(num_global_crops)
  b = _check_crop_major("teacher_targets", teacher_targets, num_global_crops)
  _checks.check_array("student_logits", student_logits, ndim=2, shape_doc="[num_crops * b, K]")
  k = teacher_targets.shape[1]
  if student_logits.shape[1] != k or student_logits.shape[0] == 0 or student_logits.shape[0] % b:
    raise ValueError(f"student_logits must have shape [num_crops * {b}, {k}] to match teacher_targets of shape "
                     f"{tuple(teacher_targets.shape)} (num_global_crops={num_global_crops}); got shape "
                     f"{tuple(student_logits.shape)}.")
  _checks.check_positive("student_temp", student_temp)
  _checks.check_positive("scale", scale)
  num_crops = student_logits.shape[0] // b
  p, s = _ops.to_float32(teacher_targets, student_logits)
  p = lax.stop_gradient(p).reshape(num_global_crops, b, k)
  s = (s / student_temp).reshape(num_crops, b, k)
  keys = _collectives.all_gather(jnp.swapaxes(s, 0, 1), axis_name)  # [B, V, K], sample-major to gather
  logits = scale * jnp.einsum("gik,jvk->gvij", p, keys)  # [G, V, b, B]
  rows = jnp.arange(b) + _collectives.axis_index(axis_name) * b  # global column of each local shape
  positive = jnp.take_along_axis(logits, jnp.broadcast_to(rows[:, None], logits.shape[:-1] + (1,)), axis=-1)[..., 0]
  per_anchor = jax.nn.logsumexp(logits, axis=-1) - positive
  return _collectives.global_mean(jnp.sum(per_anchor), num_global_crops * num_crops * b, axis_name)


def dwc_loss(student_logits: jax.Array, teacher_logits: jax.Array, center: jax.Array, *,
             student_temp: float = 0.1, teacher_temp: float = 0.04, num_global_crops: int = 2,
             contrast_weight: float = 0.01, scale: float = 64.0, return_terms: bool = False,
             axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""Distillation with contrast: DINO's global-to-local distillation plus the n-pair contrastive term.

  .. math::
      L = L_{\text{distill}} + \lambda\, L_{\text{con}}, \qquad
      L_{\text{distill}} = \operatorname{dino}(s, t, c), \qquad
      L_{\text{con}} = \operatorname{dwc\_contrast\_loss}(P_t(t), s),

  with :math:`P_t` = `dwc_teacher_targets` and lambda = `contrast_weight`. The distillation term IS DINO's
  multi-crop loss (`rl.losses.dino`, reused): every student view, local crops included, predicts the centred,
  sharpened teacher output of each other global view, which carries the global shape to the local structures.
  The contrastive term (`dwc_contrast_loss`) makes each shape's teacher target pick that shape's student
  outputs among the batch's.

  Caller's duties: the teacher is an EMA of the student (momentum 0.996 -> 1 on a cosine schedule in the code);
  the centre is state, updated after the step with `rl.losses.dino_center_update(center, teacher_logits)`; the
  teacher-temperature schedule is passed as `teacher_temp`; the point-cloud views (global crops of the shape,
  local crops of part of it) and the encoder with its projection head are the caller's.

  Source: the `use_npair_loss` branch of `DINOLoss.forward` in the same authors' DINO-3D code
  (github.com/fukexue/POS-BERT, pretrain.py): it returns (L_distill + L_mpm + 0.01 L_con) / 3, where L_mpm is
  POS-BERT's masked-patch term; without it the relative weight 0.01 is kept and the overall 1/3 (a rescaling of
  the learning rate) left out. The paper's own equations could not be read (see the module docstring).

  Args:
    student_logits: [V * b, K] student head outputs of all V views, crop-major, the G global views first in the
      teacher's order (V >= 2).
    teacher_logits: [G * b, K] teacher head outputs of the G global views, crop-major.
    center: [K] the running centre of the teacher outputs.
    student_temp: tau_s > 0 (0.1).
    teacher_temp: tau_t > 0 (0.04).
    num_global_crops: G (2).
    contrast_weight: lambda >= 0 (0.01 in the code).
    scale: alpha > 0 of the contrastive term (64).
    return_terms: also return {"distillation": ..., "contrast": ...} (unweighted).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's crop-major shard.

  Returns:
    The scalar loss over the global batch (float32), the same on every device; with `return_terms`,
    `(loss, terms)`.

  Example:
    >>> t = jnp.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])  # 2 global views of 2 shapes
    >>> good = jnp.concatenate([t, t])  # 4 student views that agree with the teacher
    >>> bool(dwc_loss(good, t, jnp.zeros(2)) < dwc_loss(good[:, ::-1], t, jnp.zeros(2)))
    True

  Fu, Gao, Zhang, Li, Qiao & Wang, "Distillation with Contrast is All You Need for Self-Supervised Point Cloud
  Representation Learning", 2022, https://arxiv.org/abs/2202.04241; DINO: https://arxiv.org/abs/2104.14294.
  """
  _checks.check_in_range("contrast_weight", contrast_weight, 0.0, float("inf"))
  distill = dino(student_logits, teacher_logits, center, student_temp=student_temp, teacher_temp=teacher_temp,
                 num_global_crops=num_global_crops, axis_name=axis_name)
  targets = dwc_teacher_targets(teacher_logits, center, teacher_temp=teacher_temp)
  contrast = dwc_contrast_loss(targets, student_logits, num_global_crops=num_global_crops,
                               student_temp=student_temp, scale=scale, axis_name=axis_name)
  loss = distill + contrast_weight * contrast
  return (loss, {"distillation": distill, "contrast": contrast}) if return_terms else loss
