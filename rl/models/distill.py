"""Modules for the distillation losses of `rl.losses.distillation`.

`FeatureRegressor` maps a backbone's multi-level feature maps to the channel counts of a teacher's maps, one 1x1
convolution per level, for DreamTeacher's feature regression (Li et al., "DreamTeacher: Pretraining Image
Backbones with Deep Generative Models", ICCV 2023, https://arxiv.org/abs/2307.07487). The paper's regressor is a
top-down FPN-like module (lateral connections that mix the levels); that mixing is out of scope here.

`CrossAttentionSearchHead` is MOKD's Transformer head (T-Head) with the cross-attention feature search (Song et
al., "Multi-Mode Online Knowledge Distillation for Self-Supervised Visual Representation Learning", CVPR 2023,
https://arxiv.org/abs/2304.06461; after `THead_CNN` / `THead_ViT` of github.com/skyoux/mokd): a few pre-norm
Transformer blocks over the patch tokens of one network, optionally with the OTHER network's embedding
prepended as a query token; the token outputs (query dropped) are averaged and projected by a weight-normalised
linear layer.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl.models.heads import check_rank


class FeatureRegressor(nn.Module):
  """One 1x1 convolution per feature level: [b, h_l, w_l, c_l] -> [b, h_l, w_l, out_channels[l]].

  Attributes:
    out_channels: the teacher's channel count at each level.
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> reg = FeatureRegressor(out_channels=(8, 16))
    >>> feats = [jnp.ones((2, 8, 8, 4)), jnp.ones((2, 4, 4, 6))]
    >>> variables = reg.init(jax.random.key(0), feats)
    >>> [y.shape for y in reg.apply(variables, feats)]
    [(2, 8, 8, 8), (2, 4, 4, 16)]
  """
  out_channels: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feats: Sequence[jax.Array], *, train: bool = False) -> list[jax.Array]:
    """Projects every level.

    Args:
      feats: a list of L feature maps [b, h_l, w_l, c_l], L = len(out_channels).
      train: unused (no BatchNorm or dropout); kept for the uniform model signature.

    Returns:
      The list of L projected maps [b, h_l, w_l, out_channels[l]].
    """
    del train
    if len(feats) != len(self.out_channels):
      raise ValueError(f'feats must hold one map per level ({len(self.out_channels)} levels, from '
                       f'out_channels={tuple(self.out_channels)}); got {len(feats)} maps.')
    out = []
    for level, (x, c) in enumerate(zip(feats, self.out_channels)):
      check_rank(x, name=f'feats[{level}]', ranks=(4,), layout='[b, h, w, c]')
      out.append(nn.Conv(c, (1, 1), dtype=self.dtype, name=f'level{level}')(x))
    return out


class _Block(nn.Module):
  """Pre-norm Transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
  num_heads: int
  mlp_ratio: float
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dim = x.shape[-1]
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='norm1')(x)
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype, name='attn')(y, y)
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='norm2')(x)
    y = nn.Dense(int(dim * self.mlp_ratio), dtype=self.dtype, name='fc1')(y)
    y = nn.Dense(dim, dtype=self.dtype, name='fc2')(nn.gelu(y, approximate=False))
    return x + y


class CrossAttentionSearchHead(nn.Module):
  """MOKD's Transformer head (T-Head), with the cross-attention feature search when given a query token.

  Input tokens: a ViT's patch tokens [b, n, embed_dim], or a CNN's last feature map [b, h, w, c], flattened and
  projected to embed_dim by a 1x1 layer (as `THead_CNN`). A learned positional embedding of the token count seen
  at init is added (the authors interpolate it for other resolutions; here the count must stay fixed). With
  `query` [b, embed_dim] (the other network's embedding, stop-gradient by the caller), the query is prepended,
  every block attends jointly over it and the tokens, and it is dropped before pooling: the output is the
  teacher's tokens as re-weighted by the query. The tokens are averaged and projected by a linear layer with
  weight normalisation (each output unit's weight vector of norm g, g initialised to 1).

  Attributes:
    out_dim: output dimension K (the DINO head's).
    embed_dim: token width (MOKD: the ViT's, 384 for ViT-S).
    depth: number of Transformer blocks (MOKD: 3).
    num_heads: attention heads (MOKD: 6).
    mlp_ratio: hidden width of the MLP relative to embed_dim (4).
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> head = CrossAttentionSearchHead(out_dim=16, embed_dim=8, depth=1, num_heads=2)
    >>> tokens, query = jnp.ones((2, 4, 8)), jnp.ones((2, 8))
    >>> variables = head.init(jax.random.key(0), tokens, query=query)
    >>> logits, pooled = head.apply(variables, tokens, query=query)
    >>> logits.shape, pooled.shape
    ((2, 16), (2, 8))
  """
  out_dim: int
  embed_dim: int = 384
  depth: int = 3
  num_heads: int = 6
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, query: jax.Array | None = None,
               train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Runs the head.

    Args:
      x: patch tokens [b, n, embed_dim] or a feature map [b, h, w, c].
      query: optional [b, embed_dim] query token from the other network (the feature search).
      train: unused (no BatchNorm or dropout); kept for the uniform model signature.

    Returns:
      (logits [b, out_dim], pooled [b, embed_dim]): `pooled` is the mean of the (projected) input tokens before
      the positional embedding, the CNN's query token for the other network's search in MOKD.
    """
    del train
    check_rank(x, name='x', ranks=(3, 4), layout='[b, n, embed_dim] or [b, h, w, c]')
    if x.ndim == 4:
      x = x.reshape(x.shape[0], -1, x.shape[-1])
      x = nn.Dense(self.embed_dim, dtype=self.dtype, name='patch_embed')(x)
    elif x.shape[-1] != self.embed_dim:
      raise ValueError(f'x must have shape [b, n, {self.embed_dim}] (embed_dim) when given tokens; got shape '
                       f'{tuple(x.shape)}.')
    pooled = jnp.mean(x, axis=1)
    pos = self.param('pos_embed', nn.initializers.truncated_normal(0.02), (1, x.shape[1], self.embed_dim))
    x = x + pos.astype(x.dtype)
    if query is not None:
      if query.shape != (x.shape[0], self.embed_dim):
        raise ValueError(f'query must have shape [{x.shape[0]}, {self.embed_dim}] ([b, embed_dim]); got shape '
                         f'{tuple(query.shape)}.')
      x = jnp.concatenate([query[:, None, :].astype(x.dtype), x], axis=1)
    for i in range(self.depth):
      x = _Block(self.num_heads, self.mlp_ratio, self.dtype, name=f'block{i}')(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='norm')(x)
    if query is not None:
      x = x[:, 1:]
    x = jnp.mean(x, axis=1)
    v = self.param('last_v', nn.initializers.truncated_normal(0.02), (self.embed_dim, self.out_dim))
    g = self.param('last_g', nn.initializers.ones, (self.out_dim,))
    w = v * (g / jnp.linalg.norm(v, axis=0))
    return x @ w.astype(x.dtype), pooled
