"""Neighbourhood objectives: the soft nearest neighbour loss and its annealed temperature."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize

_DISTANCES = ("squared_euclidean", "cosine")


def _pairwise_distance(x: jax.Array, keys: jax.Array, distance: str) -> jax.Array:
  if distance == "cosine":
    return 1.0 - l2_normalize(x) @ l2_normalize(keys).T
  sq = (jnp.sum(jnp.square(x), axis=1)[:, None] + jnp.sum(jnp.square(keys), axis=1)[None, :]
        - 2.0 * (x @ keys.T))
  # The expansion can round below 0 for (near-)duplicates; a distance is never negative.
  return jnp.maximum(sq, 0.0)


def soft_nearest_neighbor(x: jax.Array, labels: jax.Array, *, temperature=1.0, distance: str = "squared_euclidean",
                          axis_name: str | None = None) -> jax.Array:
  r"""Soft nearest neighbour loss: how entangled the classes are in a representation, at temperature T.

  With :math:`d_{ij}` the squared Euclidean distance between rows i and j of the GLOBAL batch of B points
  (all devices), each anchor i with at least one other point of its class contributes

  .. math::
      \ell_i = -\log \frac{\sum_{j \ne i,\, y_j = y_i} \exp(-d_{ij} / T)}{\sum_{k \ne i} \exp(-d_{ik} / T)},
      \qquad L = \frac{1}{|V|} \sum_{i \in V} \ell_i ,

  where V is the set of anchors that have a same-label neighbour. An anchor alone in its class would give
  :math:`-\log 0 = \infty`; such anchors are EXCLUDED and the mean runs over the |V| valid anchors of the global
  batch (0 when there is none). Both sums are log-sum-exps in float32 (float64 stays float64).

  The loss is differentiable in `temperature`, which may be a traced value: Frosst et al. optimise T to
  minimise the loss at every step (the caller differentiates with respect to T, or its log); Agarap anneals it
  with `snn_annealing_schedule`. `distance="cosine"` uses 1 - cos(x_i, x_j) instead, as in Agarap's code.
  Minimising the loss disentangles the classes (a supervised objective); Frosst et al. also MAXIMISE it on
  hidden layers as a regulariser: the sign is the caller's.

  Args:
    x: [b, d] representations of this device's examples (anchors); all devices' rows are the candidates.
    labels: [b] integer class labels of `x`.
    temperature: T > 0, a float or a traced scalar (1, the start of the annealing schedule).
    distance: "squared_euclidean" (the paper's) or "cosine".
    axis_name: None when `x` is the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where `x, labels` are this device's shard: anchors are local, candidates are gathered from every device.

  Returns:
    The scalar mean over valid anchors of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> x = jnp.array([[0.0], [0.1], [5.0], [5.1]])
    >>> bool(soft_nearest_neighbor(x, jnp.array([0, 0, 1, 1])) < soft_nearest_neighbor(x, jnp.array([0, 1, 0, 1])))
    True

  Frosst, Papernot & Hinton, "Analyzing and Improving Representations with the Soft Nearest Neighbor Loss",
  ICML 2019, https://arxiv.org/abs/1902.01889 (Def. 1, eq. 1).
  """
  _checks.check_array("x", x, ndim=2, shape_doc="[b, d]")
  _checks.check_labels("labels", labels, x.shape[0])
  _checks.check_positive("temperature", temperature)
  if distance not in _DISTANCES:
    raise ValueError(f"distance must be one of {_DISTANCES}; got {distance!r}.")
  b = x.shape[0]
  u = _ops.to_float32(x)
  keys = _collectives.all_gather(u, axis_name)  # [B, d] candidates
  key_labels = _collectives.all_gather(labels, axis_name)
  logits = -_pairwise_distance(u, keys, distance) / temperature  # [b, B]
  rows = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  not_self = jnp.arange(keys.shape[0])[None, :] != rows[:, None]
  same = not_self & (key_labels[None, :] == labels[:, None])
  valid = jnp.any(same, axis=1)
  # Rows without a same-label neighbour get a finite dummy row: the where below drops them, and a
  # log-sum-exp over only -inf entries would send NaN back through that where.
  num = jnp.where(valid[:, None], jnp.where(same, logits, -jnp.inf), 0.0)
  den = jnp.where(valid[:, None], jnp.where(not_self, logits, -jnp.inf), 0.0)
  per_anchor = jnp.where(valid, jax.nn.logsumexp(den, axis=1) - jax.nn.logsumexp(num, axis=1), 0.0)
  count = _collectives.psum(jnp.sum(valid.astype(per_anchor.dtype)), axis_name)
  return _collectives.psum(jnp.sum(per_anchor), axis_name) / jnp.maximum(count, 1.0)


def snn_annealing_schedule(step, *, initial_temperature: float = 1.0, gamma: float = 0.55) -> jax.Array:
  r"""The annealed temperature of the soft nearest neighbour loss at a training step (or epoch).

  .. math::
      T(t) = \frac{T_0}{(1 + t)^{\gamma}}, \qquad T_0 = 1,\ \gamma = 0.55 ,

  the decay that Agarap's code applies per EPOCH (`1.0 / ((1.0 + epoch) ** 0.55)`), the schedule of the
  gradient-noise variance of Neelakantan et al. (2015). The paper's own text was not available to us: the form
  and constants are read from the author's public code; `initial_temperature` and `gamma` make it
  configurable, and whether t counts epochs or steps is the caller's choice. Pure and jit-able (`step` may
  be traced); pass the result as `temperature` to `soft_nearest_neighbor`.

  Args:
    step: t >= 0, an int or a traced integer/float scalar.
    initial_temperature: T_0 > 0, the temperature at t = 0.
    gamma: the decay exponent gamma >= 0.

  Returns:
    The float32 scalar temperature T(t).

  Example:
    >>> float(snn_annealing_schedule(0)), round(float(snn_annealing_schedule(3)), 4)  # 4 ** -0.55
    (1.0, 0.4665)

  Agarap, "Text Classification and Clustering with Annealing Soft Nearest Neighbor Loss", 2021,
  https://arxiv.org/abs/2107.14597 (the loss itself: Frosst et al., https://arxiv.org/abs/1902.01889).
  """
  _checks.check_positive("initial_temperature", initial_temperature)
  _checks.check_in_range("gamma", gamma, 0.0, float("inf"))
  if isinstance(step, (int, float)) and step < 0:
    raise ValueError(f"step must be >= 0; got {step}.")
  t = jnp.asarray(step, jnp.float32)
  return initial_temperature / jnp.power(1.0 + t, gamma)
