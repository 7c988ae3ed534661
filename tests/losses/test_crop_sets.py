"""SCALE's objective on sets of clip features (rl.losses.crop_sets): float64 NumPy references written from the
released code (Separius/SCALE `Scale.forward`, `contrastive_loss`, `split_in_half`), gradients, 1 device ==
8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rl.losses import crop_sets as S
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References (float64 NumPy), one token at a time.
# ------------------------------------------------------------------------------------------------------------

def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def dense_reference(pred, target, mask, tau=0.2):
  """`Scale.forward`'s dense loss: log-softmax of every token's prediction over ALL tokens' targets, the
  diagonal kept at the masked tokens, averaged over them."""
  d = pred.shape[-1]
  p, t = _unit(pred.reshape(-1, d)), _unit(target.reshape(-1, d))
  m = np.asarray(mask).reshape(-1)
  losses = []
  for n in range(p.shape[0]):
    if not m[n]:
      continue
    logits = t @ p[n] / tau
    top = logits.max()
    losses.append(top + np.log(np.sum(np.exp(logits - top))) - logits[n])
  return float(np.mean(losses)) if losses else 0.0


def set_reference(a, b, tau=0.2):
  """`contrastive_loss(dual=True)`: row and column cross-entropies of the normalised sets, averaged."""
  logits = _unit(a) @ _unit(b).T / tau
  rows = [np.log(np.sum(np.exp(logits[i]))) - logits[i, i] for i in range(len(a))]
  cols = [np.log(np.sum(np.exp(logits[:, i]))) - logits[i, i] for i in range(len(a))]
  return float(np.mean(0.5 * (np.asarray(rows) + np.asarray(cols))))


def _tokens(b=8, v=3, d=5, seed=0, ratio=0.4):
  rng = np.random.RandomState(seed)
  pred = rng.randn(b, 2, v, d).astype(np.float32)
  target = rng.randn(b, 2, v, d).astype(np.float32)
  mask = rng.rand(b, 2, v) < ratio
  mask[0, 0, 0] = True
  return pred, target, mask


# ------------------------------------------------------------------------------------------------------------
# scale_dense_loss
# ------------------------------------------------------------------------------------------------------------

def test_dense_loss_matches_reference_and_negatives_include_visible_tokens():
  pred, target, mask = _tokens()
  ref = dense_reference(pred, target, mask)
  np.testing.assert_allclose(S.scale_dense_loss(pred, target, mask), ref, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(S.scale_dense_loss)(pred, target, mask), ref, rtol=1e-5)
  # A visible token's target is a negative: moving it changes the loss, its prediction does not.
  moved = target.copy()
  moved[~mask] = -moved[~mask]
  assert abs(float(S.scale_dense_loss(pred, moved, mask)) - ref) > 1e-3
  other = pred.copy()
  other[~mask] = 5.0
  np.testing.assert_allclose(S.scale_dense_loss(other, target, mask), ref, rtol=1e-5)


def test_dense_loss_temperature_and_scale_invariance():
  pred, target, mask = _tokens(seed=1)
  np.testing.assert_allclose(S.scale_dense_loss(pred, target, mask, temperature=0.07),
                             dense_reference(pred, target, mask, tau=0.07), rtol=1e-5)
  np.testing.assert_allclose(S.scale_dense_loss(3.0 * pred, 0.5 * target, mask),
                             dense_reference(pred, target, mask), rtol=1e-5)  # normalised inside


def test_dense_loss_gradients_reach_predictions_and_targets():
  pred, target, mask = _tokens(b=2, v=2, d=3, seed=2)
  gp, gt = jax.grad(S.scale_dense_loss, argnums=(0, 1))(pred, target, mask)
  p64, t64 = pred.astype(np.float64), target.astype(np.float64)
  np.testing.assert_allclose(gp, numeric_grad(lambda x: dense_reference(x, t64, mask), p64), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(gt, numeric_grad(lambda x: dense_reference(p64, x, mask), t64), rtol=1e-4, atol=1e-6)
  assert np.abs(np.asarray(gt)[~mask]).sum() > 0  # the target head trains through the negatives too
  np.testing.assert_allclose(np.asarray(gp)[~mask], 0.0)  # an unmasked prediction is not scored


def test_dense_loss_without_masked_tokens_is_zero_with_finite_gradients():
  pred, target, _ = _tokens(b=2)
  none = np.zeros(pred.shape[:-1], bool)
  value, grads = jax.value_and_grad(S.scale_dense_loss, argnums=(0, 1))(pred, target, none)
  assert float(value) == 0.0
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_dense_loss_bfloat16_runs_in_float32():
  pred, target, mask = _tokens()
  out = S.scale_dense_loss(pred.astype(jnp.bfloat16), target.astype(jnp.bfloat16), mask)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, dense_reference(pred, target, mask), rtol=2e-2)


def test_dense_loss_1_equals_8(mesh8):
  pred, target, mask = _tokens(b=16, seed=3)
  value, _ = multidevice.assert_1_equals_8(S.scale_dense_loss, mesh8, sharded=(pred, target, mask))
  np.testing.assert_allclose(value, dense_reference(pred, target, mask), rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# scale_loss
# ------------------------------------------------------------------------------------------------------------

def _sets(b=8, d=4, seed=4):
  rng = np.random.RandomState(seed)
  return rng.randn(b, d).astype(np.float32), rng.randn(b, d).astype(np.float32)


def test_scale_loss_is_the_weighted_mean_of_the_released_terms():
  a, b = _sets()
  pred, target, mask = _tokens()
  s_ref, d_ref = set_reference(a, b), dense_reference(pred, target, mask)
  loss, terms = S.scale_loss(a, b, pred, target, mask, return_terms=True)
  np.testing.assert_allclose(terms["set"], s_ref, rtol=1e-5)
  np.testing.assert_allclose(terms["dense"], d_ref, rtol=1e-5)
  np.testing.assert_allclose(loss, 0.5 * (s_ref + d_ref), rtol=1e-5)
  np.testing.assert_allclose(S.scale_loss(a, b, pred, target, mask, set_weight=3.0, dense_weight=1.0),
                             (3 * s_ref + d_ref) / 4, rtol=1e-5)
  np.testing.assert_allclose(S.scale_loss(a, b, pred, target, mask, set_weight=0.0), d_ref, rtol=1e-5)
  np.testing.assert_allclose(S.scale_loss(a, b, pred, target, mask, set_temperature=0.5, dense_weight=0.0),
                             set_reference(a, b, tau=0.5), rtol=1e-5)


def test_scale_loss_set_gradients_match_finite_differences():
  a, b = _sets(b=3, d=3, seed=5)
  pred, target, mask = _tokens(b=3, v=2, d=3)
  ga, gb = jax.grad(S.scale_loss, argnums=(0, 1))(a, b, pred, target, mask)
  a64, b64 = a.astype(np.float64), b.astype(np.float64)
  np.testing.assert_allclose(ga, 0.5 * numeric_grad(lambda x: set_reference(x, b64), a64), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(gb, 0.5 * numeric_grad(lambda x: set_reference(a64, x), b64), rtol=1e-4, atol=1e-6)


def test_scale_loss_1_equals_8(mesh8):
  a, b = _sets(b=16, seed=6)
  pred, target, mask = _tokens(b=16, seed=7)
  value, _ = multidevice.assert_1_equals_8(S.scale_loss, mesh8, sharded=(a, b, pred, target, mask))
  np.testing.assert_allclose(value, 0.5 * (set_reference(a, b) + dense_reference(pred, target, mask)), rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# scale_split_sets, scale_token_mask
# ------------------------------------------------------------------------------------------------------------

def test_split_sets_are_disjoint_random_subsets_with_their_positions():
  b, crops, v = 64, 10, 3
  feats = np.broadcast_to(np.arange(crops, dtype=np.float32)[None, :, None], (b, crops, 2)).copy()
  pos = 10.0 * feats[..., :1] + 1.0
  sets, spos = S.scale_split_sets(jax.random.PRNGKey(0), feats, pos, num_views=v)
  sets, spos = np.asarray(sets), np.asarray(spos)
  assert sets.shape == (b, 2, v, 2) and spos.shape == (b, 2, v, 1)
  np.testing.assert_array_equal(spos[..., 0], 10.0 * sets[..., 0] + 1.0)  # positions follow their crops
  idx = sets[..., 0].reshape(b, 2 * v).astype(int)
  assert all(len(set(row)) == 2 * v for row in idx)  # 2v distinct crops, so the two sets are disjoint
  assert len({tuple(row) for row in idx}) > b // 2  # drawn per example
  counts = np.bincount(idx.reshape(-1), minlength=crops)  # every crop equally likely: 64 * 6 / 10 each
  assert counts.min() > 0.5 * b * 2 * v / crops and counts.max() < 1.5 * b * 2 * v / crops


def test_token_mask_rate_and_per_example_draws():
  mask = np.asarray(S.scale_token_mask(jax.random.PRNGKey(1), (256, 2, 8)))
  assert mask.dtype == bool and mask.shape == (256, 2, 8)
  rate = mask.mean()  # 4096 Bernoulli(0.25) draws: std 0.0068
  assert abs(rate - 0.25) < 0.03
  assert abs(np.asarray(S.scale_token_mask(jax.random.PRNGKey(1), (256, 16), mask_ratio=0.5)).mean() - 0.5) < 0.04
  assert not np.any(S.scale_token_mask(jax.random.PRNGKey(1), (4, 8), mask_ratio=0.0))
  assert len({row.tobytes() for row in mask}) > 200


def test_random_draws_are_the_same_on_1_and_8_devices(mesh8):
  key = jax.random.PRNGKey(2)
  feats = np.random.RandomState(0).randn(16, 6, 3).astype(np.float32)
  pos = np.random.RandomState(1).randn(16, 6, 7).astype(np.float32)
  single, sm, pm = multidevice.run_1_and_8(
      lambda f, p, axis_name: S.scale_split_sets(key, f, p, num_views=2, axis_name=axis_name), mesh8,
      sharded=(feats, pos), out_specs=(P("data"), P("data")))
  for out in (sm, pm):
    for x, y in zip(out, single):
      np.testing.assert_array_equal(x, y)
  single, sm, pm = multidevice.run_1_and_8(
      lambda f, axis_name: S.scale_token_mask(key, (f.shape[0], 2, 4), axis_name=axis_name), mesh8,
      sharded=(feats,), out_specs=P("data"))
  np.testing.assert_array_equal(sm, single)
  np.testing.assert_array_equal(pm, single)


# ------------------------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------------------------

def test_bad_inputs_name_the_argument():
  pred, target, mask = _tokens()
  a, b = _sets()
  key = jax.random.PRNGKey(0)
  feats = np.zeros((2, 6, 3), np.float32)
  cases = [
      (lambda: S.scale_split_sets(key, feats, feats, num_views=4), "num_views"),
      (lambda: S.scale_split_sets(key, feats, feats[:, :5], num_views=2), "positions"),
      (lambda: S.scale_split_sets(key, feats[0], feats, num_views=2), "features"),
      (lambda: S.scale_token_mask(key, (2, 4), mask_ratio=1.0), "mask_ratio"),
      (lambda: S.scale_token_mask(key, (0, 4)), "shape"),
      (lambda: S.scale_dense_loss(pred, target[..., :3], mask), "targets"),
      (lambda: S.scale_dense_loss(pred, target, mask[:, 0]), "mask"),
      (lambda: S.scale_dense_loss(pred, target, mask.astype(np.int32)), "mask"),
      (lambda: S.scale_dense_loss(pred, target, mask, temperature=0.0), "temperature"),
      (lambda: S.scale_loss(a, b[:, :3], pred, target, mask), "set_b"),
      (lambda: S.scale_loss(a, b, pred[:4], target[:4], mask[:4]), "predictions"),
      (lambda: S.scale_loss(a, b, pred, target, mask, set_weight=0.0, dense_weight=0.0), "set_weight"),
      (lambda: S.scale_loss(a, b, pred, target, mask, dense_weight=-1.0), "dense_weight"),
  ]
  for call, name in cases:
    with pytest.raises(ValueError, match=name):
      call()
