"""Prototype-based federated learning: FedSA's semantic anchors.

FedSA gives every class a fixed-size "semantic anchor" kept by the server (random at the start, then an EMA of the
clients' class prototypes) and trains each client's feature extractor and classifier against the anchors:

- `fedsa_margin_contrastive`: features pulled to their class anchor and pushed from the others, with a margin added
  to the distance to the own anchor (the anchor-based margin-enhanced contrastive term, RMCL);
- `fedsa_loss`: the client's anchor terms together: that term, an MSE of the features to their anchors, and the
  classifier calibration (the classifier must label every anchor with its class);
- `fedsa_prototypes`, `fedsa_class_gap`, `fedsa_anchor_update`: the class means a client uploads, the margin (mean
  distance to the nearest other class), and the server's EMA update of the anchors.

The paper's method section was not in our stored copies (they gave the abstract and introduction), so everything
here follows the authors' released code (github.com/lokinko/FedSA, `system/flcore/clients/clientsa.py` and
`system/flcore/servers/serversa.py`); each docstring names the function it transcribes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def _check_features_labels_anchors(features, labels, anchors) -> tuple[int, int, int]:
  _checks.check_array("features", features, ndim=2, shape_doc="[b, d]")
  b, d = features.shape
  _checks.check_labels("labels", labels, b)
  _checks.check_array("anchors", anchors, ndim=2, shape_doc=f"[num_classes, {d}]")
  if anchors.shape[1] != d:
    raise ValueError(f"anchors must have shape [num_classes, {d}] (the feature size d of features, [b, d]); got "
                     f"shape {tuple(anchors.shape)}.")
  return b, d, anchors.shape[0]


def _pairwise_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """Euclidean distances [n, m], as the code's sqrt(|x|^2 - 2 x.y + |y|^2), clamped at 0 with a zero gradient there.

  The released code takes the square root of the expansion directly, which is NaN when rounding makes it
  negative (a feature on its anchor); the clamp gives 0 there instead.
  """
  sq = jnp.sum(x * x, axis=1)[:, None] - 2.0 * x @ y.T + jnp.sum(y * y, axis=1)[None, :]
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def fedsa_margin_contrastive(features: jax.Array, labels: jax.Array, anchors: jax.Array, margin, *,
                             axis_name: str | None = None) -> jax.Array:
  r"""FedSA's anchor-based margin-enhanced contrastive term (RMCL): a softmax over negative anchor distances.

  With :math:`d_{ic} = \lVert z_i - a_c \rVert_2` the distance of feature i to the anchor of class c and the
  margin m added to the distance to the own class :math:`y_i`,

  .. math::
      L = \frac{1}{B} \sum_{i=1}^{B} \Big[ d_{i y_i} + m
          + \log \sum_{c=1}^{C} e^{-(d_{ic} + m\,[c = y_i])} \Big],

  the cross-entropy of the logits :math:`-(d_{ic} + m [c = y_i])` over the GLOBAL batch (`psum` under
  `axis_name`). The margin makes the own anchor count as m farther than it is, so the loss keeps pulling until
  the feature is m closer to its anchor than to any other.

  Source: after the authors' code, `clientSA.cal_mcl_loss` (github.com/lokinko/FedSA,
  system/flcore/clients/clientsa.py); the code's margin is the per-round gap `max(local_gap, global_gap)`
  (`fedsa_class_gap` of the client's last prototypes and of the anchors). The square root is clamped at 0 (the
  code's is NaN when rounding makes d^2 negative).

  Args:
    features: [b, d] features of the client's feature extractor (not normalised).
    labels: [b] integer class labels in [0, num_classes).
    anchors: [num_classes, d] the server's semantic anchors (held constant by FedSA: pass stop-gradient values).
    margin: the margin m >= 0 (a number or a traced scalar), e.g. `fedsa_class_gap` of the anchors.
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map` or `jax.pmap`,
      where `features, labels` are this device's shard (anchors replicated) and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> z = jnp.array([[0.0, 0.0], [3.0, 0.0]])
    >>> a = jnp.array([[0.0, 0.0], [3.0, 0.0]])  # every feature on its anchor, the other anchor 3 away
    >>> round(float(fedsa_margin_contrastive(z, jnp.array([0, 1]), a, 3.0)), 4)  # margin 3: a tie, log 2
    0.6931

  Zhou et al., "FedSA: A Unified Representation Learning via Semantic Anchors for Prototype-based Federated
  Learning", AAAI 2025, https://arxiv.org/abs/2501.05496; code github.com/lokinko/FedSA.
  """
  _check_features_labels_anchors(features, labels, anchors)
  _checks.check_in_range("margin", margin, 0.0, float("inf"))
  b = features.shape[0]
  z, a = _ops.to_float32(features, anchors)
  dist = _pairwise_distances(z, a)  # [b, C]
  onehot = jax.nn.one_hot(labels, a.shape[0], dtype=z.dtype)
  logits = -(dist + margin * onehot)
  per_example = jax.nn.logsumexp(logits, axis=1) - jnp.sum(logits * onehot, axis=1)
  return _collectives.global_mean(jnp.sum(per_example), b, axis_name)


def fedsa_loss(features: jax.Array, labels: jax.Array, anchors: jax.Array, anchor_logits: jax.Array, margin, *,
               regularization_weight: float = 10.0, contrastive_weight: float = 1.0,
               calibration_weight: float = 1.0, return_terms: bool = False,
               axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""FedSA's anchor terms of a client's loss: regularisation, margin-enhanced contrast and classifier calibration.

  With anchors :math:`a_c`, the classifier's logits :math:`h(a_c)` on the anchors (`anchor_logits`), C classes
  and features of dimension D,

  .. math::
      L = \lambda\,\frac{1}{B D}\sum_{i} \lVert z_i - a_{y_i} \rVert^2
          + \mu\, L_{\mathrm{RMCL}}(z, y; a, m)
          + \gamma\,\frac{1}{C}\sum_{c=1}^{C} \mathrm{CE}\big(h(a_c), c\big),

  with :math:`L_{\mathrm{RMCL}}` of `fedsa_margin_contrastive`. The first two terms correct the feature extractor
  (intra-class compactness, inter-class separation), the third the classifier (every client's decision boundaries
  must put the shared anchors in their classes). The client's full loss adds its supervised cross-entropy
  CE(h(z_i), y_i) (e.g. `rl.losses.pretext_cross_entropy(logits, labels)`), which is not included here.

  Source: after the authors' code, `clientSA.train` and `clientSA.cal_anchors_loss` (github.com/lokinko/FedSA,
  system/flcore/clients/clientsa.py: `nn.MSELoss` of the features to `semantic_anchors[y]` times `lamda`, the MCL
  term times `margin_contrastive`, the anchors' cross-entropy times `classifier_calibration`); the defaults
  lambda = 10, mu = gamma = 1 are the released scripts' (`-lam 10 -mcl 1.0 -cc 1.0`).

  Args:
    features: [b, d] features of the client's feature extractor.
    labels: [b] integer class labels.
    anchors: [num_classes, d] the semantic anchors (constant on the client: pass stop-gradient values).
    anchor_logits: [num_classes, num_classes] the client's classifier applied to the anchors (row c: h(a_c)); its
      gradient reaches the classifier only.
    margin: the RMCL margin m (see `fedsa_margin_contrastive`, `fedsa_class_gap`).
    regularization_weight: lambda, the weight of the anchor MSE.
    contrastive_weight: mu, the weight of the margin-enhanced contrastive term.
    calibration_weight: gamma, the weight of the classifier calibration.
    return_terms: also return the unweighted terms.
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map` or `jax.pmap`,
      where `features, labels` are this device's shard (`anchors`, `anchor_logits` replicated); the MSE and RMCL
      means run over every device.

  Returns:
    The scalar loss, or `(loss, {"regularization", "contrastive", "calibration"})` with `return_terms`.

  Example:
    >>> z = jnp.array([[0.0, 0.0], [3.0, 0.0]])
    >>> a = jnp.array([[0.0, 0.0], [3.0, 0.0]])
    >>> loss, terms = fedsa_loss(z, jnp.array([0, 1]), a, 100.0 * jnp.eye(2), 3.0, return_terms=True)
    >>> {k: round(float(v), 4) for k, v in terms.items()}
    {'regularization': 0.0, 'contrastive': 0.6931, 'calibration': 0.0}

  Zhou et al., "FedSA: A Unified Representation Learning via Semantic Anchors for Prototype-based Federated
  Learning", AAAI 2025, https://arxiv.org/abs/2501.05496; code github.com/lokinko/FedSA.
  """
  b, d, num_classes = _check_features_labels_anchors(features, labels, anchors)
  _checks.check_array("anchor_logits", anchor_logits, ndim=2, shape_doc=f"[{num_classes}, {num_classes}]")
  if tuple(anchor_logits.shape) != (num_classes, num_classes):
    raise ValueError(f"anchor_logits must have shape [{num_classes}, {num_classes}] (the classifier's logits on "
                     f"each of the num_classes = {num_classes} anchors); got shape {tuple(anchor_logits.shape)}.")
  z, a, h = _ops.to_float32(features, anchors, anchor_logits)
  regularization = _collectives.global_mean(jnp.sum(jnp.square(z - a[labels])), b * d, axis_name)
  contrastive = fedsa_margin_contrastive(z, labels, a, margin, axis_name=axis_name)
  calibration = jnp.mean(jax.nn.logsumexp(h, axis=1) - jnp.diagonal(h))
  loss = (regularization_weight * regularization + contrastive_weight * contrastive
          + calibration_weight * calibration)
  if return_terms:
    return loss, {"regularization": regularization, "contrastive": contrastive, "calibration": calibration}
  return loss


def fedsa_prototypes(features: jax.Array, labels: jax.Array, num_classes: int, *,
                     axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  r"""A client's class prototypes: the mean feature of each class, and the number of examples behind it.

  .. math::
      p_c = \frac{1}{n_c} \sum_{i : y_i = c} z_i , \qquad n_c = \lvert\{i : y_i = c\}\rvert,

  over the GLOBAL batch (`psum` under `axis_name`); a class without examples gets p_c = 0 and n_c = 0. The features
  are stop-gradient (prototypes are uploaded, not trained through). The server averages the clients' prototypes of
  each class with equal weight per client (`proto_aggregation`), then calls `fedsa_anchor_update`.

  Source: `agg_func` in system/flcore/clients/clientsa.py of github.com/lokinko/FedSA (the code accumulates the
  features of every local step of the round; sum `p_c n_c` and `n_c` over the round's batches for that).

  Args:
    features: [b, d] features.
    labels: [b] integer class labels in [0, num_classes).
    num_classes: the number of classes C.
    axis_name: None, or the mapped axis: the sums then run over every device.

  Returns:
    `(prototypes [num_classes, d], counts [num_classes])` (float32; the same on every device).

  Example:
    >>> p, n = fedsa_prototypes(jnp.array([[1.0, 0.0], [3.0, 2.0]]), jnp.array([1, 1]), 3)
    >>> p.tolist(), n.tolist()
    ([[0.0, 0.0], [2.0, 1.0], [0.0, 0.0]], [0.0, 2.0, 0.0])

  Zhou et al., "FedSA: A Unified Representation Learning via Semantic Anchors for Prototype-based Federated
  Learning", AAAI 2025, https://arxiv.org/abs/2501.05496; code github.com/lokinko/FedSA.
  """
  _checks.check_array("features", features, ndim=2, shape_doc="[b, d]")
  _checks.check_labels("labels", labels, features.shape[0])
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int; got {num_classes!r}.")
  z = jax.lax.stop_gradient(_ops.to_float32(features))
  onehot = jax.nn.one_hot(labels, num_classes, dtype=z.dtype)  # [b, C]
  sums = _collectives.psum(onehot.T @ z, axis_name)
  counts = _collectives.psum(jnp.sum(onehot, axis=0), axis_name)
  return sums / jnp.maximum(counts, 1.0)[:, None], counts


def fedsa_class_gap(prototypes: jax.Array, *, present: jax.Array | None = None) -> jax.Array:
  r"""FedSA's margin: the mean over classes of the distance from a class's prototype to the nearest other one.

  .. math::
      g = \frac{1}{\lvert P \rvert} \sum_{c \in P} \min_{c' \in P, c' \neq c} \lVert p_c - p_{c'} \rVert_2 ,

  over the present classes P (all by default); with fewer than two present classes the gap is :math:`-\infty`, as in
  the code, so that `max(local_gap, global_gap)` falls back on the other. A client's margin for a round is
  `max(fedsa_class_gap(its last prototypes, present=counts > 0), fedsa_class_gap(anchors))` (0 for the local gap
  before its first round, as the code initialises it).

  Source: `clientSA.cal_local_gap` / `cal_global_gap` (system/flcore/clients/clientsa.py of
  github.com/lokinko/FedSA).

  Args:
    prototypes: [num_classes, d] prototypes or anchors.
    present: optional [num_classes] boolean mask of the classes to use.

  Returns:
    The scalar gap (float32).

  Example:
    >>> round(float(fedsa_class_gap(jnp.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]))), 4)  # (1 + 3 sqrt(2) + 1) / 3
    2.0809

  Zhou et al., "FedSA: A Unified Representation Learning via Semantic Anchors for Prototype-based Federated
  Learning", AAAI 2025, https://arxiv.org/abs/2501.05496; code github.com/lokinko/FedSA.
  """
  _checks.check_array("prototypes", prototypes, ndim=2, shape_doc="[num_classes, d]")
  c = prototypes.shape[0]
  if present is None:
    present = jnp.ones((c,), bool)
  elif not hasattr(present, "shape") or tuple(present.shape) != (c,):
    got = f"shape {tuple(present.shape)}" if hasattr(present, "shape") else type(present).__name__
    raise ValueError(f"present must have shape [{c}] (one flag per row of prototypes, [{c}, d]); got {got}.")
  present = jnp.asarray(present, bool)
  p = _ops.to_float32(prototypes)
  dist = _pairwise_distances(p, p)
  valid = present[None, :] & ~jnp.eye(c, dtype=bool)
  nearest = jnp.min(jnp.where(valid, dist, jnp.inf), axis=1)
  count = jnp.sum(present)
  gap = jnp.sum(jnp.where(present, nearest, 0.0)) / jnp.maximum(count, 1)
  return jnp.where(count > 1, gap, -jnp.inf)


def fedsa_anchor_update(anchors: jax.Array, prototypes: jax.Array, present: jax.Array, *,
                        momentum: float = 0.9999) -> jax.Array:
  r"""The server's EMA update of the semantic anchors from the aggregated global prototypes.

  .. math::
      a_c \leftarrow \beta\, a_c + (1 - \beta)\, p_c \quad \text{for every class c with a prototype this round},

  the other anchors unchanged; stop-gradient (the anchors are state, not parameters).

  Source: `FedSA.update_semantic_anchors` (system/flcore/servers/serversa.py of github.com/lokinko/FedSA, beta =
  0.9999). The initial anchors are the code's: standard normal vectors passed once through an untrained
  Linear-BatchNorm-ReLU x 2 projector (`FedSA.__init__`); build them with your own model.

  Args:
    anchors: [num_classes, d] current anchors.
    prototypes: [num_classes, d] the global prototypes (the clients' class means averaged per class).
    present: [num_classes] boolean mask: the classes some client uploaded a prototype for.
    momentum: beta.

  Returns:
    The new anchors [num_classes, d].

  Example:
    >>> a = fedsa_anchor_update(jnp.ones((2, 2)), jnp.zeros((2, 2)), jnp.array([True, False]), momentum=0.5)
    >>> a.tolist()
    [[0.5, 0.5], [1.0, 1.0]]

  Zhou et al., "FedSA: A Unified Representation Learning via Semantic Anchors for Prototype-based Federated
  Learning", AAAI 2025, https://arxiv.org/abs/2501.05496; code github.com/lokinko/FedSA.
  """
  _checks.check_array("anchors", anchors, ndim=2, shape_doc="[num_classes, d]")
  _checks.check_same_shape(anchors=anchors, prototypes=prototypes)
  c = anchors.shape[0]
  if not hasattr(present, "shape") or tuple(present.shape) != (c,):
    got = f"shape {tuple(present.shape)}" if hasattr(present, "shape") else type(present).__name__
    raise ValueError(f"present must have shape [{c}] (one flag per anchor of anchors, [{c}, d]); got {got}.")
  _checks.check_in_range("momentum", momentum, 0.0, 1.0)
  new = momentum * anchors + (1.0 - momentum) * prototypes.astype(anchors.dtype)
  return jax.lax.stop_gradient(jnp.where(jnp.asarray(present, bool)[:, None], new, anchors))


__all__ = ["fedsa_margin_contrastive", "fedsa_loss", "fedsa_prototypes", "fedsa_class_gap", "fedsa_anchor_update"]
