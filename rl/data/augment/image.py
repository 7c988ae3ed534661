"""On-device image augmentations of SimCLR and BYOL, as pure JAX functions of a PRNG key.

Single-example ops (`random_resized_crop`, `random_flip`, `color_jitter`, `random_grayscale`, `random_solarize`)
take one image [h, w, c] and are vmapped over the batch with one key per example. Gaussian blur is a batch op
(`random_gaussian_blur`) because it is the one expensive op: it is computed only for the examples that get it.
`augment_images` chains them as the papers do: crop -> flip -> colour jitter -> grayscale -> blur -> solarize ->
normalise. Images enter as uint8 (or float in [0, 1]) and leave as float32, normalised by the recipe's mean/std.

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


def resample_box(image: jax.Array, box: jax.Array, *, out_size: int) -> jax.Array:
  """Crops `box` from `image` and resizes it to [out_size, out_size] in one bilinear resampling.

  `jax.image.scale_and_translate` maps the box's continuous edges onto the output's, so crop and resize are
  one interpolation (no double blur). Downscaling widens the triangle kernel (antialiasing, as PIL's bilinear).

  Args:
    image: [h, w, c] float image.
    box: [4] (top, left, box_height, box_width) in pixels, e.g. from `sample_crop_box`.
    out_size: side S of the square output.

  Returns:
    [S, S, c] float32 image.
  """
  top, left, box_h, box_w = box[0], box[1], box[2], box[3]
  scale = jnp.stack([out_size / box_h, out_size / box_w])
  translation = -jnp.stack([top, left]) * scale
  return jax.image.scale_and_translate(
      image.astype(jnp.float32), (out_size, out_size, image.shape[-1]), (0, 1), scale, translation,
      method="linear", antialias=True)


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
  """Flips [h, w, c] `image` left-right with probability `p`."""
  return jnp.where(jax.random.uniform(key) < p, pix.flip_left_right(image), image)


def _adjust_hsv(image: jax.Array, saturation: jax.Array, hue: jax.Array) -> jax.Array:
  # One HSV round trip for both adjustments; equals pix.adjust_saturation then pix.adjust_hue.
  h, s, v = jnp.moveaxis(pix.rgb_to_hsv(image), -1, 0)
  hsv = jnp.stack([(h + hue) % 1.0, jnp.clip(s * saturation, 0.0, 1.0), v], axis=-1)
  return pix.hsv_to_rgb(hsv)


def color_jitter(key: jax.Array, image: jax.Array, *, p: float = 0.8, brightness: float = 0.8,
                 contrast: float = 0.8, saturation: float = 0.8, hue: float = 0.2,
                 brightness_mode: str = "multiplicative", random_order: bool = True) -> jax.Array:
  """Colour jitter as in SimCLR / BYOL: brightness, contrast, saturation and hue, applied with probability `p`.

  Factors are sampled once per image (see `ImageRecipe` for the ranges); the image is clipped to [0, 1] after
  every adjustment, as the SimCLR and BYOL code do. Saturation and hue are skipped for single-channel images.

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
  rgb = image.shape[-1] == 3
  k_apply, k_b, k_c, k_s, k_h, k_order = jax.random.split(key, 6)
  apply = jax.random.uniform(k_apply) < p

  def factor(k, strength):
    return jax.random.uniform(k, minval=max(0.0, 1.0 - strength), maxval=1.0 + strength)

  if brightness_mode == "multiplicative":
    b_value, b_identity = factor(k_b, brightness), 1.0
  else:
    b_value, b_identity = jax.random.uniform(k_b, minval=-brightness, maxval=brightness), 0.0
  # Each op: (identity parameter, sampled parameter). Zero-strength ops are dropped at trace time.
  params = {}
  if brightness > 0:
    params["brightness"] = (b_identity, b_value)
  if contrast > 0:
    params["contrast"] = (1.0, factor(k_c, contrast))
  if rgb and saturation > 0:
    params["saturation"] = (1.0, factor(k_s, saturation))
  if rgb and hue > 0:
    params["hue"] = (0.0, jax.random.uniform(k_h, minval=-hue, maxval=hue))
  if not params:
    return image
  names = list(params)

  def apply_ops(x, values):
    # Ops absent from `values` run at their identity and are skipped statically.
    if "brightness" in values:
      v = values["brightness"]
      x = jnp.clip(x * v if brightness_mode == "multiplicative" else x + v, 0.0, 1.0)
    if "contrast" in values:
      x = jnp.clip(pix.adjust_contrast(x, values["contrast"]), 0.0, 1.0)
    if "saturation" in values or "hue" in values:
      x = jnp.clip(_adjust_hsv(x, values.get("saturation", 1.0), values.get("hue", 0.0)), 0.0, 1.0)
    return x

  def value(name, selected):
    identity, sampled = params[name]
    return jnp.where(apply & selected, sampled, identity)

  if not random_order:
    for name in names:
      image = apply_ops(image, {name: value(name, True)})
    return image
  # Under vmap a per-example lax.switch on the permutation would run every branch anyway, so each of the
  # len(names) slots runs all ops with only the slot's op away from its identity: the cost is one full jitter
  # per slot, elementwise and cheap next to the network.
  order = jax.random.permutation(k_order, len(names))
  for slot in range(len(names)):
    image = apply_ops(image, {name: value(name, order[slot] == i) for i, name in enumerate(names)})
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


def blur_kernel_size(out_size: int, fraction: float = 0.1) -> int:
  """Number of taps 2r + 1 of the blur kernel for an image side, with r = int(fraction * side) // 2 (SimCLR)."""
  return 2 * (int(out_size * fraction) // 2) + 1


def random_gaussian_blur(key: jax.Array, images: jax.Array, *, p: float,
                         sigma: tuple[float, float] = (0.1, 2.0), kernel_size: int) -> jax.Array:
  """Gaussian blur with per-example probability `p`, computed only for the examples that get it.

  Trade-off: `lax.cond` under `vmap` becomes a select that blurs every example and throws most away. Instead
  k = ceil(p * b) distinct examples are picked by a random permutation (a static shape), gathered, blurred with
  per-example sigma ~ U[sigma] and scattered back. The first k - 1 are always blurred and the k-th with
  probability p * b - (k - 1), so each example's marginal probability is exactly p. The price: the number of
  blurred examples per batch is floor(p * b) or ceil(p * b) rather than Binomial(b, p), and the examples are
  not independent (a negligible correlation for a regulariser). Padding is zeros ('SAME'), as in SimCLR's code.

  Args:
    key: PRNG key (one per batch).
    images: [b, h, w, c] float images in [0, 1].
    p: per-example probability of blurring.
    sigma: (low, high) range of the standard deviation in pixels.
    kernel_size: odd number of taps of the separable kernel (see `blur_kernel_size`); 1 disables.

  Returns:
    [b, h, w, c] images; exactly the chosen examples differ from the input.
  """
  if images.ndim != 4:
    raise ValueError(f"images must have shape [b, h, w, c]; got shape {tuple(images.shape)}.")
  batch = images.shape[0]
  expected = p * batch
  # The epsilon keeps float error in p * b (e.g. 0.7 * 10 = 7.000000000000001) from adding a candidate.
  count = min(batch, math.ceil(expected - 1e-6))
  if count <= 0 or kernel_size // 2 == 0:
    return images
  last_p = min(1.0, expected - (count - 1))
  k_perm, k_sigma, k_last = jax.random.split(key, 3)
  index = jax.random.permutation(k_perm, batch)[:count]
  sigmas = jax.random.uniform(k_sigma, (count,), minval=sigma[0], maxval=sigma[1])
  chosen = images[index]
  blurred = jax.vmap(lambda im, s: pix.gaussian_blur(im, s, kernel_size))(chosen, sigmas)
  if last_p < 1.0 - 1e-6:
    keep = (jnp.arange(count) < count - 1) | (jax.random.uniform(k_last) < last_p)
    blurred = jnp.where(keep[:, None, None, None], blurred, chosen)
  return images.at[index].set(blurred.astype(images.dtype), unique_indices=True)


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


def _augment_one(key: jax.Array, image: jax.Array, recipe: ImageRecipe, out_size: int) -> jax.Array:
  k_crop, k_flip, k_jitter, k_gray = jax.random.split(key, 4)
  if _crop_is_identity(recipe):
    # Degenerate ranges always pick the central square: skip sampling so 'none' equals eval preprocessing.
    image = center_resize(image, out_size=out_size)
  else:
    image = random_resized_crop(k_crop, image, out_size=out_size, scale=recipe.crop_scale,
                                ratio=recipe.crop_ratio)
  if recipe.flip_p > 0:
    image = random_flip(k_flip, image, p=recipe.flip_p)
  if recipe.jitter_p > 0:
    image = color_jitter(k_jitter, image, p=recipe.jitter_p, brightness=recipe.brightness,
                         contrast=recipe.contrast, saturation=recipe.saturation, hue=recipe.hue,
                         brightness_mode=recipe.brightness_mode, random_order=recipe.jitter_random_order)
  if recipe.grayscale_p > 0:
    image = random_grayscale(k_gray, image, p=recipe.grayscale_p)
  return image


def augment_images(key: jax.Array, x: jax.Array, recipe: ImageRecipe, *, out_size: int | None = None,
                   axis_name: str | None = None) -> jax.Array:
  """One augmented view of a batch of images, per-example randomness, in the SimCLR/BYOL order.

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
  batch, height, width, _ = x.shape
  out_size = min(height, width) if out_size is None else int(out_size)
  shard = lax.axis_index(axis_name) if axis_name is not None else 0
  index = shard * batch + jnp.arange(batch)
  k_example, k_blur, k_solarize = (jax.random.fold_in(key, i) for i in range(3))
  keys = jax.vmap(lambda i: jax.random.fold_in(k_example, i))(index)
  y = jax.vmap(lambda k, im: _augment_one(k, im, recipe, out_size))(keys, x)
  if recipe.blur_p > 0:
    y = random_gaussian_blur(jax.random.fold_in(k_blur, shard), y, p=recipe.blur_p, sigma=recipe.blur_sigma,
                             kernel_size=blur_kernel_size(out_size, recipe.blur_kernel_fraction))
  if recipe.solarize_p > 0:
    keys = jax.vmap(lambda i: jax.random.fold_in(k_solarize, i))(index)
    y = jax.vmap(lambda k, im: random_solarize(k, im, p=recipe.solarize_p,
                                               threshold=recipe.solarize_threshold))(keys, y)
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
