"""Masked image modelling: patches, random masking and the MAE reconstruction loss.

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
  index = _collectives.axis_index(axis_name) * b + jnp.arange(b)
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


__all__ = ["patchify", "unpatchify", "random_masking", "mae"]
