"""NFT (nft_transition, nft_so2_representation, nft_loss): hand cases, float64 NumPy references written from the
authors' code (github.com/masomatics/NFTPublic), gradients, jit, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import equivariant as E
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References, float64 NumPy, from image_experiments/src/model/{mspae,eae,action}.py.
# ------------------------------------------------------------------------------------------------------------

def transition_reference(h0, h1):
  """estimate_M: M = argmin ||H0 M - H1||_F per sequence, by NumPy's least squares."""
  return np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(np.asarray(h0, np.float64),
                                                                        np.asarray(h1, np.float64))])


def so2_reference(theta, num_frequencies, include_identity):
  """ActionList of SO2 actions: a 1 x 1 one at frequency 0, get_regular_rotation(freq * theta) = [[c, -s], [s, c]]
  at frequency f, stacked along the diagonal in frequency order."""
  out = []
  for th in np.asarray(theta, np.float64):
    blocks = [np.ones((1, 1))] if include_identity else []
    for f in range(1, num_frequencies + 1):
      c, s = np.cos(f * th), np.sin(f * th)
      blocks.append(np.array([[c, -s], [s, c]]))
    a = sum(b.shape[0] for b in blocks)
    m = np.zeros((a, a))
    i = 0
    for blk in blocks:
      m[i:i + blk.shape[0], i:i + blk.shape[0]] = blk
      i += blk.shape[0]
    out.append(m)
  return np.stack(out)


def loss_reference(pred, target, zp=None, zt=None, weight=1.0):
  """F.mse_loss(x_pred, x) (+ equiv_coef * F.mse_loss(z, z_pred) with alignl2)."""
  loss = np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2)
  if zp is not None:
    loss += weight * np.mean((np.asarray(zp, np.float64) - np.asarray(zt, np.float64)) ** 2)
  return loss



def _latents(b=3, m=6, a=4, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, m, a).astype(np.float32), rng.randn(b, m, a).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# nft_transition
# ------------------------------------------------------------------------------------------------------------

def test_transition_recovers_an_exact_linear_action():
  h0 = np.random.RandomState(1).randn(2, 5, 3).astype(np.float32)
  rot = so2_reference([0.7, -1.3], 1, True).astype(np.float32)  # [2, 3, 3]
  m = jax.jit(E.nft_transition)(h0, np.einsum("bma,bac->bmc", h0, rot))
  np.testing.assert_allclose(m, rot, atol=1e-4)
  # Applying it to the next latent predicts the one after: H2 = H1 M.
  h1 = np.einsum("bma,bac->bmc", h0, rot)
  np.testing.assert_allclose(jnp.einsum("bma,bac->bmc", h1, m), np.einsum("bma,bac->bmc", h1, rot), atol=1e-4)


def test_transition_matches_least_squares_and_bfloat16():
  h0, h1 = _latents(seed=2)
  np.testing.assert_allclose(E.nft_transition(h0, h1), transition_reference(h0, h1), rtol=1e-4, atol=1e-5)
  assert E.nft_transition(jnp.asarray(h0, jnp.bfloat16), jnp.asarray(h1, jnp.bfloat16)).dtype == jnp.float32


def test_transition_gradients_match_finite_differences():
  h0, h1 = (v.astype(np.float64) for v in _latents(b=2, m=4, a=2, seed=3))
  up = np.random.RandomState(4).randn(2, 2, 2)
  with jax.enable_x64(True):
    g0, g1 = jax.grad(lambda a, b: jnp.sum(jnp.asarray(up) * E.nft_transition(a, b)), argnums=(0, 1))(
        jnp.asarray(h0), jnp.asarray(h1))
  ref = lambda a, b: np.sum(up * transition_reference(a, b))
  np.testing.assert_allclose(g0, numeric_grad(lambda a: ref(a, h1), h0.copy()), rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(g1, numeric_grad(lambda b: ref(h0, b), h1.copy()), rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------------------------------------------
# nft_so2_representation
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_frequencies,include_identity", [(8, True), (3, False)])
def test_so2_matches_reference_and_is_a_representation(num_frequencies, include_identity):
  theta = np.array([0.3, -2.0, 5.0], np.float32)
  fn = lambda t: E.nft_so2_representation(t, num_frequencies=num_frequencies, include_identity=include_identity)
  d = fn(theta)
  assert d.shape == (3, include_identity + 2 * num_frequencies, include_identity + 2 * num_frequencies)
  np.testing.assert_allclose(d, so2_reference(theta, num_frequencies, include_identity), atol=1e-5)
  np.testing.assert_allclose(jax.jit(fn)(theta), d, atol=1e-6)
  # A group homomorphism: D(a) D(b) = D(a + b), D(-a) = D(a)^T.
  np.testing.assert_allclose(d[0] @ d[1], fn(theta[:1] + theta[1:2])[0], atol=1e-5)
  np.testing.assert_allclose(fn(-theta), np.swapaxes(np.asarray(d), 1, 2), atol=1e-5)


def test_so2_gradient_matches_finite_differences():
  theta = np.array([0.4, 1.1])
  up = np.random.RandomState(5).randn(2, 5, 5)
  with jax.enable_x64(True):
    g = jax.grad(lambda t: jnp.sum(jnp.asarray(up) * E.nft_so2_representation(t, num_frequencies=2)))(
        jnp.asarray(theta))
  n = numeric_grad(lambda t: np.sum(up * so2_reference(t, 2, True)), theta.copy())
  np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------------------------------
# nft_loss
# ------------------------------------------------------------------------------------------------------------

def _predictions(b=4, seed=6):
  rng = np.random.RandomState(seed)
  pred, target = rng.randn(b, 3, 3, 2).astype(np.float32), rng.randn(b, 3, 3, 2).astype(np.float32)
  zp, zt = rng.randn(b, 5, 3).astype(np.float32), rng.randn(b, 5, 3).astype(np.float32)
  return pred, target, zp, zt


def test_loss_hand_case_and_terms():
  loss, terms = E.nft_loss(jnp.ones((2, 3)), jnp.zeros((2, 3)), latent_prediction=jnp.full((2, 1, 2), 2.0),
                           latent_target=jnp.zeros((2, 1, 2)), alignment_weight=0.5, return_terms=True)
  np.testing.assert_allclose([terms["prediction"], terms["alignment"], loss], [1.0, 4.0, 3.0], rtol=1e-6)
  _, terms = E.nft_loss(jnp.ones((2, 3)), jnp.zeros((2, 3)), return_terms=True)
  assert float(terms["alignment"]) == 0.0


@pytest.mark.parametrize("with_latents", [False, True])
def test_loss_matches_float64_reference_jit_and_gradients(with_latents):
  pred, target, zp, zt = _predictions()
  kw = {"latent_prediction": zp, "latent_target": zt, "alignment_weight": 0.3} if with_latents else {}
  want = loss_reference(pred, target, zp, zt, 0.3) if with_latents else loss_reference(pred, target)
  np.testing.assert_allclose(E.nft_loss(pred, target, **kw), want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda a, b: E.nft_loss(a, b, **kw))(pred, target), want, rtol=1e-5)
  assert E.nft_loss(jnp.asarray(pred, jnp.bfloat16), target).dtype == jnp.float32
  p64, z64 = pred[:2, :1].astype(np.float64), zp[:2, :2].astype(np.float64)
  t64, zt64 = target[:2, :1].astype(np.float64), zt[:2, :2].astype(np.float64)
  with jax.enable_x64(True):
    gp, gz = jax.grad(lambda a, z: E.nft_loss(a, jnp.asarray(t64), latent_prediction=z, latent_target=jnp.asarray(zt64),
                                              alignment_weight=0.3), argnums=(0, 1))(jnp.asarray(p64), jnp.asarray(z64))
  np.testing.assert_allclose(gp, numeric_grad(lambda a: loss_reference(a, t64, z64, zt64, 0.3), p64.copy()), rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_allclose(gz, numeric_grad(lambda z: loss_reference(p64, t64, z, zt64, 0.3), z64.copy()), rtol=1e-6,
                             atol=1e-9)


def test_loss_1_equals_8_devices(mesh8):
  pred, target, zp, zt = _predictions(b=16, seed=7)
  fn = lambda a, b, c, d, axis_name=None: E.nft_loss(a, b, latent_prediction=c, latent_target=d, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (pred, target, zp, zt), argnums=(0, 2))
  np.testing.assert_allclose(value, loss_reference(pred, target, zp, zt), rtol=1e-5)


def test_nft_bad_inputs():
  h0, h1 = _latents()
  with pytest.raises(ValueError, match=r"latent0 must have shape \[b, m, a\] with m >= a.*got shape \(3, 2, 4\)"):
    E.nft_transition(h0[:, :2], h1[:, :2])
  with pytest.raises(ValueError, match=r"latent0 and latent1 must have the same shape; got \(3, 6, 4\) and \(3, 5"):
    E.nft_transition(h0, h1[:, :5])
  with pytest.raises(ValueError, match=r"angles must have shape \[b\]; got shape \(2, 1\)"):
    E.nft_so2_representation(jnp.zeros((2, 1)))
  with pytest.raises(ValueError, match=r"num_frequencies must be an int >= 1; got 0"):
    E.nft_so2_representation(jnp.zeros(2), num_frequencies=0)
  pred, target, zp, zt = _predictions()
  with pytest.raises(ValueError, match=r"prediction and target must have the same shape; got \(4, 3, 3, 2\) and "
                                       r"\(4, 3, 3\)"):
    E.nft_loss(pred, target[..., 0])
  with pytest.raises(ValueError, match=r"latent_prediction and latent_target must be given together"):
    E.nft_loss(pred, target, latent_prediction=zp)
  with pytest.raises(ValueError, match=r"latent_prediction must have shape \[b, m, a\] with b = 4.*\(2, 5, 3\)"):
    E.nft_loss(pred, target, latent_prediction=zp[:2], latent_target=zt[:2])
