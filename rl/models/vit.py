"""Vision Transformer (Dosovitskiy et al., 2021, https://arxiv.org/abs/2010.11929).

Pre-norm transformer blocks on non-overlapping p x p (or rectangular ph x pw) patches of NHWC images:
`x = x + MHA(LN(x)); x = x + MLP(LN(x))`, with a GELU MLP, a final LayerNorm and either the class
token ('cls') or the mean of the patch tokens ('mean') as the pooled feature. Layer shapes,
LayerNorm epsilon (1e-6) and initialisation (Xavier-uniform Linear layers, the patch embedding
initialised as a Linear layer on flattened patches, N(0, 0.02) tokens) follow timm's ViT as the
official MAE code uses it (facebookresearch/mae). With learned position embeddings the parameter
counts are timm's minus one position vector: the class token carries no position embedding (as in
big_vision), an equivalent reparametrisation since both are learned additive vectors.

`posemb='sincos2d'` uses the fixed 2-D sine-cosine embedding of MAE and MoCo v3, which also works
for any image size; a learned embedding is created for the grid of the images seen at `init`.

1-D signals [b, l] are the images [b, 1, l, 1] with `patch_size=(1, p)`: a 1 x (l / p) grid of
tokens. Their sin-cos embedding is the 1-D sin-cos embedding of width / 2 on the column (the first
half), and the constant row-0 code [0, ..., 0, 1, ..., 1] on the second half (`sincos_2d_posemb`).

`shortcut_decay=alpha_min` scales both shortcuts of block l by the weight of
`rl.models.resnet.decayed_shortcut_weights` ("decayed identity shortcuts", Zhang et al., 2024,
https://arxiv.org/abs/2404.10947).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rl.models.heads import check_rank
from rl.models.resnet import add_shortcut
from rl.models.resnet import decayed_shortcut_weights

LN_EPSILON = 1e-6
XAVIER_INIT = nn.initializers.xavier_uniform()
"""Initialiser of every Linear layer of the ViT and the MAE decoder (timm's ViT, as the official MAE code)."""
# torch's xavier_uniform_ on the patch-embedding weight viewed as [width, p*p*c] (official MAE).
_PATCH_INIT = nn.initializers.variance_scaling(1.0, 'fan_avg', 'uniform', in_axis=(0, 1, 2),
                                               out_axis=-1)
TOKEN_INIT = nn.initializers.normal(0.02)
"""Initialiser of learned tokens and position embeddings (class token, MAE's mask token): N(0, 0.02)."""
_READOUTS = ('cls', 'mean')
_POSEMBS = ('learn', 'sincos2d')


def patch_hw(patch_size: int | tuple[int, int]) -> tuple[int, int]:
  """(ph, pw) of a `patch_size`: an int p is the square (p, p); a pair is (height, width).

  Example:
    >>> patch_hw(4), patch_hw((2, 8))
    ((4, 4), (2, 8))

  Raises:
    ValueError: unless `patch_size` is a positive int or a pair of positive ints.
  """
  if isinstance(patch_size, (tuple, list)):
    if len(patch_size) != 2:
      raise ValueError(f'patch_size must be an int or a (height, width) pair, got {patch_size!r}.')
    ph, pw = (int(v) for v in patch_size)
  else:
    ph = pw = int(patch_size)
  if ph < 1 or pw < 1:
    raise ValueError(f'patch_size must be positive, got {patch_size}.')
  return ph, pw


def _fmt_patch(patch_size) -> str:
  return str(tuple(patch_size)) if isinstance(patch_size, (tuple, list)) else str(patch_size)


def as_image(x: jax.Array) -> jax.Array:
  """Signals [b, l] -> [b, 1, l, 1] and [b, l, c] -> [b, 1, l, c]; images [b, h, w, c] unchanged.

  Example:
    >>> as_image(jnp.zeros((8, 40))).shape, as_image(jnp.zeros((8, 32, 32, 3))).shape
    ((8, 1, 40, 1), (8, 32, 32, 3))
  """
  if x.ndim == 2:
    return x[:, None, :, None]
  if x.ndim == 3:
    return x[:, None]
  if x.ndim == 4:
    return x
  raise ValueError(f"x must be signals [b, l] or [b, l, c] or images [b, h, w, c]; got shape {tuple(x.shape)}.")


def sincos_2d_posemb(grid_h: int, grid_w: int, width: int, *,
                     dtype: Any = jnp.float32) -> jax.Array:
  """Fixed 2-D sine-cosine position embedding of MAE (`get_2d_sincos_pos_embed`), [h*w, width].

  Token l = r * grid_w + s (reading order) gets `[sin(s w), cos(s w), sin(r w), cos(r w)]` with
  frequencies w_k = 10000^(-k / (width / 4)), k < width / 4: as in the official code, the first
  half encodes the column and the second half the row. It is computed in float64 by NumPy, as
  there, and is a constant (not a parameter). Non-square grids are a direct generalisation; on a
  1 x n grid (1-D signals) the first half is the 1-D sin-cos embedding of width / 2 of the token
  index (width / 4 frequencies, distinct for every position) and the second half is the same
  constant for all tokens, so it only shifts every token alike.

  Args:
    grid_h: number of patch rows.
    grid_w: number of patch columns.
    width: embedding dimension, a multiple of 4.
    dtype: dtype of the result.

  Returns:
    [grid_h * grid_w, width].

  Example:
    >>> sincos_2d_posemb(2, 3, 8).shape
    (6, 8)

  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022,
  https://arxiv.org/abs/2111.06377.
  """
  if width % 4:
    raise ValueError(f'width must be a multiple of 4 for the 2-D sin-cos position embedding, '
                     f'got width={width}.')
  omega = 1.0 / 10000 ** (np.arange(width // 4, dtype=np.float64) / (width / 4))
  rows, cols = np.meshgrid(np.arange(grid_h, dtype=np.float64),
                           np.arange(grid_w, dtype=np.float64), indexing='ij')

  def embed_1d(pos):
    out = np.outer(pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  return jnp.asarray(np.concatenate([embed_1d(cols), embed_1d(rows)], axis=1), dtype=dtype)


class MlpBlock(nn.Module):
  """Linear(mlp_dim) -> GELU (exact, as torch) -> Linear(input width)."""
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the MLP to x [..., d]; returns [..., d]."""
    d = x.shape[-1]
    x = nn.Dense(self.mlp_dim, kernel_init=XAVIER_INIT, dtype=self.dtype, name='fc1')(x)
    x = nn.gelu(x, approximate=False)
    return nn.Dense(d, kernel_init=XAVIER_INIT, dtype=self.dtype, name='fc2')(x)


class EncoderBlock(nn.Module):
  """Pre-norm transformer block: `x = a x + MHA(LN(x)); x = a x + MLP(LN(x))`, a = shortcut_weight.

  Attributes:
    num_heads: attention heads; they must divide the width.
    mlp_dim: hidden width of the MLP.
    shortcut_weight: fixed factor a on both shortcuts; 1 is the standard block.
    dtype: computation dtype (parameters stay float32).
  """
  num_heads: int
  mlp_dim: int
  shortcut_weight: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the block to tokens x [b, n, d]; returns [b, n, d]."""
    y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name='norm1')(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, kernel_init=XAVIER_INIT,
                                        dtype=self.dtype, name='attn')(y)
    x = add_shortcut(y, x, self.shortcut_weight)
    y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name='norm2')(x)
    y = MlpBlock(self.mlp_dim, dtype=self.dtype, name='mlp')(y)
    return add_shortcut(y, x, self.shortcut_weight)


class Transformer(nn.Module):
  """`depth` EncoderBlocks ('block0', ...) and a final LayerNorm ('norm') on tokens [b, n, d].

  Attributes:
    depth: number of blocks.
    num_heads: attention heads per block.
    mlp_dim: hidden width of the MLPs.
    shortcut_decay: None, or alpha_min of `decayed_shortcut_weights` for the block shortcuts.
    dtype: computation dtype (parameters stay float32).
  """
  depth: int
  num_heads: int
  mlp_dim: int
  shortcut_decay: float | None = None
  dtype: Any = jnp.float32

  @property
  def shortcut_weights(self) -> tuple[float, ...]:
    """The fixed shortcut weight of each block (all 1 without `shortcut_decay`)."""
    if self.shortcut_decay is None or self.depth == 0:
      return (1.0,) * self.depth
    return decayed_shortcut_weights(self.depth, self.shortcut_decay)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Transforms tokens x [b, n, d]; `train` is unused (no dropout). Returns [b, n, d]."""
    del train
    for i, weight in enumerate(self.shortcut_weights):
      x = EncoderBlock(self.num_heads, self.mlp_dim, shortcut_weight=weight, dtype=self.dtype,
                       name=f'block{i}')(x)
    return nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name='norm')(x)


class _LearnedPosEmb(nn.Module):
  """A learned position embedding [1, n, d] for the n tokens seen at init."""

  @nn.compact
  def __call__(self, tokens: jax.Array, grid: tuple[int, int]) -> jax.Array:
    n, d = tokens.shape[1:]
    if self.has_variable('params', 'embedding'):
      stored = self.get_variable('params', 'embedding').shape[1]
      if stored != n:
        raise ValueError(f'the learned position embedding has {stored} positions, but x has a '
                         f'{grid[0]} x {grid[1]} grid of {n} patches; use the image size of init '
                         f"or posemb='sincos2d'.")
    embedding = self.param('embedding', TOKEN_INIT, (1, n, d))
    return tokens + embedding.astype(tokens.dtype)


class ViT(nn.Module):
  """Vision Transformer encoder returning pooled features [b, width].

  Defaults are ViT-B/16; `ViTTiny`, `ViTSmall` and `ViTBase` change only the defaults.

  Attributes:
    width: token dimension (hidden size D).
    depth: number of transformer blocks.
    num_heads: attention heads; must divide `width`.
    mlp_dim: hidden width of the MLPs; None for 4 * width.
    patch_size: side p of square patches, or (ph, pw) for rectangular ones, e.g. (1, p) for 1-D
      signals given as [b, 1, l, 1] images; image height and width must be multiples of them.
    readout: 'cls' (the class token) or 'mean' (mean of the patch tokens, after the final norm).
    posemb: 'learn' (N(0, 0.02) init, tied to the init image size) or 'sincos2d' (fixed).
    class_token: prepend a learned class token; None means `readout == 'cls'`. MAE keeps the class
      token with either readout.
    shortcut_decay: None for standard residual blocks; a float alpha_min in [0, 1] to scale both
      shortcuts of block l by `decayed_shortcut_weights(depth, alpha_min)[l]` (Zhang et al.,
      2024, https://arxiv.org/abs/2404.10947). Adds no parameters.
    dtype: computation dtype, e.g. jnp.bfloat16; parameters stay float32.

  Example:
    >>> vit = ViT(width=32, depth=2, num_heads=2, patch_size=4)
    >>> x = jnp.zeros((2, 8, 12, 3))
    >>> variables = vit.init(jax.random.key(0), x, train=False)
    >>> vit.apply(variables, x, train=False).shape, vit.feature_dim
    ((2, 32), 32)
    >>> vit.apply(variables, x, train=False, method='encode_tokens').shape  # cls + 2 x 3 patches
    (2, 7, 32)
  """
  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int | None = None
  patch_size: int | tuple[int, int] = 16
  readout: str = 'cls'
  posemb: str = 'learn'
  class_token: bool | None = None
  shortcut_decay: float | None = None
  dtype: Any = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Dimension of the returned features: `width`."""
    return self.width

  @property
  def num_prefix_tokens(self) -> int:
    """1 if a class token is prepended to the patch tokens, else 0."""
    return int(self.readout == 'cls' if self.class_token is None else self.class_token)

  def setup(self):
    """Checks the options and builds the patch embedding, tokens and transformer (Flax calls it on first use)."""
    if self.readout not in _READOUTS:
      raise ValueError(f'readout must be one of {_READOUTS}, got {self.readout!r}.')
    if self.posemb not in _POSEMBS:
      raise ValueError(f'posemb must be one of {_POSEMBS}, got {self.posemb!r}.')
    if self.readout == 'cls' and not self.num_prefix_tokens:
      raise ValueError("readout='cls' needs a class token, got class_token=False.")
    ph, pw = patch_hw(self.patch_size)
    if self.num_heads < 1 or self.width % self.num_heads:
      raise ValueError(f'num_heads must divide width, got width={self.width}, '
                       f'num_heads={self.num_heads}.')
    if self.posemb == 'sincos2d' and self.width % 4:
      raise ValueError(f"width must be a multiple of 4 for posemb='sincos2d', got {self.width}.")
    if self.depth < 0:
      raise ValueError(f'depth must be non-negative, got {self.depth}.')
    self.patch_embed = nn.Conv(self.width, (ph, pw), strides=(ph, pw), padding='VALID',
                               kernel_init=_PATCH_INIT, dtype=self.dtype)
    if self.posemb == 'learn':
      self.pos_embedding = _LearnedPosEmb()
    if self.num_prefix_tokens:
      self.cls = self.param('cls', TOKEN_INIT, (1, 1, self.width))
    self.transformer = Transformer(self.depth, self.num_heads, self.mlp_dim or 4 * self.width,
                                   shortcut_decay=self.shortcut_decay, dtype=self.dtype)

  def embed(self, x: jax.Array) -> jax.Array:
    """Patch tokens with their position embeddings (no class token), [b, (h/ph)*(w/pw), width].

    Tokens are in reading order of the patch grid, as `rl.losses.patchify`.

    Args:
      x: images [b, h, w, c] (NHWC, float), h and w multiples of `patch_size`.
    """
    check_rank(x, name='x', ranks=(4,), layout='[b, h, w, c]')
    b, h, w, _ = x.shape
    ph, pw = patch_hw(self.patch_size)
    if h % ph or w % pw:
      raise ValueError(f'x height and width must be multiples of '
                       f'patch_size={_fmt_patch(self.patch_size)}, got x of shape {tuple(x.shape)}.')
    grid = (h // ph, w // pw)
    tokens = self.patch_embed(x.astype(self.dtype)).reshape(b, grid[0] * grid[1], self.width)
    if self.posemb == 'learn':
      return self.pos_embedding(tokens, grid)
    return tokens + sincos_2d_posemb(*grid, self.width, dtype=tokens.dtype)

  def transform(self, tokens: jax.Array, *, train: bool) -> jax.Array:
    """Prepends the class token (if any) and applies the blocks and the final LayerNorm.

    Args:
      tokens: [b, n, width], e.g. `embed(x)` or a subset of its tokens (MAE).
      train: unused (no dropout or BatchNorm); kept for the uniform model signature.

    Returns:
      [b, num_prefix_tokens + n, width], the class token first.
    """
    check_rank(tokens, name='tokens', ranks=(3,), layout='[b, n, width]')
    if tokens.shape[-1] != self.width:
      raise ValueError(f'tokens must have shape [b, n, width={self.width}], got shape '
                       f'{tuple(tokens.shape)}.')
    if self.num_prefix_tokens:
      cls = jnp.broadcast_to(self.cls.astype(tokens.dtype), (tokens.shape[0], 1, self.width))
      tokens = jnp.concatenate([cls, tokens], axis=1)
    return self.transformer(tokens, train=train)

  def encode_tokens(self, x: jax.Array, *, train: bool) -> jax.Array:
    """All output tokens of images x [b, h, w, c]: [b, num_prefix_tokens + L, width]."""
    return self.transform(self.embed(x), train=train)

  def pool(self, tokens: jax.Array) -> jax.Array:
    """Reads out [b, width] from the output tokens of `transform`, by `readout`."""
    if self.readout == 'cls':
      return tokens[:, 0]
    return jnp.mean(tokens[:, self.num_prefix_tokens:], axis=1)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Encodes images.

    Args:
      x: images, [b, h, w, c] (NHWC, float), h and w multiples of `patch_size`.
      train: unused (no dropout or BatchNorm); kept for the uniform model signature.

    Returns:
      Pooled features, [b, width], in `dtype`.
    """
    return self.pool(self.encode_tokens(x, train=train))


class ViTTiny(ViT):
  """ViT-Ti (DeiT, Touvron et al., 2021): width 192, 12 blocks, 3 heads; 5,524,224 params at /16."""
  width: int = 192
  depth: int = 12
  num_heads: int = 3


class ViTSmall(ViT):
  """ViT-S (DeiT): width 384, 12 blocks, 6 heads; 21,665,280 parameters at /16 and 224x224."""
  width: int = 384
  depth: int = 12
  num_heads: int = 6


class ViTBase(ViT):
  """ViT-B: width 768, 12 blocks, 12 heads; 85,797,888 parameters at /16 and 224x224."""
  width: int = 768
  depth: int = 12
  num_heads: int = 12
