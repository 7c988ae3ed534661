"""Distillation objectives: a student network learns from a frozen, a momentum or a peer network.

Continual representation learning (CSD, CL2R), online mutual distillation of two self-supervised networks (MOKD)
and dense feature distillation from a generative model (DreamTeacher). The modules these losses need (the
per-level 1x1 regressor of DreamTeacher, the cross-attention search head of MOKD) live in `rl.models.distill`;
every loss here is a pure function of arrays.
"""
from __future__ import annotations


import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.clustering import dino
from rl.losses.hypersphere import l2_normalize


# ---------------------------------------------------------------------------------------------------------------
# CSD: contrastive supervised distillation
# ---------------------------------------------------------------------------------------------------------------

def csd(student: jax.Array, teacher: jax.Array, labels: jax.Array, *, temperature: float = 0.07,
        contrast_students: bool = False, axis_name: str | None = None) -> jax.Array:
  r"""Contrastive Supervised Distillation: each student feature picks out the teacher features of its class.

  Student features s and frozen-teacher features t of the same B images are L2-normalised to u and v. Every
  student feature is an anchor; its positives P(i) are the teacher features of the GLOBAL batch with the label
  of i (the teacher feature of image i included), its contrast set A(i) all B teacher features:

  .. math::
      \ell_i = \frac{-1}{|P(i)|} \sum_{p \in P(i)} \log \frac{\exp(u_i^\top v_p / \tau)}
               {\sum_{a \in A(i)} \exp(u_i^\top v_a / \tau)}, \qquad L = \frac{1}{B} \sum_{i=1}^{B} \ell_i .

  This is the supervised-contrastive loss across the two feature sets described in the paper. The authors' code
  (`SupConLoss(contrast_mode="one")` on the stacked [student, teacher] views) also puts the OTHER student
  features in A(i) and the same-class ones in P(i); `contrast_students=True` reproduces that variant
  (self-similarity excluded). The teacher is the model of the previous task and is frozen:
  `jax.lax.stop_gradient` is applied to `teacher` here, so only the student receives gradients. The paper adds
  this term to cross-entropy (and KD, triplet) terms; only the CSD term is computed here.

  Args:
    student: [b, d] features of the model being trained (normalised here).
    teacher: [b, d] features of the same images from the frozen previous model (normalised here).
    labels: [b] integer class labels.
    temperature: tau > 0 (0.07 in the authors' code, with base temperature 0.07, i.e. no rescaling).
    contrast_students: also contrast against (and attract) the other student features, as the authors' code.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard; teacher features (and student features when
      `contrast_students`) and labels are gathered from every device, anchors stay local.

  Returns:
    The scalar mean loss over the B anchors of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> t = jnp.eye(4); y = jnp.arange(4)
    >>> bool(losses.distillation.csd(t, t, y) < losses.distillation.csd(t[::-1], t, y))
    True

  Barletti, Biondi, Pernici, Bruni & Del Bimbo, "Contrastive Supervised Distillation for Continual
  Representation Learning", ICIAP 2022, https://arxiv.org/abs/2205.05476 (code:
  github.com/NiccoBiondi/ContrastiveSupervisedDistillation).
  """
  _checks.check_embeddings(student=student, teacher=teacher)
  _checks.check_labels("labels", labels, student.shape[0])
  _checks.check_positive("temperature", temperature)
  b = student.shape[0]
  u = l2_normalize(_ops.to_float32(student))
  v = l2_normalize(_ops.to_float32(lax.stop_gradient(teacher)))
  keys = _collectives.all_gather(v, axis_name)  # [B, d]
  all_labels = _collectives.all_gather(labels, axis_name)  # [B]
  pos = labels[:, None] == all_labels[None, :]  # [b, B]
  logits = (u @ keys.T) / temperature
  if contrast_students:
    s_keys = _collectives.all_gather(u, axis_name)
    self_col = jnp.arange(b) + _collectives.axis_index(axis_name) * b
    not_self = jnp.arange(s_keys.shape[0])[None, :] != self_col[:, None]
    s_logits = jnp.where(not_self, (u @ s_keys.T) / temperature, -jnp.inf)
    logits = jnp.concatenate([logits, s_logits], axis=1)
    pos = jnp.concatenate([pos, pos & not_self], axis=1)
  log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
  # P(i) always holds the teacher feature of image i itself, so |P(i)| >= 1.
  pos_mean = jnp.sum(jnp.where(pos, log_prob, 0.0), axis=1) / jnp.sum(pos, axis=1)
  return _collectives.global_mean(-jnp.sum(pos_mean), b, axis_name)


# ---------------------------------------------------------------------------------------------------------------
# CL2R: fixed d-simplex classifier and feature stationarity
# ---------------------------------------------------------------------------------------------------------------

def simplex_prototypes(num_classes: int, dim: int, *, dtype=jnp.float32) -> jax.Array:
  r"""The K vertices of a regular simplex on the unit sphere: the fixed d-Simplex classifier of CL2R.

  For K classes the vertices live in R^{K-1}: unit norm, centred at the origin, with equal pairwise cosine

  .. math::
      \|p_k\| = 1, \qquad p_j^\top p_k = -\frac{1}{K-1} \quad (j \ne k), \qquad \sum_k p_k = 0 .

  Built as in the paper: the K-1 basis vectors e_k of R^{K-1} plus the vertex
  ((1 - sqrt(K)) / (K-1)) * (1, ..., 1), re-centred and normalised (computed in float64). When `dim` > K-1 the
  vertices fill the first K-1 coordinates and the rest are zero. The prototypes are constants: they are not
  trained (`simplex_classifier_loss` stops their gradient).

  Args:
    num_classes: K >= 2.
    dim: the feature dimension d >= K - 1 (CL2R uses d = K - 1, e.g. 99 for 100 classes).
    dtype: the dtype of the result.

  Returns:
    [K, d] prototypes, one row per class.

  Example:
    >>> p = losses.distillation.simplex_prototypes(3, 2)
    >>> np.round(np.asarray(p @ p.T), 3)
    array([[ 1. , -0.5, -0.5],
           [-0.5,  1. , -0.5],
           [-0.5, -0.5,  1. ]], dtype=float32)

  Biondi, Pernici, Bruni & Del Bimbo, "CL2R: Compatible Lifelong Learning Representations", ACM TOMM 2022,
  https://arxiv.org/abs/2211.09032; the d-Simplex fixed classifier: Pernici et al., "Regular Polytope Networks",
  IEEE TNNLS 2021, https://arxiv.org/abs/2103.15632.
  """
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}.")
  if not isinstance(dim, (int, np.integer)) or dim < 1:
    raise ValueError(f"dim must be a positive int; got {dim!r}.")
  if num_classes > dim + 1:
    raise ValueError(f"a regular simplex with num_classes={num_classes} vertices needs dim >= num_classes - 1 = "
                     f"{num_classes - 1}; got dim={dim}.")
  n = num_classes - 1
  t = np.zeros((num_classes, n), np.float64)
  t[:n] = np.eye(n)
  t[n] = (1.0 - np.sqrt(1.0 + n)) / n
  t -= t.mean(axis=0)
  t /= np.linalg.norm(t, axis=1, keepdims=True)
  out = np.zeros((num_classes, dim), np.float64)
  out[:, :n] = t
  return jnp.asarray(out, dtype=dtype)


def simplex_classifier_loss(features: jax.Array, labels: jax.Array, prototypes: jax.Array, *,
                            axis_name: str | None = None) -> jax.Array:
  r"""Cross-entropy of a fixed-prototype classifier: logits are features times the (fixed) prototypes.

  .. math::
      L = \frac{1}{B} \sum_{i=1}^{B} -\log \operatorname{softmax}(W f_i)_{y_i}, \qquad W = [p_1, \dots, p_K]^\top,

  with W the d-Simplex of `simplex_prototypes` in CL2R (no bias, features not normalised, as the authors' code:
  `fc2` has fixed simplex weights and no bias). `jax.lax.stop_gradient` is applied to `prototypes` here: they
  are a fixed classifier, the caller keeps them as a constant.

  Args:
    features: [b, d] features of the model being trained.
    labels: [b] integer class labels in [0, K).
    prototypes: [K, d] fixed class prototypes.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where `features, labels` are this device's shard (`prototypes` replicated).

  Returns:
    The scalar mean cross-entropy over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> p = losses.distillation.simplex_prototypes(3, 2)
    >>> good = losses.distillation.simplex_classifier_loss(5 * p, jnp.arange(3), p)
    >>> bool(good < losses.distillation.simplex_classifier_loss(5 * p, jnp.array([1, 2, 0]), p))
    True

  Biondi, Pernici, Bruni & Del Bimbo, "CL2R: Compatible Lifelong Learning Representations", ACM TOMM 2022,
  https://arxiv.org/abs/2211.09032 (global stationarity through the fixed d-Simplex classifier).
  """
  _checks.check_array("features", features, ndim=2, shape_doc="[b, d]")
  _checks.check_labels("labels", labels, features.shape[0])
  _checks.check_array("prototypes", prototypes, ndim=2, shape_doc=f"[K, {features.shape[1]}]")
  if prototypes.shape[1] != features.shape[1]:
    raise ValueError(f"prototypes must have shape [K, {features.shape[1]}] (the feature size of features); got "
                     f"shape {tuple(prototypes.shape)}.")
  f, w = _ops.to_float32(features, lax.stop_gradient(prototypes))
  log_p = jax.nn.log_softmax(f @ w.T, axis=-1)
  nll = -jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]
  return _collectives.global_mean(jnp.sum(nll), features.shape[0], axis_name)


def cl2r_stationarity(new_features: jax.Array, old_features: jax.Array, *, mask: jax.Array | None = None,
                      axis_name: str | None = None) -> jax.Array:
  r"""CL2R's local-stationarity (feature distillation) term: new features keep the direction of the old ones.

  On the rehearsal-memory samples M of the GLOBAL batch, the cosine distance between the features of the model
  being trained and those of the previous (frozen) model:

  .. math::
      L = \frac{1}{|M|} \sum_{i \in M} \Big(1 - \frac{f_i^\top f^{old}_i}{\|f_i\| \|f^{old}_i\|}\Big) .

  This is the authors' `EmbeddingsSimilarity` (a cosine-embedding loss with target 1, applied to the memory half
  of each batch), weighted by the caller (CL2R: lambda = 10 times a factor of the class counts). The old model
  is frozen: `jax.lax.stop_gradient` is applied to `old_features` here. The memory rows are chosen by `mask`;
  an all-false mask gives 0.

  Args:
    new_features: [b, d] features of the model being trained.
    old_features: [b, d] features of the same images from the previous model.
    mask: optional [b] boolean, True for the memory (old-task) samples; None means every row.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard (the mean runs over the memory rows of all devices).

  Returns:
    The scalar mean cosine distance (float32 for float32/bfloat16 input).

  Example:
    >>> f = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> losses.distillation.cl2r_stationarity(f, jnp.array([[3.0, 0.0], [1.0, 0.0]]))
    Array(0.5, dtype=float32)

  Biondi, Pernici, Bruni & Del Bimbo, "CL2R: Compatible Lifelong Learning Representations", ACM TOMM 2022,
  https://arxiv.org/abs/2211.09032 (code: github.com/NiccoBiondi/CompatibleLifelongRepresentation).
  """
  _checks.check_embeddings(new_features=new_features, old_features=old_features)
  b = new_features.shape[0]
  if mask is None:
    mask = jnp.ones((b,), bool)
  elif not hasattr(mask, "shape") or tuple(mask.shape) != (b,):
    got = f"shape {tuple(mask.shape)}" if hasattr(mask, "shape") else type(mask).__name__
    raise ValueError(f"mask must have shape [{b}] (one flag per row of new_features); got {got}.")
  u = l2_normalize(_ops.to_float32(new_features))
  v = l2_normalize(_ops.to_float32(lax.stop_gradient(old_features)))
  dist = 1.0 - jnp.sum(u * v, axis=-1)
  m = mask.astype(jnp.float32)
  total = _collectives.psum(jnp.sum(m * dist), axis_name)
  count = _collectives.psum(jnp.sum(m), axis_name)
  return total / jnp.maximum(count, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# MOKD: multi-mode online knowledge distillation
# ---------------------------------------------------------------------------------------------------------------

def mokd_self_distillation(student_mlp: jax.Array, teacher_mlp: jax.Array, center_mlp: jax.Array,
                           student_thead: jax.Array, teacher_thead: jax.Array, center_thead: jax.Array, *,
                           student_temp: float = 0.1, teacher_temp: float = 0.04, num_global_crops: int = 2,
                           axis_name: str | None = None) -> jax.Array:
  r"""MOKD's self-distillation mode: one network's DINO loss on its MLP head plus on its Transformer head.

  Each of the two networks is trained with its own EMA teacher, in two projection spaces: the MLP head
  (L_sm) and the Transformer head T-Head (L_st, `rl.models.distill.CrossAttentionSearchHead` without a query):

  .. math::
      L_{self} = L_{sm} + L_{st} = \mathrm{DINO}(s^{mlp}, t^{mlp}; c^{mlp}) + \mathrm{DINO}(s^{T}, t^{T}; c^{T}),

  where DINO is `rl.losses.dino` (teacher centring with c and sharpening with tau_t, student temperature tau_s,
  every student crop against the teacher's other global crops). Caller's duties, per network: the teachers are
  EMAs of the students (MOKD: momentum 0.996 -> 1); each head has its own centre, updated after the step with
  `dino_center_update(center, teacher_logits)`; tau_t is warmed up by the caller (MOKD: 0.04 -> 0.07).

  Args:
    student_mlp: [V * b, K] student MLP-head outputs of all V crops, crop-major.
    teacher_mlp: [G * b, K] EMA-teacher MLP-head outputs of the G global crops, crop-major.
    center_mlp: [K] centre of `teacher_mlp`.
    student_thead: [V * b, K'] student T-Head outputs of all V crops, crop-major.
    teacher_thead: [G * b, K'] EMA-teacher T-Head outputs of the G global crops.
    center_thead: [K'] centre of `teacher_thead`.
    student_temp: tau_s > 0 (0.1).
    teacher_temp: tau_t > 0 (0.04, warmed up to 0.07 in the paper).
    num_global_crops: G (2).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's crop-major shard.

  Returns:
    The scalar L_sm + L_st over the global batch (float32).

  Example:
    >>> t = jnp.array([[4.0, 0.0], [4.0, 0.0]]); c = jnp.zeros(2)
    >>> good, bad = jnp.array([[9.0, 0.0]] * 3), jnp.array([[0.0, 9.0]] * 3)
    >>> f = losses.distillation.mokd_self_distillation
    >>> bool(f(good, t, c, good, t, c) < f(bad, t, c, good, t, c))
    True

  Song, Xie, Zhang & Luo, "Multi-Mode Online Knowledge Distillation for Self-Supervised Visual Representation
  Learning", CVPR 2023, https://arxiv.org/abs/2304.06461 (code: github.com/skyoux/mokd, `main_mokd.py`).
  """
  kw = dict(student_temp=student_temp, teacher_temp=teacher_temp, num_global_crops=num_global_crops,
            axis_name=axis_name)
  return (dino(student_mlp, teacher_mlp, center_mlp, **kw)
          + dino(student_thead, teacher_thead, center_thead, **kw))


def mokd_cross_distillation(student_mlp: jax.Array, peer_teacher_mlp: jax.Array, center: jax.Array,
                            student_search: jax.Array, peer_teacher_search: jax.Array, *,
                            student_temp: float = 0.1, teacher_temp: float = 0.04, num_global_crops: int = 2,
                            axis_name: str | None = None) -> jax.Array:
  r"""MOKD's cross-distillation mode: one network learns from the OTHER network's teacher, in two spaces.

  L_cm is DINO between this network's student MLP head and the peer network's EMA-teacher MLP head (with a
  centre of its own). L_ct is the cross-attention feature-search term: the peer teacher's T-Head is run on its
  patch tokens of a global crop with THIS student's embedding of a local crop as an extra query token
  (`rl.models.distill.CrossAttentionSearchHead(..., query=...)`), and this student's T-Head output of that local
  crop must predict the sharpened result (no centring, as the authors' `CTSearchLoss`):

  .. math::
      L_{cross} = \mathrm{DINO}(s^{mlp}, \tilde t^{mlp}; c)
                  + \frac{1}{N} \sum_{n=1}^{N} -\sum_k \operatorname{softmax}(\tilde t^{search}_n / \tau_t)_k
                    \log \operatorname{softmax}(s^{search}_n / \tau_s)_k ,

  with N the number of rows of the search outputs over all devices. `jax.lax.stop_gradient` is applied to both
  peer outputs here (the peer teacher is an EMA and detached in the authors' code). Caller's duties: the centre
  c of this cross term is state updated with `dino_center_update(c, peer_teacher_mlp)`, and the caller weights
  the cross terms, L = L_sm + L_st + lambda (L_cm + L_ct): this function returns them unweighted. The authors'
  code (skyoux/mokd, main_mokd.py: `--lamda_c` for the CNN and `--lamda_t` for the ViT) defaults both lambdas to
  1.0. (This docstring used to give 1.0 and 0.1, for the weaker and the stronger network, as the paper's; the
  paper's method section could not be read here to confirm a per-network value, so only the code's is stated.)

  Args:
    student_mlp: [V * b, K] this network's student MLP-head outputs of all V crops, crop-major.
    peer_teacher_mlp: [G * b, K] the peer network's EMA-teacher MLP-head outputs of the G global crops.
    center: [K] the centre of this cross term.
    student_search: [n, K'] this student's T-Head outputs of the crops used as queries (local crops in MOKD).
    peer_teacher_search: [n, K'] the peer teacher's searched T-Head outputs, row n queried by row n's crop.
    student_temp: tau_s > 0 (0.1).
    teacher_temp: tau_t > 0 (0.04, warmed up to 0.07 in the paper).
    num_global_crops: G (2).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar L_cm + L_ct over the global batch (float32).

  Example:
    >>> t = jnp.array([[4.0, 0.0], [4.0, 0.0]]); c = jnp.zeros(2)
    >>> good, bad = jnp.array([[9.0, 0.0]] * 3), jnp.array([[0.0, 9.0]] * 3)
    >>> f = losses.distillation.mokd_cross_distillation
    >>> bool(f(good, t, c, good, good) < f(good, t, c, bad, good))
    True

  Song, Xie, Zhang & Luo, "Multi-Mode Online Knowledge Distillation for Self-Supervised Visual Representation
  Learning", CVPR 2023, https://arxiv.org/abs/2304.06461 (code: github.com/skyoux/mokd, `CTSearchLoss`).
  """
  _checks.check_array("student_search", student_search, ndim=2, shape_doc="[n, K]")
  _checks.check_array("peer_teacher_search", peer_teacher_search, ndim=2, shape_doc="[n, K]")
  _checks.check_same_shape(student_search=student_search, peer_teacher_search=peer_teacher_search)
  l_cm = dino(student_mlp, lax.stop_gradient(peer_teacher_mlp), center, student_temp=student_temp,
              teacher_temp=teacher_temp, num_global_crops=num_global_crops, axis_name=axis_name)
  s, t = _ops.to_float32(student_search, lax.stop_gradient(peer_teacher_search))
  p_t = jax.nn.softmax(t / teacher_temp, axis=-1)
  ce = -jnp.sum(p_t * jax.nn.log_softmax(s / student_temp, axis=-1))
  return l_cm + _collectives.global_mean(ce, s.shape[0], axis_name)


# ---------------------------------------------------------------------------------------------------------------
# DreamTeacher: multi-level feature regression and attention transfer
# ---------------------------------------------------------------------------------------------------------------

def _as_levels(name: str, feats) -> list:
  levels = [feats] if hasattr(feats, "ndim") else list(feats)
  if not levels:
    raise ValueError(f"{name} must be a non-empty list of [b, h, w, c] feature maps; got an empty list.")
  for k, x in enumerate(levels):
    _checks.check_array(f"{name}[{k}]", x, ndim=4, shape_doc="[b, h, w, c]")
  return levels


def _check_level_pairs(student, teacher, *, same_channels: bool):
  s_levels, t_levels = _as_levels("student_feats", student), _as_levels("teacher_feats", teacher)
  if len(s_levels) != len(t_levels):
    raise ValueError(f"student_feats and teacher_feats must have the same number of levels; got "
                     f"{len(s_levels)} and {len(t_levels)}.")
  for k, (s, t) in enumerate(zip(s_levels, t_levels)):
    s_shape, t_shape = tuple(s.shape), tuple(t.shape)
    if (s_shape if same_channels else s_shape[:3]) != (t_shape if same_channels else t_shape[:3]):
      what = "the same shape" if same_channels else "the same [b, h, w]"
      raise ValueError(f"student_feats[{k}] and teacher_feats[{k}] must have {what}; got {s_shape} and {t_shape}.")
  return s_levels, t_levels


def _whiten(x: jax.Array, eps: float) -> jax.Array:
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=(1, 2, 3), keepdims=True)
  return (x - mean) * lax.rsqrt(var + eps)


def feature_regression(student_feats, teacher_feats, *, whiten: bool = True, eps: float = 1e-5,
                       axis_name: str | None = None) -> jax.Array:
  r"""DreamTeacher's feature-regression loss: MSE between regressed student maps and whitened teacher maps.

  For L levels of feature maps, the student maps f^r_l (the backbone's features after the feature regressor,
  e.g. `rl.models.distill.FeatureRegressor`) regress the generative teacher's maps f^g_l, whitened per image by
  a non-learnable LayerNorm W over [h, w, c] (no affine parameters; it evens out the magnitudes of the levels):

  .. math::
      L_{MSE} = \frac{1}{L} \sum_{l=1}^{L} \frac{1}{B\, h_l w_l c_l} \sum_{i=1}^{B}
                \big\| f^r_{l,i} - W(f^g_{l,i}) \big\|_2^2 .

  The teacher is frozen: `jax.lax.stop_gradient` is applied to `teacher_feats` here. The paper's regressor is a
  top-down FPN-like module over the backbone levels; the per-level 1x1 regressor in `rl.models.distill` is a
  simplification, and the generative teacher itself is the caller's. The paper adds `attention_transfer` with a
  weight lambda_AT: L_feat = L_MSE + lambda_AT L_AT.

  Args:
    student_feats: a [b, h, w, c] map or a list of L maps [b, h_l, w_l, c_l] (regressor outputs).
    teacher_feats: the teacher maps, same number of levels and the same shapes.
    whiten: apply W to the teacher maps (the paper); False compares raw maps.
    eps: the LayerNorm epsilon > 0 (PyTorch's default 1e-5).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard (whitening is per image, means are global).

  Returns:
    The scalar loss averaged over levels (float32 for float32/bfloat16 input).

  Example:
    >>> t = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    >>> w = (t - t.mean(axis=(1, 2, 3), keepdims=True)) / t.std(axis=(1, 2, 3), keepdims=True)
    >>> bool(losses.distillation.feature_regression([w], [t]) < 1e-4)
    True

  Li, Ling, Kar, Acuna, Kim, Kreis, Torralba & Fidler, "DreamTeacher: Pretraining Image Backbones with Deep
  Generative Models", ICCV 2023, https://arxiv.org/abs/2307.07487 (Sec. 3.1, feature distillation).
  """
  s_levels, t_levels = _check_level_pairs(student_feats, teacher_feats, same_channels=True)
  _checks.check_positive("eps", eps)
  total = 0.0
  for s, t in zip(s_levels, t_levels):
    s, t = _ops.to_float32(s, lax.stop_gradient(t))
    if whiten:
      t = _whiten(t, eps)
    per_image = jnp.mean(jnp.square(s - t), axis=(1, 2, 3))
    total = total + _collectives.global_mean(jnp.sum(per_image), s.shape[0], axis_name)
  return total / len(s_levels)


def _attention_map(x: jax.Array, p: float) -> jax.Array:
  q = jnp.sum(jnp.abs(x) ** p, axis=-1).reshape(x.shape[0], -1)  # [b, h * w]
  return l2_normalize(q)


def attention_transfer(student_feats, teacher_feats, *, p: float = 2.0,
                       axis_name: str | None = None) -> jax.Array:
  r"""Activation-based attention transfer (AT): match the normalised spatial attention maps of two networks.

  The attention map of a [h, w, c] activation A is Q = sum_c |A_c|^p flattened to h w entries; with
  q = Q / ||Q||_2 per image:

  .. math::
      L_{AT} = \frac{1}{L} \sum_{l=1}^{L} \frac{1}{B} \sum_{i=1}^{B} \big\| q^S_{l,i} - q^T_{l,i} \big\|_2 ,

  eq. (2) of Zagoruyko & Komodakis (their code uses the mean of the squared difference instead, with a larger
  weight). Student and teacher maps need the same [b, h, w] but not the same number of channels. The teacher is
  frozen: `jax.lax.stop_gradient` is applied to `teacher_feats` here. DreamTeacher adds this term to
  `feature_regression`.

  Args:
    student_feats: a [b, h, w, c] map or a list of L maps [b, h_l, w_l, c_l].
    teacher_feats: the teacher maps [b, h_l, w_l, c'_l], same number of levels.
    p: the exponent p > 0 of the attention map (2 in both papers).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar loss averaged over levels (float32 for float32/bfloat16 input).

  Example:
    >>> x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    >>> losses.distillation.attention_transfer([x], [2.0 * x])
    Array(0., dtype=float32)

  Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of Convolutional Neural
  Networks via Attention Transfer", ICLR 2017, https://arxiv.org/abs/1612.03928; used by Li et al.,
  "DreamTeacher: Pretraining Image Backbones with Deep Generative Models", ICCV 2023,
  https://arxiv.org/abs/2307.07487.
  """
  s_levels, t_levels = _check_level_pairs(student_feats, teacher_feats, same_channels=False)
  _checks.check_positive("p", p)
  total = 0.0
  for s, t in zip(s_levels, t_levels):
    s, t = _ops.to_float32(s, lax.stop_gradient(t))
    sq = jnp.sum(jnp.square(_attention_map(s, p) - _attention_map(t, p)), axis=-1)
    # sqrt has an infinite slope at 0: take it only where the maps differ, so equal maps give a zero gradient.
    positive = sq > 0
    dist = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    total = total + _collectives.global_mean(jnp.sum(dist), s.shape[0], axis_name)
  return total / len(s_levels)
