"""Video objectives that contrast against temporally broken or temporally swapped versions of the same clip.

- `intra_negatives` + `iic`: Inter-Intra Contrast (IIC). A clip whose temporal order is destroyed (frames
  shuffled, or one frame repeated) is a negative for its own clip, next to the clips of other videos.
- `bidirectional_prediction`: predict the future and the past of a clip from its present; the same clip's
  future and past with their roles SWAPPED are hard temporal negatives.

Randomness is per example: example i of the global batch draws from `jax.random.fold_in(key, i)`, where
i = device index * b + row with `axis_name`, so a batch sharded over devices gets exactly the clips it would get
on one device.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.contrastive import info_nce
from rl.losses.hypersphere import l2_normalize

_MODES = ("shuffle", "repeat")


def _non_identity_permutation(key: jax.Array, t: int) -> jax.Array:
  """A permutation of range(t) drawn uniformly among the t! - 1 that are not the identity (t >= 2)."""
  # Rejection sampling: each draw is the identity with probability 1 / t! <= 1/2, so the loop is short, and the
  # accepted draw is uniform over the non-identity permutations.
  identity = jnp.arange(t)

  def draw(state):
    k, _ = state
    k, sub = jax.random.split(k)
    return k, jax.random.permutation(sub, t)

  _, perm = jax.lax.while_loop(lambda s: jnp.all(s[1] == identity), draw, draw((key, identity)))
  return perm


# Jitted so that eager calls compile the per-example loop once per (t, mode) instead of dispatching op by op;
# inside an outer jit/shard_map/pmap it is simply inlined.
@functools.partial(jax.jit, static_argnames=("t", "mode"))
def _frame_orders(key: jax.Array, index: jax.Array, *, t: int, mode: str) -> jax.Array:
  """[b, t] frame orders, row r drawn from `fold_in(key, index[r])` (index = global example indices)."""
  def one(i):
    k = jax.random.fold_in(key, i)
    if mode == "shuffle":
      return _non_identity_permutation(k, t)
    return jnp.full((t,), jax.random.randint(k, (), 0, t))
  return jax.vmap(one)(index)


def intra_negatives(key: jax.Array, clips: jax.Array, *, mode: str = "repeat",
                    axis_name: str | None = None) -> jax.Array:
  """Intra-negative clips of IIC: each clip with its temporal structure broken, by frame shuffling or repeating.

  For clip i the frames are re-indexed by an order o_i of length t drawn from `fold_in(key, i)` (i the global
  example index), giving `clips[i, o_i]`:

  - `"shuffle"`: o_i is a random permutation of the t frames, uniform over the t! - 1 permutations that are NOT
    the identity (needs t >= 2). The official code instead cuts the clip into 4 equal segments and swaps two of
    them (`adjacent_shuffle` in `gen_neg.py`); this is the frame-level shuffling the paper describes.
  - `"repeat"` (the official default): o_i = (k, ..., k) for one frame k drawn uniformly, i.e. a still clip.

  Only pixels move: the output has the input's dtype and carries no gradient of interest. Encode it with the
  same network as the anchor view and pass its embedding to `iic` as `intra_negative`.

  Args:
    key: PRNG key; example i of the global batch draws from `fold_in(key, i)`.
    clips: [b, t, h, w, c] clips (any dtype), t frames each.
    mode: `"shuffle"` or `"repeat"`.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where `clips` is
      this device's shard and example indices are global (1 device and 8 devices give the same clips).

  Returns:
    [b, t, h, w, c] intra-negative clips, in the input dtype.

  Example:
    >>> clips = jnp.arange(4.0).reshape(1, 4, 1, 1, 1)  # frame k holds the value k
    >>> still = intra_negatives(jax.random.key(0), clips, mode="repeat")[0, :, 0, 0, 0].tolist()
    >>> len(set(still))
    1
    >>> order = intra_negatives(jax.random.key(0), clips, mode="shuffle")[0, :, 0, 0, 0].tolist()
    >>> sorted(order) == [0.0, 1.0, 2.0, 3.0] and order != [0.0, 1.0, 2.0, 3.0]
    True

  Tao, Wang & Yamasaki, "Self-supervised Video Representation Learning Using Inter-intra Contrastive
  Framework", ACM MM 2020, https://arxiv.org/abs/2008.02531 (Sec. 3, intra-negative generation); official code
  github.com/BestJuly/Inter-intra-video-contrastive-learning.
  """
  _checks.check_array("clips", clips, ndim=5, floating=False, shape_doc="[b, t, h, w, c]")
  if mode not in _MODES:
    raise ValueError(f"mode must be one of {_MODES}; got {mode!r}.")
  b, t = clips.shape[:2]
  if mode == "shuffle" and t < 2:
    raise ValueError(f"mode='shuffle' needs at least 2 frames (clips of shape [b, t, h, w, c] with t >= 2); "
                     f"got clips of shape {tuple(clips.shape)}.")
  index = _collectives.global_rows(b, axis_name)
  order = _frame_orders(key, index, t=t, mode=mode)  # [b, t]
  return jnp.take_along_axis(clips, order.reshape(b, t, 1, 1, 1), axis=1)


def iic(anchor: jax.Array, positive: jax.Array, intra_negative: jax.Array, *, temperature: float = 0.07,
        symmetric: bool = True, axis_name: str | None = None) -> jax.Array:
  r"""Inter-Intra Contrast (IIC): InfoNCE whose negatives are other clips AND temporally broken clips.

  Anchor a_i (view 1 of clip i, e.g. RGB) and positive p_i (view 2 of the same clip, e.g. frame residuals or
  optical flow) are L2-normalised, as are the intra-negatives n_j (embeddings of `intra_negatives` of clip j,
  generated from view 1). Over the GLOBAL batch of B clips (all devices), each anchor must pick its positive
  among the B positives (inter-negatives: the other clips) and the B intra-negatives (its own broken clip and
  those of the other clips):

  .. math::
      \ell(a, p)_i = -\frac{a_i^\top p_i}{\tau} + \log\Big(\sum_{j=1}^{B} e^{a_i^\top p_j/\tau}
                     + \sum_{j=1}^{B} e^{a_i^\top n_j/\tau}\Big), \qquad
      L = \frac{1}{B}\sum_i \ell(a, p)_i + \frac{1}{B}\sum_i \ell(p, a)_i ,

  the second term (view 2 as anchor against view-1 keys and the same intra-negatives) only when `symmetric`.
  The two directions are SUMMED, as in the official code (`loss = view1_loss + view2_loss`, after CMC).

  Deviation from the official code, which follows CMC: there the keys are the rows of momentum memory banks
  (one per view and one for the intra-negatives, momentum 0.5) indexed by the dataset index, with K = 1024
  random other clips (NCE or, by default, softmax cross-entropy); the keys carry no gradient. Here the keys are
  the current batch (in-batch InfoNCE, as in SimCLR): no state, and gradients flow through positives and
  intra-negatives too. The caller may wrap `positive` / `intra_negative` in `jax.lax.stop_gradient` to train
  only through the anchors. This is the in-batch reading of the paper's inter-intra framework, which the
  authors state extends to SimCLR/MoCo-style contrast.

  Args:
    anchor: [b, d] view-1 clip embeddings (normalised here).
    positive: [b, d] view-2 embeddings; row i is the positive of `anchor[i]`.
    intra_negative: [b, d] embeddings of the intra-negative clips (`intra_negatives` of the view-1 clips).
    temperature: tau > 0 (0.07, the official code's `nce_t`).
    symmetric: True (the paper and code) sums both directions; False keeps only anchor -> positive.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where the arrays are this device's shard and keys and intra-negatives come from every device.

  Returns:
    The scalar loss over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> a = jnp.eye(4)
    >>> bool(iic(a, a, -a) < iic(a, a, a))  # intra-negatives close to the anchors make it harder
    True

  Tao, Wang & Yamasaki, "Self-supervised Video Representation Learning Using Inter-intra Contrastive
  Framework", ACM MM 2020, https://arxiv.org/abs/2008.02531; official code
  github.com/BestJuly/Inter-intra-video-contrastive-learning (`train_ssl.py`, `lib/NCEAverage.py`).
  """
  _checks.check_embeddings(anchor=anchor, positive=positive, intra_negative=intra_negative)
  _checks.check_positive("temperature", temperature)
  a, p, n = _ops.to_float32(anchor, positive, intra_negative)
  all_n = _collectives.all_gather(n, axis_name)  # [B, d]: every clip's intra-negative is a negative of every anchor
  loss = info_nce(a, p, temperature=temperature, negatives=all_n, axis_name=axis_name)
  if symmetric:
    loss = loss + info_nce(p, a, temperature=temperature, negatives=all_n, axis_name=axis_name)
  return loss


def bidirectional_prediction(pred_future: jax.Array, pred_past: jax.Array, future: jax.Array, past: jax.Array, *,
                             temperature: float = 0.1, temporal_negatives: bool = True,
                             axis_name: str | None = None) -> jax.Array:
  r"""Bidirectional feature prediction: predict future AND past from the present; swapped order is negative.

  From the present of clip i a network predicts the feature of its future, \hat f_i, and of its past,
  \hat p_i; the encoder gives the true future and past features f_i, p_i. All four are L2-normalised. The
  prediction and a candidate (future, past) pair are scored jointly, by the cosine of the concatenations:

  .. math::
      s_i(x, y) = \frac{\hat f_i^\top x + \hat p_i^\top y}{2\tau}, \qquad
      \ell_i = -s_i(f_i, p_i) + \log \sum_{j=1}^{B} \Big(e^{s_i(f_j, p_j)} + e^{s_i(p_j, f_j)}\Big),
      \qquad L = \frac{1}{B}\sum_{i=1}^{B} \ell_i .

  The positive is the true pair (f_i, p_i). The negatives are the same clip with past and future SWAPPED,
  (p_i, f_i) (the hard temporal negative), and both orders of every other clip of the GLOBAL batch (all
  devices). With `temporal_negatives=False` the swapped pairs are dropped (only (f_j, p_j), j != i, remain).

  Assumptions (the method section could not be consulted; this is the most standard reading of the abstract,
  "joint encoding of future and past provides a comprehensive set of temporal hard negatives via swapping"):
  the joint encoding of (future, past) is the concatenation of the two normalised features (the paper may use
  a learned encoder of the pair, which the caller can still apply before this loss by passing its outputs);
  the normalisation is per feature, with the joint score their mean cosine over tau; negatives are drawn in
  batch. The temperature default 0.1 is a common choice, not taken from the paper. Gradients flow through
  predictions and targets; the caller applies `jax.lax.stop_gradient` to `future` / `past` if the targets
  must not be trained.

  Args:
    pred_future: [b, d] predicted future features (normalised here).
    pred_past: [b, d] predicted past features.
    future: [b, d] encoded future features; row i belongs to the clip of `pred_future[i]`.
    past: [b, d] encoded past features.
    temperature: tau > 0.
    temporal_negatives: True (the paper) adds the swapped pairs (p_j, f_j) of every clip as negatives.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where the arrays are this device's shard and candidate pairs come from every device.

  Returns:
    The scalar mean loss over the B clips of the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> f = jnp.eye(4)[:2]; p = jnp.eye(4)[2:]  # two clips, future and past orthogonal
    >>> right = bidirectional_prediction(f, p, f, p)
    >>> bool(right < bidirectional_prediction(p, f, f, p))  # predicting the swapped order costs more
    True

  Behrmann, Gall & Noroozi, "Unsupervised Video Representation Learning by Bidirectional Feature
  Prediction", WACV 2021, https://arxiv.org/abs/2011.06037.
  """
  _checks.check_embeddings(pred_future=pred_future, pred_past=pred_past, future=future, past=past)
  _checks.check_positive("temperature", temperature)
  hf, hp, f, p = (l2_normalize(x) for x in _ops.to_float32(pred_future, pred_past, future, past))
  # info_nce re-normalises the concatenations, which have norm sqrt(2): u^T v = (hf^T x + hp^T y) / 2.
  query = jnp.concatenate([hf, hp], axis=1)
  key = jnp.concatenate([f, p], axis=1)
  negatives = None
  if temporal_negatives:
    negatives = _collectives.all_gather(jnp.concatenate([p, f], axis=1), axis_name)  # [B, 2d] swapped pairs
  return info_nce(query, key, temperature=temperature, negatives=negatives, axis_name=axis_name)
