"""esmm: hand case, float64 NumPy reference from the paper's loss, numerical stability, gradients, jit,
1 device == 8 devices, bad inputs, bfloat16."""
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import multitask as M
from tests import multidevice


def esmm_reference(ctr, cvr, click, conv):
  """ESMM eqs. 2-3 in float64 with explicit probabilities: BCE(y, pCTR) + BCE(y & z, pCTR * pCVR), batch mean."""
  ctr, cvr = np.asarray(ctr, np.float64), np.asarray(cvr, np.float64)
  p_ctr = 1.0 / (1.0 + np.exp(-ctr))
  p_ctcvr = p_ctr / (1.0 + np.exp(-cvr))
  y = np.asarray(click, np.float64)
  yz = y * np.asarray(conv, np.float64)
  ctr_loss = -np.mean(y * np.log(p_ctr) + (1 - y) * np.log(1 - p_ctr))
  ctcvr_loss = -np.mean(yz * np.log(p_ctcvr) + (1 - yz) * np.log(1 - p_ctcvr))
  return ctr_loss + ctcvr_loss, ctr_loss, ctcvr_loss


def _batch(b=16, seed=0):
  rng = np.random.RandomState(seed)
  ctr, cvr = (2.0 * rng.randn(2, b)).astype(np.float32)
  click = (rng.rand(b) < 0.5).astype(np.int32)
  conv = ((rng.rand(b) < 0.5) & (click == 1)).astype(np.int32)
  return ctr, cvr, click, conv


def test_hand_case():
  # ctr = log 3 (pCTR = 3/4), cvr = 0 (pCVR = 1/2): pCTCVR = 3/8.
  # Impression 1 clicked and converted: -log(3/4) - log(3/8). Impression 2 not clicked: -log(1/4) - log(5/8).
  ctr, cvr = jnp.full(2, np.log(3.0), jnp.float32), jnp.zeros(2)
  loss, terms = M.esmm(ctr, cvr, jnp.array([1, 0]), jnp.array([1, 0]), return_terms=True)
  l_ctr, l_ctcvr = terms["ctr"], terms["ctcvr"]
  np.testing.assert_allclose(l_ctr, -(np.log(0.75) + np.log(0.25)) / 2, rtol=1e-6)
  np.testing.assert_allclose(l_ctcvr, -(np.log(3 / 8) + np.log(5 / 8)) / 2, rtol=1e-6)
  np.testing.assert_allclose(loss, l_ctr + l_ctcvr, rtol=1e-6)


def test_matches_float64_reference():
  for seed in range(3):
    ctr, cvr, click, conv = _batch(seed=seed)
    loss, terms = M.esmm(ctr, cvr, click, conv, return_terms=True)
    got = (loss, terms["ctr"], terms["ctcvr"])
    np.testing.assert_allclose(got, esmm_reference(ctr, cvr, click, conv), rtol=1e-5)
  # Bool and float labels give the same value; soft labels follow the same BCE.
  np.testing.assert_allclose(M.esmm(ctr, cvr, click.astype(bool), conv.astype(bool)),
                             esmm_reference(ctr, cvr, click, conv)[0], rtol=1e-5)
  soft = np.random.RandomState(9).rand(2, 16)
  np.testing.assert_allclose(M.esmm(ctr, cvr, soft[0], soft[1]), esmm_reference(ctr, cvr, soft[0], soft[1])[0],
                             rtol=1e-5)


def test_conversion_without_click_is_ignored():
  ctr, cvr, click, conv = _batch(seed=4)
  noisy = np.where(click == 0, 1, conv)  # conversions recorded on unclicked impressions do not count
  np.testing.assert_allclose(M.esmm(ctr, cvr, click, noisy), M.esmm(ctr, cvr, click, conv), rtol=1e-7)


def test_extreme_logits_are_exact_in_float32():
  # pCTCVR ~ 1 - 4e-9: log(1 - pCTCVR) is log(0) if formed from float32 probabilities; here it matches float64.
  ctr, cvr = np.array([20.0, 19.0, -30.0], np.float32), np.array([20.0, 25.0, 40.0], np.float32)
  click, conv = np.array([0, 1, 1]), np.array([0, 0, 1])
  got = M.esmm(ctr, cvr, click, conv)
  assert np.isfinite(float(got))
  np.testing.assert_allclose(got, esmm_reference(ctr, cvr, click, conv)[0], rtol=1e-5)
  g = jax.grad(lambda a, b: M.esmm(a, b, click, conv), argnums=(0, 1))(ctr, cvr)
  assert all(np.all(np.isfinite(x)) for x in g)


def test_gradients_float64():
  with jax.enable_x64(True):
    rng = np.random.RandomState(1)
    ctr, cvr = 2 * rng.randn(2, 6)
    click, conv = np.array([1, 1, 0, 0, 1, 0]), np.array([1, 0, 0, 1, 0, 0])
    check_grads(lambda a, b: M.esmm(a, b, click, conv), (ctr, cvr), order=1, modes=["rev"])
    # The CVR tower only learns through the product: with no click anywhere its gradient pushes pCTCVR down.
    g = jax.grad(lambda b: M.esmm(ctr, b, np.zeros(6), np.zeros(6)))(cvr)
    assert np.all(g > 0)


def test_jit_equals_eager():
  args = _batch(seed=5)
  np.testing.assert_allclose(jax.jit(M.esmm)(*args), M.esmm(*args), rtol=1e-6)


def test_one_device_equals_eight(mesh8):
  ctr, cvr, click, conv = _batch(b=32, seed=6)
  v, _ = multidevice.assert_1_equals_8(M.esmm, mesh8, sharded=(ctr, cvr, click, conv))
  np.testing.assert_allclose(v, esmm_reference(ctr, cvr, click, conv)[0], rtol=1e-5)


def test_bad_inputs():
  ctr, cvr, click, conv = _batch(b=4)
  with pytest.raises(ValueError, match=r"cvr_logits must have the shape of ctr_logits, \(4,\); got shape \(3,\)"):
    M.esmm(ctr, cvr[:3], click, conv)
  with pytest.raises(ValueError, match=r"click must have the shape of ctr_logits"):
    M.esmm(ctr, cvr, click[:, None], conv)
  with pytest.raises(ValueError, match="ctr_logits must be a floating array"):
    M.esmm(click, cvr, click, conv)
  with pytest.raises(ValueError, match=r"ctr_logits must have shape \[b\] with b >= 1"):
    M.esmm(jnp.float32(0.0), jnp.float32(0.0), jnp.int32(1), jnp.int32(1))


def test_bfloat16_gives_float32():
  ctr, cvr, click, conv = _batch(seed=7)
  got = M.esmm(jnp.asarray(ctr, jnp.bfloat16), jnp.asarray(cvr, jnp.bfloat16), click, conv)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, esmm_reference(ctr, cvr, click, conv)[0], rtol=2e-2)
