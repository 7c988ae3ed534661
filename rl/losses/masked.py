"""Masked modelling: image patches, random masking and the MAE reconstruction loss; time-series patches, masking
and TSLANet's masked-reconstruction pretraining loss.

Patches follow the official MAE code (facebookresearch/mae, models_mae.py): an image is cut into an
(h / p) x (w / p) grid of p x p patches in reading order, and each patch is flattened as (p, q, c) row-major, i.e.
the 'nchpwq->nhwpqc' ordering of the official `patchify`, written here for NHWC images.

`patch_size` may also be a pair (ph, pw) for rectangular ph x pw patches, flattened the same way ((u, v, c)
row-major); an int p is exactly the square (p, p). A 1-D signal [b, l] is the image [b, 1, l, 1] with (1, p)
patches.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives


def _patch_hw(patch_size) -> tuple[int, int]:
  """(ph, pw) of `patch_size`: an int p is the square p x p patch; a pair (ph, pw) a rectangular one."""
  if isinstance(patch_size, (tuple, list)):
    if len(patch_size) != 2:
      raise ValueError(f"patch_size must be an int or a (height, width) pair; got {patch_size!r}.")
    ph, pw = patch_size
    _checks.check_positive("patch_size", ph)
    _checks.check_positive("patch_size", pw)
    return int(ph), int(pw)
  _checks.check_positive("patch_size", patch_size)
  return patch_size, patch_size


def _fmt(patch_size) -> str:
  return str(tuple(patch_size)) if isinstance(patch_size, (tuple, list)) else str(patch_size)


def _grid(name: str, shape: tuple[int, ...], patch_size) -> tuple[int, int]:
  ph, pw = _patch_hw(patch_size)
  h, w = shape[1], shape[2]
  if h % ph or w % pw:
    raise ValueError(f"{name} height and width must be divisible by patch_size={_fmt(patch_size)}; "
                     f"got {name} of shape {tuple(shape)}.")
  return h // ph, w // pw


def patchify(images: jax.Array, *, patch_size: int | tuple[int, int] = 16) -> jax.Array:
  """Cuts [b, h, w, c] images into non-overlapping p x p patches, flattened as in the official MAE code.

  Patch l = r * (w / p) + s covers rows r p .. r p + p - 1 and columns s p .. s p + p - 1; inside it, entry
  (u, v, ch) of the patch sits at position (u p + v) c + ch of the flattened vector. With rectangular
  patches (ph, pw), p reads ph for rows and pw for columns: position (u pw + v) c + ch.

  Args:
    images: [b, h, w, c] images (NHWC) with h and w divisible by `patch_size`; any dtype (kept).
    patch_size: p (16 for ViT-B/L in the paper), or (ph, pw) for ph x pw patches.

  Returns:
    [b, L, ph*pw*c] with L = (h / ph) (w / pw).

  Example:
    >>> x = jnp.arange(16).reshape(1, 4, 4, 1)
    >>> patchify(x, patch_size=2)[0].tolist()
    [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    >>> patchify(jnp.arange(8).reshape(1, 1, 8, 1), patch_size=(1, 4))[0].tolist()  # a 1-D signal
    [[0, 1, 2, 3], [4, 5, 6, 7]]

  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, https://arxiv.org/abs/2111.06377.
  """
  _checks.check_array("images", images, ndim=4, floating=False, shape_doc="[b, h, w, c]")
  ph, pw = _patch_hw(patch_size)
  b, _, _, c = images.shape
  gh, gw = _grid("images", images.shape, patch_size)
  x = images.reshape(b, gh, ph, gw, pw, c).transpose(0, 1, 3, 2, 4, 5)  # [b, gh, gw, p, q, c]
  return x.reshape(b, gh * gw, ph * pw * c)


def unpatchify(patches: jax.Array, *, patch_size: int | tuple[int, int] = 16,
               image_size: int | tuple[int, int] | None = None, channels: int | None = None) -> jax.Array:
  """Inverse of `patchify`: [b, L, p*p*c] patches back to [b, h, w, c] images.

  Args:
    patches: [b, L, p*p*c] (rectangular patches: [b, L, ph*pw*c]).
    patch_size: p, or (ph, pw).
    image_size: h (square) or (h, w); None for a square grid of L = g^2 patches, as in the official code
      (h = g ph, w = g pw). Pass it for anything else, e.g. (1, l) for 1-D signals.
    channels: c; None to infer it as (ph*pw*c) / (ph*pw).

  Returns:
    [b, h, w, c] images in the dtype of `patches`.

  Example:
    >>> x = jnp.arange(24.0).reshape(1, 2, 4, 3)
    >>> bool((unpatchify(patchify(x, patch_size=2), patch_size=2, image_size=(2, 4)) == x).all())
    True

  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, https://arxiv.org/abs/2111.06377.
  """
  _checks.check_array("patches", patches, ndim=3, floating=False, shape_doc="[b, L, p*p*c]")
  ph, pw = _patch_hw(patch_size)
  b, n, d = patches.shape
  if channels is None:
    if d % (ph * pw):
      raise ValueError(f"patches last axis must be p*p*c = {ph}*{pw}*c; got patches of shape "
                       f"{tuple(patches.shape)}.")
    channels = d // (ph * pw)
  if image_size is None:
    side = int(round(n ** 0.5))
    if side * side != n:
      raise ValueError(f"cannot infer a square image from L={n} patches (patches of shape {tuple(patches.shape)}); "
                       f"pass image_size=(h, w).")
    image_size = (side * ph, side * pw)
  h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
  gh, gw = _grid("image_size", (b, h, w, channels), patch_size)
  if (n, d) != (gh * gw, ph * pw * channels):
    raise ValueError(f"patches must have shape [b, (h/p)*(w/p), p*p*c] = [{b}, {gh * gw}, {ph * pw * channels}] "
                     f"for (h, w, c) = ({h}, {w}, {channels}), patch_size={_fmt(patch_size)}; got shape "
                     f"{tuple(patches.shape)}.")
  x = patches.reshape(b, gh, gw, ph, pw, channels).transpose(0, 1, 3, 2, 4, 5)  # [b, gh, p, gw, q, c]
  return x.reshape(b, h, w, channels)


def random_masking(key: jax.Array, tokens: jax.Array, *, mask_ratio: float = 0.75,
                   axis_name: str | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Keeps a random subset of each example's tokens, by sorting per-example uniform noise (MAE).

  As in the official code: noise ~ U[0, 1)^L per example; ids_shuffle = argsort(noise) (small noise is kept),
  ids_restore = argsort(ids_shuffle); the first len_keep = int(L * (1 - mask_ratio)) of ids_shuffle are kept.
  Example i of the global batch draws its noise from `fold_in(key, i)`, so sharding does not change the masks.

  To give the decoder the full sequence, append L - len_keep mask tokens to the (encoded) visible tokens and
  gather with ids_restore: `take_along_axis(concat([visible, mask_tokens], 1), ids_restore[..., None], 1)` puts
  every token back at its original position.

  Args:
    key: PRNG key.
    tokens: [b, L, D] patch embeddings (with positional embeddings already added, as in MAE).
    mask_ratio: fraction of tokens removed, in [0, 1) (0.75 in the paper).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (global indices).

  Returns:
    (visible, mask, ids_restore): visible [b, len_keep, D] (the kept tokens, in order of increasing noise);
    mask float32 [b, L] in the ORIGINAL token order, 1 = masked (removed), 0 = kept; ids_restore int32 [b, L].
    Gradients flow from `visible` to `tokens`.

  Example:
    >>> visible, mask, ids_restore = random_masking(jax.random.key(0), jnp.zeros((2, 16, 8)))
    >>> visible.shape, mask.sum(axis=1).tolist()
    ((2, 4, 8), [12.0, 12.0])

  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, https://arxiv.org/abs/2111.06377.
  """
  _checks.check_array("tokens", tokens, ndim=3, floating=False, shape_doc="[b, L, D]")
  _checks.check_in_range("mask_ratio", mask_ratio, 0.0, 1.0, high_inclusive=False)
  b, n, _ = tokens.shape
  len_keep = int(n * (1 - mask_ratio))
  if len_keep < 1:
    raise ValueError(f"mask_ratio={mask_ratio} keeps int(L * (1 - mask_ratio)) = {len_keep} of L={n} tokens; "
                     f"at least one must stay visible.")
  index = _collectives.global_rows(b, axis_name)
  noise = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), (n,)))(index)
  ids_shuffle = jnp.argsort(noise, axis=1).astype(jnp.int32)
  ids_restore = jnp.argsort(ids_shuffle, axis=1).astype(jnp.int32)
  visible = jnp.take_along_axis(tokens, ids_shuffle[:, :len_keep, None], axis=1)
  shuffled_mask = (jnp.arange(n) >= len_keep).astype(jnp.float32)  # 0 for the kept prefix
  mask = jnp.take_along_axis(jnp.broadcast_to(shuffled_mask, (b, n)), ids_restore, axis=1)
  return visible, mask, ids_restore


def mae(pred: jax.Array, images: jax.Array, mask: jax.Array, *, patch_size: int | tuple[int, int] = 16,
        norm_pix: bool = True, axis_name: str | None = None) -> jax.Array:
  r"""MAE reconstruction loss: mean squared error on the masked patches, averaged over the global batch.

  With target t = patchify(images) (per-patch pixel vectors of size P = p*p*c, or ph*pw*c) and, when `norm_pix`, each target
  patch normalised by its own mean and UNBIASED variance (torch's `var`, as in the official code):

  .. math::
      \hat t_{il} = \frac{t_{il} - \mu_{il}}{\sqrt{\sigma^2_{il} + 10^{-6}}}, \qquad
      L = \frac{\sum_{i, l} m_{il} \frac{1}{P} \lVert \mathrm{pred}_{il} - \hat t_{il} \rVert^2}
               {\sum_{i, l} m_{il}} ,

  where m = 1 marks masked patches and both sums run over the global batch (`psum`). The target carries no
  gradient (stop-gradient on the pixels): only `pred` is trained. Squares and sums run in float32.

  Args:
    pred: [b, L, p*p*c] decoder outputs, one per patch in the original order (mask tokens restored).
    images: [b, h, w, c] the uncorrupted images; any dtype (uint8 is cast to float32; pass the scaling the
      decoder should reproduce, e.g. normalised floats, when `norm_pix=False`).
    mask: [b, L], 1 = masked (loss counted), 0 = visible, e.g. from `random_masking`; treated as a constant.
    patch_size: p, or (ph, pw) for rectangular patches (e.g. (1, p) on signals as [b, 1, l, 1] images).
    norm_pix: normalise each target patch (the paper's default setting for its best results, Table 1(c)).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where both sums
      are reduced over devices (see `_collectives` for the gradient convention).

  Returns:
    The scalar loss (float32), the same on every device. NaN if no patch of the global batch is masked.

  Example:
    >>> x = jnp.ones((1, 4, 4, 1)); m = jnp.array([[1.0, 0.0, 0.0, 0.0]])
    >>> float(mae(jnp.zeros((1, 4, 4)), x, m, patch_size=2, norm_pix=False))  # one masked patch, error 1
    1.0

  He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, https://arxiv.org/abs/2111.06377.
  """
  _checks.check_array("pred", pred, ndim=3, shape_doc="[b, L, p*p*c]")
  _checks.check_array("images", images, ndim=4, floating=False, shape_doc="[b, h, w, c]")
  _checks.check_array("mask", mask, ndim=2, floating=False, shape_doc="[b, L]")
  target = patchify(images, patch_size=patch_size)
  if tuple(pred.shape) != tuple(target.shape):
    raise ValueError(f"pred must have the shape of patchify(images) = [b, L, p*p*c] = {tuple(target.shape)}; "
                     f"got pred of shape {tuple(pred.shape)}.")
  if tuple(mask.shape) != tuple(target.shape[:2]):
    raise ValueError(f"mask must have shape [b, L] = {tuple(target.shape[:2])}; got mask of shape "
                     f"{tuple(mask.shape)}.")
  if norm_pix and target.shape[-1] < 2:
    raise ValueError(f"norm_pix needs patches of at least 2 values (p*p*c >= 2); got {target.shape[-1]}.")
  dtype = jnp.promote_types(pred.dtype, jnp.float32)
  target = jax.lax.stop_gradient(target.astype(dtype))
  if norm_pix:
    mean = jnp.mean(target, axis=-1, keepdims=True)
    var = jnp.sum(jnp.square(target - mean), axis=-1, keepdims=True) / (target.shape[-1] - 1)
    target = (target - mean) / jnp.sqrt(var + 1e-6)
  per_patch = jnp.mean(jnp.square(pred.astype(dtype) - target), axis=-1)  # [b, L]
  mask = jax.lax.stop_gradient(mask.astype(dtype))
  num = _collectives.psum(jnp.sum(per_patch * mask), axis_name)
  den = _collectives.psum(jnp.sum(mask), axis_name)
  return num / den


# ---------------------------------------------------------------------------------------------------------------
# Masked time-series modelling (TSLANet)
# ---------------------------------------------------------------------------------------------------------------

def time_series_patches(series: jax.Array, *, patch_size: int = 8, stride: int | None = None) -> jax.Array:
  """Cuts each channel of a time series into overlapping patches, as TSLANet (and PatchTST) do.

  Patch j of channel m is `series[:, j * stride : j * stride + patch_size, m]`, for j = 0, ..., n - 1 with
  n = (l - patch_size) // stride + 1 (a tail shorter than a patch is dropped, as torch's `unfold`). TSLANet's
  forecasting model treats channels independently (its `rearrange(..., 'b m n p -> (b m) n p')`): reshape the
  result to [b * c, n, p]. Its classification model embeds all channels of a patch together (a Conv1d with
  kernel `patch_size` and the same stride): transpose to [b, n, c, p] and flatten the last two axes.

  Args:
    series: [b, l, c] (or [b, l], one channel) time series, time on axis 1.
    patch_size: patch length p (8 in TSLANet's classification scripts, 64 for forecasting).
    stride: step between patch starts; default patch_size // 2, TSLANet's choice (overlapping halves).

  Returns:
    [b, c, n, p] patches, in the dtype of `series`.

  Example:
    >>> time_series_patches(jnp.arange(6.0)[None, :, None], patch_size=4)[0, 0].tolist()
    [[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]]

  Eldele et al., "TSLANet: Rethinking Transformers for Time Series Representation Learning", ICML 2024,
  https://arxiv.org/abs/2404.08472 (github.com/emadeldeen24/TSLANet, `PatchEmbed` and `TSLANet.pretrain`).
  """
  _checks.check_array("series", series, floating=False, shape_doc="[b, l, c] or [b, l]")
  if series.ndim not in (2, 3):
    raise ValueError(f"series must have shape [b, l, c] or [b, l]; got shape {tuple(series.shape)}.")
  x = series[..., None] if series.ndim == 2 else series
  if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
    raise ValueError(f"patch_size must be a positive int; got {patch_size!r}.")
  stride = max(patch_size // 2, 1) if stride is None else stride
  if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
    raise ValueError(f"stride must be a positive int; got {stride!r}.")
  length = x.shape[1]
  if length < patch_size:
    raise ValueError(f"series must be at least patch_size={patch_size} steps long; got length {length} "
                     f"(shape {tuple(series.shape)}).")
  n = (length - patch_size) // stride + 1
  index = jnp.arange(n)[:, None] * stride + jnp.arange(patch_size)[None, :]  # [n, p]
  return jnp.transpose(x[:, index, :], (0, 3, 1, 2))  # [b, n, p, c] -> [b, c, n, p]


def tslanet_masking(key: jax.Array, tokens: jax.Array, *, mask_ratio: float = 0.4,
                    axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """TSLANet's masking: a random subset of each example's patches is set to zero, in place.

  Unlike MAE, which drops the masked tokens (`random_masking`), TSLANet keeps the sequence length and zeroes the
  masked patches (PatchTST's `random_masking_3D`), so the encoder sees every position. The subset is the one
  `random_masking` draws (per-example noise, argsort; int(L * (1 - mask_ratio)) tokens kept), so it does not
  depend on sharding. TSLANet masks the raw patches before the input layer in its forecasting model and the
  embedded patches (after the positional embedding) in its classification model: pass whichever you mask.

  Args:
    key: PRNG key (the same on every device).
    tokens: [b, L, D] patches or patch embeddings.
    mask_ratio: fraction of patches zeroed, in [0, 1) (0.4 in the authors' scripts).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (global example
      indices pick the noise, so a sharded batch gets the masks of the whole one).

  Returns:
    (masked tokens [b, L, D], zero where masked; mask float32 [b, L], 1 = masked). Gradients flow to the
    kept tokens.

  Example:
    >>> masked, mask = tslanet_masking(jax.random.key(0), jnp.ones((2, 10, 3)))
    >>> mask.sum(axis=1).tolist(), float(masked.sum())
    ([4.0, 4.0], 36.0)

  Eldele et al., "TSLANet: Rethinking Transformers for Time Series Representation Learning", ICML 2024,
  https://arxiv.org/abs/2404.08472 (`random_masking_3D` of github.com/emadeldeen24/TSLANet, from PatchTST).
  """
  _, mask, _ = random_masking(key, tokens, mask_ratio=mask_ratio, axis_name=axis_name)
  masked = jnp.where(mask[..., None] > 0, jnp.zeros((), tokens.dtype), tokens)
  return masked, mask


def tslanet_loss(pred: jax.Array, target: jax.Array, mask: jax.Array, *, stop_gradient_target: bool = False,
                 axis_name: str | None = None) -> jax.Array:
  r"""TSLANet's self-supervised pretraining loss: mean squared error on the masked patches.

  With the encoder's outputs on the masked sequence :math:`\hat z_{il}` and the targets :math:`z_{il}` (the
  patch embeddings of the UNMASKED sequence), both [b, L, D], and m = 1 on masked patches,

  .. math::
      L = \frac{\sum_{i, l} m_{il}\, \frac{1}{D} \lVert \hat z_{il} - z_{il} \rVert^2}{\sum_{i, l} m_{il}} ,

  the sums running over the GLOBAL batch (`psum` under `axis_name`). The encoder stays the caller's: embed the
  patches (`time_series_patches`), add the positional embedding, mask (`tslanet_masking`), run the blocks, and
  pass their output as `pred` and the unmasked embeddings as `target`.

  Source. We follow the authors' released code (`model_pretraining._calculate_loss` and `TSLANet.pretrain` in
  Classification/TSLANet_classification.py and Forecasting/TSLANet_Forecasting.py): the reconstruction target
  is the embedded patch sequence, not the raw signal, and it is NOT detached, so the patch embedding (and the
  positional embedding) receive gradient through the target as well as through the prediction. Our stored
  copies of the paper gave only its abstract and introduction, so we could not compare the paper's equation
  with the code; `stop_gradient_target=True` gives the MAE-style fixed target instead.

  Args:
    pred: [b, L, D] encoder outputs on the masked sequence.
    target: [b, L, D] embeddings of the unmasked patches.
    mask: [b, L], 1 where a patch was masked (as `tslanet_masking` returns); no gradient flows through it.
    stop_gradient_target: apply `jax.lax.stop_gradient` to `target` (default False, as the released code).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where both sums
      run over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> pred, target = jnp.zeros((1, 3, 2)), jnp.array([[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]]])
    >>> float(tslanet_loss(pred, target, jnp.array([[1.0, 1.0, 0.0]])))  # (1 + 2) / 2, the kept patch ignored
    1.5

  Eldele et al., "TSLANet: Rethinking Transformers for Time Series Representation Learning", ICML 2024,
  https://arxiv.org/abs/2404.08472 (code: github.com/emadeldeen24/TSLANet).
  """
  _checks.check_array("pred", pred, ndim=3, shape_doc="[b, L, D]")
  _checks.check_array("target", target, ndim=3, shape_doc="[b, L, D]")
  _checks.check_same_shape(pred=pred, target=target)
  _checks.check_array("mask", mask, ndim=2, floating=False, shape_doc=f"[{pred.shape[0]}, {pred.shape[1]}]")
  if tuple(mask.shape) != tuple(pred.shape[:2]):
    raise ValueError(f"mask must have shape [b, L] = {tuple(pred.shape[:2])} (one entry per patch of pred); "
                     f"got shape {tuple(mask.shape)}.")
  dtype = jnp.promote_types(jnp.promote_types(pred.dtype, target.dtype), jnp.float32)
  target = target.astype(dtype)
  if stop_gradient_target:
    target = jax.lax.stop_gradient(target)
  per_patch = jnp.mean(jnp.square(pred.astype(dtype) - target), axis=-1)  # [b, L]
  mask = jax.lax.stop_gradient(mask.astype(dtype))
  num = _collectives.psum(jnp.sum(per_patch * mask), axis_name)
  den = _collectives.psum(jnp.sum(mask), axis_name)
  return num / den


__all__ = ["patchify", "unpatchify", "random_masking", "mae", "time_series_patches", "tslanet_masking",
           "tslanet_loss"]
