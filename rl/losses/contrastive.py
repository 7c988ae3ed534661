"""Contrastive objectives: losses that tell a positive pair apart from negatives."""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses import _tiled
from rl.losses.hypersphere import l2_normalize


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.1, axis_name: str | None = None,
            impl: str = "auto", tile_size: int = _tiled.DEFAULT_TILE) -> jax.Array:
  r"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR.

  The two views of a batch of b examples give 2b embeddings, L2-normalised to u. Each of the 2b views is an
  anchor; its positive is the other view of the same example; the other 2b-2 views of the GLOBAL batch (all
  devices) are its negatives:

  .. math::
      \ell_i = -\frac{u_i^\top u_{p(i)}}{\tau} + \log \sum_{k \ne i} \exp(u_i^\top u_k / \tau),
      \qquad L = \frac{1}{2B} \sum_{i=1}^{2B} \ell_i .

  The log-sum-exp runs in float32 even for bfloat16 inputs.

  Args:
    z1: [b, d] embeddings of the first view (projector outputs; normalised here).
    z2: [b, d] embeddings of the second view; row i is the positive of `z1[i]`.
    temperature: tau > 0 (SimCLR uses 0.1 at large batch and 0.5 on CIFAR).
    axis_name: None when `z1, z2` are the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where `z1, z2` are this device's shard and negatives come from every device (see `_collectives` for the
      gradient convention under each).
    impl: "plain" forms the [2b, 2B] logits after an all-gather; "tiled" streams [tile_size, tile_size] tiles
      with an online log-sum-exp under a custom VJP that recomputes them, and with `axis_name` passes the key
      blocks around a ring of `ppermute`s instead of gathering them (memory O(b d + tile_size^2) per device;
      see `rl.losses._tiled`); "auto" (default) is tiled when the [2b, 2B] block has more than 2^26 entries.
      Both give the same value and gradients; the tiled form runs its matmuls in bfloat16 for bfloat16 input.
    tile_size: side of the logits tiles of the tiled form.

  Returns:
    The scalar mean loss over the 2B anchors of the global batch (float32), the same on every device.

  Example:
    >>> z1 = jnp.eye(4); z2 = jnp.eye(4)
    >>> bool(nt_xent(z1, z2) < nt_xent(z1, z2[::-1]))
    True

  Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
  https://arxiv.org/abs/2002.05709 (eq. 1).
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  _checks.check_positive("temperature", temperature)
  _tiled.check_tile(tile_size)
  b = z1.shape[0]
  u = l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))  # local anchors [2b, d]
  if _tiled.choose(impl, 2 * b, 2 * b * _collectives.axis_size(axis_name)):
    # Every anchor's positive is the other view of its example, on the same device.
    pos = jnp.sum(u[:b] * u[b:], axis=1) / temperature
    dt = _tiled.matmul_dtype(z1, z2)
    ids = jnp.tile(jnp.arange(b) + _collectives.axis_index(axis_name) * b, 2)  # global example id of each view
    lse, rel = _tiled.row_logsumexp((u / temperature).astype(dt), u.astype(dt), exclude_self=True,
                                    axis_name=axis_name, tile_size=tile_size, labels=(ids, ids))
    # Per anchor, the positive read from the same tiles (see `_tiled.row_logsumexp`): lse and pos are both of
    # size 1 / temperature, so summing each before subtracting loses a small loss to float32 rounding.
    per_anchor = _tiled.minus_positive(lse, jnp.concatenate([pos, pos]), rel)
    return _collectives.global_mean(jnp.sum(per_anchor), 2 * b, axis_name)
  u1_all = _collectives.all_gather(u[:b], axis_name)  # [B, d]
  u2_all = _collectives.all_gather(u[b:], axis_name)  # [B, d]
  keys = jnp.concatenate([u1_all, u2_all], axis=0)  # [2B, d]: view-1 block, then view-2 block
  big_b = u1_all.shape[0]
  logits = (u @ keys.T) / temperature  # [2b, 2B]

  # Global column index of each local anchor itself (masked out) and of its positive.
  offset = _collectives.axis_index(axis_name) * b
  rows = jnp.arange(b) + offset
  self_col = jnp.concatenate([rows, rows + big_b])
  pos_col = jnp.concatenate([rows + big_b, rows])
  cols = jnp.arange(2 * big_b)
  logits = jnp.where(cols[None, :] == self_col[:, None], -jnp.inf, logits)
  pos_logit = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  per_anchor = jax.nn.logsumexp(logits, axis=1) - pos_logit
  return _collectives.global_mean(jnp.sum(per_anchor), 2 * b, axis_name)


def _check_features(name: str, x: jax.Array, d: int) -> None:
  _checks.check_array(name, x, ndim=2, shape_doc="[n, d]")
  if x.shape[1] != d:
    raise ValueError(f"{name} must have shape [n, {d}] (the embedding size of query); got shape {tuple(x.shape)}.")


def info_nce(query: jax.Array, key: jax.Array, *, temperature: float = 0.1, negatives: jax.Array | None = None,
             axis_name: str | None = None, impl: str = "auto", tile_size: int = _tiled.DEFAULT_TILE) -> jax.Array:
  r"""InfoNCE in one direction: each query must pick its own key out of all keys of the global batch.

  Queries q and keys k are L2-normalised to u and v. Row i's positive is key i; its negatives are the other B-1
  keys of the GLOBAL batch (gathered from every device) and, when given, every row w_j of `negatives` (a queue or
  memory bank, also normalised here):

  .. math::
      \ell_i = -\frac{u_i^\top v_i}{\tau} + \log\Big(\sum_{k=1}^{B} e^{u_i^\top v_k/\tau}
               + \sum_{j=1}^{n} e^{u_i^\top w_j/\tau}\Big), \qquad L = \frac{1}{B}\sum_{i=1}^{B} \ell_i .

  MoCo v3 uses it symmetrically, `info_nce(q1, k2) + info_nce(q2, k1)` with tau = 0.2, each term multiplied
  by 2 tau in its code, the keys coming from the momentum encoder: the CALLER applies `jax.lax.stop_gradient`
  to `key` (and to `negatives`) when they must not be trained; this function differentiates through all inputs.

  Args:
    query: [b, d] query embeddings (normalised here).
    key: [b, d] key embeddings; row i is the positive of `query[i]`.
    temperature: tau > 0.
    negatives: optional [n, d] extra negatives (e.g. a MoCo queue), the same on every device; the caller keeps
      and updates that state.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where `query, key` are this device's shard and keys are gathered from every device.
    impl: "plain", "tiled" or "auto" (default): as in `nt_xent`; the tiled form streams the keys (around a ring
      of devices with `axis_name`) and the negatives in tiles. "auto" is tiled above 2^26 logits per device.
    tile_size: side of the logits tiles of the tiled form.

  Returns:
    The scalar mean loss over the B queries of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> q = jnp.eye(4)
    >>> bool(info_nce(q, q) < info_nce(q, q[::-1]))
    True

  van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018,
  https://arxiv.org/abs/1807.03748 (eq. 4); symmetric use with a momentum key encoder: Chen, Xie & He,
  "An Empirical Study of Training Self-Supervised Vision Transformers" (MoCo v3), ICCV 2021,
  https://arxiv.org/abs/2104.02057.
  """
  _checks.check_embeddings(query=query, key=key)
  _checks.check_positive("temperature", temperature)
  if negatives is not None:
    _check_features("negatives", negatives, query.shape[1])
  _tiled.check_tile(tile_size)
  b = query.shape[0]
  u = l2_normalize(_ops.to_float32(query))
  n_neg = 0 if negatives is None else negatives.shape[0]
  if _tiled.choose(impl, b, b * _collectives.axis_size(axis_name) + n_neg):
    v = l2_normalize(_ops.to_float32(key))
    dt = _tiled.matmul_dtype(query, key)
    a = (u / temperature).astype(dt)
    # Each query's positive is its own key, on its own device: read out of the same tiles (see nt_xent).
    ids = jnp.arange(b) + _collectives.axis_index(axis_name) * b  # global pair id of each query and key
    lse, rel = _tiled.row_logsumexp(a, v.astype(dt), axis_name=axis_name, tile_size=tile_size, labels=(ids, ids))
    if negatives is not None:
      w = l2_normalize(_ops.to_float32(negatives)).astype(dt)
      if axis_name is not None:
        w = _tiled.varying(w, axis_name)  # replicated queue, per-device rows: its gradient sums over devices
      queue_lse = _tiled.row_logsumexp(a, w, tile_size=tile_size)
      rel = jnp.logaddexp(rel, lax.stop_gradient(queue_lse - lse) + rel)  # both relative to the positive
      lse = jnp.logaddexp(lse, queue_lse)
    pos = jnp.sum(u * v, axis=1) / temperature
    return _collectives.global_mean(jnp.sum(_tiled.minus_positive(lse, pos, rel)), b, axis_name)
  keys = _collectives.all_gather(l2_normalize(_ops.to_float32(key)), axis_name)  # [B, d]
  logits = (u @ keys.T) / temperature  # [b, B]
  pos_col = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  pos_logit = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  if negatives is not None:
    w = l2_normalize(_ops.to_float32(negatives))
    logits = jnp.concatenate([logits, (u @ w.T) / temperature], axis=1)
  per_query = jax.nn.logsumexp(logits, axis=1) - pos_logit
  return _collectives.global_mean(jnp.sum(per_query), b, axis_name)


def dcl(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.1, weighted: bool = False, sigma: float = 0.5,
        axis_name: str | None = None) -> jax.Array:
  r"""Decoupled Contrastive Learning (DCL / DCLW): NT-Xent without the positive in the denominator.

  As in `nt_xent`, the 2B normalised views u of the GLOBAL batch are anchors and the positive p(i) is the other
  view of the same example, but the denominator holds only the 2B-2 negatives:

  .. math::
      \ell_i = -w_i \frac{u_i^\top u_{p(i)}}{\tau} + \log \sum_{k \ne i,\, p(i)} \exp(u_i^\top u_k / \tau),
      \qquad L = \frac{1}{2B} \sum_{i=1}^{2B} \ell_i .

  DCL has w_i = 1. DCLW (`weighted=True`) uses the negative von Mises-Fisher weight of the paper,
  w_i = 2 - exp(s_i / sigma) / mean_j exp(s_j / sigma) with s_j = u_j^(1)T u_j^(2) over the B positive pairs of
  the global batch, i.e. w = 2 - B * softmax(s / sigma) (the weights average to 1; both views of a pair share
  one weight). The weight is NOT detached: gradients flow through it, as in the literal formula and in the
  implementation lightly cites (github.com/raminnakhli/Decoupled-Contrastive-Learning); lightly's own
  `DCLWLoss` detaches the similarities inside the weight and computes it per device, whereas here it is
  normalised over the global batch. The caller applies no stop-gradient. raminnakhli's code sums the two
  directions (each a mean over B); this is their mean over the 2B anchors (as lightly), i.e. half that sum.

  Args:
    z1: [b, d] embeddings of the first view (normalised here).
    z2: [b, d] embeddings of the second view; row i is the positive of `z1[i]`.
    temperature: tau > 0 (0.1, the default of the reference code).
    weighted: False for DCL, True for DCLW.
    sigma: sigma > 0 of the DCLW weight (0.5, the default of the reference code).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where the arrays are this device's shard and negatives come from every device.

  Returns:
    The scalar mean loss over the 2B anchors of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> z = jnp.eye(4)
    >>> bool(dcl(z, z) < dcl(z, z[::-1]))
    True

  Yeh et al., "Decoupled Contrastive Learning", ECCV 2022, https://arxiv.org/abs/2110.06848 (eq. 6 and its DCLW
  weighting function).
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  _checks.check_positive("temperature", temperature)
  _checks.check_positive("sigma", sigma)
  b = z1.shape[0]
  u1 = l2_normalize(_ops.to_float32(z1))
  u2 = l2_normalize(_ops.to_float32(z2))
  keys = jnp.concatenate([_collectives.all_gather(u1, axis_name), _collectives.all_gather(u2, axis_name)])
  big_b = keys.shape[0] // 2
  u = jnp.concatenate([u1, u2])  # local anchors [2b, d]
  logits = (u @ keys.T) / temperature  # [2b, 2B]
  rows = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  self_col = jnp.concatenate([rows, rows + big_b])
  pos_col = jnp.concatenate([rows + big_b, rows])
  cols = jnp.arange(2 * big_b)[None, :]
  decoupled = jnp.where((cols == self_col[:, None]) | (cols == pos_col[:, None]), -jnp.inf, logits)
  sim = jnp.sum(u1 * u2, axis=1)  # [b] positive-pair cosines, the same for both directions
  pos_term = sim / temperature
  if weighted:
    s = sim / sigma
    pos_term = (2.0 - big_b * jnp.exp(s - _collectives.global_logsumexp(s, axis_name))) * pos_term
  per_anchor = jax.nn.logsumexp(decoupled, axis=1) - jnp.concatenate([pos_term, pos_term])
  return _collectives.global_mean(jnp.sum(per_anchor), 2 * b, axis_name)


def _check_views(z: jax.Array, labels: jax.Array) -> None:
  _checks.check_array("z", z, ndim=3, shape_doc="[b, views, d]")
  if z.shape[1] < 2:
    raise ValueError(f"z must have at least 2 views (shape [b, views, d]); got shape {tuple(z.shape)}.")
  _checks.check_labels("labels", labels, z.shape[0])


def _multi_positive_nce(z: jax.Array, label_sets, temperature, axis_name: str | None, impl: str = "plain",
                        tile_size: int = _tiled.DEFAULT_TILE):
  """Per-device sums of the SupCon out-loss for each labelling in `label_sets`, sharing one similarity matrix.

  Every local view is an anchor; the contrast set is every view of the global batch except the anchor; the
  positives are the contrast views whose label equals the anchor's. Returns ([local sum per labelling], count).

  The tiled form never builds the matrix: the log-sum-exp over the contrast set is `_tiled.row_logsumexp`, and
  the sum over the positives is u_i . (Q_i - u_i) / tau, with Q_i the sum of every same-label view of the global
  batch (`_tiled.same_label_sum`, which also counts them).
  """
  _tiled.check_tile(tile_size)
  b, v, d = z.shape
  u = l2_normalize(_ops.to_float32(z))
  anchors = u.reshape(b * v, d)  # example-major: row r * v + view
  if _tiled.choose(impl, b * v, b * v * _collectives.axis_size(axis_name)):
    dt = _tiled.matmul_dtype(z)
    a, k = (anchors / temperature).astype(dt), anchors.astype(dt)
    with_count = jnp.concatenate([anchors, jnp.ones((b * v, 1), jnp.float32)], axis=1)
    sums = []
    for i, labels in enumerate(label_sets):
      rows = jnp.repeat(labels, v)
      # The log-sum-exp and its gradient once; for a second labelling only the value relative to its positives
      # (see `_tiled.row_logsumexp`: read from the same tiles, it keeps a small loss's digits).
      if i == 0:
        lse, rel = _tiled.row_logsumexp(a, k, exclude_self=True, axis_name=axis_name, tile_size=tile_size,
                                        labels=(rows, rows))
      else:
        _, rel = _tiled.row_logsumexp(lax.stop_gradient(a), lax.stop_gradient(k), exclude_self=True,
                                      axis_name=axis_name, tile_size=tile_size, labels=(rows, rows))
      q = _tiled.same_label_sum(rows, with_count, axis_name=axis_name, tile_size=tile_size)
      pos_sum = jnp.sum(anchors * (q[:, :d] - anchors), axis=1) / temperature  # the anchor itself left out
      count = q[:, d] - 1.0  # >= 1: the anchor's other views
      sums.append(jnp.sum(_tiled.minus_positive(lse, pos_sum / count, rel)))
    return sums, b * v
  contrast = _collectives.all_gather(u, axis_name).reshape(-1, d)  # [B * v, d], same layout
  logits = (anchors @ contrast.T) / temperature
  first = _collectives.axis_index(axis_name) * b
  anchor_col = ((jnp.arange(b) + first)[:, None] * v + jnp.arange(v)[None, :]).reshape(-1)
  is_self = jnp.arange(contrast.shape[0])[None, :] == anchor_col[:, None]
  logits = jnp.where(is_self, -jnp.inf, logits)
  log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
  sums = []
  for labels in label_sets:
    anchor_label = jnp.repeat(labels, v)
    contrast_label = jnp.repeat(_collectives.all_gather(labels, axis_name), v)
    pos = (anchor_label[:, None] == contrast_label[None, :]) & ~is_self
    # Every anchor has >= 1 positive (its other views), so the division is safe.
    mean_log_prob_pos = jnp.sum(jnp.where(pos, log_prob, 0.0), axis=1) / jnp.sum(pos, axis=1)
    sums.append(-jnp.sum(mean_log_prob_pos))
  return sums, b * v


def supcon(z: jax.Array, labels: jax.Array, *, temperature: float = 0.1, base_temperature: float | None = None,
           axis_name: str | None = None, impl: str = "auto", tile_size: int = _tiled.DEFAULT_TILE) -> jax.Array:
  r"""Supervised contrastive loss (SupCon, the L^sup_out form): all same-label views are positives.

  The b examples with V views each give N = B V normalised views u of the GLOBAL batch; every one is an anchor.
  A(i) is every view except i; P(i) is the views in A(i) with the label of i (the other views of i included):

  .. math::
      \ell_i = \frac{-1}{|P(i)|} \sum_{p \in P(i)} \log \frac{\exp(u_i^\top u_p / \tau)}
               {\sum_{a \in A(i)} \exp(u_i^\top u_a / \tau)}, \qquad
      L = \frac{\tau}{\tau_b} \cdot \frac{1}{N} \sum_{i=1}^{N} \ell_i ,

  where tau/tau_b = 1 unless `base_temperature` tau_b is given (the authors' code scales by it).

  Args:
    z: [b, views, d] embeddings, views >= 2 (normalised here).
    labels: [b] integer class labels (the same label for all views of an example).
    temperature: tau > 0 (0.1 in the paper; the authors' code defaults to 0.07).
    base_temperature: optional tau_b > 0; None means no scaling.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where `z, labels` are this device's shard; the contrast set (views and labels) is gathered
      from every device and only local anchors are summed.
    impl: "plain", "tiled" or "auto" (default), as in `nt_xent`: the tiled form streams the contrast set in
      [tile_size, tile_size] tiles (around a ring of devices with `axis_name`, the labels travelling with the
      views) for both the log-sum-exp and the sum over positives; "auto" is tiled above 2^26 logits per device.
    tile_size: side of the tiles of the tiled form.

  Returns:
    The scalar mean loss over the B * views anchors of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> z = jnp.stack([jnp.eye(4), jnp.eye(4)], axis=1)  # [4, 2, 4]: two identical views
    >>> bool(supcon(z, jnp.arange(4)) < supcon(z, jnp.array([0, 0, 1, 1])))
    True

  Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, https://arxiv.org/abs/2004.11362 (eq. 2).
  """
  _check_views(z, labels)
  _checks.check_positive("temperature", temperature)
  if base_temperature is not None:
    _checks.check_positive("base_temperature", base_temperature)
  (local_sum,), count = _multi_positive_nce(z, [labels], temperature, axis_name, impl, tile_size)
  loss = _collectives.global_mean(local_sum, count, axis_name)
  return loss if base_temperature is None else loss * (temperature / base_temperature)


def supcon_simclr(z: jax.Array, labels: jax.Array, *, weight: float = 0.5, temperature: float = 0.1,
                  axis_name: str | None = None, impl: str = "auto",
                  tile_size: int = _tiled.DEFAULT_TILE) -> jax.Array:
  r"""Joint supervised + unsupervised contrastive loss: (1 - weight) SupCon + weight SimCLR.

  .. math::
      L = (1 - \beta)\, L_{\mathrm{SupCon}}(z, y) + \beta\, L_{\mathrm{SimCLR}}(z), \qquad \beta = \text{weight},

  both over the same views and temperature. The unsupervised term is SupCon with every example its own class
  (labels = global example index): the positives of a view are the other views of the same example only. For
  views = 2 it equals `nt_xent(z[:, 0], z[:, 1])`; for views > 2 it is the multi-positive NT-Xent (mean of the
  log-probabilities of the V-1 other views). weight = 0 is `supcon`, weight = 1 is SimCLR.

  Xue et al. analyse this joint objective and show why adding the unsupervised term counters class collapse
  (subclass features kept) while labels counter feature suppression. The abstract does not fix the weighting;
  this function uses the convex combination above with beta on the unsupervised term.

  Args:
    z: [b, views, d] embeddings, views >= 2 (normalised here).
    labels: [b] integer class labels.
    weight: beta in [0, 1], the weight of the unsupervised term.
    temperature: tau > 0, shared by both terms.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where `z, labels` are this device's shard.
    impl: "plain", "tiled" or "auto" (default), as in `supcon`.
    tile_size: side of the tiles of the tiled form.

  Returns:
    The scalar loss over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> z = jnp.stack([jnp.eye(4), jnp.eye(4)], axis=1)
    >>> y = jnp.array([0, 0, 1, 1])
    >>> bool(jnp.allclose(supcon_simclr(z, y, weight=0.0), supcon(z, y)))
    True

  Xue et al., "Which Features are Learnt by Contrastive Learning? On the Role of Simplicity Bias in Class
  Collapse and Feature Suppression", ICML 2023, https://arxiv.org/abs/2305.16536; SupCon: Khosla et al. 2020,
  https://arxiv.org/abs/2004.11362; SimCLR: Chen et al. 2020, https://arxiv.org/abs/2002.05709.
  """
  _check_views(z, labels)
  _checks.check_positive("temperature", temperature)
  _checks.check_in_range("weight", weight, 0.0, 1.0)
  b = z.shape[0]
  instance = jnp.arange(b) + _collectives.axis_index(axis_name) * b  # global example index
  (sup, unsup), count = _multi_positive_nce(z, [labels, instance], temperature, axis_name, impl, tile_size)
  local = (1.0 - weight) * sup + weight * unsup
  return _collectives.global_mean(local, count, axis_name)


def _check_negatives(negatives, b: int, d: int) -> None:
  _checks.check_array("negatives", negatives, shape_doc="[b, k, d] or [b, d]")
  if negatives.ndim not in (2, 3) or negatives.shape[0] != b or negatives.shape[-1] != d:
    raise ValueError(f"negatives must have shape [{b}, k, {d}] (k negatives per anchor) or [{b}, {d}] (k = 1); "
                     f"got shape {tuple(negatives.shape)}.")


def contrastive_unsupervised_loss(anchor: jax.Array, positive: jax.Array, *, negatives: jax.Array | None = None,
                                  loss: str = "logistic", axis_name: str | None = None) -> jax.Array:
  r"""The unsupervised contrastive loss L_un of Arora et al. (2019), with k negatives, hinge or logistic.

  For an anchor x, a similar point x^+ and negatives x_1^-, ..., x_k^-, with the representations f (not
  normalised: the paper's inner products are raw),

  .. math::
      v_i = f(x)^\top\big(f(x^+) - f(x_i^-)\big), \qquad
      L_{un}(f) = \mathbb{E}\Big[\ell\big(\{v_i\}_{i=1}^{k}\big)\Big],

  .. math::
      \ell_{\text{hinge}}(v) = \max\Big\{0,\ 1 + \max_i\,(-v_i)\Big\}, \qquad
      \ell_{\text{logistic}}(v) = \log_2\Big(1 + \sum_{i=1}^{k} e^{-v_i}\Big),

  the expectation being the mean over the GLOBAL batch. For k = 1 both reduce to the binary losses of the
  paper's Section 4 (hinge max(0, 1 - v), logistic log2(1 + e^{-v})); k negatives are its Section 6.1. The
  logistic form is a log-sum-exp (base 2) over {0, -v_1, ..., -v_k}, computed stably.

  Source. The definitions are the paper's (Section 2: the loss functions ell on R^k; Sections 4 and 6.1: L_un
  with one and with k negatives). Our stored copies of the paper gave only its abstract and introduction, so
  the two formulas above are written from the paper as we know it (standard hinge and logistic losses of a
  vector, log base 2) and are not checked against a stored equation. The authors released no code for L_un.

  Negatives. The paper draws each negative independently from the data distribution. Pass them as
  `negatives` [b, k, d] (e.g. encodings of random other points). With `negatives=None` the negatives of anchor
  i are the positives of the other B - 1 examples of the GLOBAL batch (k = B - 1, gathered from every device
  under `axis_name`), the usual in-batch stand-in for independent draws.

  Args:
    anchor: [b, d] representations f(x).
    positive: [b, d] representations f(x^+); row i is similar to `anchor[i]`.
    negatives: optional [b, k, d] representations f(x_i^-) of each anchor's k negatives ([b, d] for k = 1);
      None: in-batch negatives, as above.
    loss: "logistic" (default) or "hinge", the paper's two losses ell.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard: the mean runs over every device and, with
      `negatives=None`, the positives of every device are the negatives.

  Returns:
    The scalar L_un over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> a = jnp.array([[1.0, 0.0]]); p = jnp.array([[2.0, 0.0]]); n = jnp.array([[[0.0, 1.0]]])
    >>> float(contrastive_unsupervised_loss(a, p, negatives=n, loss="hinge"))  # v = 1 * (2 - 0) = 2: 1 - 2 < 0
    0.0
    >>> round(float(contrastive_unsupervised_loss(a, p, negatives=n)), 4)  # log2(1 + e^-2)
    0.1831

  Arora, Khandeparkar, Khodak, Plevrakis & Saunshi, "A Theoretical Analysis of Contrastive Unsupervised
  Representation Learning", ICML 2019, https://arxiv.org/abs/1902.09229.
  """
  _checks.check_embeddings(anchor=anchor, positive=positive)
  if loss not in ("logistic", "hinge"):
    raise ValueError(f'loss must be "logistic" or "hinge"; got {loss!r}.')
  b, d = anchor.shape
  a, p = _ops.to_float32(anchor, positive)
  pos = jnp.sum(a * p, axis=1)  # f(x)^T f(x+)
  if negatives is None:
    keys = _collectives.all_gather(p, axis_name)  # [B, d]
    v = pos[:, None] - a @ keys.T  # [b, B]
    own = jnp.arange(b) + _collectives.axis_index(axis_name) * b
    valid = jnp.arange(keys.shape[0])[None, :] != own[:, None]  # an anchor's own positive is no negative
  else:
    _check_negatives(negatives, b, d)
    n = _ops.to_float32(negatives)
    n = n[:, None, :] if n.ndim == 2 else n
    v = pos[:, None] - jnp.einsum("bd,bkd->bk", a, n)  # [b, k]
    valid = jnp.ones(v.shape, bool)
  minus_v = jnp.where(valid, -v, -jnp.inf)
  if loss == "hinge":
    per_anchor = jnp.maximum(0.0, 1.0 + jnp.max(minus_v, axis=1))
  else:
    with_one = jnp.concatenate([jnp.zeros((b, 1), v.dtype), minus_v], axis=1)  # the 1 of 1 + sum e^{-v}
    per_anchor = jax.nn.logsumexp(with_one, axis=1) / jnp.log(2.0)
  return _collectives.global_mean(jnp.sum(per_anchor), b, axis_name)
