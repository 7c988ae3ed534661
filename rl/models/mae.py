"""Masked autoencoder with a ViT encoder (He et al., 2022, https://arxiv.org/abs/2111.06377).

Follows the official code (facebookresearch/mae, models_mae.py): patch embedding plus fixed 2-D
sin-cos position embedding; `rl.losses.random_masking` keeps 1 - mask_ratio of the tokens per
example; the class token is prepended to the visible tokens only, and the encoder blocks and norm
see nothing else. The light decoder embeds the encoded tokens to `decoder_width`, appends one
shared learned mask token per removed patch, puts every token back at its place with
`ids_restore`, adds its own fixed sin-cos position embedding (none on the class token, as the
official zero row), runs its blocks and norm, and predicts the p*p*c pixels of each patch in the
order of `rl.losses.patchify`. The class token is dropped from the prediction.

`patch_size` may be rectangular, (ph, pw): 1-D signals [b, l] are the images [b, 1, l, 1] with
(1, p) patches, i.e. a 1 x (l / p) token grid (see `rl.models.vit` for its position embedding).

Defaults are `mae_vit_base_patch16` (encoder ViT-B/16, decoder 512 wide, 8 blocks, 16 heads):
111,655,680 parameters for 224x224 RGB images (the official count, 111,907,840, includes the two
frozen position embeddings). Train with `rl.losses.mae(pred, images, mask, patch_size=...,
norm_pix=norm_pix_loss)`, as `rl.methods.mae` does: the objective belongs to the method, not the model.

The masking itself is `rl.losses.random_masking`, its one implementation (public in `rl.losses`, where a
project that builds its own MAE finds it, and tested there on 1 and 8 devices); this module imports only
that function of `rl.losses`.

`shortcut_decay` applies decayed identity shortcuts (Zhang et al., 2024,
https://arxiv.org/abs/2404.10947) to the encoder only; the decoder keeps standard residuals.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl.losses.masked import random_masking
from rl.models.heads import check_rank
from rl.models.vit import TOKEN_INIT
from rl.models.vit import Transformer
from rl.models.vit import ViT
from rl.models.vit import XAVIER_INIT
from rl.models.vit import patch_hw
from rl.models.vit import sincos_2d_posemb


class MAEDecoder(nn.Module):
  """The MAE decoder: from encoded [cls + visible] tokens to per-patch pixel predictions.

  Attributes:
    width: decoder token dimension (multiple of 4, for the sin-cos embedding).
    depth: decoder blocks.
    num_heads: decoder attention heads.
    mlp_dim: hidden width of the decoder MLPs; None for 4 * width.
    dtype: computation dtype (parameters stay float32).
  """
  width: int = 512
  depth: int = 8
  num_heads: int = 16
  mlp_dim: int | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, latent: jax.Array, ids_restore: jax.Array, *, grid: tuple[int, int],
               out_dim: int, train: bool) -> jax.Array:
    """Predicts every patch.

    Args:
      latent: encoder output, [b, 1 + len_keep, d], the class token first.
      ids_restore: [b, L] from `random_masking`, L = grid[0] * grid[1].
      grid: (h / p, w / p), the patch grid.
      out_dim: values per patch, ph*pw*c.
      train: unused (no dropout).

    Returns:
      [b, L, out_dim] in the original patch order.
    """
    b, n_visible = latent.shape[:2]
    num_patches = ids_restore.shape[1]
    x = nn.Dense(self.width, kernel_init=XAVIER_INIT, dtype=self.dtype, name='embed')(latent)
    mask_token = self.param('mask_token', TOKEN_INIT, (1, 1, self.width))
    mask_tokens = jnp.broadcast_to(mask_token.astype(x.dtype),
                                   (b, num_patches + 1 - n_visible, self.width))
    patches = jnp.concatenate([x[:, 1:], mask_tokens], axis=1)
    patches = jnp.take_along_axis(patches, ids_restore[..., None], axis=1)  # unshuffle
    patches = patches + sincos_2d_posemb(*grid, self.width, dtype=x.dtype)
    x = jnp.concatenate([x[:, :1], patches], axis=1)
    x = Transformer(self.depth, self.num_heads, self.mlp_dim or 4 * self.width, dtype=self.dtype,
                    name='transformer')(x, train=train)
    x = nn.Dense(out_dim, kernel_init=XAVIER_INIT, dtype=self.dtype, name='pred')(x)
    return x[:, 1:]


class MAE(nn.Module):
  """Masked autoencoder: `__call__` gives (pred, mask) for the loss, `encode` the features.

  Attributes:
    width, depth, num_heads, mlp_dim, patch_size: the ViT encoder (defaults ViT-B/16); patch_size is
      p or (ph, pw), e.g. (1, 4) for signals [b, l] given as images [b, 1, l, 1].
    decoder_width: decoder token dimension (512 in the paper).
    decoder_depth: decoder blocks (8).
    decoder_heads: decoder attention heads (16).
    decoder_mlp_dim: decoder MLP width; None for 4 * decoder_width.
    mask_ratio: fraction of patches removed (0.75).
    norm_pix_loss: the objective should target per-patch normalised pixels (the paper's best setting); read by
      the method, which passes it to `rl.losses.mae` as `norm_pix`.
    readout: features of `encode`: 'cls' (the class token) or 'mean' (mean of the patch tokens
      after the encoder norm). The class token exists in both cases.
    shortcut_decay: None, or alpha_min of decayed identity shortcuts in the encoder.
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> mae = MAE(width=32, depth=1, num_heads=2, patch_size=4, decoder_width=16,
    ...           decoder_depth=1, decoder_heads=2)
    >>> images = jnp.zeros((2, 16, 16, 3))
    >>> variables = mae.init(jax.random.key(0), images, key=jax.random.key(1), train=False)
    >>> pred, mask = mae.apply(variables, images, key=jax.random.key(2), train=True)
    >>> pred.shape, mask.shape, mask.sum(axis=1).tolist()
    ((2, 16, 48), (2, 16), [12.0, 12.0])
    >>> mae.apply(variables, images, method='encode').shape
    (2, 32)
    >>> mae1d = MAE(width=32, depth=1, num_heads=2, patch_size=(1, 4), decoder_width=16,
    ...             decoder_depth=1, decoder_heads=2)
    >>> signals = jnp.zeros((2, 1, 40, 1))  # [b, l] signals as [b, 1, l, 1] images
    >>> variables = mae1d.init(jax.random.key(0), signals, key=jax.random.key(1), train=False)
    >>> pred, mask = mae1d.apply(variables, signals, key=jax.random.key(2), train=True)
    >>> pred.shape, mask.shape, mask.sum(axis=1).tolist()
    ((2, 10, 4), (2, 10), [8.0, 8.0])
  """
  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int | None = None
  patch_size: int | tuple[int, int] = 16
  decoder_width: int = 512
  decoder_depth: int = 8
  decoder_heads: int = 16
  decoder_mlp_dim: int | None = None
  mask_ratio: float = 0.75
  norm_pix_loss: bool = True
  readout: str = 'cls'
  shortcut_decay: float | None = None
  dtype: Any = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Dimension of the features of `encode`: `width`."""
    return self.width

  def setup(self):
    """Builds the ViT encoder and the decoder (Flax calls it on first use)."""
    self.encoder = ViT(width=self.width, depth=self.depth, num_heads=self.num_heads,
                       mlp_dim=self.mlp_dim, patch_size=self.patch_size, readout=self.readout,
                       posemb='sincos2d', class_token=True, shortcut_decay=self.shortcut_decay,
                       dtype=self.dtype)
    self.decoder = MAEDecoder(width=self.decoder_width, depth=self.decoder_depth,
                              num_heads=self.decoder_heads, mlp_dim=self.decoder_mlp_dim,
                              dtype=self.dtype)

  def __call__(self, images: jax.Array, *, key: jax.Array, train: bool,
               axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
    """Masks, encodes the visible patches and reconstructs all patches.

    Args:
      images: [b, h, w, c] (NHWC, float), h and w multiples of (ph, pw) = `patch_size`.
      key: PRNG key of the masks; example i of the global batch uses `fold_in(key, i)`.
      train: unused (no dropout or BatchNorm); kept for the uniform model signature.
      axis_name: None, or the mapped axis inside `jax.shard_map`/`jax.pmap`, so that the masks
        do not depend on the sharding.

    Returns:
      (pred, mask): pred [b, L, ph*pw*c] in `dtype`, one row per patch in `patchify` order;
      mask float32 [b, L], 1 = removed (predicted), 0 = visible.
    """
    check_rank(images, name='images', ranks=(4,), layout='[b, h, w, c]')
    tokens = self.encoder.embed(images)
    visible, mask, ids_restore = random_masking(key, tokens, mask_ratio=self.mask_ratio,
                                                axis_name=axis_name)
    latent = self.encoder.transform(visible, train=train)
    ph, pw = patch_hw(self.patch_size)
    grid = (images.shape[1] // ph, images.shape[2] // pw)
    pred = self.decoder(latent, ids_restore, grid=grid, out_dim=ph * pw * images.shape[3],
                        train=train)
    return pred, mask

  def encode(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    """Features for evaluation: the encoder on all patches (no masking), pooled by `readout`.

    Args:
      images: [b, h, w, c] (NHWC, float); any size whose sides are multiples of `patch_size`.
      train: unused; kept for the uniform model signature.

    Returns:
      [b, width] in `dtype`.
    """
    return self.encoder(images, train=train)
