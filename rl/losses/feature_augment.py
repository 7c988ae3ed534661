"""Augmentation in feature space: new positives or perturbed features built from embeddings, not from images.

`hallucinate`, `semantic_adversarial` and `scfs_feature_search` are not losses but differentiable (or explicitly
constant) transformations of a batch of embeddings that a method feeds to a loss of `rl.losses` (e.g. `nt_xent`,
`moco`, a linear-probe cross-entropy, `scfs_loss`). Each returns this device's rows; under `axis_name` they equal
the matching rows of the single-device output on the global batch. `scfs_loss` is SCFS's objective on the
searched features.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.clustering import dino
from rl.losses.hypersphere import l2_normalize


def _global_rows(b: int, axis_name: str | None) -> jax.Array:
  """Global batch index of each local row."""
  return jnp.arange(b) + _collectives.axis_index(axis_name) * b


def hallucinate(key: jax.Array, z1: jax.Array, z2: jax.Array, *, max_ratio: float = 0.1,
                smoother: Callable[[jax.Array], jax.Array] | None = None,
                axis_name: str | None = None) -> jax.Array:
  r"""Hallucinator: an extra positive for each pair by asymmetric feature extrapolation, then optional smoothing.

  For the pair (z1_i, z2_i) of views of example i, the positive is pushed away from its partner by a random ratio:

  .. math::
      \lambda_i \sim U(0, \lambda_{\max}), \qquad h_i = z^1_i + \lambda_i (z^1_i - z^2_i)
                                                   = (1 + \lambda_i) z^1_i - \lambda_i z^2_i ,

  and the paper's non-linear smoothing is a small learned MLP g applied to the concatenation,
  :math:`\tilde h_i = g([z^1_i; h_i])` (`smoother`). The hallucinated sample is used as an extra positive of the
  key of example i (MoCo, SimCLR) or as an extra prediction (SimSiam), in addition to z1 itself.

  Everything is differentiable: gradients reach z1, z2 (and the smoother's parameters through the closure). In the
  authors' MoCo code z2 is the momentum key and is already constant; pass `jax.lax.stop_gradient(z2)` when it must
  not be trained. lambda_i comes from `jax.random.uniform(jax.random.fold_in(key, i))` with i the GLOBAL index of
  the example, so the draws do not depend on the number of devices. The authors' code draws ONE ratio per batch
  (`random.uniform(0, 0.1)`); here each example has its own ratio (same distribution, more variety); pass the
  same key every step only if you want the same ratios (normally: `fold_in(step_key, stream_id)`).

  Args:
    key: a `jax.random` key for the ratios (typed or raw uint32).
    z1: [b, d] embeddings to extrapolate from (the query / online view).
    z2: [b, d] embeddings of the other view; row i pairs with `z1[i]`.
    max_ratio: lambda_max >= 0 (0.1, the authors' code; 0 returns z1 before smoothing).
    smoother: optional callable [b, 2d] -> [b, d'] (e.g. `functools.partial(mlp.apply, params)`); the authors use
      a 3-layer MLP with ReLU (in 2d, hidden 2d, out d). None returns h itself.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard (only the global example index depends on it).

  Returns:
    [b, d] hallucinated embeddings h (or [b, d'] = smoother output), float32 for float32/bfloat16 input
    (float64 stays float64).

  Example:
    >>> z1 = jnp.array([[1.0, 0.0]]); z2 = jnp.array([[0.0, 1.0]])
    >>> h = hallucinate(jax.random.key(0), z1, z2, max_ratio=0.1)
    >>> lam = float(h[0, 0]) - 1.0  # h = (1 + lam) z1 - lam z2
    >>> bool(0.0 <= lam <= 0.1 and abs(float(h[0, 1]) + lam) < 1e-6)
    True

  Wu, Hobbs & Hovakimyan, "Hallucination Improves the Performance of Unsupervised Visual Representation Learning",
  ICCV 2023, https://arxiv.org/abs/2307.12168 (asymmetric feature extrapolation and non-linear hallucination);
  defaults from the authors' code (github.com/jingwu6/Hallucination-improves-the-performance-of-unsupervised-
  visual-representation-learning, models/generator.py).
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  _checks.check_in_range("max_ratio", max_ratio, 0.0, float("inf"))
  dtype = jnp.promote_types(jnp.promote_types(z1.dtype, z2.dtype), jnp.float32)
  rows = _global_rows(z1.shape[0], axis_name)
  lam = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (), jnp.float32, 0.0, 1.0))(rows)
  lam = (lam * max_ratio).astype(dtype)[:, None]
  z1, z2 = z1.astype(dtype), z2.astype(dtype)
  h = z1 + lam * (z1 - z2)
  if smoother is None:
    return h
  return smoother(jnp.concatenate([z1, h], axis=-1))


def semantic_adversarial(features: jax.Array, grads: jax.Array, *, epsilon: float = 0.8, temperature: float = 0.01,
                         axis_name: str | None = None) -> jax.Array:
  r"""SeA: perturb each feature along the adversarial direction projected onto the span of OTHER examples.

  With x_i the L2-normalised features and g_i the normalised loss gradient of example i (the adversarial
  direction), the direction is re-expressed with the features of the other examples of the GLOBAL batch, weighted
  by a sharp softmax of their agreement with g_i (a soft selection of a few examples, which keeps the perturbation
  in the semantic subspace they span), and added with size epsilon:

  .. math::
      p_{ij} = \frac{\exp(\hat g_i^\top x_j / \alpha)}{\sum_{k \ne i} \exp(\hat g_i^\top x_k / \alpha)}\ (j \ne i),
      \qquad a_i = \frac{\sum_{j \ne i} p_{ij} x_j}{\|\sum_{j \ne i} p_{ij} x_j\|}, \qquad
      \tilde x_i = \frac{x_i + \epsilon\, a_i}{\|x_i + \epsilon\, a_i\|} .

  The caller trains its classifier on x~ with the usual loss. `grads` is
  `jax.lax.stop_gradient(jax.grad(lambda f: head_loss(head_params, f, labels))(features))`: the gradient of the
  last-layer loss w.r.t. the (normalised) features, computed in a first pass with the current head. The direction
  a is a constant (stop-gradient), as an adversarial perturbation; gradients flow to `features` through x and the
  final normalisation only. Features of fixed backbones (the paper's setting) get no gradient anyway.

  Args:
    features: [b, d] last-layer features (normalised here, as the authors do before training the classifier).
    grads: [b, d] gradient of the loss w.r.t. the features (normalised here; treated as constant).
    epsilon: eta > 0, the size of the perturbation (0.8, the authors' code).
    temperature: alpha > 0 of the selection softmax (0.01, the authors' code).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the other examples come from every device.

  Returns:
    [b, d] unit-norm augmented features (float32 for float32/bfloat16 input), this device's rows.

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> g = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> out = semantic_adversarial(x, g, epsilon=1.0)  # row 0 moves towards x_1 = e2: (1, 1)/sqrt(2)
    >>> bool(jnp.allclose(out[0], jnp.array([1.0, 1.0]) / jnp.sqrt(2.0), atol=1e-6))
    True

  Qian, Xu & Hu, "SeA: Semantic Adversarial Augmentation for Last Layer Features from Unsupervised Representation
  Learning", ECCV 2024, https://arxiv.org/abs/2408.13351; the projection and defaults follow the authors' code
  (github.com/idstcv/SeA, main.py `get_adv`).
  """
  _checks.check_embeddings(features=features, grads=grads)
  _checks.check_positive("epsilon", epsilon)
  _checks.check_positive("temperature", temperature)
  b = features.shape[0]
  if b * _collectives.axis_size(axis_name) < 2:
    raise ValueError(f"features must hold at least 2 examples in the global batch (the direction is built from the "
                     f"other examples); got shape {tuple(features.shape)}.")
  x = l2_normalize(_ops.to_float32(features))
  g = l2_normalize(_ops.to_float32(jax.lax.stop_gradient(grads)))
  others = _collectives.all_gather(jax.lax.stop_gradient(x), axis_name)  # [B, d]
  logits = (g @ others.T) / temperature  # [b, B]
  is_self = jnp.arange(others.shape[0])[None, :] == _global_rows(b, axis_name)[:, None]
  p = jax.nn.softmax(jnp.where(is_self, -jnp.inf, logits), axis=1)
  direction = jax.lax.stop_gradient(l2_normalize(p @ others))
  return l2_normalize(x + epsilon * direction)


def scfs_feature_search(feature_maps: jax.Array, queries: jax.Array) -> jax.Array:
  r"""SCFS's feature search: re-weight a global view's feature map by its similarity to another crop's feature.

  For image i, crop c and position p of the feature map F_i of a global view (a layer of the momentum encoder),
  the query q_{ci} is the pooled feature of crop c of image i (a layer of the student on a local crop), and

  .. math::
      a_{cip} = \Big\langle \frac{F_{ip}}{\lVert F_{ip} \rVert}, \frac{q_{ci}}{\lVert q_{ci} \rVert} \Big\rangle,
      \qquad \tilde F_{cip} = a_{cip}\, F_{ip} ,

  so the searched feature keeps the regions of the global view that look like the crop: the "semantics-consistent"
  features whose projection (the teacher's layer head) the student's output on crop c must match (`scfs_loss`).
  The weights a are constants (computed without gradient, as the released code does); the gradient reaches F.

  Source: `TeacherWrapper.forward` in models/scfs.py of github.com/skyoux/scfs (the authors' code; the first
  global view's map of layers 2, 3 and 4 of a ResNet-50, queries from the student's pooled, normalised local-crop
  features). Our stored copies of the paper gave only its abstract and introduction.

  Args:
    feature_maps: [b, h, w, c] feature maps of the global view (NHWC).
    queries: [n * b, c] crop-major query features (row k * b + i is crop k of image i), e.g. the mean over the
      spatial axes of the student's maps on n local crops.

  Returns:
    [n * b, h, w, c] the searched feature maps, crop-major (float32 for float32/bfloat16 input).

  Example:
    >>> f = jnp.array([[[[1.0, 0.0], [0.0, 2.0]]]])  # one image, a 1 x 2 map: a red and a blue position
    >>> scfs_feature_search(f, jnp.array([[3.0, 0.0]]))[0].tolist()  # a red query keeps the red position
    [[[1.0, 0.0], [0.0, 0.0]]]

  Song, Zhang, Luo, Wang & Xie, "Semantics-Consistent Feature Search for Self-Supervised Visual Representation
  Learning", ICCV 2023, https://arxiv.org/abs/2212.06486.
  """
  _checks.check_array("feature_maps", feature_maps, ndim=4, shape_doc="[b, h, w, c]")
  b, h, w, c = feature_maps.shape
  _checks.check_array("queries", queries, ndim=2, shape_doc=f"[n * {b}, {c}]")
  if b == 0 or queries.shape[1] != c or queries.shape[0] % b or queries.shape[0] == 0:
    raise ValueError(f"queries must have shape [n * b, c] = [n * {b}, {c}] (crop-major, n >= 1, to match "
                     f"feature_maps of shape {tuple(feature_maps.shape)}); got shape {tuple(queries.shape)}.")
  n = queries.shape[0] // b
  f = _ops.to_float32(feature_maps)
  q = l2_normalize(_ops.to_float32(jax.lax.stop_gradient(queries))).reshape(n, b, c)
  weights = jax.lax.stop_gradient(jnp.einsum("ihwc,kic->kihw", l2_normalize(f), q))  # [n, b, h, w]
  return (weights[..., None] * f[None]).reshape(n * b, h, w, c)


def scfs_loss(student_global: jax.Array, teacher_global: jax.Array, center: jax.Array, student_search: jax.Array,
              teacher_search: jax.Array, *, student_temp: float = 0.1, teacher_temp: float = 0.04,
              return_terms: bool = False,
              axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""SCFS's loss at one backbone layer: cross-view self-distillation plus the feature-search term.

  With teacher probabilities :math:`P_t(x) = \operatorname{softmax}(x / \tau_t)` (no gradient) and student
  log-probabilities :math:`\log P_s(x) = \operatorname{log\_softmax}(x / \tau_s)` of the layer heads' outputs:

  .. math::
      L_{\text{global}} = \tfrac{1}{2} \big[ H(P_t(t_1 - c), P_s(s_2)) + H(P_t(t_2 - c), P_s(s_1)) \big],
      \qquad L_{\text{search}} = \frac{1}{n} \sum_{k=1}^{n} H\big(P_t(\tilde t_k), P_s(\tilde s_k)\big),

  .. math::
      L = \tfrac{1}{2} (L_{\text{global}} + L_{\text{search}}) ,

  H the cross-entropy averaged over the global batch, t_g / s_g the teacher / student head outputs on the two
  global views (the teacher centred by c, DINO-style; `dino` with two crops), :math:`\tilde t_k` the teacher
  head's output on the searched feature of local crop k (`scfs_feature_search`, NOT centred) and
  :math:`\tilde s_k` the student head's output on local crop k. SCFS sums this over layers 2, 3 and 4 of a
  ResNet-50 (each with its own head and centre) and adds DINO's multi-crop loss on the final head (`dino`).

  Caller's duties: the teacher is an EMA of the student; each layer keeps its own centre, updated with
  `dino_center_update(center, teacher_global)` (momentum 0.9); the heads (SCFS's `DINOShallowHead`: a residual
  bottleneck, pooling and an MLP to 256 L2-normalised outputs) are the user's.

  Source: `DINOShallowLoss.forward` and `train_one_epoch` in models/scfs.py and main_scfs.py of
  github.com/skyoux/scfs (the authors' code; temperatures 0.1 and 0.04, `(loss_g + loss_l) * 0.5` per layer).
  Our stored copies of the paper gave only its abstract and introduction, so its equations could not be compared.

  Args:
    student_global: [2 * b, K] student layer-head outputs on the two global views, crop-major.
    teacher_global: [2 * b, K] teacher layer-head outputs on the same two views, crop-major.
    center: [K] the layer's running centre of `teacher_global`.
    student_search: [n * b, K] student layer-head outputs on the n local crops, crop-major.
    teacher_search: [n * b, K] teacher layer-head outputs on the searched features, in the same order.
    student_temp: tau_s > 0 (0.1).
    teacher_temp: tau_t > 0 (0.04).
    return_terms: also return {"global": ..., "search": ...}.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's crop-major shard.

  Returns:
    The scalar loss (float32), the same on every device; with `return_terms`, `(loss, terms)`.

  Example:
    >>> g, s = jnp.array([[5.0, 0.0]] * 2), jnp.array([[0.0, 5.0]] * 3)
    >>> good = scfs_loss(g, g, jnp.zeros(2), s, s)
    >>> bool(good < scfs_loss(g, g, jnp.zeros(2), s[:, ::-1], s))
    True

  Song, Zhang, Luo, Wang & Xie, "Semantics-Consistent Feature Search for Self-Supervised Visual Representation
  Learning", ICCV 2023, https://arxiv.org/abs/2212.06486.
  """
  _checks.check_array("student_global", student_global, ndim=2, shape_doc="[2 * b, K]")
  _checks.check_array("teacher_global", teacher_global, ndim=2, shape_doc="[2 * b, K]")
  _checks.check_same_shape(student_global=student_global, teacher_global=teacher_global)
  if student_global.shape[0] % 2 or student_global.shape[0] == 0:
    raise ValueError(f"student_global must have shape [2 * b, K] (two global views, crop-major); got shape "
                     f"{tuple(student_global.shape)}.")
  b, k = student_global.shape[0] // 2, student_global.shape[1]
  _checks.check_array("student_search", student_search, ndim=2, shape_doc=f"[n * {b}, {k}]")
  _checks.check_array("teacher_search", teacher_search, ndim=2, shape_doc=f"[n * {b}, {k}]")
  _checks.check_same_shape(student_search=student_search, teacher_search=teacher_search)
  if student_search.shape[1] != k or student_search.shape[0] % b or student_search.shape[0] == 0:
    raise ValueError(f"student_search must have shape [n * b, K] = [n * {b}, {k}] (n >= 1 crops of the b images of "
                     f"student_global, shape {tuple(student_global.shape)}); got shape "
                     f"{tuple(student_search.shape)}.")
  _checks.check_positive("student_temp", student_temp)
  _checks.check_positive("teacher_temp", teacher_temp)
  global_term = dino(student_global, teacher_global, center, student_temp=student_temp, teacher_temp=teacher_temp,
                     num_global_crops=2, axis_name=axis_name)
  s, t = _ops.to_float32(student_search, teacher_search)
  p_t = jax.lax.stop_gradient(jax.nn.softmax(t / teacher_temp, axis=-1))
  cross = -jnp.sum(p_t * jax.nn.log_softmax(s / student_temp, axis=-1))
  search_term = _collectives.global_mean(cross, s.shape[0], axis_name)
  loss = 0.5 * (global_term + search_term)
  return (loss, {"global": global_term, "search": search_term}) if return_terms else loss
