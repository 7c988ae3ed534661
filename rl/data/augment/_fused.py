"""The fused fast path of `image.augment_images`: batched resampling, colour and blur kernels in pure JAX.

A view's cost is set by how many times its pixels are read and written, so the kernels here do each stage of the
SimCLR/BYOL chain in as few passes over the batch as the maths allows, with every per-example factor drawn
beforehand (by `image.py`, from the same sub-keys as its single-example ops) and passed in as [b] arrays:

- Geometry: ONE resampling per view. `resample_boxes` folds crop, resize, horizontal flip and the uint8 -> [0, 1]
  scaling into per-example row and column weights (`_resample_weights`, the antialiased bilinear weights of
  `jax.image.scale_and_translate`), so a view is two small matrix products per example; it can write colour
  planes [b, c, S, S] directly for the colour pass.
- Colour: ONE elementwise pass (two with contrast, whose pivot is the channel mean of the image as it is when
  contrast runs). `fused_color` runs colour jitter in each example's random order (every slot an affine map and
  clip plus an HSV adjustment selected per example, no per-example branches), grayscale, solarize and
  normalisation on separate channel planes, and joins the planes with selects rather than a concatenate.
- Blur: only on the chosen subset. `random_gaussian_blur` picks ceil(p * b) examples (`_blur_draws`), gathers
  them, blurs them with the separable `gaussian_blur` (two 1-D passes with per-example taps) and scatters them
  back, instead of blurring every example and discarding most under a vmapped `lax.cond`.

Each kernel equals, to float rounding, the op-by-op definition kept in `image.py` (`_augment_images_op_by_op`).
This module does not import `image.py`; `image.py` imports and re-exports its public names (`resample_boxes`,
`fused_color`, `gaussian_blur`, `blur_kernel_size`, `random_gaussian_blur`, `normalize`), so callers keep using
`rl.data.augment.image`. The small helpers both modules need (`_to_unit_float`, `normalize` and the op-name
constants) live here.
"""


from __future__ import annotations

import math

import jax
from jax import lax
import jax.numpy as jnp

_BRIGHTNESS_MODES = ("multiplicative", "additive")
_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
_LUMA = (0.2989, 0.5870, 0.1140)  # rec601, as pix.rgb_to_grayscale and tf.image


def _to_unit_float(image: jax.Array, name: str = "image") -> jax.Array:
  """uint8 -> float32 in [0, 1]; floating input is taken to be in [0, 1] already."""
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) / 255.0
  if jnp.issubdtype(image.dtype, jnp.floating):
    return image.astype(jnp.float32)
  raise ValueError(f"{name} must be uint8 or floating; got dtype {image.dtype}.")


def normalize(images: jax.Array, *, mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
  """(images - mean) / std per channel, on [..., c] float images; mean/std of length 1 or c."""
  if len(mean) not in (1, images.shape[-1]):
    raise ValueError(
        f"mean/std must have 1 or {images.shape[-1]} (channels) values; got {len(mean)}: mean={mean}. "
        "Override them in the recipe, e.g. get_recipe(name, mean=(0.5,), std=(0.5,)).")
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


# Geometry: crop, resize and flip of a view as one resampling.


def _resample_weights(n_in: int, n_out: int, start: jax.Array, extent: jax.Array, flip: jax.Array | bool
                      ) -> jax.Array:
  """[n_out, n_in] weights of one antialiased bilinear resampling of [start, start + extent) onto n_out pixels.

  Output pixel o samples the input at start + (o + 0.5) * extent / n_out - 0.5; the triangle kernel is widened
  by the downscale factor (antialiasing), its taps are renormalised over the pixels inside the input, and samples
  more than half a pixel outside the input get no weight: the weights `jax.image.scale_and_translate` uses for
  method='linear', antialias=True. With `flip`, output o takes the sample of output n_out - 1 - o: the rows of
  the weight matrix are mirrored, so the flip is exact and costs nothing.
  """
  step = extent / n_out
  out = jnp.arange(n_out, dtype=jnp.float32)
  out = jnp.where(flip, n_out - 1 - out, out)
  centre = start + (out + 0.5) * step - 0.5
  width = jnp.maximum(step, 1.0)
  w = jnp.maximum(0.0, 1.0 - jnp.abs(centre[:, None] - jnp.arange(n_in, dtype=jnp.float32)[None, :]) / width)
  total = jnp.sum(w, axis=1, keepdims=True)
  w = jnp.where(total > 1000.0 * jnp.finfo(jnp.float32).eps, w / jnp.where(total != 0, total, 1.0), 0.0)
  inside = (centre >= -0.5) & (centre <= n_in - 0.5)
  return jnp.where(inside[:, None], w, 0.0)


def _resample(images: jax.Array, boxes: jax.Array, out_size: int, flips: jax.Array | None, *, planar: bool
              ) -> jax.Array:
  """`resample_boxes`, returning [b, S, S, c] or, with `planar`, [b, c, S, S] (contiguous planes for colour)."""
  if images.ndim != 4:
    raise ValueError(f"images must have shape [b, h, w, c]; got shape {tuple(images.shape)}.")
  batch, height, width, _ = images.shape
  if boxes.shape != (batch, 4):
    raise ValueError(f"boxes must have shape {(batch, 4)} (one box per image); got {tuple(boxes.shape)}.")
  if flips is not None and flips.shape != (batch,):
    raise ValueError(f"flips must have shape {(batch,)}; got {tuple(flips.shape)}.")
  if images.dtype != jnp.uint8 and not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"images must be uint8 or floating; got dtype {images.dtype}.")
  flips = jnp.zeros((batch,), bool) if flips is None else flips
  boxes = boxes.astype(jnp.float32)
  w_rows = jax.vmap(lambda s, e: _resample_weights(height, out_size, s, e, False))(boxes[:, 0], boxes[:, 2])
  w_cols = jax.vmap(lambda s, e, f: _resample_weights(width, out_size, s, e, f))(boxes[:, 1], boxes[:, 3], flips)
  if images.dtype == jnp.uint8:
    w_rows = w_rows * (1.0 / 255.0)
  x = images.astype(jnp.float32)
  out = "bcop" if planar else "bopc"
  highest = lax.Precision.HIGHEST
  # Contracting rows first costs S * w * c * (h + S) multiply-adds, columns first S * h * c * (w + S).
  if width <= height:
    t = jnp.einsum("boh,bhwc->bowc", w_rows, x, precision=highest)
    return jnp.einsum(f"bpw,bowc->{out}", w_cols, t, precision=highest)
  t = jnp.einsum("bpw,bhwc->bhpc", w_cols, x, precision=highest)
  return jnp.einsum(f"boh,bhpc->{out}", w_rows, t, precision=highest)


def resample_boxes(images: jax.Array, boxes: jax.Array, *, out_size: int, flips: jax.Array | None = None
                   ) -> jax.Array:
  """Crops one box per example, resizes it to [out_size, out_size] and optionally mirrors it: ONE resampling.

  Each example is two small matrix products with its own row and column weights (`_resample_weights`): crop,
  resize and horizontal flip are one interpolation, and uint8 -> [0, 1] scaling is folded into the weights.
  The products run at HIGHEST precision, as `jax.image.scale_and_translate` does (no TF32 or bf16 passes).

  Args:
    images: [b, h, w, c] uint8 images or float images in [0, 1].
    boxes: [b, 4] float (top, left, box_height, box_width) in pixels, e.g. from `sample_crop_box`.
    out_size: side S of the square output.
    flips: optional [b] bool; True mirrors that example left-right.

  Returns:
    [b, S, S, c] float32 images in [0, 1].
  """
  return _resample(images, boxes, out_size, flips, planar=False)


# Colour: jitter, grayscale, solarize and normalisation as one elementwise pass (two with contrast).


def _adjust_hsv_planes(r: jax.Array, g: jax.Array, b: jax.Array, saturation: jax.Array, hue: jax.Array
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """HSV saturation * `saturation` and hue + `hue` (turns) on separate planes; equals `_adjust_hsv`.

  Hexcone HSV with the hue in sixths (h6 = 6 h in [0, 6)) and two divisions per pixel: every step is elementwise,
  so it fuses, with no reductions over a channel axis and no float remainder (slow on CPUs).
  """
  v = jnp.maximum(jnp.maximum(r, g), b)
  spread = v - jnp.minimum(jnp.minimum(r, g), b)
  s = jnp.where(v > 0, spread / jnp.where(v > 0, v, 1.0), 0.0)
  numerator = jnp.where(v == r, g - b, jnp.where(v == g, b - r, r - g))
  offset = jnp.where(v == r, 0.0, jnp.where(v == g, 2.0, 4.0))
  h6 = jnp.where(spread > 0, numerator / jnp.where(spread > 0, spread, 1.0) + offset, 0.0) + 6.0 * hue
  h6 = h6 - 6.0 * jnp.floor(h6 * (1.0 / 6.0))
  s = jnp.clip(s * saturation, 0.0, 1.0)
  # Channel value v * (1 - s + s * t) with t the channel's piecewise-linear profile of the hue.
  profiles = (jnp.clip(jnp.abs(h6 - 3.0) - 1.0, 0.0, 1.0), jnp.clip(2.0 - jnp.abs(h6 - 2.0), 0.0, 1.0),
              jnp.clip(2.0 - jnp.abs(h6 - 4.0), 0.0, 1.0))
  return tuple(v * (1.0 - s + s * t) for t in profiles)


def _slot_params(slot_ops: jax.Array, values: jax.Array, means: jax.Array | None, *, ops: tuple[str, ...],
                 brightness_mode: str, channels: int
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
  """Per example and slot: x -> clip(alpha * x + beta) for brightness / contrast, (saturation, hue) for HSV.

  Brightness is alpha = f (or beta = d), contrast is alpha = f, beta = (1 - f) * m around the channel mean m,
  an HSV slot has alpha = 1, beta = 0 (an exact identity on [0, 1]); identities elsewhere.

  Returns:
    alpha [b, n], beta [b, n, c], saturation [b, n], hue [b, n] and is_hsv [b, n] (the slot is saturation or
    hue) for the n slots of `slot_ops` [b, n].
  """
  def pick(name, default):
    if name not in ops:
      return jnp.full(slot_ops.shape, default, jnp.float32)
    i = ops.index(name)
    return jnp.where(slot_ops == i, values[:, i][:, None], default)

  alpha = jnp.ones(slot_ops.shape, jnp.float32)
  beta = jnp.zeros(slot_ops.shape + (channels,), jnp.float32)
  if "brightness" in ops:
    if brightness_mode == "multiplicative":
      alpha = pick("brightness", 1.0)
    else:
      beta = beta + pick("brightness", 0.0)[..., None]
  if "contrast" in ops and means is not None:
    factor = pick("contrast", 1.0)
    alpha = alpha * factor
    beta = beta + (1.0 - factor)[..., None] * means[:, None, :]
  is_hsv = jnp.zeros(slot_ops.shape, bool)
  for name in ("saturation", "hue"):
    if name in ops:
      is_hsv = is_hsv | (slot_ops == ops.index(name))
  return alpha, beta, pick("saturation", 1.0), pick("hue", 0.0), is_hsv


def _jitter_slots(planes: list[jax.Array], slot_ops: jax.Array, values: jax.Array, means: jax.Array | None, *,
                  ops: tuple[str, ...], brightness_mode: str, with_hsv: bool = True) -> list[jax.Array]:
  """Runs slot k's op (`slot_ops[:, k]`, an index into `ops`; -1 = none) on every example, elementwise.

  The per-example parameters of every slot are computed first (`_slot_params`); each slot is then one affine
  map and clip per channel, and one HSV adjustment selected only where the slot is saturation or hue. No
  per-example branches: under vmap a switch would run every branch anyway.
  """
  alpha, beta, sat, hue, is_hsv = _slot_params(slot_ops, values, means, ops=ops,
                                               brightness_mode=brightness_mode, channels=len(planes))

  def col(a):
    return a[:, None, None]

  hsv = with_hsv and ("saturation" in ops or "hue" in ops)
  for k in range(slot_ops.shape[1]):
    planes = [jnp.clip(col(alpha[:, k]) * p + col(beta[:, k, j]), 0.0, 1.0) for j, p in enumerate(planes)]
    if hsv:
      rgb = _adjust_hsv_planes(*planes, col(sat[:, k]), col(hue[:, k]))
      planes = [jnp.where(col(is_hsv[:, k]), jnp.clip(q, 0.0, 1.0), p) for q, p in zip(rgb, planes)]
  return planes


def _stack_channels(planes: list[jax.Array]) -> jax.Array:
  """[..., c] from c planes by selects on the channel index, not a concatenate.

  XLA's CPU backend emits a concatenate at the root of a fusion as a branch per element, which does not vectorise
  (measured several times slower for the colour pass); selects on an iota compute every plane per element (cheap
  next to the memory traffic on accelerators) and vectorise everywhere.
  """
  channel = lax.broadcasted_iota(jnp.int32, planes[0].shape + (len(planes),), planes[0].ndim)
  out = planes[-1][..., None]
  for i in range(len(planes) - 2, -1, -1):
    out = jnp.where(channel == i, planes[i][..., None], out)
  return out


def _color_planes(planes: list[jax.Array], *, ops: tuple[str, ...], values: jax.Array | None,
                  order: jax.Array | None, apply: jax.Array | None, gray: jax.Array | None,
                  solarize: jax.Array | None, brightness_mode: str, solarize_threshold: float) -> list[jax.Array]:
  """`fused_color` on c planes [b, h, w] (unnormalised); planes from a [b, c, h, w] array are contiguous."""
  n = len(ops)
  if n:
    slot_ops = order.astype(jnp.int32)
    if apply is not None:
      slot_ops = jnp.where(apply[:, None], slot_ops, -1)
    values = values.astype(jnp.float32)
    kw = {"ops": ops, "brightness_mode": brightness_mode}
    if "contrast" not in ops:
      planes = _jitter_slots(planes, slot_ops, values, None, **kw)
    else:
      # Contrast pivots on the mean of the image as it is when contrast runs: run each example's ops before
      # contrast, reduce that image to its channel means, then contrast, then the ops after it.
      contrast = ops.index("contrast")
      position = jnp.argmax(order == contrast, axis=1)[:, None]
      slots = jnp.arange(n - 1)[None, :]
      before = jnp.where(slots < position, slot_ops[:, :n - 1], -1)
      after = jnp.take_along_axis(slot_ops, jnp.minimum(position + 1 + slots, n - 1), axis=1)
      after = jnp.where(position + 1 + slots < n, after, -1)
      planes = _jitter_slots(planes, before, values, None, **kw)
      means = jnp.stack([jnp.mean(p, axis=(1, 2)) for p in planes], axis=-1)
      jittered = slot_ops[:, :1] >= 0  # False where `apply` is
      planes = _jitter_slots(planes, jnp.where(jittered, contrast, -1), values, means, with_hsv=False, **kw)
      planes = _jitter_slots(planes, after, values, None, **kw)
  if gray is not None:
    luma = _LUMA[0] * planes[0] + _LUMA[1] * planes[1] + _LUMA[2] * planes[2]
    planes = [jnp.where(gray[:, None, None], luma, p) for p in planes]
  if solarize is not None:
    planes = [jnp.where(solarize[:, None, None] & (p >= solarize_threshold), 1.0 - p, p) for p in planes]
  return planes


def fused_color(images: jax.Array, *, ops: tuple[str, ...] = (), values: jax.Array | None = None,
                order: jax.Array | None = None, apply: jax.Array | None = None, gray: jax.Array | None = None,
                solarize: jax.Array | None = None, brightness_mode: str = "multiplicative",
                solarize_threshold: float = 0.5, mean: tuple[float, ...] | None = None,
                std: tuple[float, ...] | None = None) -> jax.Array:
  """Colour jitter, grayscale, solarize and normalisation of a batch in one elementwise pass, per-example factors.

  Equals, to float rounding, the op-by-op definition with the same factors: for each example with `apply`, the
  ops `ops[order[0]], ops[order[1]], ...` in turn (brightness: x * f or x + d; contrast: f * (x - m) + m around
  the per-channel spatial mean m of the image at that point; saturation: HSV saturation * f; hue: HSV hue + d;
  each clipped to [0, 1]); then rec601 grayscale where `gray`; then x -> 1 - x for x >= threshold where
  `solarize`; then (x - mean) / std. All factors are per-example [b] arrays prepared before any pixel is touched;
  each slot is an affine map plus an HSV adjustment selected per example. Without contrast the whole chain is
  one elementwise pass; with it, two: each example's ops before contrast (one pass, whose output is also reduced
  to contrast's per-channel mean m), then contrast, the ops after it, grayscale, solarize and normalisation.

  Args:
    images: [b, h, w, c] float images in [0, 1] (or uint8), c in (1, 3).
    ops: names of the jitter ops, a subset of ('brightness', 'contrast', 'saturation', 'hue'); saturation and
      hue need c = 3.
    values: [b, len(ops)] float factor (or delta) per example and op, column i for `ops[i]`.
    order: [b, len(ops)] int, a permutation per row: slot k runs `ops[order[:, k]]`.
    apply: optional [b] bool; False leaves that example's colours unjittered. None: all True.
    gray: optional [b] bool; True converts to grayscale (c = 3 only).
    solarize: optional [b] bool; True solarizes at `solarize_threshold`.
    brightness_mode: 'multiplicative' or 'additive'.
    solarize_threshold: pixels >= threshold are inverted.
    mean: optional per-channel mean (1 or c values); with `std`, the output is normalised.
    std: optional per-channel standard deviation, as `mean`.

  Returns:
    [b, h, w, c] float32 images (in [0, 1] when not normalised).
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must have shape [b, h, w, c] with c in (1, 3); got shape {tuple(images.shape)}.")
  batch, channels = images.shape[0], images.shape[-1]
  ops = tuple(ops)
  if len(set(ops)) != len(ops) or not set(ops) <= set(_JITTER_OPS):
    raise ValueError(f"ops must be distinct names from {_JITTER_OPS}; got {ops}.")
  if channels == 1 and (gray is not None or {"saturation", "hue"} & set(ops)):
    raise ValueError(f"saturation, hue and gray need 3 channels; got ops={ops}, gray given: {gray is not None}, "
                     f"for images of shape {tuple(images.shape)}.")
  if brightness_mode not in _BRIGHTNESS_MODES:
    raise ValueError(f"brightness_mode must be one of {_BRIGHTNESS_MODES}; got {brightness_mode!r}.")
  if (mean is None) != (std is None):
    raise ValueError(f"mean and std must be given together; got mean={mean}, std={std}.")
  for name, arr in (("apply", apply), ("gray", gray), ("solarize", solarize)):
    if arr is not None and arr.shape != (batch,):
      raise ValueError(f"{name} must have shape {(batch,)}; got {tuple(arr.shape)}.")
  n = len(ops)
  if n:
    for name, arr in (("values", values), ("order", order)):
      if arr is None or arr.shape != (batch, n):
        raise ValueError(f"{name} must have shape {(batch, n)} for ops={ops}; got "
                         f"{None if arr is None else tuple(arr.shape)}.")
  x = _to_unit_float(images, "images")
  planes = _color_planes([x[..., i] for i in range(channels)], ops=ops, values=values, order=order, apply=apply,
                         gray=gray, solarize=solarize, brightness_mode=brightness_mode,
                         solarize_threshold=solarize_threshold)
  out = _stack_channels(planes)
  return out if mean is None else normalize(out, mean=mean, std=std)


# Blur: a separable Gaussian on the chosen subset only.


def blur_kernel_size(out_size: int, fraction: float = 0.1) -> int:
  """Number of taps 2r + 1 of the blur kernel for an image side, with r = int(fraction * side) // 2 (SimCLR)."""
  return 2 * (int(out_size * fraction) // 2) + 1


def gaussian_blur(images: jax.Array, sigma: jax.Array, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur of a batch, one sigma per example, zero ('SAME') padding.

  Two 1-D passes (along the width, then the height), each a sum of `kernel_size` shifted copies weighted by the
  example's normalised taps exp(-t^2 / (2 sigma^2)): 2 * kernel_size multiply-adds per value, one fused loop per
  pass, and no batched-kernel convolution (which vmapping dm-pix's depthwise convolution over per-example sigmas
  produces, and which is far slower on CPU). Equal to `pix.gaussian_blur` per example.

  Args:
    images: [k, h, w, c] float images.
    sigma: [k] standard deviations in pixels.
    kernel_size: number of taps 2r + 1 (an even number is rounded up, as dm-pix does); r = 0 returns `images`.

  Returns:
    [k, h, w, c] float32 images.
  """
  if images.ndim != 4:
    raise ValueError(f"images must have shape [k, h, w, c]; got shape {tuple(images.shape)}.")
  if sigma.shape != images.shape[:1]:
    raise ValueError(f"sigma must have shape {images.shape[:1]} (one per image); got {tuple(sigma.shape)}.")
  radius = int(kernel_size) // 2
  x = images.astype(jnp.float32)
  if radius == 0:
    return x
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  taps = jnp.exp(-offsets[None, :] ** 2 / (2.0 * sigma.astype(jnp.float32)[:, None] ** 2))
  taps = taps / jnp.sum(taps, axis=1, keepdims=True)
  for axis in (2, 1):
    size = x.shape[axis]
    pad = [(0, 0)] * 4
    pad[axis] = (radius, radius)
    padded = jnp.pad(x, pad)
    x = sum(taps[:, t, None, None, None] * lax.slice_in_dim(padded, t, t + size, axis=axis)
            for t in range(2 * radius + 1))
  return x


def _blur_draws(key: jax.Array, batch: int, *, p: float, sigma: tuple[float, float]
                ) -> tuple[jax.Array, jax.Array, jax.Array | None] | None:
  """(index [k], sigmas [k], keep [k] or None) of the examples to blur, k = ceil(p * b); None when k = 0."""
  expected = p * batch
  # The epsilon keeps float error in p * b (e.g. 0.7 * 10 = 7.000000000000001) from adding a candidate.
  count = min(batch, math.ceil(expected - 1e-6))
  if count <= 0:
    return None
  last_p = min(1.0, expected - (count - 1))
  k_perm, k_sigma, k_last = jax.random.split(key, 3)
  index = jax.random.permutation(k_perm, batch)[:count]
  sigmas = jax.random.uniform(k_sigma, (count,), minval=sigma[0], maxval=sigma[1])
  keep = None
  if last_p < 1.0 - 1e-6:
    keep = (jnp.arange(count) < count - 1) | (jax.random.uniform(k_last) < last_p)
  return index, sigmas, keep


def _blur_subset(key: jax.Array, images: jax.Array, *, p: float, sigma: tuple[float, float], kernel_size: int,
                 blur_fn=gaussian_blur) -> jax.Array:
  if images.ndim != 4:
    raise ValueError(f"images must have shape [b, h, w, c]; got shape {tuple(images.shape)}.")
  draws = _blur_draws(key, images.shape[0], p=p, sigma=sigma)
  if draws is None or kernel_size // 2 == 0:
    return images
  index, sigmas, keep = draws
  chosen = images[index]
  blurred = blur_fn(chosen, sigmas, kernel_size)
  if keep is not None:
    blurred = jnp.where(keep[:, None, None, None], blurred, chosen)
  return images.at[index].set(blurred.astype(images.dtype), unique_indices=True)


def random_gaussian_blur(key: jax.Array, images: jax.Array, *, p: float,
                         sigma: tuple[float, float] = (0.1, 2.0), kernel_size: int) -> jax.Array:
  """Gaussian blur with per-example probability `p`, computed only for the examples that get it.

  Trade-off: `lax.cond` under `vmap` becomes a select that blurs every example and throws most away. Instead
  k = ceil(p * b) distinct examples are picked by a random permutation (a static shape), gathered, blurred with
  per-example sigma ~ U[sigma] (`gaussian_blur`: two 1-D passes) and scattered back. The first k - 1 are always
  blurred and the k-th with probability p * b - (k - 1), so each example's marginal probability is exactly p.
  The price: the number of blurred examples per batch is floor(p * b) or ceil(p * b) rather than Binomial(b, p),
  and the examples are not independent (a negligible correlation for a regulariser). Padding is zeros ('SAME'),
  as in SimCLR's code.

  Args:
    key: PRNG key (one per batch).
    images: [b, h, w, c] float images in [0, 1].
    p: per-example probability of blurring.
    sigma: (low, high) range of the standard deviation in pixels.
    kernel_size: odd number of taps of the separable kernel (see `blur_kernel_size`); 1 disables.

  Returns:
    [b, h, w, c] images; exactly the chosen examples differ from the input.
  """
  return _blur_subset(key, images, p=p, sigma=sigma, kernel_size=kernel_size)
