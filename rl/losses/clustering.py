"""Clustering objectives: online equipartitioned codes (SwAV) and self-distillation onto a centred teacher (DINO).

Online Deep Clustering (ODC), which keeps a memory of features, labels and centroids, lives in `rl.losses.online_clustering`.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def _check_scores(name: str, x) -> None:
  _checks.check_array(name, x, ndim=2, shape_doc="[b, K]")


def _check_crop_major(name: str, x, num_crops: int) -> int:
  """Checks a crop-major [num_crops * b, K] stack and returns the per-crop batch size b."""
  _checks.check_array(name, x, ndim=2, shape_doc="[num_crops * b, K]")
  if x.shape[0] % num_crops:
    raise ValueError(f"{name} must have shape [num_crops * b, K] with num_crops={num_crops}; got shape "
                     f"{tuple(x.shape)} ({x.shape[0]} rows is not a multiple of {num_crops}).")
  return x.shape[0] // num_crops


def sinkhorn_knopp(scores: jax.Array, *, epsilon: float = 0.05, num_iters: int = 3,
                   axis_name: str | None = None) -> jax.Array:
  r"""SwAV's soft cluster assignment: Sinkhorn-Knopp equipartition of a batch over K prototypes.

  With :math:`Q = \exp(S^\top / \varepsilon)` of shape [K, B] (prototypes x samples of the GLOBAL batch), Q is
  scaled to total mass 1 and then, `num_iters` times, its rows are rescaled to sum to 1/K (each prototype gets an
  equal share of the batch) and its columns to sum to 1/B; finally it is multiplied by B:

  .. math::
      Q \leftarrow \operatorname{diag}(\tfrac{1}{K\,Q\mathbf{1}})\, Q, \qquad
      Q \leftarrow Q \operatorname{diag}(\tfrac{1}{B\,\mathbf{1}^\top Q}), \qquad \text{codes} = B\, Q^\top ,

  so each sample's code is a distribution over the K prototypes (its entries sum to 1). The row sums run over
  the global batch (`psum`), column sums are per sample, so the codes on 8 devices equal the single-device ones.

  Before the exponential each prototype's maximum score over the global batch is subtracted: a per-prototype
  factor is removed exactly by the first row normalisation, so the result is unchanged while exp cannot
  overflow (the official code uses no shift; with `num_iters=0` the global maximum is subtracted instead, which
  the total normalisation cancels). Computed in float32 (float64 stays float64).

  The codes are targets: they are wrapped in `stop_gradient` (no gradient flows back into `scores`), as in SwAV
  where they are computed under `torch.no_grad()`.

  Args:
    scores: [b, K] prototype scores of this device's samples (cosine similarities in SwAV).
    epsilon: entropic regularisation eps > 0 (SwAV: 0.05; smaller gives harder codes).
    num_iters: number of row/column normalisation rounds (SwAV: 3).
    axis_name: None when `scores` is the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where `scores` is this device's shard and the prototype sums are taken over all devices.

  Returns:
    [b, K] soft codes of this device's samples (rows sum to 1), float32, without gradient.

  Example:
    >>> q = sinkhorn_knopp(jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> bool(jnp.allclose(q.sum(axis=1), 1.0)) and bool(q[0, 0] > 0.99)
    True

  Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020,
  https://arxiv.org/abs/2006.09882 (Sec. 3.1 and the appendix; `distributed_sinkhorn` of the official code).
  """
  _check_scores("scores", scores)
  _checks.check_positive("epsilon", epsilon)
  if not isinstance(num_iters, int) or num_iters < 0:
    raise ValueError(f"num_iters must be a non-negative int; got {num_iters!r}.")
  s = lax.stop_gradient(_ops.to_float32(scores))
  b, k = s.shape
  big_b = _collectives.psum(jnp.asarray(b, s.dtype), axis_name)
  # Per-prototype shift: the first row step cancels it exactly. Without row steps only a global one cancels.
  shift = _collectives.pmax(jnp.max(s, axis=0) if num_iters else jnp.max(s), axis_name)
  q = jnp.exp((s - shift) / epsilon)  # [b, K]: the transpose of SwAV's [K, B] matrix, local columns
  q = q / _collectives.psum(jnp.sum(q), axis_name)
  for _ in range(num_iters):
    q = q / (_collectives.psum(jnp.sum(q, axis=0), axis_name) * k)  # prototypes: 1/K each over the global batch
    q = q / (jnp.sum(q, axis=1, keepdims=True) * big_b)  # samples: 1/B each
  return lax.stop_gradient(q * big_b)


def swav(scores: jax.Array, *, num_crops: int, crops_for_assign: Sequence[int] = (0, 1),
         temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iters: int = 3,
         queue_scores: jax.Array | None = None, axis_name: str | None = None) -> jax.Array:
  r"""SwAV's swapped prediction: predict the Sinkhorn code of one crop from every other crop.

  `scores` stacks the prototype scores :math:`s^{(v)} = z^{(v)\top} C` of all crops, crop-major. For each crop
  a in `crops_for_assign`, codes :math:`q^{(a)}` = `sinkhorn_knopp(s^{(a)})` (no gradient); every other crop v
  predicts them with a softmax at temperature tau:

  .. math::
      L = \frac{1}{|A|\,(V-1)} \sum_{a \in A} \sum_{v \ne a} \frac{1}{B} \sum_{i=1}^{B}
          -\sum_k q^{(a)}_{ik} \log \operatorname{softmax}_k\!\big(s^{(v)}_i / \tau\big).

  Multi-crop: crops 0..num_crops-1 may be 2 global and several low-resolution crops; only the crops listed in
  `crops_for_assign` (SwAV: the two global ones) produce codes.

  Caller's duties. SwAV's scores are cosine similarities: the caller L2-normalises both the features and the
  prototype vectors (after each optimizer step, as SwAV does) before computing `scores`; the prototypes are
  usually frozen during the first epoch. The queue of past features is the caller's: `queue_scores` holds, for
  each assign crop, scores of queued features against the CURRENT prototypes; they join the Sinkhorn batch only
  (more samples for the equipartition) and receive no loss, as in the official code. Under `axis_name` each
  device keeps its own queue and the Sinkhorn sums run over all devices' queues and batches.

  Args:
    scores: [num_crops * b, K] prototype scores; rows c*b..(c+1)*b-1 belong to crop c (this device's shard).
    num_crops: V, the number of crops stacked in `scores` (>= 2).
    crops_for_assign: crop ids whose codes are predicted (SwAV: (0, 1)).
    temperature: tau > 0 of the prediction softmax (SwAV: 0.1).
    epsilon: Sinkhorn regularisation (SwAV: 0.05).
    sinkhorn_iters: Sinkhorn rounds (SwAV: 3).
    queue_scores: optional [len(crops_for_assign), n, K] scores of queued features, one block per assign crop.
    axis_name: None when `scores` is the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where `scores` is this device's crop-major shard.

  Returns:
    The scalar loss averaged over the global batch (float32), the same on every device.

  Example:
    >>> s = jnp.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])  # 2 crops of 2 samples
    >>> swapped = s.at[2:].set(s[2:][::-1])  # the second crop disagrees with the first
    >>> bool(swav(s, num_crops=2) < swav(swapped, num_crops=2))
    True

  Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020,
  https://arxiv.org/abs/2006.09882 (eq. 2-3; `main_swav.py` of the official code).
  """
  if not isinstance(num_crops, int) or num_crops < 2:
    raise ValueError(f"num_crops must be an int >= 2; got {num_crops!r}.")
  b = _check_crop_major("scores", scores, num_crops)
  crops_for_assign = tuple(crops_for_assign)
  if not crops_for_assign or any(not 0 <= c < num_crops for c in crops_for_assign):
    raise ValueError(f"crops_for_assign must be non-empty crop ids in [0, {num_crops}); got {crops_for_assign}.")
  _checks.check_positive("temperature", temperature)
  k = scores.shape[1]
  if queue_scores is not None:
    _checks.check_array("queue_scores", queue_scores, ndim=3, shape_doc="[len(crops_for_assign), n, K]")
    if queue_scores.shape[0] != len(crops_for_assign) or queue_scores.shape[2] != k:
      raise ValueError(f"queue_scores must have shape [{len(crops_for_assign)}, n, {k}] "
                       f"([len(crops_for_assign), n, K]); got shape {tuple(queue_scores.shape)}.")
  s = _ops.to_float32(scores).reshape(num_crops, b, k)
  log_p = jax.nn.log_softmax(s / temperature, axis=-1)  # [V, b, K]
  total = jnp.zeros((), log_p.dtype)
  for i, a in enumerate(crops_for_assign):
    sink_in = s[a]
    if queue_scores is not None:
      sink_in = jnp.concatenate([_ops.to_float32(queue_scores[i]).astype(s.dtype), sink_in], axis=0)
    q = sinkhorn_knopp(sink_in, epsilon=epsilon, num_iters=sinkhorn_iters, axis_name=axis_name)[-b:]
    others = [v for v in range(num_crops) if v != a]
    total = total - jnp.sum(q[None] * log_p[jnp.array(others)])
  pairs = len(crops_for_assign) * (num_crops - 1)
  return _collectives.global_mean(total / pairs, b, axis_name)


def dino(student_logits: jax.Array, teacher_logits: jax.Array, center: jax.Array, *,
         student_temp: float = 0.1, teacher_temp: float = 0.04, num_global_crops: int = 2,
         axis_name: str | None = None) -> jax.Array:
  r"""DINO's self-distillation loss: every student crop predicts the centred, sharpened teacher of other crops.

  The teacher sees the G global crops, the student all V crops (its first G crops are the same global crops, in
  the same order). With teacher probabilities :math:`P_t = \operatorname{softmax}((t - c)/\tau_t)` (no gradient)
  and student log-probabilities :math:`\log P_s = \operatorname{log\_softmax}(s / \tau_s)`:

  .. math::
      L = \frac{1}{|\{(g, v): v \ne g\}|} \sum_{g=1}^{G} \sum_{v \ne g} \frac{1}{B} \sum_{i=1}^{B}
          -\sum_k P_t(t^{(g)}_i)_k \log P_s(s^{(v)}_i)_k .

  Caller's duties: the teacher is an EMA of the student (the caller updates it); the centre `c` is state the
  caller keeps and updates with `dino_center_update` on the same teacher logits after the step; the teacher
  temperature warm-up (DINO: 0.04 -> 0.07 linearly over the first 30 epochs for long runs) is the caller's
  schedule, passed as `teacher_temp`.

  Args:
    student_logits: [V * b, K] student head outputs, crop-major (rows c*b..(c+1)*b-1 are crop c).
    teacher_logits: [G * b, K] teacher head outputs of the G global crops, crop-major.
    center: [K] the running centre of the teacher logits (replicated).
    student_temp: tau_s > 0 (DINO: 0.1).
    teacher_temp: tau_t > 0 (DINO: 0.04, warmed up to 0.07 by the caller for long runs).
    num_global_crops: G (DINO: 2).
    axis_name: None when the logits are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where the logits are this device's crop-major shard.

  Returns:
    The scalar loss averaged over the global batch (float32), the same on every device.

  Example:
    >>> t = jnp.array([[4.0, 0.0], [4.0, 0.0]])
    >>> good, bad = jnp.array([[9.0, 0.0]] * 3), jnp.array([[0.0, 9.0]] * 3)
    >>> bool(dino(good, t, jnp.zeros(2)) < dino(bad, t, jnp.zeros(2)))
    True

  Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
  https://arxiv.org/abs/2104.14294 (Alg. 1; `DINOLoss` in the official `main_dino.py`).
  """
  if not isinstance(num_global_crops, int) or num_global_crops < 1:
    raise ValueError(f"num_global_crops must be an int >= 1; got {num_global_crops!r}.")
  b = _check_crop_major("teacher_logits", teacher_logits, num_global_crops)
  _checks.check_array("student_logits", student_logits, ndim=2, shape_doc="[num_crops * b, K]")
  k = teacher_logits.shape[1]
  if student_logits.shape[1] != k or b == 0 or student_logits.shape[0] % b:
    raise ValueError(f"student_logits must have shape [num_crops * {b}, {k}] to match teacher_logits of shape "
                     f"{tuple(teacher_logits.shape)} (num_global_crops={num_global_crops}); got shape "
                     f"{tuple(student_logits.shape)}.")
  num_crops = student_logits.shape[0] // b
  if num_crops < num_global_crops or num_crops < 2:
    raise ValueError(f"student_logits must hold at least the {num_global_crops} global crops and 2 crops in all; "
                     f"got {num_crops} crops (shape {tuple(student_logits.shape)}).")
  _checks.check_center(center, teacher_logits)
  _checks.check_positive("student_temp", student_temp)
  _checks.check_positive("teacher_temp", teacher_temp)
  s, t, c = _ops.to_float32(student_logits, teacher_logits, center)
  p_t = lax.stop_gradient(jax.nn.softmax((t - c) / teacher_temp, axis=-1)).reshape(num_global_crops, b, k)
  log_p_s = jax.nn.log_softmax(s / student_temp, axis=-1).reshape(num_crops, b, k)
  # cross[g, v] = sum over this device's samples of -P_t(g) . log P_s(v).
  cross = -jnp.einsum("gik,vik->gv", p_t, log_p_s)
  not_self = jnp.arange(num_global_crops)[:, None] != jnp.arange(num_crops)[None, :]
  pairs = num_global_crops * num_crops - num_global_crops
  total = jnp.sum(jnp.where(not_self, cross, 0.0)) / pairs
  return _collectives.global_mean(total, b, axis_name)


def dino_center_update(center: jax.Array, teacher_logits: jax.Array, *, momentum: float = 0.9,
                       axis_name: str | None = None) -> jax.Array:
  r"""DINO's centre update: an EMA of the mean teacher output over the global batch.

  .. math::
      c \leftarrow m\, c + (1 - m) \frac{1}{G B} \sum_{i=1}^{G B} t_i ,

  where the mean runs over all rows of `teacher_logits` (all global crops) on all devices: local sums are
  `psum`-ed and divided by the global row count, as the official `all_reduce` does. No gradient flows.

  Args:
    center: [K] the current centre (replicated; start from zeros as DINO does).
    teacher_logits: [n, K] teacher outputs of this device (all global crops stacked; the order does not matter).
    momentum: m in [0, 1] (DINO: 0.9).
    axis_name: None when `teacher_logits` is the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where it is this device's shard.

  Returns:
    [K] the new centre (float32), the same on every device.

  Example:
    >>> dino_center_update(jnp.zeros(2), jnp.array([[1.0, 3.0], [3.0, 1.0]]), momentum=0.5)
    Array([1., 1.], dtype=float32)

  Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
  https://arxiv.org/abs/2104.14294 (eq. 4; `DINOLoss.update_center` in the official `main_dino.py`).
  """
  _checks.check_array("teacher_logits", teacher_logits, ndim=2, shape_doc="[n, K]")
  _checks.check_center(center, teacher_logits)
  _checks.check_in_range("momentum", momentum, 0.0, 1.0)
  t, c = _ops.to_float32(lax.stop_gradient(teacher_logits), lax.stop_gradient(center))
  batch_center = _collectives.global_mean(jnp.sum(t, axis=0), t.shape[0], axis_name)
  return momentum * c + (1.0 - momentum) * batch_center
