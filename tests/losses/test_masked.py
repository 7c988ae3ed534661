"""Masked modelling: patchify/unpatchify, random_masking, the MAE loss, and TSLANet's time-series patches, masking
and pretraining loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from rl.losses import masked as L
from tests import multidevice
from tests.losses import numeric_grad

KEY = jax.random.PRNGKey(0)


def official_patchify(images_nhwc, p):
  """The official MAE patchify (NCHW, 'nchpwq->nhwpqc'), in NumPy, applied to the NCHW version of the images.

  `p` may be a pair (ph, pw): the same einsum with rectangular patches.
  """
  ph, pw = (p, p) if isinstance(p, int) else p
  x = np.transpose(images_nhwc, (0, 3, 1, 2))
  n, c, hh, ww = x.shape
  h, w = hh // ph, ww // pw
  x = x.reshape(n, c, h, ph, w, pw)
  x = np.einsum("nchpwq->nhwpqc", x)
  return x.reshape(n, h * w, ph * pw * c)


# ---------------------------------------------------------------------------------------------------------------
# patchify / unpatchify
# ---------------------------------------------------------------------------------------------------------------

def test_patchify_hand_case_patch_order():
  # 4 x 4 image, one channel, p = 2: patches in reading order, each flattened row by row.
  x = jnp.arange(16).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(L.patchify(x, patch_size=2)[0],
                                [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
  # Two channels: inside a patch the channel is the fastest axis, (p, q, c) row-major.
  x2 = jnp.stack([x, 100 + x], axis=-1)[..., 0, :]  # [1, 4, 4, 2]
  np.testing.assert_array_equal(L.patchify(x2, patch_size=2)[0, 0], [0, 100, 1, 101, 4, 104, 5, 105])


def test_patchify_matches_official_and_round_trips():
  x = np.random.RandomState(0).rand(3, 8, 12, 3).astype(np.float32)  # non-square is allowed
  patches = jax.jit(lambda a: L.patchify(a, patch_size=4))(x)
  assert patches.shape == (3, 6, 48)
  np.testing.assert_array_equal(patches, official_patchify(x, 4))
  back = L.unpatchify(patches, patch_size=4, image_size=(8, 12), channels=3)
  np.testing.assert_array_equal(back, x)
  sq = np.random.RandomState(1).rand(2, 8, 8, 3).astype(np.float32)  # square: sizes inferred as officially
  np.testing.assert_array_equal(L.unpatchify(L.patchify(sq, patch_size=4), patch_size=4), sq)


def test_patchify_rejects_bad_inputs():
  with pytest.raises(ValueError, match=r"divisible by patch_size=4; got images of shape \(2, 8, 10, 3\)"):
    L.patchify(jnp.zeros((2, 8, 10, 3)), patch_size=4)
  with pytest.raises(ValueError, match=r"\[2, 4, 48\] for \(h, w, c\) = \(8, 8, 3\).*got shape \(2, 5, 48\)"):
    L.unpatchify(jnp.zeros((2, 5, 48)), patch_size=4, image_size=8, channels=3)
  with pytest.raises(ValueError, match="cannot infer a square image from L=5"):
    L.unpatchify(jnp.zeros((2, 5, 48)), patch_size=4)


def test_rectangular_patches_hand_case_official_order_and_round_trip():
  # A 2 x 6 image, one channel, (2, 3) patches: two patches, each flattened row by row.
  x = jnp.arange(12).reshape(1, 2, 6, 1)
  np.testing.assert_array_equal(L.patchify(x, patch_size=(2, 3))[0], [[0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11]])
  # A 1-D signal [b, l] is the image [b, 1, l, 1] with (1, p) patches: consecutive segments of p samples.
  sig = np.random.RandomState(2).randn(3, 40).astype(np.float32)
  patches = L.patchify(sig[:, None, :, None], patch_size=(1, 4))
  np.testing.assert_array_equal(patches, sig.reshape(3, 10, 4))
  np.testing.assert_array_equal(L.unpatchify(patches, patch_size=(1, 4), image_size=(1, 40))[:, 0, :, 0], sig)
  # Several channels, non-square image and patches: the official einsum, and back.
  im = np.random.RandomState(3).rand(2, 6, 12, 3).astype(np.float32)
  for p in [(2, 3), (3, 2), (1, 4), (6, 1), (3, 3)]:
    got = jax.jit(lambda a, p=p: L.patchify(a, patch_size=p))(im)
    np.testing.assert_array_equal(got, official_patchify(im, p))
    back = L.unpatchify(got, patch_size=p, image_size=(6, 12))
    np.testing.assert_array_equal(back, im)
  # An int p is exactly (p, p); a square grid of rectangular patches is inferred as officially.
  np.testing.assert_array_equal(L.patchify(im, patch_size=3), L.patchify(im, patch_size=(3, 3)))
  sq = np.random.RandomState(4).rand(2, 4, 8, 1).astype(np.float32)  # 2 x 2 grid of (2, 4) patches
  np.testing.assert_array_equal(L.unpatchify(L.patchify(sq, patch_size=(2, 4)), patch_size=[2, 4]), sq)


def test_rectangular_patches_reject_bad_inputs():
  with pytest.raises(ValueError, match=r"divisible by patch_size=\(1, 3\); got images of shape \(2, 1, 40, 1\)"):
    L.patchify(jnp.zeros((2, 1, 40, 1)), patch_size=(1, 3))
  with pytest.raises(ValueError, match=r"\(height, width\) pair"):
    L.patchify(jnp.zeros((2, 4, 4, 1)), patch_size=(1, 2, 2))
  with pytest.raises(ValueError, match="patch_size must be > 0"):
    L.patchify(jnp.zeros((2, 4, 4, 1)), patch_size=(0, 2))
  with pytest.raises(ValueError, match=r"\[2, 10, 4\] for \(h, w, c\) = \(1, 40, 1\), patch_size=\(1, 4\)"):
    L.unpatchify(jnp.zeros((2, 9, 4)), patch_size=(1, 4), image_size=(1, 40))
  with pytest.raises(ValueError, match=r"p\*p\*c = 2\*3\*c"):
    L.unpatchify(jnp.zeros((2, 4, 8)), patch_size=(2, 3))


# ---------------------------------------------------------------------------------------------------------------
# random_masking
# ---------------------------------------------------------------------------------------------------------------

def test_random_masking_hand_case_len_keep():
  # L = 10, ratio 0.75: len_keep = int(10 * 0.25) = int(2.5) = 2 (floor, as in the official code).
  tokens = jnp.zeros((3, 10, 4))
  visible, mask, ids_restore = L.random_masking(KEY, tokens, mask_ratio=0.75)
  assert visible.shape == (3, 2, 4) and mask.shape == (3, 10) and ids_restore.shape == (3, 10)
  assert mask.dtype == jnp.float32 and ids_restore.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(mask).sum(1), [8, 8, 8])


def test_random_masking_restores_order_and_mask_marks_removed_tokens():
  b, n, d = 16, 12, 5
  tokens = np.random.RandomState(0).randn(b, n, d).astype(np.float32)
  visible, mask, ids_restore = map(np.asarray, jax.jit(lambda k, t: L.random_masking(k, t, mask_ratio=0.5))(
      KEY, tokens))
  len_keep = 6
  for i in range(b):
    assert sorted(ids_restore[i].tolist()) == list(range(n))
    kept = np.flatnonzero(mask[i] == 0)
    assert len(kept) == len_keep and set(np.unique(mask[i])) == {0.0, 1.0}
    # The visible tokens are exactly the unmasked ones (in some order).
    np.testing.assert_array_equal(np.sort(visible[i], axis=0), np.sort(tokens[i, kept], axis=0))
    # [visible, mask tokens] gathered with ids_restore is the original sequence, with mask tokens where mask = 1.
    mask_token = np.full((n - len_keep, d), np.nan, np.float32)
    full = np.concatenate([visible[i], mask_token])[ids_restore[i]]
    np.testing.assert_array_equal(full[kept], tokens[i, kept])
    assert np.isnan(full[mask[i] == 1]).all()
  # Masks differ between examples and are a deterministic function of the key.
  assert len({tuple(m) for m in mask}) > 1
  again = L.random_masking(KEY, jnp.asarray(tokens), mask_ratio=0.5)
  np.testing.assert_array_equal(again[1], mask)
  assert not np.array_equal(L.random_masking(jax.random.PRNGKey(1), jnp.asarray(tokens), mask_ratio=0.5)[1], mask)


def test_random_masking_gradient_reaches_visible_tokens():
  tokens = np.random.RandomState(1).randn(2, 8, 3)
  with jax.enable_x64(True):
    f = lambda t: jnp.sum(L.random_masking(KEY, t, mask_ratio=0.5)[0] ** 2)
    check_grads(f, (jnp.asarray(tokens),), order=1, modes=["rev"])
    _, mask, _ = L.random_masking(KEY, jnp.asarray(tokens), mask_ratio=0.5)
    g = np.asarray(jax.grad(f)(jnp.asarray(tokens)))
    np.testing.assert_allclose(g, 2 * tokens * (1 - np.asarray(mask))[..., None])  # masked tokens get zero


def test_random_masking_1_equals_8_devices(mesh8):
  tokens = np.random.RandomState(2).randn(16, 8, 4).astype(np.float32)
  fn = lambda t, key, axis_name: L.random_masking(key, t, mask_ratio=0.75, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (tokens,), (KEY,), out_specs=(P("data"),) * 3)
  for out in (sm, pm):
    for a, b in zip(out, single):
      np.testing.assert_array_equal(a, b)
  # Examples on different devices get different masks (keys come from the global index, not the row).
  # (With keys from the local row index, row 0 of every device would get the same mask.)
  assert len({tuple(np.asarray(single[1][k]).tolist()) for k in range(0, 16, 2)}) > 1


def test_random_masking_rejects_bad_inputs():
  with pytest.raises(ValueError, match=r"mask_ratio must be in \[0.0, 1.0\); got 1.0"):
    L.random_masking(KEY, jnp.zeros((2, 4, 3)), mask_ratio=1.0)
  with pytest.raises(ValueError, match=r"keeps int\(L \* \(1 - mask_ratio\)\) = 0 of L=4"):
    L.random_masking(KEY, jnp.zeros((2, 4, 3)), mask_ratio=0.9)
  with pytest.raises(ValueError, match=r"tokens must have shape \[b, L, D\]"):
    L.random_masking(KEY, jnp.zeros((4, 3)))


# ---------------------------------------------------------------------------------------------------------------
# mae
# ---------------------------------------------------------------------------------------------------------------

def mae_reference(pred, images, mask, p, norm_pix):
  """He et al.'s loss in float64, patch by patch, with torch's unbiased per-patch variance; p or (ph, pw)."""
  ph, pw = (p, p) if isinstance(p, int) else p
  b, h, w, c = images.shape
  num = den = 0.0
  for i in range(b):
    for l in range(mask.shape[1]):
      r, s = divmod(l, w // pw)
      t = images[i, r * ph:(r + 1) * ph, s * pw:(s + 1) * pw, :].astype(np.float64).reshape(-1)  # (u, v, c)
      if norm_pix:
        t = (t - t.mean()) / np.sqrt(t.var(ddof=1) + 1e-6)
      num += mask[i, l] * np.mean((pred[i, l].astype(np.float64) - t) ** 2)
      den += mask[i, l]
  return num / den


def _mae_inputs(b=16, hw=8, c=3, p=4, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.rand(b, hw, hw, c).astype(np.float32)
  n = (hw // p) ** 2
  pred = rng.randn(b, n, p * p * c).astype(np.float32)
  mask = (rng.rand(b, n) < 0.6).astype(np.float32)
  mask[0, 0] = 1.0
  return pred, images, mask


def test_mae_hand_case():
  # One 2 x 2 image, p = 2, pixels (1, 2, 3, 4): mean 2.5, unbiased var 5/3, so the normalised target is
  # (-1.5, -0.5, 0.5, 1.5) / sqrt(5/3 + 1e-6); a zero prediction has error mean(t^2) = (4.5 + 0.5) * 0.6 / 4 = 0.75.
  images = jnp.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
  mask = jnp.ones((1, 1))
  t = np.array([-1.5, -0.5, 0.5, 1.5]) / np.sqrt(5 / 3 + 1e-6)
  np.testing.assert_allclose(L.mae(jnp.zeros((1, 1, 4)), images, mask, patch_size=2), np.mean(t ** 2), rtol=1e-6)
  np.testing.assert_allclose(np.mean(t ** 2), 0.75, rtol=1e-5)
  # Without normalisation: mean of (1, 4, 9, 16) = 7.5.
  np.testing.assert_allclose(L.mae(jnp.zeros((1, 1, 4)), images, mask, patch_size=2, norm_pix=False), 7.5)
  # Only masked patches count: a second, visible patch with a huge error changes nothing.
  two = jnp.concatenate([images, 100 * images], axis=2)  # [1, 2, 4, 1]: two patches
  np.testing.assert_allclose(L.mae(jnp.zeros((1, 2, 4)), two, jnp.array([[1.0, 0.0]]), patch_size=2,
                                   norm_pix=False), 7.5)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_matches_float64_reference_and_jit(norm_pix):
  pred, images, mask = _mae_inputs()
  ref = mae_reference(pred, images, mask, 4, norm_pix)
  np.testing.assert_allclose(L.mae(pred, images, mask, patch_size=4, norm_pix=norm_pix), ref, rtol=1e-5)
  jitted = jax.jit(lambda a, b, m: L.mae(a, b, m, patch_size=4, norm_pix=norm_pix))(pred, images, mask)
  np.testing.assert_allclose(jitted, ref, rtol=1e-5)


@pytest.mark.parametrize("norm_pix", [True, False])
@pytest.mark.parametrize("shape,p", [((6, 1, 40, 1), (1, 4)), ((4, 6, 12, 3), (2, 3)), ((4, 6, 12, 2), (3, 4))])
def test_mae_rectangular_patches_match_float64_reference(shape, p, norm_pix):
  rng = np.random.RandomState(5)
  images = rng.randn(*shape).astype(np.float32)
  n = (shape[1] // p[0]) * (shape[2] // p[1])
  pred = rng.randn(shape[0], n, p[0] * p[1] * shape[3]).astype(np.float32)
  mask = (rng.rand(shape[0], n) < 0.6).astype(np.float32)
  mask[0, 0] = 1.0
  ref = mae_reference(pred, images, mask, p, norm_pix)
  got = jax.jit(lambda a, b, m: L.mae(a, b, m, patch_size=p, norm_pix=norm_pix))(pred, images, mask)
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  if p[0] == 1:  # signals: the target of patch l is samples l p .. l p + p - 1
    ph, pw = p
    t = images[:, 0, :, 0].reshape(shape[0], n, pw).astype(np.float64)
    if norm_pix:
      t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, ddof=1, keepdims=True) + 1e-6)
    direct = np.sum(np.mean((pred - t) ** 2, -1) * mask) / mask.sum()
    np.testing.assert_allclose(got, direct, rtol=1e-5)


def test_mae_uint8_images_and_bfloat16_pred():
  pred, images, mask = _mae_inputs(seed=1)
  u8 = (images * 255).astype(np.uint8)
  ref = mae_reference(pred, u8, mask, 4, True)
  np.testing.assert_allclose(L.mae(pred, jnp.asarray(u8), mask, patch_size=4), ref, rtol=1e-5)
  got = L.mae(jnp.asarray(pred, jnp.bfloat16), images, mask, patch_size=4)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, mae_reference(pred, images, mask, 4, True), rtol=2e-2)


def test_mae_gradients_with_respect_to_pred_only():
  pred, images, mask = _mae_inputs(b=2, seed=2)
  with jax.enable_x64(True):
    args = tuple(jnp.asarray(a, jnp.float64) for a in (pred, images, mask))
    f = lambda a: L.mae(a, args[1], args[2], patch_size=4)
    check_grads(f, (args[0],), order=1, modes=["rev"])
    # The target is a constant: no gradient reaches the images or the mask.
    g_img, g_mask = jax.grad(lambda im, m: L.mae(args[0], im, m, patch_size=4), argnums=(0, 1))(args[1], args[2])
    assert not np.any(g_img) and not np.any(g_mask)
    # Analytic: d/dpred = 2 (pred - t) m / (P * sum m).
    target = np.asarray(L.patchify(args[1], patch_size=4))
    target = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, ddof=1, keepdims=True) + 1e-6)
    expected = 2 * (pred - target) * mask[..., None] / (48 * mask.sum())
    np.testing.assert_allclose(jax.grad(f)(args[0]), expected, rtol=1e-10)


def test_mae_1_equals_8_devices_and_is_not_mean_of_local_losses(mesh8):
  pred, images, mask = _mae_inputs(b=16)
  mask[:2] = 1.0  # device 0 has more masked patches than the others: per-device means would weigh it wrongly
  mask[2:, 1:] = 0.0
  mask[:, 0] = 1.0  # every device has masked patches, so each local loss is finite
  pred[:2] *= 3.0  # and device 0's patches have a larger error
  fn = lambda a, im, m, axis_name: L.mae(a, im, m, patch_size=4, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(pred, images, mask), argnums=(0,))
  ref = mae_reference(pred, images, mask, 4, True)
  np.testing.assert_allclose(value, ref, rtol=1e-5)
  local = np.mean([mae_reference(pred[k:k + 2], images[k:k + 2], mask[k:k + 2], 4, True) for k in range(0, 16, 2)])
  assert abs(local - ref) > 1e-2 * abs(ref)


def test_mae_rejects_bad_inputs():
  pred, images, mask = _mae_inputs(b=2)
  with pytest.raises(ValueError, match=r"pred must have the shape of patchify\(images\).*\(2, 4, 48\).*\(2, 4, 47\)"):
    L.mae(pred[..., :47], images, mask, patch_size=4)
  with pytest.raises(ValueError, match=r"mask must have shape \[b, L\] = \(2, 4\); got mask of shape \(2, 3\)"):
    L.mae(pred, images, mask[:, :3], patch_size=4)
  with pytest.raises(ValueError, match="divisible by patch_size=3"):
    L.mae(pred, images, mask, patch_size=3)


# ---------------------------------------------------------------------------------------------------------------
# TSLANet: time_series_patches, tslanet_masking, tslanet_loss
# ---------------------------------------------------------------------------------------------------------------

def unfold_reference(series, p, s):
  """torch's `x.unfold(-1, p, s)` on [b, c, l] (TSLANet's patching), written as loops: [b, c, n, p]."""
  x = np.transpose(np.asarray(series, np.float64), (0, 2, 1))
  b, c, l = x.shape
  n = (l - p) // s + 1
  out = np.zeros((b, c, n, p))
  for j in range(n):
    out[:, :, j, :] = x[:, :, j * s:j * s + p]
  return out


def tslanet_reference(pred, target, mask):
  """TSLANet's pretraining loss, float64: per-patch mean squared error, averaged over the masked patches."""
  pred, target, mask = (np.asarray(a, np.float64) for a in (pred, target, mask))
  num = den = 0.0
  for i in range(pred.shape[0]):
    for l in range(pred.shape[1]):
      if mask[i, l]:
        num += np.mean((pred[i, l] - target[i, l]) ** 2)
        den += 1.0
  return num / den


def _tslanet_inputs(b=16, n=6, d=4, seed=0):
  rng = np.random.RandomState(seed)
  pred, target = rng.randn(b, n, d).astype(np.float32), rng.randn(b, n, d).astype(np.float32)
  mask = (rng.rand(b, n) < 0.4).astype(np.float32)
  mask[:, 0] = 1.0  # at least one masked patch per example
  return pred, target, mask


def test_time_series_patches_match_unfold_and_hand_case():
  x = np.random.RandomState(0).randn(3, 21, 2).astype(np.float32)
  for p, s in ((8, None), (8, 8), (5, 3), (21, 1)):
    got = L.time_series_patches(x, patch_size=p, stride=s)
    np.testing.assert_array_equal(got, unfold_reference(x, p, s or p // 2).astype(np.float32))
  # One channel, [b, l]: patches of 4 with stride 2 from 0..6, the tail 6 dropped (as unfold).
  got = L.time_series_patches(jnp.arange(7.0)[None], patch_size=4)
  assert got.shape == (1, 1, 2, 4) and got[0, 0, 1].tolist() == [2.0, 3.0, 4.0, 5.0]


def test_time_series_patches_reject_bad_inputs():
  with pytest.raises(ValueError, match=r"series must be at least patch_size=8 steps long; got length 5"):
    L.time_series_patches(jnp.zeros((2, 5, 1)))
  with pytest.raises(ValueError, match=r"series must have shape \[b, l, c\] or \[b, l\]; got shape \(2,\)"):
    L.time_series_patches(jnp.zeros(2))
  with pytest.raises(ValueError, match="stride must be a positive int; got 0"):
    L.time_series_patches(jnp.zeros((2, 9)), stride=0)
  with pytest.raises(ValueError, match="patch_size must be a positive int; got 2.5"):
    L.time_series_patches(jnp.zeros((2, 9)), patch_size=2.5)


def test_tslanet_masking_zeroes_the_random_masking_subset_in_place():
  tokens = np.random.RandomState(3).randn(8, 10, 3).astype(np.float32) + 5.0  # no zero entries
  masked, mask = map(np.asarray, L.tslanet_masking(KEY, tokens))
  np.testing.assert_array_equal(mask, L.random_masking(KEY, tokens, mask_ratio=0.4)[1])
  np.testing.assert_array_equal(mask.sum(1), 4.0)  # L - int(10 * 0.6)
  np.testing.assert_array_equal(masked[mask == 1], 0.0)
  np.testing.assert_array_equal(masked[mask == 0], tokens[mask == 0])
  assert masked.shape == tokens.shape


def test_tslanet_masking_1_equals_8_devices(mesh8):
  tokens = np.random.RandomState(4).randn(16, 10, 3).astype(np.float32)
  fn = lambda t, key, axis_name: L.tslanet_masking(key, t, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (tokens,), (KEY,), out_specs=(P("data"),) * 2)
  for out in (sm, pm):
    for a, b in zip(out, single):
      np.testing.assert_array_equal(a, b)


def test_tslanet_loss_hand_case_and_matches_float64_reference():
  pred = jnp.zeros((1, 3, 2))
  target = jnp.array([[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]]])
  # Masked patches 0 and 1: per-patch means 1 and 2, averaged: 1.5; the unmasked patch 2 does not count.
  np.testing.assert_allclose(L.tslanet_loss(pred, target, jnp.array([[1, 1, 0]])), 1.5, rtol=1e-6)
  pred, target, mask = _tslanet_inputs()
  got = L.tslanet_loss(pred, target, mask)
  np.testing.assert_allclose(got, tslanet_reference(pred, target, mask), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.tslanet_loss)(pred, target, mask), got, rtol=1e-6)
  low = L.tslanet_loss(jnp.asarray(pred, jnp.bfloat16), jnp.asarray(target, jnp.bfloat16), mask)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, got, rtol=2e-2)



def test_tslanet_loss_gradients_reach_pred_and_target_unless_stopped():
  pred, target, mask = (a.astype(np.float64) for a in _tslanet_inputs(b=2, n=4, d=3, seed=1))
  with jax.enable_x64(True):
    gp, gt = jax.grad(L.tslanet_loss, argnums=(0, 1))(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    gt_stopped = jax.grad(lambda t: L.tslanet_loss(jnp.asarray(pred), t, jnp.asarray(mask),
                                                   stop_gradient_target=True))(jnp.asarray(target))
    gm = jax.grad(L.tslanet_loss, argnums=2)(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
  np.testing.assert_allclose(gp, numeric_grad(lambda a: tslanet_reference(a, target, mask), pred), rtol=1e-6,
                             atol=1e-9)
  # The released code does not detach the target: it is trained through too, with the opposite sign.
  np.testing.assert_allclose(gt, numeric_grad(lambda a: tslanet_reference(pred, a, mask), target), rtol=1e-6,
                             atol=1e-9)
  assert np.abs(gt).max() > 1e-3
  assert not np.any(gt_stopped) and not np.any(gm)


def test_tslanet_loss_1_equals_8_devices_and_is_not_mean_of_local_losses(mesh8):
  pred, target, mask = _tslanet_inputs(b=16, seed=2)
  mask[:2] = 1.0  # device 0 holds more masked patches than the others
  pred[:2] *= 3.0
  fn = lambda a, t, m, axis_name: L.tslanet_loss(a, t, m, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(pred, target, mask), argnums=(0, 1))
  ref = tslanet_reference(pred, target, mask)
  np.testing.assert_allclose(value, ref, rtol=1e-5)
  local = np.mean([tslanet_reference(pred[k:k + 2], target[k:k + 2], mask[k:k + 2]) for k in range(0, 16, 2)])
  assert abs(local - ref) > 1e-2 * abs(ref)


def test_tslanet_loss_rejects_bad_inputs():
  pred, target, mask = _tslanet_inputs(b=2)
  with pytest.raises(ValueError, match=r"pred and target must have the same shape; got \(2, 6, 4\) and \(2, 6, 3\)"):
    L.tslanet_loss(pred, target[..., :3], mask)
  with pytest.raises(ValueError, match=r"mask must have shape \[b, L\] = \(2, 6\).*got shape \(2, 5\)"):
    L.tslanet_loss(pred, target, mask[:, :5])
  with pytest.raises(ValueError, match=r"pred must have shape \[b, L, D\]; got shape \(2, 6\)"):
    L.tslanet_loss(pred[..., 0], target, mask)
  with pytest.raises(ValueError, match=r"mask_ratio must be in \[0.0, 1.0\); got 1.0"):
    L.tslanet_masking(KEY, pred, mask_ratio=1.0)
