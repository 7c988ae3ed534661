"""On-device image augmentations of SimCLR and BYOL, as pure JAX functions of a PRNG key.

`augment_images` is the training path, fused so that augmentation is not what limits a step: every per-example
factor is drawn first (the same draws as the single-example ops below), then the geometry of a view is ONE
resampling (`resample_boxes`: crop, resize and horizontal flip as two small matrix products per example), the
colour is one elementwise pass, two with contrast, whose pivot is the mean of the image as it is when contrast
runs (`fused_color`: jitter in each example's random order, grayscale, solarize and normalisation), and Gaussian
blur (two 1-D passes, `gaussian_blur`) is computed only for the examples that draw it. The result equals the
op-by-op chain crop -> flip -> colour jitter -> grayscale -> blur -> solarize -> normalise of the papers, to float
rounding. That chain of single-example ops (`random_resized_crop`, `random_flip`, `color_jitter`,
`random_grayscale`, the subset blur of `random_gaussian_blur` with dm-pix's kernel, `random_solarize`,
`normalize`) is kept as `_augment_images_op_by_op`, the executable reference of the tests and of
experiments/benchmarks/augment_throughput.py. Images enter as uint8 (or float in [0, 1]) and leave as float32,
normalised by the recipe's mean/std.

Single-channel images (c = 1) skip the ops that need RGB: saturation, hue and grayscale (already gray).
Brightness, contrast, blur and solarize apply as they do to RGB.
"""
from __future__ import annotations

import dataclasses
import math

import dm_pix as pix
import jax
from jax import lax
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PROBABILITIES = ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")
_BRIGHTNESS_MODES = ("multiplicative", "additive")
_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
_LUMA = (0.2989, 0.5870, 0.1140)  # rec601, as pix.rgb_to_grayscale and tf.image


@dataclasses.dataclass(frozen=True)
class ImageRecipe:
  """Every parameter of one augmented image view; frozen and hashable, so it can be a static jit argument.

  The defaults are the identity (resize to the output size and normalise only); the presets below set the
  papers' values. Ranges are (low, high) tuples; lists are converted to tuples.

  Attributes:
    crop_scale: range of the crop's area as a fraction of the image area (random resized crop).
    crop_ratio: range of the crop's aspect ratio width / height, sampled log-uniformly.
    flip_p: probability of a horizontal flip.
    jitter_p: probability of applying colour jitter (all four adjustments together).
    brightness: strength b. Multiplicative mode: factor ~ U[max(0, 1 - b), 1 + b] (SimCLR v2, torchvision);
      additive mode: delta ~ U[-b, b] added to every pixel (tf.image, BYOL's reference code).
    brightness_mode: 'multiplicative' or 'additive'.
    contrast: strength c; factor ~ U[max(0, 1 - c), 1 + c] around the per-channel mean (tf.image).
    saturation: strength s; factor ~ U[max(0, 1 - s), 1 + s] on the HSV saturation. RGB only.
    hue: strength h in [0, 0.5]; delta ~ U[-h, h] added to the HSV hue (in turns). RGB only.
    jitter_random_order: apply the four adjustments in a random order per example (SimCLR, BYOL).
    grayscale_p: probability of converting to grayscale (rec601 luma, kept as 3 channels). RGB only.
    blur_p: probability of a Gaussian blur.
    blur_sigma: range of the blur's standard deviation in pixels, sampled uniformly.
    blur_kernel_fraction: kernel size as a fraction of the output side (SimCLR: 10%, i.e. 23 taps at 224).
    solarize_p: probability of solarisation.
    solarize_threshold: pixels >= threshold (in [0, 1] units) are inverted to 1 - x.
    mean: per-channel mean subtracted at the end (one value, or one per channel).
    std: per-channel standard deviation divided at the end (same length as mean).
  """
  crop_scale: tuple[float, float] = (1.0, 1.0)
  crop_ratio: tuple[float, float] = (1.0, 1.0)
  flip_p: float = 0.0
  jitter_p: float = 0.0
  brightness: float = 0.0
  brightness_mode: str = "multiplicative"
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  jitter_random_order: bool = True
  grayscale_p: float = 0.0
  blur_p: float = 0.0
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  blur_kernel_fraction: float = 0.1
  solarize_p: float = 0.0
  solarize_threshold: float = 0.5
  mean: tuple[float, ...] = IMAGENET_MEAN
  std: tuple[float, ...] = IMAGENET_STD

  def __post_init__(self):
    for name in ("crop_scale", "crop_ratio", "blur_sigma", "mean", "std"):
      value = getattr(self, name)
      try:
        object.__setattr__(self, name, tuple(float(v) for v in value))
      except TypeError as e:
        raise ValueError(f"{name} must be a sequence of numbers; got {value!r}.") from e
    for name in ("crop_scale", "crop_ratio", "blur_sigma"):
      value = getattr(self, name)
      if len(value) != 2 or not 0.0 < value[0] <= value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with 0 < low <= high; got {value}.")
    if self.crop_scale[1] > 1.0:
      raise ValueError(f"crop_scale must lie in (0, 1]; got {self.crop_scale}.")
    for name in _PROBABILITIES:
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value}.")
    for name in ("brightness", "contrast", "saturation"):
      if getattr(self, name) < 0.0:
        raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}.")
    if not 0.0 <= self.hue <= 0.5:
      raise ValueError(f"hue must lie in [0, 0.5]; got {self.hue}.")
    if self.brightness_mode not in _BRIGHTNESS_MODES:
      raise ValueError(f"brightness_mode must be one of {_BRIGHTNESS_MODES}; got {self.brightness_mode!r}.")
    if not 0.0 <= self.blur_kernel_fraction <= 1.0:
      raise ValueError(f"blur_kernel_fraction must lie in [0, 1]; got {self.blur_kernel_fraction}.")
    if not self.mean or len(self.mean) != len(self.std):
      raise ValueError(f"mean and std must be non-empty and of equal length; got {self.mean} and {self.std}.")
    if min(self.std) <= 0.0:
      raise ValueError(f"std must be > 0 per channel; got {self.std}.")


# Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations", appendix A
# (https://arxiv.org/abs/2002.05709): colour jitter strength s = 1.0. Brightness is multiplicative as in the
# SimCLR v2 code and torchvision. Blur p = 0.5 is the ImageNet setting; the paper turns it off on CIFAR:
# get_recipe('simclr', blur_p=0.0).
SIMCLR = ImageRecipe(
    crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5,
    jitter_p=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, grayscale_p=0.2,
    blur_p=0.5, blur_sigma=(0.1, 2.0), blur_kernel_fraction=0.1)

# Grill et al. 2020, "Bootstrap your own latent", table 6 (https://arxiv.org/abs/2006.07733): two asymmetric
# views. Brightness is an additive delta as in the BYOL reference code (tf.image semantics).
BYOL_VIEW1 = ImageRecipe(
    crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5,
    jitter_p=0.8, brightness=0.4, brightness_mode="additive", contrast=0.4, saturation=0.2, hue=0.1,
    grayscale_p=0.2, blur_p=1.0, blur_sigma=(0.1, 2.0), blur_kernel_fraction=0.1, solarize_p=0.0)
BYOL_VIEW2 = dataclasses.replace(BYOL_VIEW1, blur_p=0.1, solarize_p=0.2)

NONE = ImageRecipe()


def _to_unit_float(image: jax.Array, name: str = "image") -> jax.Array:
  """uint8 -> float32 in [0, 1]; floating input is taken to be in [0, 1] already."""
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) / 255.0
  if jnp.issubdtype(image.dtype, jnp.floating):
    return image.astype(jnp.float32)
  raise ValueError(f"{name} must be uint8 or floating; got dtype {image.dtype}.")


def _check_image(image: jax.Array, name: str = "image") -> None:
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"{name} must have shape [h, w, c] with c in (1, 3); got shape {tuple(image.shape)}.")


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[float, float]:
  """(h, w) of the central crop used when no sampled box fits: the whole image, clamped to the ratio range."""
  in_ratio = width / height
  if in_ratio < ratio[0]:
    return width / ratio[0], float(width)
  if in_ratio > ratio[1]:
    return float(height), height * ratio[1]
  return float(height), float(width)


def sample_crop_box(key: jax.Array, height: int, width: int, *, scale: tuple[float, float] = (0.08, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> jax.Array:
  """Samples a random-resized-crop box as torchvision's `RandomResizedCrop` and SimCLR do.

  Each attempt draws an area fraction ~ U[scale] and an aspect ratio w / h log-uniform in `ratio`; the first
  box that fits in the image is kept and placed uniformly. If none fits, the box is the central crop of the whole
  image clamped to the ratio range. Boxes are continuous (not rounded to pixels), so the area fraction lies
  exactly in `scale`; the bilinear resampler handles sub-pixel edges.

  Args:
    key: PRNG key.
    height: image height h (static).
    width: image width w (static).
    scale: (low, high) range of area fractions, 0 < low <= high <= 1.
    ratio: (low, high) range of aspect ratios w / h.
    attempts: number of boxes drawn before the fallback (torchvision: 10).

  Returns:
    [4] float32 box (top, left, box_height, box_width) in pixels.
  """
  k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
  area = jax.random.uniform(k_area, (attempts,), minval=scale[0], maxval=scale[1]) * (height * width)
  log_ratio = jax.random.uniform(k_ratio, (attempts,), minval=math.log(ratio[0]), maxval=math.log(ratio[1]))
  aspect = jnp.exp(log_ratio)
  box_w = jnp.sqrt(area * aspect)
  box_h = jnp.sqrt(area / aspect)
  fits = (box_w <= width) & (box_h <= height)
  first = jnp.argmax(fits)
  any_fits = jnp.any(fits)
  fallback_h, fallback_w = _fallback_box(height, width, ratio)
  box_h = jnp.where(any_fits, box_h[first], fallback_h)
  box_w = jnp.where(any_fits, box_w[first], fallback_w)
  u_top = jnp.where(any_fits, jax.random.uniform(k_top), 0.5)
  u_left = jnp.where(any_fits, jax.random.uniform(k_left), 0.5)
  top = u_top * (height - box_h)
  left = u_left * (width - box_w)
  return jnp.stack([top, left, box_h, box_w]).astype(jnp.float32)


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


def resample_box(image: jax.Array, box: jax.Array, *, out_size: int, flip: jax.Array | bool = False) -> jax.Array:
  """Crops `box` from `image` and resizes it to [out_size, out_size] in one bilinear resampling.

  The box's continuous edges map onto the output's, so crop and resize are one interpolation (no double blur).
  Downscaling widens the triangle kernel (antialiasing, as PIL's bilinear). `flip` mirrors the sample positions,
  so a flipped view is the same resampling, exactly the mirror image of the unflipped one.

  Args:
    image: [h, w, c] float image in [0, 1] (or uint8).
    box: [4] (top, left, box_height, box_width) in pixels, e.g. from `sample_crop_box`.
    out_size: side S of the square output.
    flip: mirror the output left-right (a Python or traced bool).

  Returns:
    [S, S, c] float32 image.
  """
  _check_image(image)
  flips = jnp.reshape(jnp.asarray(flip, bool), (1,))
  return resample_boxes(image[None], jnp.asarray(box)[None], out_size=out_size, flips=flips)[0]


def random_resized_crop(key: jax.Array, image: jax.Array, *, out_size: int,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
  """Random resized crop (Szegedy et al. 2015 "Inception" crop; SimCLR's main augmentation).

  Args:
    key: PRNG key; the box is `sample_crop_box(key, h, w, scale=scale, ratio=ratio)`.
    image: [h, w, c] uint8 or float image in [0, 1].
    out_size: side S of the square output.
    scale: (low, high) range of the crop's area fraction.
    ratio: (low, high) range of the crop's aspect ratio w / h, sampled log-uniformly.

  Returns:
    [S, S, c] float32 image in [0, 1].
  """
  _check_image(image)
  box = sample_crop_box(key, image.shape[0], image.shape[1], scale=scale, ratio=ratio)
  return resample_box(_to_unit_float(image), box, out_size=out_size)


def center_resize(image: jax.Array, *, out_size: int) -> jax.Array:
  """Deterministic eval preprocessing: the largest central square, resized to [out_size, out_size].

  Args:
    image: [h, w, c] uint8 or float image in [0, 1].
    out_size: side S of the square output.

  Returns:
    [S, S, c] float32 image in [0, 1]; the input itself (as float) when it is already S x S.
  """
  _check_image(image)
  height, width = image.shape[0], image.shape[1]
  image = _to_unit_float(image)
  if height == width == out_size:
    return image
  side = min(height, width)
  box = jnp.array([(height - side) / 2, (width - side) / 2, side, side], jnp.float32)
  return resample_box(image, box, out_size=out_size)


def random_flip(key: jax.Array, image: jax.Array, *, p: float = 0.5) -> jax.Array:
  """Flips [h, w, c] `image` left-right with probability `p` (`augment_images` folds the flip into the crop)."""
  return jnp.where(jax.random.uniform(key) < p, pix.flip_left_right(image), image)


def _adjust_hsv(image: jax.Array, saturation: jax.Array, hue: jax.Array) -> jax.Array:
  # One HSV round trip for both adjustments; equals pix.adjust_saturation then pix.adjust_hue.
  h, s, v = jnp.moveaxis(pix.rgb_to_hsv(image), -1, 0)
  hsv = jnp.stack([(h + hue) % 1.0, jnp.clip(s * saturation, 0.0, 1.0), v], axis=-1)
  return pix.hsv_to_rgb(hsv)


def _jitter_ops(channels: int, brightness: float, contrast: float, saturation: float, hue: float
                ) -> tuple[str, ...]:
  """The jitter ops that run (static): non-zero strength, and saturation/hue only on RGB."""
  strength = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
  return tuple(n for n in _JITTER_OPS
               if strength[n] > 0 and (channels == 3 or n in ("brightness", "contrast")))


def _draw_jitter(key: jax.Array, ops: tuple[str, ...], *, p: float, brightness: float, contrast: float,
                 saturation: float, hue: float, brightness_mode: str, random_order: bool
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One example's jitter draws: (apply [], values [len(ops)], order [len(ops)]); shared by both paths."""
  k_apply, k_b, k_c, k_s, k_h, k_order = jax.random.split(key, 6)
  apply = jax.random.uniform(k_apply) < p

  def factor(k, strength):
    return jax.random.uniform(k, minval=max(0.0, 1.0 - strength), maxval=1.0 + strength)

  if brightness_mode == "multiplicative":
    b_value = factor(k_b, brightness)
  else:
    b_value = jax.random.uniform(k_b, minval=-brightness, maxval=brightness)
  sampled = {"brightness": b_value, "contrast": factor(k_c, contrast), "saturation": factor(k_s, saturation),
             "hue": jax.random.uniform(k_h, minval=-hue, maxval=hue)}
  values = jnp.stack([sampled[n] for n in ops]).astype(jnp.float32)
  order = jax.random.permutation(k_order, len(ops)) if random_order else jnp.arange(len(ops))
  return apply, values, order.astype(jnp.int32)


def color_jitter(key: jax.Array, image: jax.Array, *, p: float = 0.8, brightness: float = 0.8,
                 contrast: float = 0.8, saturation: float = 0.8, hue: float = 0.2,
                 brightness_mode: str = "multiplicative", random_order: bool = True) -> jax.Array:
  """Colour jitter as in SimCLR / BYOL: brightness, contrast, saturation and hue, applied with probability `p`.

  Factors are sampled once per image (see `ImageRecipe` for the ranges); the image is clipped to [0, 1] after
  every adjustment, as the SimCLR and BYOL code do. Saturation and hue are skipped for single-channel images.
  This is the op-by-op definition (dm-pix ops, one pass per slot); `augment_images` runs the same draws through
  `fused_color`.

  Args:
    key: PRNG key.
    image: [h, w, c] float image in [0, 1], c in (1, 3).
    p: probability of jittering at all.
    brightness: brightness strength (0 disables).
    contrast: contrast strength (0 disables).
    saturation: saturation strength (0 disables).
    hue: hue strength in [0, 0.5] (0 disables).
    brightness_mode: 'multiplicative' (factor) or 'additive' (delta).
    random_order: apply the adjustments in a random permutation per image.

  Returns:
    [h, w, c] float image in [0, 1].
  """
  _check_image(image)
  if brightness_mode not in _BRIGHTNESS_MODES:
    raise ValueError(f"brightness_mode must be one of {_BRIGHTNESS_MODES}; got {brightness_mode!r}.")
  names = _jitter_ops(image.shape[-1], brightness, contrast, saturation, hue)
  if not names:
    return image
  apply, values, order = _draw_jitter(key, names, p=p, brightness=brightness, contrast=contrast,
                                      saturation=saturation, hue=hue, brightness_mode=brightness_mode,
                                      random_order=random_order)
  identity = {"brightness": 1.0 if brightness_mode == "multiplicative" else 0.0, "contrast": 1.0,
              "saturation": 1.0, "hue": 0.0}

  def apply_ops(x, chosen):
    # Ops absent from `chosen` run at their identity and are skipped statically.
    if "brightness" in chosen:
      v = chosen["brightness"]
      x = jnp.clip(x * v if brightness_mode == "multiplicative" else x + v, 0.0, 1.0)
    if "contrast" in chosen:
      x = jnp.clip(pix.adjust_contrast(x, chosen["contrast"]), 0.0, 1.0)
    if "saturation" in chosen or "hue" in chosen:
      x = jnp.clip(_adjust_hsv(x, chosen.get("saturation", 1.0), chosen.get("hue", 0.0)), 0.0, 1.0)
    return x

  def value(i, selected):
    return jnp.where(apply & selected, values[i], identity[names[i]])

  if not random_order:
    for i, name in enumerate(names):
      image = apply_ops(image, {name: value(i, True)})
    return image
  # Each of the len(names) slots runs all ops with only the slot's op away from its identity.
  for slot in range(len(names)):
    image = apply_ops(image, {name: value(i, order[slot] == i) for i, name in enumerate(names)})
  return image


def random_grayscale(key: jax.Array, image: jax.Array, *, p: float = 0.2) -> jax.Array:
  """Converts [h, w, 3] `image` to grayscale (rec601 luma, tiled to 3 equal channels) with probability `p`.

  Single-channel images are returned unchanged.
  """
  _check_image(image)
  if image.shape[-1] == 1:
    return image
  gray = pix.rgb_to_grayscale(image, keep_dims=True)
  return jnp.where(jax.random.uniform(key) < p, gray, image)


def random_solarize(key: jax.Array, image: jax.Array, *, p: float = 0.2, threshold: float = 0.5) -> jax.Array:
  """Inverts the pixels >= `threshold` of a [0, 1] `image` (x -> 1 - x) with probability `p` (BYOL)."""
  return jnp.where(jax.random.uniform(key) < p, pix.solarize(image, threshold), image)


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


def _pix_blur(images: jax.Array, sigma: jax.Array, kernel_size: int) -> jax.Array:
  # The previous kernel: dm-pix's two depthwise 1-D convolutions, vmapped over per-example sigmas.
  return jax.vmap(lambda im, s: pix.gaussian_blur(im, s, kernel_size))(images, sigma)


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


def normalize(images: jax.Array, *, mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
  """(images - mean) / std per channel, on [..., c] float images; mean/std of length 1 or c."""
  if len(mean) not in (1, images.shape[-1]):
    raise ValueError(
        f"mean/std must have 1 or {images.shape[-1]} (channels) values; got {len(mean)}: mean={mean}. "
        "Override them in the recipe, e.g. get_recipe(name, mean=(0.5,), std=(0.5,)).")
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _check_batch(x: jax.Array, recipe: ImageRecipe) -> None:
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"x must be images of shape [b, h, w, c] with c in (1, 3); got shape {tuple(x.shape)}.")
  if x.dtype != jnp.uint8 and not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be uint8 (or float in [0, 1]) images; got dtype {x.dtype}.")
  if len(recipe.mean) not in (1, x.shape[-1]):
    raise ValueError(
        f"recipe.mean/std must have 1 or {x.shape[-1]} values for {x.shape[-1]}-channel images; got "
        f"mean={recipe.mean}. Override them, e.g. get_recipe(name, mean=(0.5,), std=(0.5,)).")


def _crop_is_identity(recipe: ImageRecipe) -> bool:
  return recipe.crop_scale == (1.0, 1.0) and recipe.crop_ratio == (1.0, 1.0)


def _example_keys(key: jax.Array, batch: int, axis_name: str | None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(per-example keys [b], blur key of this shard, per-example solarize keys [b]) from the view's key."""
  shard = lax.axis_index(axis_name) if axis_name is not None else 0
  index = shard * batch + jnp.arange(batch)
  k_example, k_blur, k_solarize = (jax.random.fold_in(key, i) for i in range(3))
  keys = jax.vmap(lambda i: jax.random.fold_in(k_example, i))(index)
  solarize_keys = jax.vmap(lambda i: jax.random.fold_in(k_solarize, i))(index)
  return keys, jax.random.fold_in(k_blur, shard), solarize_keys


def _draw_view(key: jax.Array, recipe: ImageRecipe, height: int, width: int, ops: tuple[str, ...]) -> dict:
  """Every per-example draw of one view, from the same sub-keys as the op-by-op ops (`_augment_one_op_by_op`)."""
  k_crop, k_flip, k_jitter, k_gray = jax.random.split(key, 4)
  if _crop_is_identity(recipe):
    side = min(height, width)
    box = jnp.array([(height - side) / 2, (width - side) / 2, side, side], jnp.float32)
  else:
    box = sample_crop_box(k_crop, height, width, scale=recipe.crop_scale, ratio=recipe.crop_ratio)
  draws = {"box": box, "flip": jax.random.uniform(k_flip) < recipe.flip_p}
  if ops:
    draws["apply"], draws["values"], draws["order"] = _draw_jitter(
        k_jitter, ops, p=recipe.jitter_p, brightness=recipe.brightness, contrast=recipe.contrast,
        saturation=recipe.saturation, hue=recipe.hue, brightness_mode=recipe.brightness_mode,
        random_order=recipe.jitter_random_order)
  draws["gray"] = jax.random.uniform(k_gray) < recipe.grayscale_p
  return draws


def augment_images(key: jax.Array, x: jax.Array, recipe: ImageRecipe, *, out_size: int | None = None,
                   axis_name: str | None = None) -> jax.Array:
  """One augmented view of a batch of images, per-example randomness, in the SimCLR/BYOL order.

  Fused: all per-example factors are drawn first; then the geometry is ONE resampling per view (crop, resize and
  flip, `resample_boxes`, written as colour planes [b, c, S, S]), the colour is one elementwise pass plus the
  pass that gives contrast its mean (`fused_color`: jitter in each example's random order, grayscale, solarize,
  normalisation). With blur, the colour pass stops before solarize and normalisation; the ceil(p * b) examples
  that draw blur are gathered, blurred (two 1-D passes, `gaussian_blur`) and scattered back, and solarize and
  normalisation follow in one more elementwise pass. The result equals the op-by-op chain crop -> flip -> colour
  jitter -> grayscale -> blur -> solarize -> normalise (`_augment_images_op_by_op`) for the same key, to float
  rounding.

  Per-example keys are `fold_in(key, global index)`, so with `axis_name` the shards of a `jax.shard_map` get
  the same per-example draws as one device over the global batch (blur excepted: its subset is drawn per shard).

  Args:
    key: PRNG key, the same on every device.
    x: [b, h, w, c] uint8 images (or float in [0, 1]), c in (1, 3).
    recipe: the view's parameters.
    out_size: side S of the output; None keeps min(h, w).
    axis_name: mesh axis when `x` is this device's shard inside `jax.shard_map`, else None.

  Returns:
    [b, S, S, c] float32 images, normalised with `recipe.mean` and `recipe.std`.
  """
  _check_batch(x, recipe)
  batch, height, width, channels = x.shape
  out_size = min(height, width) if out_size is None else int(out_size)
  keys, blur_key, solarize_keys = _example_keys(key, batch, axis_name)
  ops = () if recipe.jitter_p == 0 else _jitter_ops(channels, recipe.brightness, recipe.contrast,
                                                     recipe.saturation, recipe.hue)
  draws = jax.vmap(lambda k: _draw_view(k, recipe, height, width, ops))(keys)
  flips = draws["flip"] if recipe.flip_p > 0 else None
  if _crop_is_identity(recipe) and height == width == out_size:
    y = _to_unit_float(x, "x")  # no resampling at all; the flip is an index map fused into the colour pass
    if flips is not None:
      y = jnp.where(flips[:, None, None, None], y[:, :, ::-1], y)
    planes = [y[..., i] for i in range(channels)]
  else:
    y = _resample(x, draws["box"], out_size, flips, planar=True)
    planes = [y[:, i] for i in range(channels)]
  colour = {"values": draws.get("values"), "order": draws.get("order"), "apply": draws.get("apply"),
            "gray": draws["gray"] if recipe.grayscale_p > 0 and channels == 3 else None}
  solarize = None
  if recipe.solarize_p > 0:
    solarize = jax.vmap(lambda k: jax.random.uniform(k) < recipe.solarize_p)(solarize_keys)
  kw = {"ops": ops, "brightness_mode": recipe.brightness_mode, "solarize_threshold": recipe.solarize_threshold}
  kernel_size = blur_kernel_size(out_size, recipe.blur_kernel_fraction)
  subset = _blur_draws(blur_key, batch, p=recipe.blur_p, sigma=recipe.blur_sigma) if recipe.blur_p > 0 else None
  if subset is None or kernel_size // 2 == 0:
    return normalize(_stack_channels(_color_planes(planes, **colour, solarize=solarize, **kw)),
                     mean=recipe.mean, std=recipe.std)
  # Blur sits between the colour ops and solarize/normalise: keep the colour pass's output, blur the subset.
  y = _stack_channels(_color_planes(planes, **colour, solarize=None, **kw))
  index, sigmas, keep = subset
  chosen = y[index]
  blurred = gaussian_blur(chosen, sigmas, kernel_size)
  if keep is not None:
    blurred = jnp.where(keep[:, None, None, None], blurred, chosen)
  y = y.at[index].set(blurred, unique_indices=True)
  if solarize is not None:
    y = jnp.where(solarize[:, None, None, None] & (y >= recipe.solarize_threshold), 1.0 - y, y)
  return normalize(y, mean=recipe.mean, std=recipe.std)


def _scale_and_translate_box(image: jax.Array, box: jax.Array, out_size: int) -> jax.Array:
  # The previous `resample_box`: jax.image's resampler, independent of `_resample_weights`.
  scale = jnp.stack([out_size / box[2], out_size / box[3]])
  translation = -jnp.stack([box[0], box[1]]) * scale
  return jax.image.scale_and_translate(image, (out_size, out_size, image.shape[-1]), (0, 1), scale, translation,
                                       method="linear", antialias=True)


def _augment_one_op_by_op(key: jax.Array, image: jax.Array, recipe: ImageRecipe, out_size: int) -> jax.Array:
  k_crop, k_flip, k_jitter, k_gray = jax.random.split(key, 4)
  height, width = image.shape[0], image.shape[1]
  image = _to_unit_float(image)
  if _crop_is_identity(recipe):
    # Degenerate ranges always pick the central square: 'none' equals eval preprocessing.
    if not height == width == out_size:
      side = min(height, width)
      box = jnp.array([(height - side) / 2, (width - side) / 2, side, side], jnp.float32)
      image = _scale_and_translate_box(image, box, out_size)
  else:
    box = sample_crop_box(k_crop, height, width, scale=recipe.crop_scale, ratio=recipe.crop_ratio)
    image = _scale_and_translate_box(image, box, out_size)
  if recipe.flip_p > 0:
    image = random_flip(k_flip, image, p=recipe.flip_p)
  if recipe.jitter_p > 0:
    image = color_jitter(k_jitter, image, p=recipe.jitter_p, brightness=recipe.brightness,
                         contrast=recipe.contrast, saturation=recipe.saturation, hue=recipe.hue,
                         brightness_mode=recipe.brightness_mode, random_order=recipe.jitter_random_order)
  if recipe.grayscale_p > 0:
    image = random_grayscale(k_gray, image, p=recipe.grayscale_p)
  return image


def _augment_images_op_by_op(key: jax.Array, x: jax.Array, recipe: ImageRecipe, *, out_size: int | None = None,
                             axis_name: str | None = None) -> jax.Array:
  """The unfused definition of `augment_images` (the previous implementation), kept as its executable reference.

  Each op is its own pass over a vmapped example (crop, then flip, then each jitter slot with a dm-pix HSV round
  trip, then grayscale), blur is dm-pix's convolution vmapped over the subset, then solarize and normalise. The
  same key gives the same draws as `augment_images`. Used by the tests and experiments/benchmarks/
  augment_throughput.py (the speed-up is measured against it); not for training.
  """
  _check_batch(x, recipe)
  batch, height, width, _ = x.shape
  out_size = min(height, width) if out_size is None else int(out_size)
  keys, blur_key, solarize_keys = _example_keys(key, batch, axis_name)
  y = jax.vmap(lambda k, im: _augment_one_op_by_op(k, im, recipe, out_size))(keys, x)
  if recipe.blur_p > 0:
    y = _blur_subset(blur_key, y, p=recipe.blur_p, sigma=recipe.blur_sigma,
                     kernel_size=blur_kernel_size(out_size, recipe.blur_kernel_fraction), blur_fn=_pix_blur)
  if recipe.solarize_p > 0:
    y = jax.vmap(lambda k, im: random_solarize(k, im, p=recipe.solarize_p,
                                               threshold=recipe.solarize_threshold))(solarize_keys, y)
  return normalize(y, mean=recipe.mean, std=recipe.std)


def eval_images(x: jax.Array, recipe: ImageRecipe, *, out_size: int | None = None) -> jax.Array:
  """Deterministic eval view: central square resized to S (see `center_resize`), then normalised.

  Args:
    x: [b, h, w, c] uint8 images (or float in [0, 1]), c in (1, 3).
    recipe: supplies mean and std.
    out_size: side S of the output; None keeps min(h, w).

  Returns:
    [b, S, S, c] float32 images.
  """
  _check_batch(x, recipe)
  out_size = min(x.shape[1], x.shape[2]) if out_size is None else int(out_size)
  y = jax.vmap(lambda im: center_resize(im, out_size=out_size))(x)
  return normalize(y, mean=recipe.mean, std=recipe.std)
