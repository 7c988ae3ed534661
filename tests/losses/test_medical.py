"""The joint image-volume method's masked slice-embedding task (rl.losses.medical): float64 NumPy references of
the released code, gradients, 1 device == 8 devices, bad inputs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import medical as M
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References written from the released code (mask_swav_3D.py, utils/dataset.py, utils/models.py), float64 NumPy.
# ------------------------------------------------------------------------------------------------------------

def loss_reference(x1, p1, x2, p2, mask_ratio=0.1):
  """mask_swav_3D.train: (MSELoss(x[:bs], model(x[:bs])) + MSELoss(x[bs:], model(x[bs:]))) / int(S * ratio)."""
  x1, p1, x2, p2 = (np.asarray(v, np.float64) for v in (x1, p1, x2, p2))
  n_mask_tokens = int(x1.shape[1] * mask_ratio)
  mse1, mse2 = np.mean((x1 - p1) ** 2), np.mean((x2 - p2) ** 2)
  return (mse1 + mse2) / n_mask_tokens, (mse1, mse2)


def mask_tokens_reference(src, mask, token):
  """EncoderModel.forward: (~mask) * src + mask * mask_tokens, mask [b, S, 1] broadcast over d."""
  src, token = np.asarray(src, np.float64), np.asarray(token, np.float64)
  m = np.broadcast_to(np.asarray(mask), src.shape[:2])[..., None]
  return (~m) * src + m * token



def _data(b=4, s=10, d=3, seed=0):
  rng = np.random.RandomState(seed)
  return tuple(rng.randn(b, s, d).astype(np.float32) for _ in range(4))


# ------------------------------------------------------------------------------------------------------------
# volume_masked_embedding_loss
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_ratio", [0.1, 0.25])
def test_loss_matches_reference_terms_and_jit(mask_ratio):
  x1, p1, x2, p2 = _data()
  loss, terms = jax.jit(lambda *v: M.volume_masked_embedding_loss(*v, mask_ratio=mask_ratio,
                                                                  return_terms=True))(x1, p1, x2, p2)
  ref, (mse1, mse2) = loss_reference(x1, p1, x2, p2, mask_ratio)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose([terms["view1"], terms["view2"]], [mse1, mse2], rtol=1e-5)
  low = M.volume_masked_embedding_loss(*(jnp.asarray(v, jnp.bfloat16) for v in (x1, p1, x2, p2)),
                                       mask_ratio=mask_ratio)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, ref, rtol=3e-2)


def test_loss_gradients_match_finite_differences():
  x1, p1, x2, p2 = (v.astype(np.float64) for v in _data(b=2, s=10, d=2, seed=1))
  with jax.enable_x64(True):
    grads = jax.jit(jax.grad(M.volume_masked_embedding_loss, argnums=(0, 1, 2, 3)))(x1, p1, x2, p2)
  args = [x1, p1, x2, p2]
  for i, g in enumerate(grads):
    def f(v, i=i):
      a = list(args)
      a[i] = v
      return loss_reference(*a)[0]
    np.testing.assert_allclose(g, numeric_grad(f, args[i]), rtol=1e-5, atol=1e-9)


def test_loss_1_equals_8(mesh8):
  x1, p1, x2, p2 = _data(b=16, seed=2)
  fn = lambda *v, axis_name=None: M.volume_masked_embedding_loss(*v, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(x1, p1, x2, p2))
  np.testing.assert_allclose(value, loss_reference(x1, p1, x2, p2)[0], rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# volume_mask_tokens, volume_slice_mask
# ------------------------------------------------------------------------------------------------------------

def test_mask_tokens_match_reference_and_token_gradient():
  x, _, _, _ = _data(b=3, s=6, d=4, seed=3)
  token = np.random.RandomState(4).randn(4).astype(np.float32)
  mask = np.random.RandomState(5).rand(3, 6) < 0.4
  np.testing.assert_allclose(M.volume_mask_tokens(x, mask, token), mask_tokens_reference(x, mask, token),
                             rtol=1e-6)
  shared = mask[0]
  np.testing.assert_allclose(jax.jit(M.volume_mask_tokens)(x, shared, token),
                             mask_tokens_reference(x, shared, token), rtol=1e-6)
  g = jax.grad(lambda t: jnp.sum(M.volume_mask_tokens(x, mask, t) * x))(token)
  np.testing.assert_allclose(g, np.sum(x * mask[..., None], axis=(0, 1)), rtol=1e-5)


@pytest.mark.parametrize("num_slices,mask_ratio", [(64, 0.1), (32, 0.1), (10, 0.35)])
def test_slice_mask_has_ceil_share_and_is_uniform(num_slices, mask_ratio):
  keys = jax.random.split(jax.random.PRNGKey(0), 4000)
  masks = np.asarray(jax.jit(jax.vmap(lambda k: M.volume_slice_mask(k, num_slices, mask_ratio=mask_ratio)))(keys))
  k = math.ceil(num_slices * mask_ratio)  # MaskGenerator.mask_count
  assert masks.dtype == bool and masks.shape == (4000, num_slices)
  assert np.all(masks.sum(1) == k)
  freq = masks.mean(0)  # each slice masked with probability k / S
  np.testing.assert_allclose(freq, k / num_slices, atol=5 * math.sqrt(k / num_slices / 4000))
  assert not np.array_equal(masks[0], masks[1]) or not np.array_equal(masks[1], masks[2])


def test_medical_bad_inputs():
  x1, p1, x2, p2 = _data()
  with pytest.raises(ValueError, match=r"slices1 and predicted2 must have the same shape; got \(4, 10, 3\) and "
                                       r"\(4, 9, 3\)"):
    M.volume_masked_embedding_loss(x1, p1, x2, p2[:, :9])
  with pytest.raises(ValueError, match=r"predicted1 must have shape \[b, s, d\]; got shape \(4, 10\)"):
    M.volume_masked_embedding_loss(x1, p1[..., 0], x2, p2)
  with pytest.raises(ValueError, match=r"mask_ratio \* s must be >= 1.*s = 5 and mask_ratio = 0.1"):
    M.volume_masked_embedding_loss(x1[:, :5], p1[:, :5], x2[:, :5], p2[:, :5])
  with pytest.raises(ValueError, match=r"mask_ratio must be in \(0.0, 1.0\]; got 1.5"):
    M.volume_masked_embedding_loss(x1, p1, x2, p2, mask_ratio=1.5)
  with pytest.raises(ValueError, match=r"mask must have shape \[4, 10\] or \[10\].*got \(4, 9\)"):
    M.volume_mask_tokens(x1, np.zeros((4, 9), bool), np.zeros(3, np.float32))
  with pytest.raises(ValueError, match=r"mask must be a boolean array; got dtype int32"):
    M.volume_mask_tokens(x1, np.zeros(10, np.int32), np.zeros(3, np.float32))
  with pytest.raises(ValueError, match=r"mask_token must have shape \[3\].*got shape \(4,\)"):
    M.volume_mask_tokens(x1, np.zeros(10, bool), np.zeros(4, np.float32))
  with pytest.raises(ValueError, match=r"num_slices must be a positive int"):
    M.volume_slice_mask(jax.random.PRNGKey(0), 0)
