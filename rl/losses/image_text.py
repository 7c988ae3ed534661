"""Image-text objectives: paired embeddings of two modalities contrasted across the batch."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses import _tiled
from rl.losses.hypersphere import l2_normalize


def _normalized(x: jax.Array, y: jax.Array, logit_scale) -> tuple[jax.Array, jax.Array]:
  _checks.check_embeddings(x=x, y=y)
  _checks.check_positive("logit_scale", logit_scale)
  return l2_normalize(_ops.to_float32(x)), l2_normalize(_ops.to_float32(y))


def clip(x: jax.Array, y: jax.Array, *, logit_scale, axis_name: str | None = None, impl: str = "auto",
         tile_size: int = _tiled.DEFAULT_TILE) -> jax.Array:
  r"""CLIP's symmetric InfoNCE: each image must pick its text among all texts, and each text its image.

  With L2-normalised image embeddings u and text embeddings v of the GLOBAL batch of B pairs and
  logits s_ij = logit_scale * u_i^T v_j:

  .. math::
      L = \frac{1}{2B} \sum_{i=1}^{B} \Big[\big(\log \textstyle\sum_j e^{s_{ij}} - s_{ii}\big)
          + \big(\log \textstyle\sum_j e^{s_{ji}} - s_{ii}\big)\Big],

  the mean of the cross-entropy over rows (image -> text) and over columns (text -> image). CLAP (Elizalde et
  al. 2022, https://arxiv.org/abs/2206.04769) uses the same objective for audio-text pairs.

  Args:
    x: [b, d] image embeddings (normalised here).
    y: [b, d] text embeddings; row i is paired with `x[i]`.
    logit_scale: the already-exponentiated scale 1/tau > 0, a number or a traced learnable scalar (CLIP learns
      log(logit_scale), initialised to log(1/0.07), and clips logit_scale at 100; the caller keeps that
      parameter and the clipping).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where `x, y` are this device's shard and the other modality is gathered from every device.
    impl: "plain", "tiled" or "auto" (default), as in `rl.losses.nt_xent`: the tiled form streams the other
      modality in [tile_size, tile_size] tiles (around a ring of devices with `axis_name`), for the rows and
      for the columns; "auto" is tiled above 2^26 logits per device.
    tile_size: side of the logits tiles of the tiled form.

  Returns:
    The scalar loss over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> x = jnp.eye(4)
    >>> bool(clip(x, x, logit_scale=10.0) < clip(x, x[::-1], logit_scale=10.0))
    True

  Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021,
  https://arxiv.org/abs/2103.00020 (Figure 3).
  """
  u, v = _normalized(x, y, logit_scale)
  _tiled.check_tile(tile_size)
  b = u.shape[0]
  if _tiled.choose(impl, b, b * _collectives.axis_size(axis_name)):
    dt = _tiled.matmul_dtype(x, y)
    pos = logit_scale * jnp.sum(u * v, axis=1)  # s_ii, once as a row and once as a column term
    ids = jnp.arange(b) + _collectives.axis_index(axis_name) * b  # global pair id of each row and column
    total = 0.0
    for anchors, others in ((u, v), (v, u)):
      # Each pair's positive is read out of the same tiles (see `rl.losses.nt_xent`'s tiled form).
      lse, rel = _tiled.row_logsumexp((logit_scale * anchors).astype(dt), others.astype(dt), axis_name=axis_name,
                                      tile_size=tile_size, labels=(ids, ids))
      total = total + jnp.sum(_tiled.minus_positive(lse, pos, rel))
    return _collectives.global_mean(total, 2 * b, axis_name)
  diag = jnp.arange(b) + _collectives.axis_index(axis_name) * b  # global column of each local pair
  total = 0.0
  # Local image rows against all texts give the row terms; local text rows against all images give the column
  # terms of the same local pairs. Each device thus owns the 2b terms of its own pairs.
  for anchors, others in ((u, v), (v, u)):
    logits = logit_scale * (anchors @ _collectives.all_gather(others, axis_name).T)  # [b, B]
    pos = jnp.take_along_axis(logits, diag[:, None], axis=1)[:, 0]
    total = total + jnp.sum(jax.nn.logsumexp(logits, axis=1) - pos)
  return _collectives.global_mean(total, 2 * b, axis_name)


def siglip(x: jax.Array, y: jax.Array, *, logit_scale, logit_bias, axis_name: str | None = None) -> jax.Array:
  r"""SigLIP's pairwise sigmoid loss: every image-text pair is an independent binary classification.

  With L2-normalised u (images) and v (texts) of the GLOBAL batch of B pairs, logits
  s_ij = t u_i^T v_j + b_0, and labels z_ij = 1 if i = j else -1:

  .. math::
      L = -\frac{1}{B} \sum_{i=1}^{B} \sum_{j=1}^{B} \log \sigma(z_{ij} s_{ij}),

  normalised by the global batch size as in the paper's Algorithm 1. The sum over all B^2 pairs is split by
  image rows: each device scores its local images against the gathered texts, and the sums are added with psum.

  Args:
    x: [b, d] image embeddings (normalised here).
    y: [b, d] text embeddings; row i is paired with `x[i]`.
    logit_scale: t > 0, the already-exponentiated scale (the paper learns t' with t = exp(t'), t' initialised to
      log 10); a number or a traced scalar. The caller keeps that parameter.
    logit_bias: b_0, a number or a traced scalar (initialised to -10 in the paper).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where `x, y` are this device's shard.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> x = jnp.eye(4)
    >>> loss = lambda y: siglip(x, y, logit_scale=10.0, logit_bias=-10.0)
    >>> bool(loss(x) < loss(x[::-1]))
    True

  Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023, https://arxiv.org/abs/2303.15343
  (Algorithm 1).
  """
  u, v = _normalized(x, y, logit_scale)
  b = u.shape[0]
  texts = _collectives.all_gather(v, axis_name)  # [B, d]
  logits = logit_scale * (u @ texts.T) + logit_bias  # [b, B]
  diag = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  labels = jnp.where(jnp.arange(texts.shape[0])[None, :] == diag[:, None], 1.0, -1.0)
  local = -jnp.sum(jax.nn.log_sigmoid(labels * logits))
  return _collectives.global_mean(local, b, axis_name)
