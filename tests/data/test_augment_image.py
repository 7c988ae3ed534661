"""Tests of rl.data.augment on images: recipes, single ops with measurable effects, blur subset, jit, shard_map,
and the fused path (one resampling with the flip folded in, one colour pass) against op-by-op references."""
import colorsys
import dataclasses
import itertools
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402
from scipy import ndimage  # noqa: E402

from rl.data import augment  # noqa: E402
from rl.data.augment import image as aug_image  # noqa: E402

MEAN = np.array(aug_image.IMAGENET_MEAN, np.float32)
STD = np.array(aug_image.IMAGENET_STD, np.float32)


def _images(b=8, h=16, w=16, c=3, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (b, h, w, c)).astype(np.uint8)


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def _hsv(rgb):
  """float64 RGB -> HSV of one pixel with the standard hexcone formulas (independent of dm-pix)."""
  r, g, b = rgb
  v, mn = max(rgb), min(rgb)
  s = 0.0 if v == 0 else (v - mn) / v
  if v == mn:
    h = 0.0
  elif v == r:
    h = ((g - b) / (v - mn) / 6.0) % 1.0
  elif v == g:
    h = (b - r) / (v - mn) / 6.0 + 1 / 3
  else:
    h = (r - g) / (v - mn) / 6.0 + 2 / 3
  return h, s, v


def _resample_ref(img, box, size):
  """float64 reference of one bilinear (triangle-kernel, antialiased) resampling of `box` to size x size.

  Output pixel o samples input coordinate start + (o + 0.5) * extent / size - 0.5; the triangle is widened by
  the downscale factor and its taps are renormalised over the pixels inside the image.
  """
  def weights(start, extent, n):
    step = extent / size
    centre = start + (np.arange(size) + 0.5) * step - 0.5
    width = max(1.0, step)
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n)[None, :] - centre[:, None]) / width)
    return w / w.sum(axis=1, keepdims=True)
  top, left, bh, bw = (float(v) for v in box)
  wy, wx = weights(top, bh, img.shape[0]), weights(left, bw, img.shape[1])
  return np.einsum("oh,pw,hwc->opc", wy, wx, img.astype(np.float64))


# ---------------------------------------------------------------------------------------------------------------
# Recipes.


def test_presets_carry_the_papers_values():
  simclr = augment.get_recipe("simclr")
  assert (simclr.crop_scale, simclr.flip_p, simclr.jitter_p) == ((0.08, 1.0), 0.5, 0.8)
  assert (simclr.brightness, simclr.contrast, simclr.saturation, simclr.hue) == (0.8, 0.8, 0.8, 0.2)
  assert (simclr.grayscale_p, simclr.blur_p, simclr.solarize_p) == (0.2, 0.5, 0.0)
  v1, v2 = augment.get_recipe("byol_view1"), augment.get_recipe("byol_view2")
  for v in (v1, v2):
    assert (v.brightness, v.contrast, v.saturation, v.hue, v.jitter_p, v.grayscale_p) == (0.4, 0.4, 0.2, 0.1, 0.8,
                                                                                           0.2)
  assert (v1.blur_p, v1.solarize_p, v2.blur_p, v2.solarize_p) == (1.0, 0.0, 0.1, 0.2)
  none = augment.get_recipe("none")
  assert none == augment.ImageRecipe() and none.flip_p == none.jitter_p == none.blur_p == 0.0


def test_get_recipe_overrides_and_errors():
  r = augment.get_recipe("simclr", blur_p=0.0, crop_scale=[0.2, 1.0])
  assert r.blur_p == 0.0 and r.crop_scale == (0.2, 1.0) and hash(r) == hash(augment.get_recipe(
      "simclr", blur_p=0.0, crop_scale=(0.2, 1.0)))
  with pytest.raises(ValueError, match="byol_view1.*simclr"):
    augment.get_recipe("simclr_v3")
  with pytest.raises(ValueError, match="blurr_p"):
    augment.get_recipe("simclr", blurr_p=0.1)
  with pytest.raises(ValueError, match="flip_p"):
    augment.get_recipe("simclr", flip_p=1.5)
  with pytest.raises(ValueError, match="crop_scale"):
    augment.get_recipe("simclr", crop_scale=(0.5, 0.1))
  with pytest.raises(ValueError, match="hue"):
    augment.get_recipe("simclr", hue=0.7)
  with pytest.raises(ValueError, match="brightness_mode"):
    augment.get_recipe("simclr", brightness_mode="gamma")
  with pytest.raises(ValueError, match="std"):
    augment.get_recipe("none", mean=(0.5,), std=(0.5, 0.5))


def test_bad_inputs_raise():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"x must be images.*\(8, 16, 16\)"):
    augment.augment_batch(key, jnp.zeros((8, 16, 16), jnp.uint8), augment.get_recipe("simclr"))
  with pytest.raises(ValueError, match="int32"):
    augment.augment_batch(key, jnp.zeros((2, 16, 16, 3), jnp.int32), augment.get_recipe("none"))
  with pytest.raises(ValueError, match="mean"):  # 3 ImageNet means for a 1-channel image
    augment.eval_view(jnp.zeros((2, 8, 8, 1), jnp.uint8), augment.get_recipe("none"))
  with pytest.raises(ValueError, match="recipe"):
    augment.augment_batch(key, jnp.zeros((2, 8, 8, 3), jnp.uint8), "simclr")


# ---------------------------------------------------------------------------------------------------------------
# Whole views.


def test_shape_dtype_range_and_determinism():
  x = _images()
  recipe = augment.get_recipe("simclr")
  a = augment.augment_batch(jax.random.key(1), x, recipe, out_size=12)
  b = augment.augment_batch(jax.random.key(1), x, recipe, out_size=12)
  c = augment.augment_batch(jax.random.key(2), x, recipe, out_size=12)
  assert a.shape == (8, 12, 12, 3) and a.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.all(np.abs(np.asarray(a) - np.asarray(c)).reshape(8, -1).max(axis=1) > 1e-3)  # every example
  unit = np.asarray(a) * STD + MEAN  # undo the normalisation: every op keeps [0, 1]
  assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5


def test_identity_when_probabilities_zero_and_ranges_degenerate():
  x = _images()
  expected = (x.astype(np.float32) / 255.0 - MEAN) / STD
  identity = augment.ImageRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                                 brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, grayscale_p=0.0,
                                 blur_p=0.0, solarize_p=0.0)
  for recipe in (identity, augment.get_recipe("none")):
    out = augment.augment_batch(jax.random.key(3), x, recipe)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)
  np.testing.assert_allclose(np.asarray(augment.eval_view(x, identity)), expected, atol=1e-5)


def test_eval_view_is_central_square_resized():
  x = _images(b=2, h=12, w=20)
  out = augment.eval_view(x, augment.get_recipe("none", mean=(0.0,), std=(1.0,)), out_size=6)
  ref = np.stack([_resample_ref(im / 255.0, (0, 4, 12, 12), 6) for im in x])  # the central 12 x 12
  assert out.shape == (2, 6, 6, 3)
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)


def test_single_channel_images_skip_rgb_ops():
  x = _images(c=1)
  recipe = augment.get_recipe("simclr", mean=(0.5,), std=(0.25,))
  out = augment.augment_batch(jax.random.key(0), x, recipe, out_size=12)
  assert out.shape == (8, 12, 12, 1) and out.dtype == jnp.float32 and np.isfinite(np.asarray(out)).all()
  # Saturation, hue and grayscale are skipped for one channel: with only them on, the view is the identity.
  rgb_only = augment.ImageRecipe(jitter_p=1.0, saturation=0.8, hue=0.2, grayscale_p=1.0, mean=(0.5,), std=(0.25,))
  np.testing.assert_allclose(np.asarray(augment.augment_batch(jax.random.key(0), x, rgb_only)),
                             (x / 255.0 - 0.5) / 0.25, atol=1e-5)


def test_make_views_uses_folded_keys_and_views_differ():
  x = _images()
  recipes = (augment.get_recipe("simclr"), augment.get_recipe("simclr"))  # same recipe: only keys differ
  key = jax.random.key(5)
  v1, v2 = augment.make_views(key, x, recipes, out_size=12)
  assert np.all(np.abs(np.asarray(v1) - np.asarray(v2)).reshape(8, -1).max(axis=1) > 1e-3)
  np.testing.assert_array_equal(
      np.asarray(v2), np.asarray(augment.augment_batch(jax.random.fold_in(key, 1), x, recipes[1], out_size=12)))


# ---------------------------------------------------------------------------------------------------------------
# Random resized crop.


def test_crop_boxes_respect_scale_ratio_and_bounds():
  scale, ratio, h, w = (0.2, 0.6), (0.5, 2.0), 40, 30
  boxes = np.asarray(jax.vmap(lambda k: aug_image.sample_crop_box(k, h, w, scale=scale, ratio=ratio))(_keys(256)))
  top, left, bh, bw = boxes.T
  area = bh * bw / (h * w)
  assert np.all(area >= scale[0] - 1e-5) and np.all(area <= scale[1] + 1e-5)
  assert np.all(bw / bh >= ratio[0] - 1e-5) and np.all(bw / bh <= ratio[1] + 1e-5)
  assert np.all(top >= 0) and np.all(left >= 0) and np.all(top + bh <= h + 1e-4) and np.all(left + bw <= w + 1e-4)
  assert area.max() - area.min() > 0.3 and np.ptp(top) > 10  # really random, not a fixed box


def test_crop_falls_back_to_central_box_when_nothing_fits():
  # Aspect ratios 3..4 never fit 90% of a square image: central crop of full width, height w / 3.
  box = np.asarray(aug_image.sample_crop_box(jax.random.key(0), 32, 32, scale=(0.9, 1.0), ratio=(3.0, 4.0)))
  np.testing.assert_allclose(box, [(32 - 32 / 3) / 2, 0.0, 32 / 3, 32.0], rtol=1e-5)


def test_random_resized_crop_samples_the_box_bilinearly():
  # On a ramp image (channel 0 = column, channel 1 = row), bilinear upsampling is exact away from the borders:
  # output pixel j sits at input coordinate left + (j + 0.5) * w / S - 0.5. Boxes of 15..26 px, S = 32.
  h = w = 48
  s = 32
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  ramp = np.stack([cols, rows, np.zeros_like(rows)], axis=-1).astype(np.float32)
  for key in _keys(4, seed=7):
    out = np.asarray(aug_image.random_resized_crop(key, ramp, out_size=s, scale=(0.1, 0.3)))
    top, left, bh, bw = np.asarray(aug_image.sample_crop_box(key, h, w, scale=(0.1, 0.3), ratio=(3 / 4, 4 / 3)))
    j = np.arange(s)
    col = left + (j + 0.5) * bw / s - 0.5
    row = top + (j + 0.5) * bh / s - 0.5
    ok_c = (col >= 0) & (col <= w - 1)
    ok_r = (row >= 0) & (row <= h - 1)
    assert ok_c.sum() > 4 and ok_r.sum() > 4
    np.testing.assert_allclose(out[0, ok_c, 0], col[ok_c], atol=1e-3)
    np.testing.assert_allclose(out[ok_r, 0, 1], row[ok_r], atol=1e-3)


def test_random_resized_crop_matches_reference_resampling():
  img = _images(b=1, h=20, w=28)[0]
  for key in _keys(3, seed=11):
    for size in (8, 32):  # down- and up-sampling
      out = np.asarray(aug_image.random_resized_crop(key, img, out_size=size))
      box = aug_image.sample_crop_box(key, 20, 28)
      assert out.shape == (size, size, 3)
      np.testing.assert_allclose(out, _resample_ref(img / 255.0, box, size), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Flip, colour jitter, grayscale, solarize.


def test_flip():
  img = jnp.asarray(_images(b=1)[0].astype(np.float32) / 255)
  np.testing.assert_array_equal(np.asarray(aug_image.random_flip(jax.random.key(0), img, p=1.0)),
                                np.asarray(img)[:, ::-1])
  np.testing.assert_array_equal(np.asarray(aug_image.random_flip(jax.random.key(0), img, p=0.0)), np.asarray(img))
  flipped = jax.vmap(lambda k: aug_image.random_flip(k, img, p=0.5))(_keys(200))
  frac = np.mean([not np.array_equal(np.asarray(f), np.asarray(img)) for f in flipped])
  assert 0.35 < frac < 0.65


def test_resample_flip_is_the_mirror_of_the_same_box():
  # A flipped view is the same resampling with mirrored sample positions: exactly the mirror image, up- and down-
  # sampling alike, and both equal the float64 reference.
  img = _images(b=1, h=20, w=28)[0]
  for key in _keys(3, seed=5):
    box = aug_image.sample_crop_box(key, 20, 28)
    for size in (8, 32):
      plain = np.asarray(aug_image.resample_box(img, box, out_size=size))
      flipped = np.asarray(aug_image.resample_box(img, box, out_size=size, flip=True))
      np.testing.assert_allclose(flipped, plain[:, ::-1], atol=1e-6)
      np.testing.assert_allclose(flipped, _resample_ref(img / 255.0, box, size)[:, ::-1], atol=1e-5)


def test_resample_boxes_matches_jax_image_per_example():
  # Batched resampling with per-example boxes and flips == jax.image.scale_and_translate (an independent
  # resampler) on each example, then mirrored where flipped.
  x = _images(b=6, h=18, w=26)
  boxes = jax.vmap(lambda k: aug_image.sample_crop_box(k, 18, 26, scale=(0.1, 1.0)))(_keys(6, seed=3))
  flips = jnp.array([True, False, True, True, False, False])
  out = np.asarray(jax.jit(lambda v, b, f: aug_image.resample_boxes(v, b, out_size=12, flips=f))(x, boxes, flips))

  def reference(image, box):
    scale = jnp.stack([12 / box[2], 12 / box[3]])
    return jax.image.scale_and_translate(image / 255.0, (12, 12, 3), (0, 1), scale, -box[:2] * scale,
                                         method="linear", antialias=True)

  ref = np.asarray(jax.jit(jax.vmap(reference))(jnp.asarray(x, jnp.float32), boxes))
  np.testing.assert_allclose(out, np.where(np.asarray(flips)[:, None, None, None], ref[:, :, ::-1], ref), atol=1e-5)
  with pytest.raises(ValueError, match=r"boxes must have shape \(6, 4\).*\(5, 4\)"):
    aug_image.resample_boxes(x, boxes[:5], out_size=12)
  with pytest.raises(ValueError, match=r"flips must have shape \(6,\)"):
    aug_image.resample_boxes(x, boxes, out_size=12, flips=flips[:2])


@pytest.mark.parametrize("resampled", [True, False])
def test_fused_flip_mirrors_the_same_view_with_probability_p(resampled):
  # The boxes come from the crop key alone, so a flipped view is exactly the mirror of the flip_p = 0 view of the
  # same box, with (resampled) or without (same size, identity crop: the flip is an index map) a crop. Over 256
  # examples of one image, each view is the plain or the mirrored one, the mirrored with frequency p.
  x = np.repeat(_images(b=1, h=12, w=12), 256, axis=0)
  crop = dict(crop_scale=(0.3, 1.0), crop_ratio=(3 / 4, 4 / 3)) if resampled else {}
  base = augment.ImageRecipe(mean=(0.0,), std=(1.0,), **crop)
  size = 8 if resampled else 12
  key = jax.random.key(11)
  view = jax.jit(lambda r, v: aug_image.augment_images(key, v, r, out_size=size), static_argnums=0)
  plain = np.asarray(view(base, x))
  out = np.asarray(view(dataclasses.replace(base, flip_p=0.3), x))
  is_plain = np.abs(out - plain).reshape(256, -1).max(axis=1) < 1e-6
  is_mirror = np.abs(out - plain[:, :, ::-1]).reshape(256, -1).max(axis=1) < 1e-6
  assert np.all(is_plain ^ is_mirror)  # every view is exactly one of the two
  assert abs(is_mirror.mean() - 0.3) < 0.08  # binomial sd at n = 256: 0.029


def _jitter(keys, img, **kw):
  defaults = dict(p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
  defaults.update(kw)
  return np.asarray(jax.vmap(lambda k: aug_image.color_jitter(k, img, **defaults))(keys), np.float64)


def test_brightness_factor_within_range():
  gray = jnp.full((4, 4, 3), 0.5, jnp.float32)
  out = _jitter(_keys(128), gray, brightness=0.8)
  factor = out[:, 0, 0, 0] / 0.5
  assert np.allclose(out, out[:, :1, :1, :1])  # a uniform change
  assert factor.min() >= 0.2 - 1e-6 and factor.max() <= 1.8 + 1e-6
  assert factor.min() < 0.5 and factor.max() > 1.5
  delta = _jitter(_keys(128), gray, brightness=0.4, brightness_mode="additive")[:, 0, 0, 0] - 0.5
  assert np.abs(delta).max() <= 0.4 + 1e-6 and delta.min() < -0.3 and delta.max() > 0.3


def test_contrast_factor_within_range():
  img = jnp.asarray(np.where(np.arange(16).reshape(4, 4, 1) % 2, 0.6, 0.4) * np.ones((1, 1, 3)), jnp.float32)
  out = _jitter(_keys(128), img, contrast=0.8)
  np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.5, atol=1e-6)  # the mean is the pivot
  factor = (out[:, 0, 1, 0] - 0.5) / 0.1
  assert factor.min() >= 0.2 - 1e-5 and factor.max() <= 1.8 + 1e-5 and np.ptp(factor) > 1.0


def test_saturation_and_hue_within_range():
  rgb = (0.6, 0.4, 0.3)
  h0, s0, v0 = _hsv(rgb)
  img = jnp.asarray(np.broadcast_to(np.array(rgb, np.float32), (2, 2, 3)))
  sat = [_hsv(p) for p in _jitter(_keys(64), img, saturation=0.8)[:, 0, 0]]
  ratio = np.array([s for _, s, _ in sat]) / s0
  assert ratio.min() >= 0.2 - 1e-4 and ratio.max() <= 1.8 + 1e-4 and np.ptp(ratio) > 1.0
  np.testing.assert_allclose([h for h, _, _ in sat], h0, atol=1e-5)
  hue = [_hsv(p) for p in _jitter(_keys(64), img, hue=0.2)[:, 0, 0]]
  shift = (np.array([h for h, _, _ in hue]) - h0 + 0.5) % 1.0 - 0.5
  assert np.abs(shift).max() <= 0.2 + 1e-4 and np.ptp(shift) > 0.25
  np.testing.assert_allclose([s for _, s, _ in hue], s0, atol=1e-5)
  np.testing.assert_allclose([v for _, _, v in hue], v0, atol=1e-5)


def test_jitter_probability_and_random_order():
  img = jnp.asarray(_images(b=1, h=4, w=4)[0] / 255.0, jnp.float32)
  keys = _keys(64)
  off = _jitter(keys, img, p=0.0, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
  np.testing.assert_allclose(off, np.broadcast_to(np.asarray(img), off.shape), atol=1e-6)
  # Contrast and hue do not commute; the same key samples the same factors in both modes, so the random order
  # agrees with the fixed one exactly when the permutation is the identity (about half of the keys).
  fixed = _jitter(keys, img, contrast=0.8, hue=0.2, random_order=False)
  rand = _jitter(keys, img, contrast=0.8, hue=0.2, random_order=True)
  diff = np.abs(fixed - rand).reshape(64, -1).max(axis=1)
  same = diff < 1e-5
  assert 10 < same.sum() < 54 and diff.max() > 1e-2
  assert rand.min() >= 0.0 and rand.max() <= 1.0


def test_grayscale_has_equal_channels_with_rec601_luma():
  img = _images(b=1)[0].astype(np.float32) / 255
  out = np.asarray(aug_image.random_grayscale(jax.random.key(0), jnp.asarray(img), p=1.0))
  luma = img @ np.array([0.2989, 0.5870, 0.1140], np.float32)
  for c in range(3):
    np.testing.assert_allclose(out[..., c], luma, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(aug_image.random_grayscale(jax.random.key(0), jnp.asarray(img), p=0.0)),
                                img)
  recipe = augment.ImageRecipe(grayscale_p=1.0, mean=(0.0,), std=(1.0,))
  views = np.asarray(augment.augment_batch(jax.random.key(0), _images(), recipe))
  np.testing.assert_allclose(views[..., 0], views[..., 1], atol=1e-6)
  np.testing.assert_allclose(views[..., 0], views[..., 2], atol=1e-6)


def test_solarize_inverts_above_threshold():
  img = np.linspace(0, 1, 48, dtype=np.float32).reshape(4, 4, 3)
  out = np.asarray(aug_image.random_solarize(jax.random.key(0), jnp.asarray(img), p=1.0, threshold=0.5))
  np.testing.assert_allclose(out, np.where(img >= 0.5, 1 - img, img), atol=1e-7)
  np.testing.assert_array_equal(np.asarray(aug_image.random_solarize(jax.random.key(0), jnp.asarray(img), p=0.0)),
                                img)


# ---------------------------------------------------------------------------------------------------------------
# Fused colour pass against a float64 op-by-op reference (NumPy + colorsys) with fixed factors and orders.


def _map_hsv(x, fn):
  flat = [colorsys.hsv_to_rgb(*fn(*colorsys.rgb_to_hsv(*p))) for p in x.reshape(-1, 3)]
  return np.asarray(flat).reshape(x.shape)


def _color_ref(img, ops, values, order, *, apply=True, gray=False, solarize=False, mode="multiplicative",
               mean=(0.0,), std=(1.0,)):
  """Op by op in float64: the ops in `order`, each clipped; grayscale; solarize at 0.5; normalise."""
  x = img.astype(np.float64)
  for slot in order if apply else ():
    name, v = ops[slot], float(values[slot])
    if name == "brightness":
      x = x * v if mode == "multiplicative" else x + v
    elif name == "contrast":
      m = x.mean(axis=(0, 1))
      x = v * (x - m) + m
    elif name == "saturation":
      x = _map_hsv(x, lambda h, s, val: (h, min(1.0, s * v), val))
    else:
      x = _map_hsv(x, lambda h, s, val: ((h + v) % 1.0, s, val))
    x = np.clip(x, 0.0, 1.0)
  if gray:
    x = np.repeat(x @ np.array([0.2989, 0.5870, 0.1140]), 3).reshape(x.shape)
  if solarize:
    x = np.where(x >= 0.5, 1.0 - x, x)
  return (x - np.asarray(mean)) / np.asarray(std)


def test_fused_color_matches_op_by_op_reference_in_every_order():
  # All 24 orders of the four ops, factors over the SimCLR ranges, some examples unjittered, gray or solarized.
  ops = ("brightness", "contrast", "saturation", "hue")
  orders = np.array(list(itertools.permutations(range(4))), np.int32)
  b = len(orders)
  rs = np.random.RandomState(0)
  values = np.stack([rs.uniform(0.2, 1.8, b), rs.uniform(0.2, 1.8, b), rs.uniform(0.2, 1.8, b),
                     rs.uniform(-0.2, 0.2, b)], axis=1).astype(np.float32)
  apply, gray, solarize = rs.rand(b) < 0.85, rs.rand(b) < 0.25, rs.rand(b) < 0.25
  x = _images(b=b, h=5, w=6, seed=1)
  out = np.asarray(aug_image.fused_color(x, ops=ops, values=values, order=orders, apply=apply, gray=gray,
                                         solarize=solarize, mean=tuple(MEAN), std=tuple(STD)))
  for i in range(b):
    ref = _color_ref(x[i] / 255.0, ops, values[i], orders[i], apply=apply[i], gray=gray[i], solarize=solarize[i],
                     mean=MEAN, std=STD)
    np.testing.assert_allclose(out[i], ref, atol=2e-5, err_msg=f"order {orders[i]}")
  # The order matters: contrast and hue do not commute, so reversing every order changes the output.
  reverse = np.asarray(aug_image.fused_color(x, ops=ops, values=values, order=orders[:, ::-1].copy(), apply=apply,
                                             gray=gray, solarize=solarize, mean=tuple(MEAN), std=tuple(STD)))
  assert np.abs(reverse - out).max() > 0.05


def test_fused_color_single_channel_additive_and_errors():
  x = _images(b=4, h=5, w=5, c=1, seed=2)
  ops = ("brightness", "contrast")
  values = np.array([[0.3, 1.5], [-0.2, 0.4], [0.1, 1.0], [-0.4, 1.8]], np.float32)
  order = np.array([[0, 1], [1, 0], [0, 1], [1, 0]], np.int32)
  out = np.asarray(aug_image.fused_color(x, ops=ops, values=values, order=order, brightness_mode="additive"))
  for i in range(4):
    ref = _color_ref(x[i] / 255.0, ops, values[i], order[i], mode="additive")
    np.testing.assert_allclose(out[i], ref, atol=1e-5)
  with pytest.raises(ValueError, match="ops must be distinct names"):
    aug_image.fused_color(x, ops=("gamma",), values=values[:, :1], order=order[:, :1])
  with pytest.raises(ValueError, match=r"values must have shape \(4, 2\).*\(4, 1\)"):
    aug_image.fused_color(x, ops=ops, values=values[:, :1], order=order)
  with pytest.raises(ValueError, match="need 3 channels"):
    aug_image.fused_color(x, ops=("hue",), values=values[:, :1], order=order[:, :1])
  with pytest.raises(ValueError, match=r"gray must have shape \(4,\)"):
    aug_image.fused_color(_images(b=4, h=5, w=5), gray=np.ones(3, bool))


@pytest.mark.parametrize("name,overrides,channels", [
    ("simclr", dict(blur_kernel_fraction=0.4, blur_sigma=(1.0, 2.0), solarize_p=0.5), 3),
    ("byol_view1", dict(jitter_random_order=False, blur_kernel_fraction=0.4, mean=(0.5,), std=(0.25,)), 1),
])
def test_fused_view_equals_the_op_by_op_path_for_the_same_key(name, overrides, channels):
  # The whole fused view (draws, one resampling with the flip, one colour pass, subset blur with the separable
  # kernel, solarize, normalise) == the previous op-by-op implementation (jax.image resampling, pix.flip, dm-pix
  # jitter slots and blur), key for key: multiplicative brightness in random order on RGB, additive brightness
  # in a fixed order on one channel.
  recipe = augment.get_recipe(name, **overrides)
  assert aug_image.blur_kernel_size(10, recipe.blur_kernel_fraction) == 5  # the blur is on
  x = _images(b=12, h=14, w=18, c=channels, seed=4)
  key = jax.random.key(21)
  fused = np.asarray(jax.jit(lambda k, v: aug_image.augment_images(k, v, recipe, out_size=10))(key, x))
  ref = np.asarray(jax.jit(lambda k, v: aug_image._augment_images_op_by_op(k, v, recipe, out_size=10))(key, x))
  np.testing.assert_allclose(fused, ref, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Blur: a fixed-size random subset, compared with scipy in float64.


def _changed(a, b):
  return np.abs(np.asarray(a) - np.asarray(b)).reshape(len(a), -1).max(axis=1) > 0


def test_blur_touches_exactly_k_examples_and_matches_scipy():
  x = _images(b=8, h=12, w=12).astype(np.float32) / 255
  sigma, taps = 1.3, 7
  out = np.asarray(aug_image.random_gaussian_blur(jax.random.key(4), jnp.asarray(x), p=0.5, sigma=(sigma, sigma),
                                                  kernel_size=taps))
  changed = _changed(out, x)
  assert changed.sum() == 4
  np.testing.assert_array_equal(out[~changed], x[~changed])
  for i in np.flatnonzero(changed):
    ref = ndimage.gaussian_filter(x[i].astype(np.float64), sigma=(sigma, sigma, 0), mode="constant", cval=0.0,
                                  radius=(taps // 2, taps // 2, 0))
    np.testing.assert_allclose(out[i], ref, atol=1e-5)


def test_separable_blur_matches_dm_pix_per_example_sigma():
  # Two 1-D passes with per-example taps == dm-pix's depthwise convolution with each example's own sigma.
  x = jnp.asarray(_images(b=3, h=16, w=16).astype(np.float32) / 255)
  sigmas = jnp.array([0.3, 1.0, 2.0])
  for taps in (3, 9):
    np.testing.assert_allclose(np.asarray(aug_image.gaussian_blur(x, sigmas, taps)),
                               np.asarray(aug_image._pix_blur(x, sigmas, taps)), atol=1e-5)
  np.testing.assert_array_equal(np.asarray(aug_image.gaussian_blur(x, sigmas, 1)), np.asarray(x))
  with pytest.raises(ValueError, match=r"sigma must have shape \(3,\)"):
    aug_image.gaussian_blur(x, sigmas[:2], 3)


def test_blur_marginal_probability_is_p_with_fractional_count():
  x = jnp.asarray(_images(b=8, h=8, w=8).astype(np.float32) / 255)
  blur = jax.jit(jax.vmap(lambda k: aug_image.random_gaussian_blur(k, x, p=0.3, sigma=(1.0, 2.0), kernel_size=3)))
  out = np.asarray(blur(_keys(400)))
  changed = np.abs(out - np.asarray(x)[None]).reshape(400, 8, -1).max(axis=-1) > 0
  counts = changed.sum(axis=1)
  assert set(counts.tolist()) == {2, 3}  # floor and ceil of p * b = 2.4
  assert abs(counts.mean() / 8 - 0.3) < 0.03
  assert np.all(np.abs(changed.mean(axis=0) - 0.3) < 0.1)  # every example, not a fixed few


def test_recipe_blur_only_changes_round_p_b_examples():
  x = _images()
  base = augment.ImageRecipe(mean=(0.0,), std=(1.0,), blur_kernel_fraction=0.25, blur_sigma=(1.0, 2.0))
  plain = augment.augment_batch(jax.random.key(0), x, base)
  blurred = augment.augment_batch(jax.random.key(0), x, dataclasses.replace(base, blur_p=0.5))
  assert _changed(blurred, plain).sum() == 4
  assert aug_image.blur_kernel_size(224) == 23 and aug_image.blur_kernel_size(32) == 3


# ---------------------------------------------------------------------------------------------------------------
# shard_map on 8 fake devices.


def test_jit_and_shard_map_match_single_device_and_blur_per_shard(mesh8):
  x = _images(b=16, h=12, w=12)
  key = jax.random.key(9)
  # Colour jitter is left out to keep compilation short; it is a per-example op like the others here.
  # 3 blur taps at 8 px; sigma >= 1 so that every blur is visible (sigma 0.1 leaves 3 taps at the identity).
  no_blur = augment.ImageRecipe(crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5, grayscale_p=0.5,
                                solarize_p=0.5, blur_kernel_fraction=0.4, blur_sigma=(1.0, 2.0))
  with_blur = dataclasses.replace(no_blur, blur_p=0.5)

  def sharded(recipe):
    fn = jax.shard_map(lambda k, v: augment.augment_batch(k, v, recipe, out_size=8, axis_name="data"),
                       mesh=mesh8, in_specs=(P(), P("data")), out_specs=P("data"))
    return np.asarray(jax.jit(fn)(key, jax.device_put(x, NamedSharding(mesh8, P("data")))))

  single = np.asarray(jax.jit(lambda k, v: augment.augment_batch(k, v, no_blur, out_size=8))(key, x))
  np.testing.assert_allclose(single, np.asarray(augment.augment_batch(key, x, no_blur, out_size=8)), atol=1e-5)
  np.testing.assert_allclose(sharded(no_blur), single, atol=1e-5)
  changed = _changed(sharded(with_blur), sharded(no_blur)).reshape(8, 2)
  np.testing.assert_array_equal(changed.sum(axis=1), 1)  # p * b = 0.5 * 2 per device
