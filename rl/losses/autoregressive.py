"""Autoregressive image modelling in a semantic-aware order: SemAIM.

SemAIM predicts every patch of an image from the patches that come before it in an order that starts at the most
semantic patch and moves outwards. A ViT with a class token runs two streams over the same blocks: a content
stream (each token sees the tokens up to and including itself in the order) and a query stream (positional
queries that see only the tokens strictly before them), and the query stream's outputs predict the patches. The
pieces, each a pure function:

- `semaim_similarity`: how semantic each patch is, from an encoder's tokens (cosine to the class token);
- `semaim_order`: the order, by distance on the patch grid from the most similar patch (ties broken at random);
- `semaim_attention_masks`: the content and query attention masks of that order, with the class token;
- `semaim_pixel_loss` / `semaim_feature_loss`: the prediction targets, (blurred, normalised) pixels or the
  patch features of a teacher.
"""
from __future__ import annotations

from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize
from rl.losses.masked import patchify


def semaim_similarity(tokens: jax.Array, *, reference: str = "cls") -> jax.Array:
  r"""SemAIM's semantic map: each patch's cosine similarity to the class token, as a softmax over the patches.

  With the encoder's output tokens :math:`[x_0; x_1, \dots, x_L]` (x_0 the class token) and r = x_0
  (``reference="cls"``) or the mean patch token (``"gap"``):

  .. math::
      s_l = \frac{\exp(\cos(r, x_l))}{\sum_{l'} \exp(\cos(r, x_{l'}))} .

  Only its argmax matters for `semaim_order`. No gradient flows (the released code computes it under
  `torch.no_grad`, from the model itself or its EMA; with a DINO or CLIP teacher it min-max normalises the
  cosines instead of the softmax, which has the same argmax).

  Source: `AimViT.calculate_attention_cls` / `calculate_attention_gap` in models/models_semaim.py and
  `calculate_similarity` in engines/engine_pretrain.py of github.com/skyoux/SemAIM (the authors' code). Our
  stored copies of the paper gave only its abstract and introduction.

  Args:
    tokens: [b, 1 + L, d] encoder outputs, the class token first.
    reference: "cls" (the README's `--attention_type cls`) or "gap".

  Returns:
    [b, L] the similarity map (float32 for float32/bfloat16 tokens), a constant.

  Example:
    >>> x = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # cls, then a patch like it and one unlike it
    >>> [round(v, 4) for v in semaim_similarity(x)[0].tolist()]  # softmax of the cosines (1, 0)
    [0.7311, 0.2689]

  Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning",
  AAAI 2024, https://arxiv.org/abs/2312.10457.
  """
  _checks.check_array("tokens", tokens, ndim=3, shape_doc="[b, 1 + L, d]")
  if tokens.shape[1] < 2:
    raise ValueError(f"tokens must have shape [b, 1 + L, d] with L >= 1 patches after the class token; got shape "
                     f"{tuple(tokens.shape)}.")
  if reference not in ("cls", "gap"):
    raise ValueError(f'reference must be "cls" or "gap"; got {reference!r}.')
  x = _ops.to_float32(jax.lax.stop_gradient(tokens))
  patches = l2_normalize(x[:, 1:])
  ref = x[:, 0] if reference == "cls" else jnp.mean(x[:, 1:], axis=1)
  cos = jnp.einsum("bd,bld->bl", l2_normalize(ref), patches)
  return jax.nn.softmax(cos, axis=-1)


def _grid(num_patches: int, grid_shape) -> tuple[int, int]:
  if grid_shape is None:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
      raise ValueError(f"similarity has L = {num_patches} patches, not a square grid; pass grid_shape=(h, w) with "
                       f"h * w = {num_patches}.")
    return side, side
  grid_shape = tuple(int(g) for g in grid_shape)
  if len(grid_shape) != 2 or grid_shape[0] * grid_shape[1] != num_patches:
    raise ValueError(f"grid_shape must be (h, w) with h * w = L = {num_patches} (the patches of similarity); got "
                     f"{grid_shape}.")
  return grid_shape


def semaim_order(key: jax.Array, similarity: jax.Array, *, grid_shape: Sequence[int] | None = None,
                 jitter: float = 1e-3, axis_name: str | None = None) -> jax.Array:
  r"""SemAIM's semantic-aware order: patches by grid distance from the most semantic patch, nearest first.

  With c = argmax of the similarity map, patch l at grid cell :math:`(i_l, j_l)` (row-major) gets the key

  .. math::
      o_l = \sqrt{(i_l - i_c)^2 + (j_l - j_c)^2} + \delta\, u_l, \qquad u_l \sim U[0, 1) ,

  and the patches are predicted in increasing o (the jitter δ breaks ties between patches at the same
  distance at random). The keys themselves, not ranks, go to `semaim_attention_masks`. Example i of the global
  batch draws its u from `fold_in(key, i)`, so sharding does not change the order.

  Source: `AimViT.generate_attention_distance_center_permutation` (the README's `--permutation_type
  attention_center`) in models/models_semaim.py of github.com/skyoux/SemAIM.

  Args:
    key: a `jax.random` key.
    similarity: [b, L] a semantic map (e.g. `semaim_similarity`); only its argmax is used.
    grid_shape: (h, w) of the patch grid, h * w = L (default: square).
    jitter: δ >= 0, the tie-breaking noise (1e-3, the code's).
    axis_name: None when `similarity` is the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap` (only the global example index depends on it).

  Returns:
    [b, L] float32 order keys (smaller = earlier).

  Example:
    >>> o = semaim_order(jax.random.key(0), jnp.array([[0.0, 0.0, 0.0, 1.0]]), jitter=0.0)  # 2 x 2 grid
    >>> [round(v, 4) for v in o[0].tolist()]  # the bottom-right patch first, its neighbours, the far corner last
    [1.4142, 1.0, 1.0, 0.0]

  Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning",
  AAAI 2024, https://arxiv.org/abs/2312.10457.
  """
  _checks.check_array("similarity", similarity, ndim=2, shape_doc="[b, L]")
  b, n = similarity.shape
  h, w = _grid(n, grid_shape)
  _checks.check_in_range("jitter", jitter, 0.0, float("inf"))
  center = jnp.argmax(jax.lax.stop_gradient(similarity), axis=-1)  # [b]
  rows, cols = jnp.arange(n) // w, jnp.arange(n) % w
  dist = jnp.sqrt(jnp.square(rows[None] - (center // w)[:, None]) + jnp.square(cols[None] - (center % w)[:, None]))
  index = _collectives.global_rows(b, axis_name)
  noise = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (n,)))(index)
  return dist.astype(jnp.float32) + jitter * noise


def semaim_attention_masks(order: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""The two attention masks of autoregression in a given order, with a class token in front.

  For order keys o (patch l comes before patch l' when :math:`o_l < o_{l'}`), token positions 1..L (0 is the
  class token), query row q and key column k:

  .. math::
      C_{qk} = [\,o_k \le o_q\,], \qquad Q_{qk} = [\,o_k < o_q\,] ,

  the content stream's mask C (a token sees itself and the tokens before it) and the query stream's mask Q (a
  query sees only the tokens strictly before its patch, so it cannot read its own target). Every token sees the
  class token (column 0); the class token sees only itself. True means "may attend" (pass
  `jnp.where(mask, 0, -inf)` as an additive bias, or the mask itself to `flax.linen.dot_product_attention`).

  Source: `AimViT.generate_attention_mask` in models/models_semaim.py of github.com/skyoux/SemAIM (`mask_h`,
  `mask_g` and the class-token padding).

  Args:
    order: [b, L] order keys (e.g. `semaim_order`); ties count as "not before" in Q and "before" in C.

  Returns:
    (content, query): two bool [b, 1 + L, 1 + L] masks.

  Example:
    >>> content, query = semaim_attention_masks(jnp.array([[1.0, 0.0]]))  # patch 2 first, then patch 1
    >>> query[0].astype(int).tolist()  # patch 1's query reads the class token and patch 2
    [[1, 0, 0], [1, 0, 1], [1, 0, 0]]

  Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning",
  AAAI 2024, https://arxiv.org/abs/2312.10457.
  """
  _checks.check_array("order", order, ndim=2, shape_doc="[b, L]")
  b, n = order.shape
  o = jax.lax.stop_gradient(order)
  content_patches = o[:, None, :] <= o[:, :, None]  # [b, q, k]
  query_patches = o[:, None, :] < o[:, :, None]

  def with_cls(patch_mask):
    top = jnp.zeros((b, 1, n), bool)
    left = jnp.ones((b, n + 1, 1), bool)
    return jnp.concatenate([left, jnp.concatenate([top, patch_mask], axis=1)], axis=2)

  return with_cls(content_patches), with_cls(query_patches)


def _gaussian_blur(images: jax.Array, kernel_size: int, sigma: float) -> jax.Array:
  """Per-channel 2-D Gaussian blur with zero padding ('same' size), as the released `GaussianConv2d`."""
  r = jnp.arange(kernel_size, dtype=images.dtype) - (kernel_size - 1) // 2
  g = jnp.exp(-0.5 * jnp.square(r / sigma))
  kernel = jnp.outer(g, g)
  kernel = kernel / jnp.sum(kernel)
  c = images.shape[-1]
  kernel = jnp.broadcast_to(kernel[:, :, None, None], (kernel_size, kernel_size, 1, c))
  pad = kernel_size // 2
  return jax.lax.conv_general_dilated(images, kernel, window_strides=(1, 1), padding=((pad, pad), (pad, pad)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def semaim_pixel_loss(pred: jax.Array, images: jax.Array, *, patch_size: int = 16, norm_pix: bool = True,
                      blur_kernel_size: int | None = 9, blur_sigma: float = 1.0, loss_type: str = "l2",
                      axis_name: str | None = None) -> jax.Array:
  r"""SemAIM's pixel objective: every patch predicted from the patches before it, against blurred pixels.

  The target is the Gaussian-blurred image (kernel `blur_kernel_size`, σ = `blur_sigma`, zero padding), cut into
  patches (`patchify`) and, with `norm_pix`, each patch normalised by its mean and unbiased variance; then

  .. math::
      \hat t = \operatorname{patchify}(G_\sigma * x), \quad
      \hat t_{il} \leftarrow \frac{\hat t_{il} - \mu_{il}}{\sqrt{\sigma^2_{il} + 10^{-6}}}, \qquad
      L = \frac{1}{B L P} \sum_{i, l, p} \big(\mathrm{pred}_{ilp} - \hat t_{ilp}\big)^2

  over ALL patches of the global batch (autoregression predicts every patch; |.| instead of the square with
  ``loss_type="l1"``). The target carries no gradient.

  Source: `AimViT.forward_pixel_loss` and `GaussianConv2d` (util/blocks.py) of github.com/skyoux/SemAIM;
  defaults from its README's pre-training command (`--gaussian_kernel_size 9 --gaussian_sigma 1 --norm_pix_loss`,
  L2). `blur_kernel_size=None` turns the blur off (the model's own default).

  Args:
    pred: [b, L, p*p*c] the query stream's predictions (class-token output dropped), in patch order.
    images: [b, h, w, c] the input images (NHWC, normalised as the model sees them); any dtype.
    patch_size: p (16).
    norm_pix: normalise each target patch (True).
    blur_kernel_size: odd kernel size of the target blur (9), or None for no blur.
    blur_sigma: σ > 0 of the blur (1.0).
    loss_type: "l2" or "l1".
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32).

  Example:
    >>> x = jnp.ones((1, 4, 4, 1))
    >>> float(semaim_pixel_loss(jnp.ones((1, 4, 4)), x, patch_size=2, norm_pix=False, blur_kernel_size=None))
    0.0

  Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning",
  AAAI 2024, https://arxiv.org/abs/2312.10457.
  """
  _checks.check_array("pred", pred, ndim=3, shape_doc="[b, L, p*p*c]")
  _checks.check_array("images", images, ndim=4, floating=False, shape_doc="[b, h, w, c]")
  if blur_kernel_size is not None:
    if isinstance(blur_kernel_size, bool) or not isinstance(blur_kernel_size, int) or blur_kernel_size < 1 \
        or blur_kernel_size % 2 == 0:
      raise ValueError(f"blur_kernel_size must be an odd int >= 1 or None; got {blur_kernel_size!r}.")
    _checks.check_positive("blur_sigma", blur_sigma)
  if loss_type not in ("l2", "l1"):
    raise ValueError(f'loss_type must be "l2" or "l1"; got {loss_type!r}.')
  x = jax.lax.stop_gradient(images.astype(jnp.promote_types(images.dtype, jnp.float32)))
  if blur_kernel_size is not None:
    x = _gaussian_blur(x, blur_kernel_size, blur_sigma)
  target = patchify(x, patch_size=patch_size)
  if tuple(pred.shape) != tuple(target.shape):
    raise ValueError(f"pred must have the shape of patchify(images) = [b, L, p*p*c] = {tuple(target.shape)}; got "
                     f"pred of shape {tuple(pred.shape)}.")
  if norm_pix:
    if target.shape[-1] < 2:
      raise ValueError(f"norm_pix needs patches of at least 2 values (p*p*c >= 2); got {target.shape[-1]}.")
    mean = jnp.mean(target, axis=-1, keepdims=True)
    var = jnp.sum(jnp.square(target - mean), axis=-1, keepdims=True) / (target.shape[-1] - 1)
    target = (target - mean) / jnp.sqrt(var + 1e-6)
  diff = pred.astype(jnp.promote_types(pred.dtype, jnp.float32)) - target
  err = jnp.square(diff) if loss_type == "l2" else jnp.abs(diff)
  return _collectives.global_mean(jnp.sum(err), err.size, axis_name)


def semaim_feature_loss(pred: jax.Array, target: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""SemAIM's feature objective: each predicted patch must match a teacher's patch feature on the sphere.

  .. math::
      L = \frac{1}{B L} \sum_{i, l} \Big\lVert \frac{\mathrm{pred}_{il}}{\lVert \mathrm{pred}_{il} \rVert}
          - \frac{t_{il}}{\lVert t_{il} \rVert} \Big\rVert^2 ,

  over ALL patches of the global batch, with the teacher features t (the released code's `--predict_feature`:
  the model itself in eval mode, its EMA, DINO or CLIP) held constant.

  Source: `AimViT.forward_feature_loss` in models/models_semaim.py of github.com/skyoux/SemAIM.

  Args:
    pred: [b, L, D] the query stream's predictions (class-token output dropped).
    target: [b, L, D] the teacher's patch tokens (class token dropped); no gradient flows to them.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), in [0, 4].

  Example:
    >>> float(semaim_feature_loss(jnp.array([[[2.0, 0.0]]]), jnp.array([[[0.0, 3.0]]])))  # orthogonal: 2
    2.0

  Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning",
  AAAI 2024, https://arxiv.org/abs/2312.10457.
  """
  _checks.check_array("pred", pred, ndim=3, shape_doc="[b, L, D]")
  _checks.check_array("target", target, ndim=3, shape_doc="[b, L, D]")
  _checks.check_same_shape(pred=pred, target=target)
  p = l2_normalize(_ops.to_float32(pred))
  t = l2_normalize(_ops.to_float32(jax.lax.stop_gradient(target)))
  per_patch = jnp.sum(jnp.square(p - t), axis=-1)
  return _collectives.global_mean(jnp.sum(per_patch), per_patch.size, axis_name)


__all__ = ["semaim_similarity", "semaim_order", "semaim_attention_masks", "semaim_pixel_loss",
           "semaim_feature_loss"]
