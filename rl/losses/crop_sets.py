"""SCALE: self-supervised learning on SETS of clip features from a frozen video backbone.

Sameni, Jenni & Favaro extract the features of many spatio-temporal crops of each video with a frozen,
pre-trained backbone (BYOL, SVT, VideoMAE, ...) once, and train a small transformer on sets of them. Each training
example draws 2v of the video's crops, splits them into two disjoint sets of v, hides a quarter of each set's
tokens behind a learned mask token, and trains with two contrastive terms:

- set level: the transformer's [CLS] outputs of the two sets of a video, through a head, must pick each other
  among the batch's sets (a symmetric InfoNCE: `rl.losses.clip` with a fixed temperature);
- token level: at each masked position, the transformer's output, through a prediction head, must pick the
  target-head embedding of the hidden crop among the targets of every crop of the batch.

What is specific to the method, as functions of arrays: `scale_split_sets` (the two disjoint sets),
`scale_token_mask` (which tokens are hidden), `scale_dense_loss` (the masked-token contrast) and `scale_loss`
(both terms, weighted). The backbone, the crops' 7-number position codes and their MLP encoding, the transformer,
the heads and the mask token are the caller's.

Source: everything follows the authors' released code (github.com/Separius/SCALE, `src/scale.py` `Scale.forward`
and `contrastive_loss`, `src/train.py` `split_in_half` and the training loop, with its defaults); the paper's
method section was not in our stored copies. Two things the code does that a reader might not expect are kept:
the target head is trained (no stop-gradient on the targets), and the token-level negatives are every crop of
the batch, the visible ones included. With `axis_name` the negatives are gathered from every device (the
released code ran on one GPU, where this is the same computation).

Randomness is per example: example i of the global batch draws from `jax.random.fold_in(key, i)`, with
i = device index * b + row under `axis_name`, so a batch sharded over devices gets the same draws as on one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize
from rl.losses.image_text import clip


def _example_keys(key: jax.Array, b: int, axis_name: str | None) -> jax.Array:
  """One key per example, folded with its index in the global batch."""
  index = _collectives.global_rows(b, axis_name)
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(index)


def scale_split_sets(key: jax.Array, features: jax.Array, positions: jax.Array, *, num_views: int = 8,
                     axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  r"""SCALE's two views of a video: two disjoint random sets of its crops' features.

  Each example's L crops are shuffled by a uniform random permutation; the first `num_views` go to set 0 and the
  next `num_views` to set 1 (so 2 * num_views <= L), each set in the permutation's order. The crops' position
  codes follow their features.

  Source: `split_in_half` of the authors' `src/train.py` (argsort of uniform noise, keep the first 2v,
  reshape to [b, 2, v, .]); the default v = 8 is its `--num_views`.

  Args:
    key: a `jax.random` key (the same on every device under `axis_name`).
    features: [b, L, d] the frozen backbone's features of each video's L crops.
    positions: [b, L, p] the crops' position codes (7 numbers each in the released code: where and when the crop
      was taken).
    num_views: v, the number of crops per set.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where only the
      per-example randomness depends on it (example i of the global batch uses `fold_in(key, i)`).

  Returns:
    `(features [b, 2, v, d], positions [b, 2, v, p])`, the two sets of each video.

  Example:
    >>> feats = jnp.arange(6.0).reshape(1, 6, 1)
    >>> sets, pos = scale_split_sets(jax.random.PRNGKey(0), feats, feats, num_views=3)
    >>> sets.shape, sorted(sets.reshape(-1).tolist()) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    ((1, 2, 3, 1), True)

  Sameni, Jenni & Favaro, "Spatio-Temporal Crop Aggregation for Video Representation Learning", ICCV 2023,
  https://arxiv.org/abs/2211.17042; code github.com/Separius/SCALE.
  """
  _checks.check_array("features", features, ndim=3, shape_doc="[b, L, d]")
  _checks.check_array("positions", positions, ndim=3, shape_doc="[b, L, p]")
  b, crops, _ = features.shape
  if tuple(positions.shape[:2]) != (b, crops):
    raise ValueError(f"positions must have shape [{b}, {crops}, p] (one code per crop of features, [b, L, d]); "
                     f"got shape {tuple(positions.shape)}.")
  if not isinstance(num_views, int) or num_views < 1 or 2 * num_views > crops:
    raise ValueError(f"num_views must be an int with 1 <= 2 * num_views <= L = {crops} (two disjoint sets of "
                     f"the video's crops); got {num_views!r}.")
  keys = _example_keys(key, b, axis_name)
  keep = jax.vmap(lambda k: jax.random.permutation(k, crops)[:2 * num_views])(keys)  # [b, 2v]
  take = lambda x: jnp.take_along_axis(x, keep[..., None], axis=1).reshape(b, 2, num_views, x.shape[-1])
  return take(features), take(positions)


def scale_token_mask(key: jax.Array, shape: tuple[int, ...], *, mask_ratio: float = 0.25,
                     axis_name: str | None = None) -> jax.Array:
  r"""Which tokens SCALE hides behind its mask token: each one independently with probability `mask_ratio`.

  .. math::
      m_{bi} \sim \text{Bernoulli}(\rho), \qquad \rho = 0.25,

  independently for every token of every set (the number hidden per set is random, possibly 0). The caller
  replaces the input projection of each hidden token by the learned mask token before adding its position
  encoding (`Scale.forward`: `torch.rand(...) < mask_ratio`; the default is `src/train.py`'s `--mask_ratio`).

  Args:
    key: a `jax.random` key (the same on every device under `axis_name`).
    shape: `(b, ...)`, the token grid, e.g. `(b, 2, v)` for the two sets of `scale_split_sets`; axis 0 is the batch.
    mask_ratio: rho in [0, 1), the probability that a token is hidden.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (example i of the
      global batch uses `fold_in(key, i)`).

  Returns:
    bool [shape], True where the token is hidden (and scored by `scale_dense_loss`).

  Example:
    >>> mask = scale_token_mask(jax.random.PRNGKey(0), (4, 2, 8))
    >>> mask.shape, mask.dtype
    ((4, 2, 8), dtype('bool'))

  Sameni, Jenni & Favaro, "Spatio-Temporal Crop Aggregation for Video Representation Learning", ICCV 2023,
  https://arxiv.org/abs/2211.17042; code github.com/Separius/SCALE.
  """
  shape = tuple(shape)
  if len(shape) < 1 or not all(isinstance(n, int) and n >= 1 for n in shape):
    raise ValueError(f"shape must be a tuple of positive ints (b, ...) with the batch first; got {shape!r}.")
  _checks.check_in_range("mask_ratio", mask_ratio, 0.0, 1.0, high_inclusive=False)
  keys = _example_keys(key, shape[0], axis_name)
  return jax.vmap(lambda k: jax.random.uniform(k, shape[1:]) < mask_ratio)(keys)


def scale_dense_loss(predictions: jax.Array, targets: jax.Array, mask: jax.Array, *, temperature: float = 0.2,
                     axis_name: str | None = None) -> jax.Array:
  r"""SCALE's token-level term: each masked token's prediction must pick its own crop's target among all crops.

  With :math:`p_n` and :math:`t_n` the L2-normalised prediction and target of token n, n running over the N
  tokens (every crop of every set) of the global batch, and :math:`\mathcal{M}` the masked tokens,

  .. math::
      L = -\frac{1}{|\mathcal{M}|} \sum_{n \in \mathcal{M}}
          \log \frac{\exp(p_n^\top t_n / \tau)}{\sum_{m=1}^{N} \exp(p_n^\top t_m / \tau)},

  with :math:`\tau = 0.2`. The negatives are the targets of every token, visible ones included; only masked
  tokens are scored. No stop-gradient: as in the released code, the gradient flows into the targets (the target
  head trains), through both the positive and the negatives.

  Source: `Scale.forward` of the authors' `src/scale.py` (the `dense_target_head` of the backbone features, the
  `dense_pred_head` of the transformer's token outputs, `log_softmax` over the flattened tokens,
  `masked_select` of the diagonal); the default temperature is `src/train.py`'s `--dense_temperature`.

  Args:
    predictions: [b, ..., d] the prediction head's outputs per token (normalised here), e.g. [b, 2, v, d].
    targets: [b, ..., d] the target head's embeddings of the same tokens' input features (normalised here).
    mask: bool [b, ...] True for the hidden tokens (`scale_token_mask`).
    temperature: tau > 0.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where the targets are
      gathered from every device (negatives from the global batch) and the mean runs over every masked token.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input); 0 when no token is masked.

  Example:
    >>> t = jnp.eye(4).reshape(1, 4, 4)  # four orthogonal crops
    >>> mask = jnp.array([[True, False, False, False]])
    >>> float(scale_dense_loss(t, t, mask)) < float(scale_dense_loss(t[:, ::-1], t, mask))
    True

  Sameni, Jenni & Favaro, "Spatio-Temporal Crop Aggregation for Video Representation Learning", ICCV 2023,
  https://arxiv.org/abs/2211.17042; code github.com/Separius/SCALE.
  """
  _checks.check_array("predictions", predictions, shape_doc="[b, ..., d]")
  if predictions.ndim < 2:
    raise ValueError(f"predictions must have shape [b, ..., d] (at least 2 dims); got {tuple(predictions.shape)}.")
  _checks.check_same_shape(predictions=predictions, targets=targets)
  if tuple(mask.shape) != tuple(predictions.shape[:-1]):
    raise ValueError(f"mask must have shape {tuple(predictions.shape[:-1])} (one entry per token of predictions, "
                     f"[b, ..., d]); got shape {tuple(mask.shape)}.")
  if mask.dtype != jnp.bool_:
    raise ValueError(f"mask must be a boolean array (True = masked token); got dtype {mask.dtype}.")
  _checks.check_positive("temperature", temperature)
  d = predictions.shape[-1]
  p, t = _ops.to_float32(predictions, targets)
  p = l2_normalize(p.reshape(-1, d))
  t = l2_normalize(t.reshape(-1, d))
  on = mask.reshape(-1)
  all_t = _collectives.all_gather(t, axis_name)  # [N, d]: every token of the global batch
  own = jnp.sum(p * t, axis=-1) / temperature
  lse = jax.nn.logsumexp(p @ all_t.T / temperature, axis=-1)
  total = _collectives.psum(jnp.sum(jnp.where(on, lse - own, 0.0)), axis_name)
  count = _collectives.psum(jnp.sum(on, dtype=jnp.float32), axis_name)
  return total / jnp.maximum(count, 1.0)


def scale_loss(set_a: jax.Array, set_b: jax.Array, predictions: jax.Array, targets: jax.Array, mask: jax.Array, *,
               set_temperature: float = 0.2, dense_temperature: float = 0.2, set_weight: float = 1.0,
               dense_weight: float = 1.0, axis_name: str | None = None,
               return_terms: bool = False) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""SCALE's objective: the set-level symmetric InfoNCE and the masked-token contrast, weighted.

  .. math::
      L = \frac{w_s L_\text{set} + w_d L_\text{dense}}{w_s + w_d},

  where :math:`L_\text{set}` is the symmetric InfoNCE of the two sets' L2-normalised head outputs at temperature
  0.2 (row and column cross-entropies averaged: `rl.losses.clip` with `logit_scale = 1 / set_temperature`, the
  released `contrastive_loss(..., dual=True)`), and :math:`L_\text{dense}` is `scale_dense_loss`. Both weights
  default to 1, so L is the mean of the two (`src/train.py`: `--set_loss_weight`, `--dense_loss_weight`, divided
  by their sum). Set `set_weight=0` for the token term alone (the code's `--set_contrastive_dim 0`).

  Args:
    set_a: [b, d_s] set 0's head output (the [CLS] token through the set head), normalised here.
    set_b: [b, d_s] set 1's, row i from the same video as `set_a[i]`.
    predictions, targets, mask: as `scale_dense_loss` (tokens of both sets, e.g. [b, 2, v, d] and [b, 2, v]).
    set_temperature, dense_temperature: the two temperatures (> 0).
    set_weight, dense_weight: the weights (>= 0, not both 0).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (negatives of both
      terms gathered from every device).
    return_terms: also return the two unweighted terms.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), or `(loss, {"set", "dense"})` with `return_terms`.

  Example:
    >>> s = jnp.eye(3)
    >>> t = jnp.eye(4).reshape(1, 4, 4).repeat(3, axis=0)
    >>> loss, terms = scale_loss(s, s, t, t, jnp.ones((3, 4), bool), return_terms=True)
    >>> sorted(terms)
    ['dense', 'set']

  Sameni, Jenni & Favaro, "Spatio-Temporal Crop Aggregation for Video Representation Learning", ICCV 2023,
  https://arxiv.org/abs/2211.17042; code github.com/Separius/SCALE.
  """
  _checks.check_embeddings(set_a=set_a, set_b=set_b)
  _checks.check_positive("set_temperature", set_temperature)
  for name, w in (("set_weight", set_weight), ("dense_weight", dense_weight)):
    if not w >= 0:
      raise ValueError(f"{name} must be >= 0; got {w!r}.")
  if set_weight + dense_weight <= 0:
    raise ValueError(f"set_weight + dense_weight must be > 0; got {set_weight!r} + {dense_weight!r}.")
  if predictions.shape[0] != set_a.shape[0]:
    raise ValueError(f"predictions must hold the tokens of the same {set_a.shape[0]} videos as set_a (axis 0); "
                     f"got shape {tuple(predictions.shape)}.")
  set_term = clip(set_a, set_b, logit_scale=1.0 / set_temperature, axis_name=axis_name, impl="plain")
  dense_term = scale_dense_loss(predictions, targets, mask, temperature=dense_temperature, axis_name=axis_name)
  loss = (set_weight * set_term + dense_weight * dense_term) / (set_weight + dense_weight)
  if return_terms:
    return loss, {"set": set_term, "dense": dense_term}
  return loss


__all__ = ["scale_split_sets", "scale_token_mask", "scale_dense_loss", "scale_loss"]
