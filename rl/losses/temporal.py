"""Temporal and transition objectives for reinforcement learning: action-conditioned contrastive prediction of the
future (TACO, Premier-TACO), future-latent prediction with feature decorrelation (SimTPR), and the contrastive
estimation of low-rank transition features (Contrastive UCB).

The networks (state encoder, action encoder, the projection g(z_t, u_t) of a state and an action sequence, the
predictor) belong to the caller; these losses take their outputs. Batches of trajectories are flattened by the
caller to [b, ...] rows (one row per (t, t + K) pair).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.contrastive import info_nce
from rl.losses.redundancy import barlow_twins, byol
from rl.losses.hypersphere import l2_normalize


def _check_bilinear(w, d: int) -> None:
  if w is None:
    return
  _checks.check_array("w", w, ndim=2, shape_doc=f"[{d}, {d}]")
  if tuple(w.shape) != (d, d):
    raise ValueError(f"w must have shape [{d}, {d}] (the embedding size of query); got shape {tuple(w.shape)}.")


def _score(query: jax.Array, keys: jax.Array, w: jax.Array | None) -> jax.Array:
  """query_i^T W keys_j for every pair (W = I when None): [b, n]."""
  if w is not None:
    keys = keys @ _ops.to_float32(w).T
  return query @ keys.T


def taco(query: jax.Array, future: jax.Array, *, w: jax.Array | None = None, temperature: float = 1.0,
         normalize: bool = False, axis_name: str | None = None) -> jax.Array:
  r"""TACO: InfoNCE between (state, action sequence) and the state K steps later, the other futures as negatives.

  The caller's projection combines the state embedding z_t and the latent action sequence u_t..u_{t+K-1}:
  :math:`q_i = g([z_t; u_t; \dots; u_{t+K-1}])` (an MLP on the concatenation in the paper), and the future
  :math:`f_i = z_{t+K}`. The score is the bilinear form of CURL, and the other B-1 futures of the GLOBAL batch are
  the negatives:

  .. math::
      s_{ij} = q_i^\top W f_j / \tau, \qquad
      \ell_i = -s_{ii} + \log \sum_{j=1}^{B} e^{s_{ij}}, \qquad L = \frac{1}{B} \sum_{i=1}^{B} \ell_i .

  The function takes the already-combined query because g is a non-linear network of both inputs (so the loss
  cannot combine them itself). W is a learned [d, d] parameter of the caller (None: W = I, a plain dot product).
  `normalize=True` L2-normalises q and f first (cosine scores); with W = None this is `info_nce` exactly.

  Stop-gradient: the authors encode the future state without gradient (`torch.no_grad`): pass
  `jax.lax.stop_gradient(future)`. The function differentiates through all inputs, W included.

  Args:
    query: [b, d] projections g(z_t, u_t..u_{t+K-1}).
    future: [b, d] embeddings z_{t+K}; row i is the positive of `query[i]`.
    w: optional [d, d] bilinear matrix (replicated across devices).
    temperature: tau > 0 (1: the paper's unscaled bilinear logits).
    normalize: L2-normalise query and future before scoring.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the futures are gathered from every device.

  Returns:
    The scalar mean loss over the B rows of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> q = 5.0 * jnp.eye(4)
    >>> bool(taco(q, jnp.eye(4)) < taco(q, jnp.eye(4)[::-1]))
    True

  Zheng et al., "TACO: Temporal Latent Action-Driven Contrastive Loss for Visual Reinforcement Learning",
  NeurIPS 2023, https://arxiv.org/abs/2306.13229 (eq. 1; bilinear scores as in the authors' agents/taco.py).
  """
  _checks.check_embeddings(query=query, future=future)
  _checks.check_positive("temperature", temperature)
  _check_bilinear(w, query.shape[1])
  if normalize and w is None:
    return info_nce(query, future, temperature=temperature, axis_name=axis_name)
  q, f = _ops.to_float32(query, future)
  if normalize:
    q, f = l2_normalize(q), l2_normalize(f)
  b = q.shape[0]
  logits = _score(q, _collectives.all_gather(f, axis_name), w) / temperature  # [b, B]
  pos_col = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  pos = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  per_row = jax.nn.logsumexp(logits, axis=1) - pos
  return _collectives.global_mean(jnp.sum(per_row), b, axis_name)


def premier_taco_negatives(key: jax.Array, positive_index: jax.Array, episode_length: jax.Array | int, *,
                           window_size: int = 5, axis_name: str | None = None) -> jax.Array:
  r"""Premier-TACO's negative time index: one step of the same trajectory near the positive, never the positive.

  For a positive at time p = t + K in an episode of length L (valid steps 0..L-1), the negative is

  .. math::
      n = p + o, \qquad o \sim U\{o \in \{-W, \dots, -1, 1, \dots, W\} : 0 \le p + o < L\},

  i.e. uniform over the W steps on each side of the positive that exist. (The authors' loader draws the side with
  probability 1/2 and then the distance in 1..W, with t chosen so that p + W < L, which is the same distribution
  away from the episode's start.) If no other step exists (L = 1) the positive index itself is returned.

  Each row's draw uses `jax.random.fold_in(key, i)` with i the GLOBAL row index, so the result does not depend on
  the number of devices. Gather `observations[negative_index]` with the caller's encoder (no gradient, as the
  future) and pass its embedding to `premier_taco`.

  Args:
    key: a `jax.random` key (a fresh one per step).
    positive_index: [b] integer time index t + K of each row's positive.
    episode_length: [b] integer (or one int) length of each row's episode.
    window_size: W >= 1 (5, the authors' pretraining config).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    [b] int32 time indices of the negatives, in [max(0, p - W), min(L - 1, p + W)] and != p (when L > 1).

  Example:
    >>> n = premier_taco_negatives(jax.random.key(0), jnp.array([0, 5, 9]), 10, window_size=2)
    >>> bool(jnp.all((n != jnp.array([0, 5, 9])) & (jnp.abs(n - jnp.array([0, 5, 9])) <= 2) & (n >= 0) & (n < 10)))
    True

  Zheng et al., "Premier-TACO is a Few-Shot Policy Learner: Pretraining Multitask Representation via Temporal
  Action-Driven Contrastive Loss", ICML 2024, https://arxiv.org/abs/2402.06187 (negative example sampling).
  """
  _checks.check_array("positive_index", positive_index, ndim=1, floating=False, shape_doc="[b]")
  if not jnp.issubdtype(positive_index.dtype, jnp.integer):
    raise ValueError(f"positive_index must be an integer array; got dtype {positive_index.dtype}.")
  b = positive_index.shape[0]
  length = jnp.asarray(episode_length)
  if length.ndim == 0:
    length = jnp.broadcast_to(length, (b,))
  if tuple(length.shape) != (b,) or not jnp.issubdtype(length.dtype, jnp.integer):
    raise ValueError(f"episode_length must be an int or an integer array of shape [{b}]; "
                     f"got shape {tuple(length.shape)} and dtype {length.dtype}.")
  if not isinstance(window_size, int) or window_size < 1:
    raise ValueError(f"window_size must be an int >= 1; got {window_size}.")
  offsets = jnp.concatenate([jnp.arange(-window_size, 0), jnp.arange(1, window_size + 1)])  # [2W]
  candidates = positive_index.astype(jnp.int32)[:, None] + offsets[None, :]
  valid = (candidates >= 0) & (candidates < length.astype(jnp.int32)[:, None])
  rows = jnp.arange(b) + _collectives.axis_index(axis_name) * b

  def draw(row, ok):
    return jax.random.categorical(jax.random.fold_in(key, row), jnp.where(ok, 0.0, -jnp.inf))

  pick = jax.vmap(draw)(rows, valid)
  chosen = jnp.take_along_axis(candidates, pick[:, None], axis=1)[:, 0]
  return jnp.where(jnp.any(valid, axis=1), chosen, positive_index.astype(jnp.int32))


def premier_taco(query: jax.Array, future: jax.Array, negative: jax.Array, *, w: jax.Array | None = None,
                 temperature: float = 1.0, binary: bool = False, axis_name: str | None = None) -> jax.Array:
  r"""Premier-TACO: TACO with ONE negative per row, a nearby step of the same trajectory.

  With :math:`s^+_i = q_i^\top W f_i / \tau` (the true future z_{t+K}) and :math:`s^-_i = q_i^\top W n_i / \tau`
  (the embedding of the step drawn by `premier_taco_negatives`), the paper's InfoNCE over the pair is

  .. math::
      \ell_i = -\log \frac{e^{s^+_i}}{e^{s^+_i} + e^{s^-_i}} = \mathrm{softplus}(s^-_i - s^+_i), \qquad
      L = \frac{1}{B} \sum_{i=1}^{B} \ell_i .

  `binary=True` gives instead the objective of the authors' released code (premier_taco.py), a logistic
  classification of positives against negatives averaged over the 2B scores:
  :math:`L = \frac{1}{2B} \sum_i [\mathrm{softplus}(-s^+_i) + \mathrm{softplus}(s^-_i)]`; that code uses W = I.

  Stop-gradient: future and negative are encoded without gradient by the authors: pass
  `jax.lax.stop_gradient(...)` for both. query = g(z_t, u_t..u_{t+K-1}) is the caller's projection, as in `taco`.

  Args:
    query: [b, d] projections of (state, action sequence).
    future: [b, d] embeddings of the positive future z_{t+K}.
    negative: [b, d] embeddings of the negative step of the same trajectory.
    w: optional [d, d] bilinear matrix (None: W = I).
    temperature: tau > 0 (1: unscaled logits, as the authors).
    binary: False for the paper's two-way InfoNCE, True for the released code's logistic loss.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap` (only the mean is global: the negatives are per row, none is gathered).

  Returns:
    The scalar mean loss over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> q = jnp.array([[2.0, 0.0]]); f = jnp.array([[1.0, 0.0]]); n = jnp.array([[0.0, 1.0]])
    >>> round(float(premier_taco(q, f, n)), 4)  # softplus(0 - 2) = log(1 + e^-2)
    0.1269

  Zheng et al., "Premier-TACO is a Few-Shot Policy Learner: Pretraining Multitask Representation via Temporal
  Action-Driven Contrastive Loss", ICML 2024, https://arxiv.org/abs/2402.06187; TACO: Zheng et al., NeurIPS 2023,
  https://arxiv.org/abs/2306.13229.
  """
  _checks.check_embeddings(query=query, future=future, negative=negative)
  _checks.check_positive("temperature", temperature)
  _check_bilinear(w, query.shape[1])
  q, f, n = _ops.to_float32(query, future, negative)
  if w is not None:
    q = q @ _ops.to_float32(w)  # q^T W f = (W^T q)^T f
  s_pos = jnp.sum(q * f, axis=1) / temperature
  s_neg = jnp.sum(q * n, axis=1) / temperature
  b = q.shape[0]
  if binary:
    local = jnp.sum(jax.nn.softplus(-s_pos) + jax.nn.softplus(s_neg))
    return _collectives.global_mean(local, 2 * b, axis_name)
  return _collectives.global_mean(jnp.sum(jax.nn.softplus(s_neg - s_pos)), b, axis_name)


def _check_two_views(name: str, x) -> None:
  _checks.check_array(name, x, ndim=3, shape_doc="[b, 2, d]")
  if x.shape[1] != 2:
    raise ValueError(f"{name} must have shape [b, 2, d] (two augmented views); got shape {tuple(x.shape)}.")


def decorrelated_prediction(pred: jax.Array, target: jax.Array, *, decorrelation_weight: float = 0.01,
                            off_diagonal_weight: float = 0.005, return_terms: bool = False,
                            axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""SimTPR: predict the future latent state (BYOL-style) and decorrelate the latent features (Barlow Twins).

  Each row holds two augmented views v = 1, 2 of the same transition. p^v is the caller's causal prediction of the
  next latent state from view v (from the past states and actions), y^v the encoded true next state of view v.
  The prediction term matches each view's prediction to the OTHER view's target, the target under stop-gradient;
  the decorrelation term is Barlow Twins between the two views of the L2-normalised targets, standardised over
  the GLOBAL batch (see `barlow_twins`):

  .. math::
      L_{pred} = \tfrac12 \big[\mathrm{byol}(p^1, \mathrm{sg}(y^2)) + \mathrm{byol}(p^2, \mathrm{sg}(y^1))\big],
      \quad \mathrm{byol}(p, y) = \frac{1}{B}\sum_i \Big\|\frac{p_i}{\|p_i\|} - \frac{y_i}{\|y_i\|}\Big\|^2,

  .. math::
      L = L_{pred} + \beta\, \mathrm{BarlowTwins}_\lambda\Big(\frac{y^1}{\|y^1\|}, \frac{y^2}{\|y^2\|}\Big).

  The stop-gradient is applied HERE (not by the caller) because the same targets must receive the gradient of
  the decorrelation term, which is what spreads the latent features over more dimensions. The target encoder is
  the online encoder (no EMA): no state is kept. Sequences [n, T, ...] are flattened by the caller to b = n T
  rows (the authors' `(n t) d`).

  The authors' Barlow term standardises with the unbiased std and no epsilon; `barlow_twins` uses the biased
  variance + 1e-5 (BatchNorm), a difference of order 1/B.

  Args:
    pred: [b, 2, d] predictions of the next latent state from each view.
    target: [b, 2, d] encoded next states of each view (stop-gradient applied inside the prediction term only).
    decorrelation_weight: beta >= 0 (0.01, the authors' `reg_lmbda`).
    off_diagonal_weight: lambda >= 0 of the Barlow redundancy term (0.005, the authors' `barlow_lmbda`).
    return_terms: also return {"prediction": L_pred, "decorrelation": Barlow term (unweighted)}.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`: means and the cross-correlation matrix are over the global batch.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input); with `return_terms`, `(loss, terms)`.

  Example:
    >>> y = jnp.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    >>> v = jnp.stack([y, y], axis=1)  # perfect prediction, decorrelated unit features
    >>> round(float(decorrelated_prediction(v, v)), 6)
    0.0

  Lee et al., "On the Importance of Feature Decorrelation for Unsupervised Representation Learning in
  Reinforcement Learning", ICML 2023, https://arxiv.org/abs/2306.05637 (SimTPR; weights from the authors'
  configs/atari/pretrain/trainer/simtpr.yaml, loss from src/trainers/simtpr.py).
  """
  _check_two_views("pred", pred)
  _check_two_views("target", target)
  _checks.check_same_shape(pred=pred, target=target)
  _checks.check_in_range("decorrelation_weight", decorrelation_weight, 0.0, float("inf"))
  _checks.check_in_range("off_diagonal_weight", off_diagonal_weight, 0.0, float("inf"))
  sg = jax.lax.stop_gradient
  prediction = 0.5 * (byol(pred[:, 0], sg(target[:, 1]), axis_name=axis_name)
                      + byol(pred[:, 1], sg(target[:, 0]), axis_name=axis_name))
  y = l2_normalize(_ops.to_float32(target))
  decorrelation = barlow_twins(y[:, 0], y[:, 1], lambda_=off_diagonal_weight, axis_name=axis_name)
  loss = prediction + decorrelation_weight * decorrelation
  if return_terms:
    return loss, {"prediction": prediction, "decorrelation": decorrelation}
  return loss


def contrastive_transition_loss(phi: jax.Array, mu_pos: jax.Array, mu_neg: jax.Array, *, logits: bool = False,
                                axis_name: str | None = None) -> jax.Array:
  r"""Contrastive UCB's loss for low-rank transition features: observed next states against sampled ones.

  In a low-rank MDP, :math:`P(s' \mid s, a) = \phi(s, a)^\top \mu(s')`. Observed transitions (s, a, s') are
  positives (label 1); the same (s, a) with s~' drawn from a negative sampling distribution P^- are negatives
  (label 0). With the score :math:`f = \phi(s, a)^\top \psi(s')` the posterior of label 1 is modelled as
  f / (1 + f), so the minimiser is :math:`f^* = P(s' \mid s, a) / P^-(s')` (psi = mu / P^- recovers mu):

  .. math::
      L = \tfrac12\, \mathbb{E}_{+}\Big[\log\Big(1 + \frac{1}{f(s, a, s')}\Big)\Big]
        + \tfrac12\, \mathbb{E}_{-}\big[\log\big(1 + f(s, a, \tilde s')\big)\big],

  the expectations being means over the B positives and the B n negatives of the global batch (labels drawn
  1:1, hence the halves). In this ratio form f must be positive (the paper constrains the function class; e.g.
  non-negative features); `logits=True` treats phi^T psi as log f instead (unconstrained: the loss becomes
  softplus(-u) on positives and softplus(u) on negatives, binary NCE). Only the representation part of
  Contrastive UCB is here; the UCB exploration bonus is out of scope. The exact weighting of the two
  expectations could not be checked against the paper's text: this is the most standard reading.

  Args:
    phi: [b, d] features phi(s, a) of the observed state-action pairs.
    mu_pos: [b, d] features psi(s') of the observed next states.
    mu_neg: [b, d] or [b, n, d] features psi(s~') of next states drawn from P^- (n per row).
    logits: False: phi^T psi is the density ratio f > 0 (paper); True: it is log f.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap` (only the means are global).

  Returns:
    The scalar loss (float32 for float32/bfloat16 input). No stop-gradient: both feature maps are trained.

  Example:
    >>> phi = jnp.array([[1.0, 0.0]]); pos = jnp.array([[1.0, 0.0]]); neg = jnp.array([[1.0, 0.0]])
    >>> round(float(contrastive_transition_loss(phi, pos, neg)), 6)  # f = 1 both: (log 2 + log 2) / 2
    0.693147

  Qiu et al., "Contrastive UCB: Provably Efficient Contrastive Self-Supervised Learning in Online Reinforcement
  Learning", ICML 2022, https://arxiv.org/abs/2207.14800 (the contrastive loss of Section 3).
  """
  _checks.check_embeddings(phi=phi, mu_pos=mu_pos)
  b, d = phi.shape
  _checks.check_array("mu_neg", mu_neg, shape_doc=f"[{b}, {d}] or [{b}, n, {d}]")
  if mu_neg.ndim == 2:
    mu_neg = mu_neg[:, None, :]
  if mu_neg.ndim != 3 or mu_neg.shape[0] != b or mu_neg.shape[2] != d:
    raise ValueError(f"mu_neg must have shape [{b}, {d}] or [{b}, n, {d}] to match phi; "
                     f"got shape {tuple(mu_neg.shape)}.")
  phi, mu_pos, mu_neg = _ops.to_float32(phi, mu_pos, mu_neg)
  u_pos = jnp.sum(phi * mu_pos, axis=1)  # [b]
  u_neg = jnp.einsum("bd,bnd->bn", phi, mu_neg)  # [b, n]
  if not logits:
    # log(1 + 1/f) = softplus(-log f) and log(1 + f) = softplus(log f): one stable form for both settings.
    u_pos, u_neg = jnp.log(u_pos), jnp.log(u_neg)
  pos = _collectives.global_mean(jnp.sum(jax.nn.softplus(-u_pos)), b, axis_name)
  neg = _collectives.global_mean(jnp.sum(jax.nn.softplus(u_neg)), u_neg.size, axis_name)
  return 0.5 * (pos + neg)
