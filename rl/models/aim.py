"""A two-stream ViT for autoregressive image modelling in any order: SemAIM's `AimViT`.

Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning", AAAI 2024,
https://arxiv.org/abs/2312.10457 (the authors' code: github.com/skyoux/SemAIM, models/models_semaim.py and
util/blocks.py, read to follow it; nothing copied). Two streams run over the 1 + L tokens (a class token, then the
patches in reading order):

- the content stream h (the encoder): patch embeddings plus the fixed sin-cos position embedding (MAE's), the
  class token in front; each token attends to the tokens up to and including itself in the order (mask C of
  `rl.losses.semaim_attention_masks`);
- the query stream g (the parallel decoder): it starts from the fixed position embeddings alone (the class
  token's row zero), so a query knows where its patch is but not what it holds; each query attends to the
  CONTENT tokens strictly before its patch (mask Q), through its own blocks.

Per layer i: h <- block_i(h, mask C); then, every depth / query_depth layers, g <- query_block_j(g, keys and values
h, mask Q) (the authors' defaults: as many query blocks as blocks, weights not shared; `share_weights=True` uses
the content blocks for the queries too). After the final LayerNorm, an MLP head (width -> 4 width -> ph pw c) maps
each query to its patch's pixels. For evaluation the content stream runs with full attention (every token sees
every token) and the representation is the mean of its patch tokens after the final norm (the authors' kNN
evaluation pools the patches; their linear probe reads the class token).

Signals [b, l] are the images [b, 1, l, 1] with (1, p) patches, as `rl.models.MAE`'s.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl.models.heads import check_rank
from rl.models.vit import LN_EPSILON
from rl.models.vit import MlpBlock
from rl.models.vit import TOKEN_INIT
from rl.models.vit import XAVIER_INIT
from rl.models.vit import as_image
from rl.models.vit import patch_hw
from rl.models.vit import sincos_2d_posemb


class TwoStreamBlock(nn.Module):
  """Pre-norm transformer block whose queries may differ from its keys and values, under an attention mask:
  `x = x + MHA(LN(x), LN(kv), mask); x = x + MLP(LN(x))` (kv = x: self-attention)."""
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, kv: jax.Array | None, mask: jax.Array) -> jax.Array:
    """x [b, n, d] queries, kv [b, n, d] (None: x), mask bool [b, n, n] (True: may attend); returns [b, n, d]."""
    norm1 = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="norm1")
    q = norm1(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, kernel_init=XAVIER_INIT, dtype=self.dtype,
                                        name="attn")(q, q if kv is None else norm1(kv), mask=mask[:, None])
    x = x + y
    y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="norm2")(x)
    return x + MlpBlock(self.mlp_dim, dtype=self.dtype, name="mlp")(y)


class AimViT(nn.Module):
  """The two-stream ViT (module docstring). `__call__(x)` -> [b, width] features (full attention, mean of the
  patch tokens); `tokens(x)` -> [b, 1 + L, width] content tokens with full attention; `autoregress(x, content_mask,
  query_mask)` -> [b, L, ph * pw * c] predictions of the patches' pixels.

  Attributes:
    width: token dimension (a multiple of 4, for the sin-cos embedding).
    depth: number of content blocks.
    num_heads: attention heads (they divide the width).
    patch_size: p, or (ph, pw); (1, p) for signals.
    channels: the inputs' channels (the prediction head outputs ph * pw * channels per patch).
    query_depth: number of query blocks, a divisor of `depth` (None: `depth`, the authors' default); query block
      j runs after content block (j + 1) depth / query_depth - 1.
    share_weights: the query stream uses the content blocks (the authors' `share_weight`, off by default).
    mlp_dim: hidden width of the MLPs; None for 4 * width.
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> model = AimViT(width=16, depth=1, num_heads=2, patch_size=(1, 4))
    >>> x = jnp.ones((2, 40))  # signals: 10 patches of 4 samples
    >>> variables = model.init(jax.random.key(0), x, method=AimViT.init_all)
    >>> model.apply(variables, x, train=False).shape
    (2, 16)
  """
  width: int = 192
  depth: int = 12
  num_heads: int = 3
  patch_size: int | tuple[int, int] = 16
  channels: int = 1
  query_depth: int | None = None
  share_weights: bool = False
  mlp_dim: int | None = None
  dtype: Any = jnp.float32

  @property
  def feature_dim(self) -> int:
    return self.width

  def setup(self):
    """Checks the options and builds the patch embedding, class token, blocks and head (Flax calls it on first use)."""
    if self.width % 4 or self.num_heads < 1 or self.width % self.num_heads:
      raise ValueError(f"width must be a multiple of 4 and of num_heads; got width={self.width}, "
                       f"num_heads={self.num_heads}.")
    query_depth = self.depth if self.query_depth is None else self.query_depth
    if query_depth < 1 or self.depth % query_depth:
      raise ValueError(f"query_depth must divide depth={self.depth}; got {self.query_depth}.")
    if self.share_weights and query_depth != self.depth:
      raise ValueError(f"share_weights uses the content blocks as query blocks: query_depth must be depth="
                       f"{self.depth} (or None); got {self.query_depth}.")
    ph, pw = patch_hw(self.patch_size)
    mlp_dim = self.mlp_dim or 4 * self.width
    self.patch_embed = nn.Conv(self.width, (ph, pw), strides=(ph, pw), padding="VALID", dtype=self.dtype)
    self.cls = self.param("cls", TOKEN_INIT, (1, 1, self.width))
    self.blocks = [TwoStreamBlock(self.num_heads, mlp_dim, dtype=self.dtype, name=f"block{i}")
                   for i in range(self.depth)]
    self.query_blocks = self.blocks if self.share_weights else [
        TwoStreamBlock(self.num_heads, mlp_dim, dtype=self.dtype, name=f"query_block{j}") for j in range(query_depth)]
    self.norm = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype)
    self.pred_hidden = nn.Dense(mlp_dim, kernel_init=XAVIER_INIT, dtype=self.dtype)
    self.pred = nn.Dense(ph * pw * self.channels, kernel_init=XAVIER_INIT, dtype=self.dtype)

  def _streams(self, x: jax.Array):
    """(content tokens [b, 1 + L, d], query tokens [b, 1 + L, d]) before the blocks."""
    x = as_image(x)
    check_rank(x, name="x", ranks=(4,), layout="[b, h, w, c]")
    b, h, w, c = x.shape
    ph, pw = patch_hw(self.patch_size)
    if c != self.channels:
      raise ValueError(f"x has {c} channels; this AimViT was built for channels={self.channels}.")
    if h % ph or w % pw:
      raise ValueError(f"x height and width must be multiples of patch_size={self.patch_size}; got x of shape "
                       f"{tuple(x.shape)}.")
    grid = (h // ph, w // pw)
    pos = sincos_2d_posemb(*grid, self.width, dtype=self.dtype)[None]
    patches = self.patch_embed(x.astype(self.dtype)).reshape(b, grid[0] * grid[1], self.width) + pos
    cls = jnp.broadcast_to(self.cls.astype(self.dtype), (b, 1, self.width))
    queries = jnp.concatenate([jnp.zeros((1, 1, self.width), self.dtype), pos], axis=1)  # the class row: zero
    return jnp.concatenate([cls, patches], axis=1), jnp.broadcast_to(queries, (b,) + queries.shape[1:])

  def tokens(self, x: jax.Array) -> jax.Array:
    """The content stream with full attention, after the final norm: [b, 1 + L, width]."""
    h, _ = self._streams(x)
    everything = jnp.ones((h.shape[0], h.shape[1], h.shape[1]), bool)
    for block in self.blocks:
      h = block(h, None, everything)
    return self.norm(h)

  def autoregress(self, x: jax.Array, content_mask: jax.Array, query_mask: jax.Array) -> jax.Array:
    """Each patch's pixels predicted by its query, [b, L, ph * pw * c] (in `rl.losses.patchify`'s layout)."""
    h, g = self._streams(x)
    step = len(self.blocks) // len(self.query_blocks)
    for i, block in enumerate(self.blocks):
      h = block(h, None, content_mask)
      if (i + 1) % step == 0:  # the queries read the content of this layer
        g = self.query_blocks[i // step](g, h, query_mask)
    g = self.norm(g)[:, 1:]
    return self.pred(nn.gelu(self.pred_hidden(g), approximate=False))

  def init_all(self, x: jax.Array) -> jax.Array:
    """Touches every parameter (pass it as `method=` to Flax's init): both streams and the head, with full masks."""
    n = self.tokens(x).shape[1]
    everything = jnp.ones((x.shape[0], n, n), bool)
    return self.autoregress(x, everything, everything)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train  # no dropout, no BatchNorm
    return jnp.mean(self.tokens(x)[:, 1:], axis=1)
