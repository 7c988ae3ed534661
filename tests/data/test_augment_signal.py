"""Tests of rl.data.augment on 1-D signals: recipes, single ops against NumPy references, jit and shard_map."""
import dataclasses
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from rl.data import augment  # noqa: E402
from rl.data.augment import signal as aug_signal  # noqa: E402

L = 40


def _signals(b=16, length=L, seed=0):
  return np.random.RandomState(seed).randn(b, length).astype(np.float32)


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


def _per_key(fn, x, n=64):
  """fn(key, x) for n keys, vmapped and jitted, as float64 NumPy."""
  return np.asarray(jax.jit(jax.vmap(lambda k: fn(k, jnp.asarray(x))))(_keys(n)), np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Recipes.


def test_mnist1d_preset_and_overrides():
  r = augment.get_recipe("mnist1d")
  assert isinstance(r, augment.SignalRecipe) and r == augment.MNIST1D
  assert r.shift_mode == "circular" and r.shift_p > 0 and r.noise_p > 0 and r.scale_range[0] < 1 < r.scale_range[1]
  r2 = augment.get_recipe("mnist1d", shift_range=[-3, 3], noise_p=0.0)
  assert r2.shift_range == (-3, 3) and r2.noise_p == 0.0 and hash(r2) == hash(dataclasses.replace(r2))
  assert augment.get_recipe("none_signal") == augment.SignalRecipe()


def test_recipe_errors():
  with pytest.raises(ValueError, match="mnist1d"):
    augment.get_recipe("mnist2d")
  with pytest.raises(ValueError, match="shift_amount"):
    augment.get_recipe("mnist1d", shift_amount=3)
  with pytest.raises(ValueError, match="shift_range"):
    augment.get_recipe("mnist1d", shift_range=(-2.5, 2))
  with pytest.raises(ValueError, match="shift_mode"):
    augment.get_recipe("mnist1d", shift_mode="reflect")
  with pytest.raises(ValueError, match="mask_fraction_range"):
    augment.get_recipe("mnist1d", mask_fraction_range=(0.1, 1.5))
  with pytest.raises(ValueError, match="noise_p"):
    augment.get_recipe("mnist1d", noise_p=-0.1)
  with pytest.raises(ValueError, match="stretch_range"):
    augment.get_recipe("mnist1d", stretch_range=(0.0, 1.0))
  with pytest.raises(ValueError, match="crop_fraction_range"):
    augment.get_recipe("mnist1d", crop_fraction_range=(0.0, 0.5))
  with pytest.raises(ValueError, match="crop_p"):
    augment.get_recipe("mnist1d", crop_p=2.0)
  with pytest.raises(ValueError, match="shear_range must be a .low, high. pair with low <= high; got .0.5, -0.5."):
    augment.get_recipe("mnist1d", shear_range=(0.5, -0.5))
  with pytest.raises(ValueError, match="corr_noise_std_range must be >= 0"):
    augment.get_recipe("mnist1d", corr_noise_std_range=(-0.1, 0.2))
  with pytest.raises(ValueError, match="corr_noise_length_scale must be > 0 samples; got 0.0"):
    augment.get_recipe("mnist1d", corr_noise_length_scale=0.0)
  with pytest.raises(ValueError, match="corr_noise_p"):
    augment.get_recipe("mnist1d", corr_noise_p=1.5)


def test_bad_inputs_raise():
  key = jax.random.key(0)
  recipe = augment.get_recipe("mnist1d")
  with pytest.raises(ValueError, match=r"\[b, l\].*\(16,\)"):
    augment.augment_batch(key, jnp.zeros((16,)), recipe)
  with pytest.raises(ValueError, match="int32"):
    augment.augment_batch(key, jnp.zeros((4, 8), jnp.int32), recipe)
  with pytest.raises(ValueError, match="out_size must be a positive length; got 0"):
    augment.augment_batch(key, jnp.zeros((4, 8)), recipe, out_size=0)
  with pytest.raises(ValueError, match="2 sizes for 3 recipes"):
    augment.make_views(key, jnp.zeros((4, 8)), (recipe,) * 3, out_size=(8, 4))
  with pytest.raises(ValueError, match="out_size"):
    augment.eval_view(jnp.zeros((4, 8)), recipe, out_size=8)


# ---------------------------------------------------------------------------------------------------------------
# Whole views.


def test_shape_dtype_determinism_and_views_differ():
  x = _signals()
  recipe = augment.get_recipe("mnist1d")
  a = augment.augment_batch(jax.random.key(1), x, recipe)
  assert a.shape == x.shape and a.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(a), np.asarray(augment.augment_batch(jax.random.key(1), x, recipe)))
  b = np.asarray(augment.augment_batch(jax.random.key(2), x, recipe))
  assert np.mean(np.abs(np.asarray(a) - b).max(axis=1) > 1e-3) > 0.9
  v1, v2 = augment.make_views(jax.random.key(3), x, (recipe, recipe))
  assert np.mean(np.abs(np.asarray(v1) - np.asarray(v2)).max(axis=1) > 1e-3) > 0.9
  np.testing.assert_array_equal(
      np.asarray(v2), np.asarray(augment.augment_batch(jax.random.fold_in(jax.random.key(3), 1), x, recipe)))
  x3 = np.stack([x, 2 * x], axis=-1)  # [b, l, c]: channels share one transform
  geometric = augment.get_recipe("mnist1d", noise_p=0.0, shear_p=0.0, corr_noise_p=0.0)  # linear in the signal
  y3 = np.asarray(augment.augment_batch(jax.random.key(4), x3, geometric))
  assert y3.shape == x3.shape
  np.testing.assert_allclose(y3[..., 1], 2 * y3[..., 0], atol=1e-5)
  # The shear and the correlated noise are added alike to every channel (white noise is drawn per sample).
  twin = np.asarray(augment.augment_batch(jax.random.key(4), np.stack([x, x], axis=-1),
                                          augment.get_recipe("mnist1d", noise_p=0.0)))
  np.testing.assert_array_equal(twin[..., 1], twin[..., 0])
  assert np.abs(twin[..., 0] - y3[..., 0]).max() > 0.1  # and they did change the signals


def test_identity_when_probabilities_zero_or_ranges_degenerate():
  x = _signals()
  degenerate = augment.SignalRecipe(shift_p=1.0, stretch_p=1.0, scale_p=1.0, shear_p=1.0, noise_p=1.0,
                                    corr_noise_p=1.0, mask_p=1.0)
  off = dataclasses.replace(augment.MNIST1D, shift_p=0.0, stretch_p=0.0, scale_p=0.0, shear_p=0.0, noise_p=0.0,
                            corr_noise_p=0.0, mask_p=0.0)
  for recipe in (augment.get_recipe("none_signal"), degenerate, off):
    np.testing.assert_array_equal(np.asarray(augment.augment_batch(jax.random.key(0), x, recipe)), x)
  np.testing.assert_array_equal(np.asarray(augment.eval_view(x, augment.MNIST1D)), x)


# ---------------------------------------------------------------------------------------------------------------
# Single ops.


def test_shift_matches_numpy():
  x = _signals(b=1)[0]
  for k in (-7, 0, 5):
    np.testing.assert_array_equal(np.asarray(aug_signal.shift(x, k, mode="circular")), np.roll(x, k))
    ref = np.roll(x, k)
    if k > 0:
      ref[:k] = 0
    elif k < 0:
      ref[k:] = 0
    np.testing.assert_array_equal(np.asarray(aug_signal.shift(x, k, mode="zeros")), ref)


def test_random_shift_amount_within_range():
  x = _signals(b=1)[0]
  out = _per_key(lambda k, s: aug_signal.random_shift(k, s, p=1.0, shift_range=(-4, 6)), x, n=128)
  amounts = []
  for y in out:
    match = [k for k in range(-L // 2, L // 2) if np.allclose(y, np.roll(x, k))]
    assert len(match) == 1
    amounts.append(match[0])
  assert min(amounts) == -4 and max(amounts) == 6  # the whole inclusive range, nothing outside


def test_stretch_matches_numpy_interp():
  x = _signals(b=1)[0]
  t = np.arange(L, dtype=np.float64)
  c = (L - 1) / 2
  for f in (0.7, 1.0, 1.3):
    ref = np.interp(c + (t - c) / f, t, x.astype(np.float64), left=0.0, right=0.0)
    np.testing.assert_allclose(np.asarray(aug_signal.stretch(x, f)), ref, atol=1e-5)


def test_crop_resample_matches_numpy_interp():
  x = _signals(b=1)[0]
  # The whole signal at its own length is the identity.
  np.testing.assert_allclose(np.asarray(aug_signal.crop_resample(x, 0.0, float(L), L)), x, atol=1e-6)
  t = np.arange(L, dtype=np.float64)
  for start, size, out in ((0.0, 40.0, 20), (5.5, 16.0, 12), (30.0, 10.0, 25)):
    where = start + (np.arange(out) + 0.5) * size / out - 0.5  # centres of `out` equal cells of the segment
    ref = np.interp(np.clip(where, 0, L - 1), t, x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(aug_signal.crop_resample(x, start, size, out)), ref, atol=1e-5)


def test_random_crop_segment_within_range_and_views_of_another_length():
  ramp = np.arange(L, dtype=np.float32)  # a cropped ramp keeps slope 1 / (out / size) and starts inside [0, l)
  out = _per_key(lambda k, s: aug_signal.random_crop(k, s, p=1.0, fraction_range=(0.25, 0.5), out_length=10),
                 ramp, n=128)
  sizes = (out[:, -1] - out[:, 0]) * 10 / 9  # the span of 10 cell centres is 9/10 of the segment
  np.testing.assert_array_less(0.25 * L - 1e-3, sizes)
  np.testing.assert_array_less(sizes, 0.5 * L + 1e-3)
  assert sizes.max() - sizes.min() > 0.15 * L  # the fraction is drawn, not fixed
  assert out.min() >= -1e-5 and out.max() <= L - 1 + 1e-5
  # p=0: the whole signal, resampled to the output length.
  whole = _per_key(lambda k, s: aug_signal.random_crop(k, s, p=0.0, fraction_range=(0.25, 0.5), out_length=L), ramp)
  np.testing.assert_allclose(whole, np.broadcast_to(ramp, whole.shape), atol=1e-5)
  # Multi-crop views: one size per view; a crop-free recipe at the input length is unchanged by the crop's key.
  x = _signals()
  local = augment.get_recipe("mnist1d", crop_p=1.0, crop_fraction_range=(0.3, 0.6))
  views = augment.make_views(jax.random.key(3), x, (augment.MNIST1D, local, local), out_size=(None, 20, 20))
  assert [v.shape for v in views] == [(16, L), (16, 20), (16, 20)]
  alone = augment.make_views(jax.random.key(3), x, (augment.MNIST1D,))
  np.testing.assert_array_equal(np.asarray(views[0]), np.asarray(alone[0]))
  # Three or more views of one recipe and size are drawn vmapped over their keys: view i still uses fold_in(key, i),
  # draw for draw (signals: bit for bit).
  crop = augment.get_recipe("none_signal", crop_p=1.0, crop_fraction_range=(0.3, 0.6))  # cheap to compile
  recipes, sizes = (crop, augment.get_recipe("none_signal"), crop, crop), (20, None, 20, 20)
  crops = jax.jit(lambda k: augment.make_views(k, x, recipes, out_size=sizes))(jax.random.key(3))
  one = jax.jit(lambda k: augment.augment_batch(k, x, crop, out_size=20))
  for i in (0, 2, 3):
    np.testing.assert_array_equal(np.asarray(crops[i]), np.asarray(one(jax.random.fold_in(jax.random.key(3), i))))
  np.testing.assert_array_equal(np.asarray(crops[1]), x)


def test_random_stretch_factor_within_range():
  c = (L - 1) / 2
  ramp = np.arange(L, dtype=np.float32) - c  # stretched ramp: (t - c) / f inside the frame
  out = _per_key(lambda k, s: aug_signal.random_stretch(k, s, p=1.0, stretch_range=(0.8, 1.25)), ramp)
  t = np.arange(L) - c
  inner = np.abs(t) <= 0.8 * c - 1  # inside the frame for every factor in the range
  factors = (t[inner][None] / out[:, inner]).mean(axis=1)
  ratios = t[inner][None] / out[:, inner]
  np.testing.assert_allclose(ratios, np.broadcast_to(factors[:, None], ratios.shape), rtol=1e-4)  # one factor
  assert factors.min() >= 0.8 - 1e-4 and factors.max() <= 1.25 + 1e-4 and np.ptp(factors) > 0.3


def test_random_scale_factor_within_range_and_probability():
  x = _signals(b=1)[0]
  out = _per_key(lambda k, s: aug_signal.random_scale(k, s, p=1.0, scale_range=(0.8, 1.2)), x)
  factors = out[:, 0] / x[0]
  np.testing.assert_allclose(out, factors[:, None] * x[None], rtol=1e-5, atol=1e-6)
  assert factors.min() >= 0.8 - 1e-6 and factors.max() <= 1.2 + 1e-6 and np.ptp(factors) > 0.3
  half = _per_key(lambda k, s: aug_signal.random_scale(k, s, p=0.5, scale_range=(2.0, 3.0)), x, n=256)
  assert 0.4 < np.mean(np.abs(half[:, 0] / x[0]) > 1.5) < 0.6


def test_random_noise_std_within_range():
  x = np.zeros(4096, np.float32)
  out = _per_key(lambda k, s: aug_signal.random_noise(k, s, p=1.0, std_range=(0.05, 0.2)), x, n=32)
  std = out.std(axis=1)
  assert std.min() > 0.05 * 0.9 and std.max() < 0.2 * 1.1 and np.ptp(std) > 0.05
  assert np.abs(out.mean(axis=1)).max() < 0.02


def test_random_mask_zeros_one_contiguous_segment():
  x = np.ones(L, np.float32)
  out = _per_key(lambda k, s: aug_signal.random_mask(k, s, p=1.0, fraction_range=(0.1, 0.3)), x)
  sizes, starts = [], []
  for y in out:
    zero = np.flatnonzero(y == 0)
    assert zero.size and np.all(np.diff(zero) == 1)  # contiguous
    np.testing.assert_array_equal(y[y != 0], 1.0)  # nothing else touched
    sizes.append(zero.size)
    starts.append(zero[0])
  assert min(sizes) >= round(0.1 * L) and max(sizes) <= round(0.3 * L) and max(sizes) - min(sizes) >= 4
  assert min(starts) < 10 and max(starts) > 20


# ---------------------------------------------------------------------------------------------------------------
# shard_map on 8 fake devices.


def test_shard_map_matches_single_device(mesh8):
  x = _signals(b=16)
  key = jax.random.key(7)
  recipe = augment.get_recipe("mnist1d")
  fn = jax.shard_map(lambda k, v: augment.augment_batch(k, v, recipe, axis_name="data"),
                     mesh=mesh8, in_specs=(P(), P("data")), out_specs=P("data"))
  sharded = jax.jit(fn)(key, jax.device_put(x, NamedSharding(mesh8, P("data"))))
  single = jax.jit(lambda k, v: augment.augment_batch(k, v, recipe))(key, x)
  np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), atol=1e-5)
  # Eager and jitted agree up to float rounding of the fused interpolation.
  np.testing.assert_allclose(np.asarray(single), np.asarray(augment.augment_batch(key, x, recipe)), atol=1e-4)
  # Without axis_name every shard draws the same per-position randomness: identical shards stay identical.
  same = np.tile(x[:2], (8, 1))
  fn_local = jax.shard_map(lambda k, v: augment.augment_batch(k, v, recipe), mesh=mesh8,
                           in_specs=(P(), P("data")), out_specs=P("data"))
  local = np.asarray(jax.jit(fn_local)(key, jax.device_put(same, NamedSharding(mesh8, P("data"))))).reshape(8, 2, L)
  np.testing.assert_array_equal(local, np.broadcast_to(local[:1], local.shape))


# ---------------------------------------------------------------------------------------------------------------
# Shear and correlated noise (MNIST-1D's nuisances).

def test_shear_of_a_constant_is_a_line_through_the_centre():
  t = np.arange(L, dtype=np.float64)
  line = 3.0 + 0.7 * (t / (L - 1) - 0.5)  # float64: the ramp over [-1/2, 1/2] of rise 0.7, around the constant 3
  np.testing.assert_allclose(np.asarray(aug_signal.shear(jnp.full(L, 3.0), 0.7)), line, rtol=1e-6)
  two = np.asarray(aug_signal.shear(jnp.stack([jnp.full(L, 3.0), jnp.zeros(L)], axis=-1), 0.7))
  np.testing.assert_allclose(two[:, 1], line - 3.0, rtol=1e-6, atol=1e-7)  # every channel gets the same ramp
  with pytest.raises(ValueError, match="shear needs at least 2 samples"):
    aug_signal.shear(jnp.ones(1), 1.0)


def test_random_shear_draws_its_slope_from_the_range():
  ramp = np.arange(L) / (L - 1) - 0.5
  out = _per_key(lambda k, s: aug_signal.random_shear(k, s, p=1.0, slope_range=(-0.5, 0.25)), np.zeros(L))
  slopes = out @ ramp / (ramp @ ramp)  # each output is slope * ramp: its least-squares slope
  np.testing.assert_allclose(out, slopes[:, None] * ramp[None], atol=1e-6)
  assert slopes.min() >= -0.5 - 1e-6 and slopes.max() <= 0.25 + 1e-6 and slopes.std() > 0.1
  same = _per_key(lambda k, s: aug_signal.random_shear(k, s, p=0.0, slope_range=(-0.5, 0.25)), np.ones(L))
  np.testing.assert_array_equal(same, 1.0)


@pytest.mark.parametrize("length_scale", [1.0, 3.0])
def test_correlated_noise_has_the_set_length_scale(length_scale):
  # Gaussian smoothing of width s makes the autocorrelation exp(-tau^2 / (4 s^2)); 512 draws of 64 samples.
  noise = np.asarray(jax.jit(jax.vmap(lambda k: aug_signal.correlated_noise(k, 64, length_scale=length_scale)))(
      _keys(512)), np.float64)
  assert noise.shape == (512, 64)
  assert abs(noise.mean()) < 0.05 and abs(noise.var() - 1.0) < 0.05
  for tau in range(0, 7):
    measured = np.mean(noise[:, :64 - tau] * noise[:, tau:])
    assert abs(measured - np.exp(-tau ** 2 / (4 * length_scale ** 2))) < 0.05, (tau, measured)
  # Stationary: the ends vary as much as the middle (the noise is cut from a longer draw).
  np.testing.assert_allclose(noise.var(axis=0)[[0, -1]], 1.0, atol=0.15)
  with pytest.raises(ValueError, match="length_scale: expected a positive number of samples, got 0"):
    aug_signal.correlated_noise(jax.random.key(0), 8, length_scale=0)


def test_random_correlated_noise_scales_by_its_std_and_p():
  out = _per_key(lambda k, s: aug_signal.random_correlated_noise(
      k, s, p=1.0, std_range=(0.2, 0.2), length_scale=2.0), np.zeros(L), n=256)
  assert abs(out.std() - 0.2) < 0.02
  same = _per_key(lambda k, s: aug_signal.random_correlated_noise(
      k, s, p=0.0, std_range=(0.2, 0.2), length_scale=2.0), np.ones(L))
  np.testing.assert_array_equal(same, 1.0)


def test_recipe_shear_and_correlated_noise_in_a_batch():
  # A shear-only recipe turns constant signals into lines through their level, slopes in the range, one each.
  x = np.full((64, L), 2.0, np.float32)
  ramp = np.arange(L) / (L - 1) - 0.5
  sheared = np.asarray(augment.augment_batch(jax.random.key(0), x, augment.SignalRecipe(
      shear_p=1.0, shear_range=(-1.0, 0.5))), np.float64) - 2.0
  slopes = sheared @ ramp / (ramp @ ramp)
  np.testing.assert_allclose(sheared, slopes[:, None] * ramp[None], atol=1e-5)
  assert slopes.min() >= -1.0 - 1e-6 and slopes.max() <= 0.5 + 1e-6 and len(np.unique(slopes.round(6))) == 64
  # A correlated-noise-only recipe adds noise of the recipe's std and length scale to each signal.
  noisy = np.asarray(augment.augment_batch(jax.random.key(1), np.zeros((512, L), np.float32), augment.SignalRecipe(
      corr_noise_p=1.0, corr_noise_std_range=(0.3, 0.3), corr_noise_length_scale=2.0)), np.float64)
  assert abs(noisy.std() - 0.3) < 0.02
  lag2 = np.mean(noisy[:, :-2] * noisy[:, 2:]) / noisy.var()
  assert abs(lag2 - np.exp(-4 / 16)) < 0.05, lag2


def test_switching_one_op_on_leaves_the_others_draws_unchanged():
  # Each op reads its own slots of the example's row of uniforms: adding a shear to a shift-only recipe changes
  # the signals by the ramp alone (the shift amounts stay the same).
  x = _signals(b=32)
  shift_only = augment.SignalRecipe(shift_p=1.0, shift_range=(-10, 10))
  plus_shear = dataclasses.replace(shift_only, shear_p=1.0, shear_range=(0.5, 0.5))
  a = np.asarray(augment.augment_batch(jax.random.key(3), x, shift_only))
  b = np.asarray(augment.augment_batch(jax.random.key(3), x, plus_shear))
  np.testing.assert_allclose(b - a, np.broadcast_to(0.5 * (np.arange(L) / (L - 1) - 0.5), a.shape), atol=1e-5)
