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

This module holds the recipes, the per-example draws, the single-example ops, `augment_images` and the reference.
The batched kernels of the fused path (`resample_boxes`, `fused_color`, `gaussian_blur`, `random_gaussian_blur`,
`blur_kernel_size`, `normalize`) live in `_fused.py`, which explains their design, and are re-exported here.

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

# The fused kernels; the public ones are re-exported, so `image.resample_boxes` etc. keep working.
from rl.data.augment._fused import (  # pylint: disable=unused-import
    _BRIGHTNESS_MODES, _JITTER_OPS, _blur_draws, _blur_subset, _color_planes, _resample, _stack_channels,
    _to_unit_float, blur_kernel_size, fused_color, gaussian_blur, normalize, random_gaussian_blur, resample_boxes)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PROBABILITIES = ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")


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

  Example:
    >>> box = sample_crop_box(jax.random.key(0), 32, 32, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    >>> np.asarray(box).round(2)[2:]  # (height, width): a quarter of the area at ratio 1
    array([16., 16.], dtype=float32)
    >>> top, left, h, w = np.asarray(sample_crop_box(jax.random.key(1), 32, 48))
    >>> bool(0 <= top and top + h <= 32 and 0 <= left and left + w <= 48)  # always inside the image
    True

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



def resample_box(image: jax.Array, box: jax.Array, *, out_size: int, flip: jax.Array | bool = False) -> jax.Array:
  """Crops `box` from `image` and resizes it to [out_size, out_size] in one bilinear resampling.

  The box's continuous edges map onto the output's, so crop and resize are one interpolation (no double blur).
  Downscaling widens the triangle kernel (antialiasing, as PIL's bilinear). `flip` mirrors the sample positions,
  so a flipped view is the same resampling, exactly the mirror image of the unflipped one.

  Example:
    >>> image = jnp.asarray(np.random.RandomState(0).rand(32, 48, 3), jnp.float32)
    >>> box = jnp.array([0.0, 16.0, 32.0, 32.0])  # top, left, height, width: rows 0-31, columns 16-47
    >>> out = resample_box(image, box, out_size=32)
    >>> out.shape, bool(jnp.allclose(out, image[:, 16:]))  # box as large as the output: exactly its pixels
    ((32, 32, 3), True)
    >>> bool(jnp.allclose(resample_box(image, box, out_size=32, flip=True), out[:, ::-1]))  # flip: mirror image
    True

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

  Example:
    >>> image = jnp.asarray(np.random.RandomState(0).randint(0, 256, (32, 48, 3)), jnp.uint8)
    >>> crop = random_resized_crop(jax.random.key(0), image, out_size=32)
    >>> crop.shape, crop.dtype, bool(0.0 <= crop.min() and crop.max() <= 1.0)
    ((32, 32, 3), dtype('float32'), True)

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

  Example:
    >>> image = jnp.asarray(np.random.RandomState(0).randint(0, 256, (32, 48, 3)), jnp.uint8)
    >>> out = center_resize(image, out_size=32)
    >>> out.shape, out.dtype, bool(jnp.allclose(out, image[:, 8:40] / 255))  # the central 32 x 32 square, in [0, 1]
    ((32, 32, 3), dtype('float32'), True)

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
  """Flips [h, w, c] `image` left-right with probability `p` (`augment_images` folds the flip into the crop).

  Example:
    >>> image = jnp.arange(3.0).reshape(1, 3, 1)
    >>> random_flip(jax.random.key(0), image, p=1.0)[0, :, 0]
    Array([2., 1., 0.], dtype=float32)
    >>> random_flip(jax.random.key(0), image, p=0.0)[0, :, 0]
    Array([0., 1., 2.], dtype=float32)
  """
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

  Example:
    >>> image = jnp.full((4, 4, 3), 0.5)
    >>> only_brightness = dict(brightness=0.8, contrast=0.0, saturation=0.0, hue=0.0)
    >>> out = color_jitter(jax.random.key(0), image, p=1.0, **only_brightness)
    >>> out.shape, bool(jnp.allclose(out, out[0, 0]))  # one brightness factor for the whole image
    ((4, 4, 3), True)
    >>> bool(jnp.all(color_jitter(jax.random.key(0), image, p=0.0, **only_brightness) == image))  # p = 0: unchanged
    True

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

  Example:
    >>> image = jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0]), (2, 2, 3))  # pure red
    >>> np.asarray(random_grayscale(jax.random.key(0), image, p=1.0)[0, 0]).round(3)  # rec601 luma of red, 3 times
    array([0.299, 0.299, 0.299], dtype=float32)
  """
  _check_image(image)
  if image.shape[-1] == 1:
    return image
  gray = pix.rgb_to_grayscale(image, keep_dims=True)
  return jnp.where(jax.random.uniform(key) < p, gray, image)


def random_solarize(key: jax.Array, image: jax.Array, *, p: float = 0.2, threshold: float = 0.5) -> jax.Array:
  """Inverts the pixels >= `threshold` of a [0, 1] `image` (x -> 1 - x) with probability `p` (BYOL).

  Example:
    >>> image = jnp.array([0.2, 0.5, 0.9]).reshape(1, 3, 1)
    >>> np.asarray(random_solarize(jax.random.key(0), image, p=1.0)[0, :, 0]).round(2)  # >= 0.5 -> 1 - x
    array([0.2, 0.5, 0.1], dtype=float32)
  """
  return jnp.where(jax.random.uniform(key) < p, pix.solarize(image, threshold), image)




def _pix_blur(images: jax.Array, sigma: jax.Array, kernel_size: int) -> jax.Array:
  # The previous kernel: dm-pix's two depthwise 1-D convolutions, vmapped over per-example sigmas.
  return jax.vmap(lambda im, s: pix.gaussian_blur(im, s, kernel_size))(images, sigma)



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

  Example:
    >>> images = jnp.asarray(np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)), jnp.uint8)
    >>> augment = jax.jit(augment_images, static_argnames=("recipe", "out_size"))  # as inside a train step
    >>> view = augment(jax.random.key(0), images, recipe=SIMCLR, out_size=16)
    >>> view.shape, view.dtype
    ((4, 16, 16, 3), dtype('float32'))
    >>> bool(jnp.all(view == augment(jax.random.key(0), images, recipe=SIMCLR, out_size=16)))  # same key, same view
    True
    >>> bool(jnp.all(view[0] == augment(jax.random.key(1), images, recipe=SIMCLR, out_size=16)[0]))  # new key
    False

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

  Example:
    >>> images = jnp.full((2, 32, 32, 3), 255, jnp.uint8)  # square at the output size: no resampling
    >>> x = eval_images(images, ImageRecipe(mean=(0.5,), std=(0.5,)))
    >>> x.shape, x.dtype, round(float(x.min()), 3), round(float(x.max()), 3)  # white: (1 - 0.5) / 0.5
    ((2, 32, 32, 3), dtype('float32'), 1.0, 1.0)

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
