"""bigan_discriminator_loss, bigan_generator_encoder_loss, beta_vae, reparameterize: hand cases, float64 NumPy
references from the papers' formulas, gradients, jit, 1 device == 8 devices, bad inputs, bfloat16."""
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import generative as G
from tests import multidevice


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def bigan_d_reference(a, c):
  """-E log D(x, E(x)) - E log(1 - D(G(z), z)), D = sigmoid(logit), BiGAN eq. 1, in float64."""
  return -np.mean(np.log(_sigmoid(a))) - np.mean(np.log(1.0 - _sigmoid(c)))


def bigan_ge_reference(a, c):
  """Inverted labels: -E log D(G(z), z) - E log(1 - D(x, E(x)))."""
  return -np.mean(np.log(_sigmoid(c))) - np.mean(np.log(1.0 - _sigmoid(a)))


def beta_vae_reference(recon, x, mu, lv, beta, likelihood):
  """Per example: sum_j rec + beta * KL(N(mu, e^lv) || N(0, 1)) with the KL summed per latent, then batch mean."""
  total = 0.0
  for i in range(len(x)):
    r, xi = np.asarray(recon[i], np.float64).ravel(), np.asarray(x[i], np.float64).ravel()
    if likelihood == "gaussian":
      rec = sum((r[j] - xi[j]) ** 2 for j in range(len(r)))
    else:
      p = _sigmoid(r)
      rec = -sum(xi[j] * np.log(p[j]) + (1 - xi[j]) * np.log(1 - p[j]) for j in range(len(r)))
    kl = 0.0
    for m in range(mu.shape[1]):
      var = np.exp(np.float64(lv[i, m]))
      kl += 0.5 * (var + np.float64(mu[i, m]) ** 2 - 1.0 - np.float64(lv[i, m]))
    total += rec + beta * kl
  return total / len(x)


def _logits(n, seed, scale=2.0):
  return (scale * np.random.RandomState(seed).randn(n)).astype(np.float32)


def _vae_batch(b=16, shape=(6,), k=4, seed=0, bernoulli=False):
  rng = np.random.RandomState(seed)
  x = rng.rand(b, *shape) if bernoulli else rng.randn(b, *shape)
  recon = rng.randn(b, *shape)
  mu, lv = rng.randn(b, k), 0.5 * rng.randn(b, k)
  return [a.astype(np.float32) for a in (recon, x, mu, lv)]


# ---------------------------------------------------------------------------------------------------- BiGAN

def test_bigan_hand_case():
  # d_real = log 3: D = 3/4, -log(3/4); d_fake = log 3: 1 - D = 1/4, -log(1/4). L_D = log(16/3).
  a = jnp.array([np.log(3.0)], jnp.float32)
  np.testing.assert_allclose(G.bigan_discriminator_loss(a, a), np.log(16.0 / 3.0), rtol=1e-6)
  # Inverted labels for G/E: -log D(fake) - log(1 - D(real)) = -log(3/4) - log(1/4), the same number here.
  np.testing.assert_allclose(G.bigan_generator_encoder_loss(a, a), np.log(16.0 / 3.0), rtol=1e-6)
  # Minimax form: -L_D.
  np.testing.assert_allclose(G.bigan_generator_encoder_loss(a, a, saturating=True), -np.log(16.0 / 3.0), rtol=1e-6)


def test_bigan_matches_float64_reference():
  a, c = _logits(16, 0), _logits(24, 1)  # the two batches may differ in size
  np.testing.assert_allclose(G.bigan_discriminator_loss(a, c), bigan_d_reference(a, c), rtol=1e-5)
  np.testing.assert_allclose(G.bigan_generator_encoder_loss(a, c), bigan_ge_reference(a, c), rtol=1e-5)
  np.testing.assert_allclose(G.bigan_generator_encoder_loss(a, c, saturating=True), -bigan_d_reference(a, c),
                             rtol=1e-5)
  # [b, 1] logits (a Dense(1) head) are accepted and give the same value.
  np.testing.assert_allclose(G.bigan_discriminator_loss(a[:, None], c[:, None]), bigan_d_reference(a, c), rtol=1e-5)


def test_bigan_large_logits_stay_finite_and_non_saturating_gradient():
  a, c = jnp.array([60.0, -60.0]), jnp.array([-60.0, 60.0])
  assert np.isfinite(float(G.bigan_discriminator_loss(a, c)))
  np.testing.assert_allclose(G.bigan_discriminator_loss(a, c), 0.5 * 60.0 * 2, rtol=1e-5)  # two terms of 60 / 2
  # D confidently rejects a fake (c = -8): the minimax gradient w.r.t. c is ~ sigma(c)/B', the inverted one ~ -1/B'.
  c = jnp.array([-8.0])
  g_sat = jax.grad(lambda c: G.bigan_generator_encoder_loss(jnp.zeros(1), c, saturating=True))(c)
  g_ns = jax.grad(lambda c: G.bigan_generator_encoder_loss(jnp.zeros(1), c))(c)
  np.testing.assert_allclose(g_sat, -_sigmoid(-8.0), rtol=1e-4)
  np.testing.assert_allclose(g_ns, -(1 - _sigmoid(-8.0)), rtol=1e-4)


@pytest.mark.parametrize("fn", [G.bigan_discriminator_loss, G.bigan_generator_encoder_loss])
def test_bigan_gradients_float64(fn):
  with jax.enable_x64(True):
    a, c = np.random.RandomState(2).randn(2, 5)
    check_grads(lambda a, c: fn(a, c), (a, c), order=1, modes=["rev"])


def test_bigan_jit_equals_eager():
  a, c = _logits(16, 3), _logits(16, 4)
  for fn in (G.bigan_discriminator_loss, G.bigan_generator_encoder_loss):
    np.testing.assert_allclose(jax.jit(fn)(a, c), fn(a, c), rtol=1e-6)


def test_bigan_one_device_equals_eight(mesh8):
  a, c = _logits(16, 5), _logits(32, 6)
  v, _ = multidevice.assert_1_equals_8(G.bigan_discriminator_loss, mesh8, sharded=(a, c))
  np.testing.assert_allclose(v, bigan_d_reference(a, c), rtol=1e-5)
  multidevice.assert_1_equals_8(G.bigan_generator_encoder_loss, mesh8, sharded=(a, c))


def test_bigan_bad_inputs():
  with pytest.raises(ValueError, match=r"d_real must have shape \[b\] or \[b, 1\].*got shape \(4, 2\)"):
    G.bigan_discriminator_loss(jnp.zeros((4, 2)), jnp.zeros(4))
  with pytest.raises(ValueError, match="d_fake must be a floating array"):
    G.bigan_generator_encoder_loss(jnp.zeros(4), jnp.zeros(4, jnp.int32))


def test_bigan_bfloat16_gives_float32():
  a, c = _logits(16, 7), _logits(16, 8)
  got = G.bigan_discriminator_loss(jnp.asarray(a, jnp.bfloat16), jnp.asarray(c, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, bigan_d_reference(a, c), rtol=2e-2)


# ---------------------------------------------------------------------------------------------------- beta-VAE

def test_beta_vae_hand_case():
  # Gaussian: rec = (0-1)^2 + (0-2)^2 = 5; KL = 0.5 (e^0 + 1^2 - 1 - 0) = 0.5; beta = 4 -> 5 + 2 = 7.
  recon, x = jnp.zeros((1, 2)), jnp.array([[1.0, 2.0]])
  mu, lv = jnp.ones((1, 1)), jnp.zeros((1, 1))
  np.testing.assert_allclose(G.beta_vae(recon, x, mu, lv), 7.0, rtol=1e-6)
  # Bernoulli with logits 0 and x = 1: rec = 2 log 2; beta = 1 -> 2 log 2 + 0.5.
  np.testing.assert_allclose(G.beta_vae(recon, jnp.ones((1, 2)), mu, lv, beta=1.0, likelihood="bernoulli"),
                             2 * np.log(2) + 0.5, rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_beta_vae_matches_float64_reference(likelihood):
  recon, x, mu, lv = _vae_batch(shape=(3, 2), bernoulli=likelihood == "bernoulli")
  got, terms = G.beta_vae(recon, x, mu, lv, beta=2.5, likelihood=likelihood, return_terms=True)
  rec, kl = terms["reconstruction"], terms["kl"]
  np.testing.assert_allclose(got, beta_vae_reference(recon, x, mu, lv, 2.5, likelihood), rtol=1e-5)
  np.testing.assert_allclose(rec, beta_vae_reference(recon, x, mu, lv, 0.0, likelihood), rtol=1e-5)
  np.testing.assert_allclose(got, rec + 2.5 * kl, rtol=1e-6)


def test_beta_vae_kl_matches_monte_carlo_definition():
  # KL(q || p) = E_q[log q(z) - log p(z)], estimated with 400k samples in float64: checks the closed form.
  mu, lv = np.array([[0.7, -1.2]]), np.array([[-0.5, 0.8]])
  rng = np.random.RandomState(0)
  z = mu + np.exp(0.5 * lv) * rng.randn(400_000, 2)
  log_q = -0.5 * ((z - mu) ** 2 / np.exp(lv) + lv + np.log(2 * np.pi))
  log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
  mc = np.mean(np.sum(log_q - log_p, axis=1))
  _, terms = G.beta_vae(jnp.zeros((1, 1)), jnp.zeros((1, 1)), mu.astype(np.float32), lv.astype(np.float32),
                        return_terms=True)
  np.testing.assert_allclose(terms["kl"], mc, rtol=1e-2)


def test_beta_vae_gradients_float64():
  with jax.enable_x64(True):
    recon, x, mu, lv = [a.astype(np.float64) for a in _vae_batch(b=3, shape=(2,), k=2, seed=1)]
    check_grads(lambda r, m, v: G.beta_vae(r, x, m, v), (recon, mu, lv), order=1, modes=["rev"])
    check_grads(lambda r: G.beta_vae(r, np.abs(x) / 3, mu, lv, likelihood="bernoulli"), (recon,), order=1,
                modes=["rev"])


def test_beta_vae_jit_equals_eager():
  recon, x, mu, lv = _vae_batch(seed=2)
  f = lambda *a: G.beta_vae(*a, beta=3.0)
  np.testing.assert_allclose(jax.jit(f)(recon, x, mu, lv), f(recon, x, mu, lv), rtol=1e-6)


def test_beta_vae_one_device_equals_eight(mesh8):
  recon, x, mu, lv = _vae_batch(seed=3)
  fn = lambda r, x, m, v, axis_name=None: G.beta_vae(r, x, m, v, axis_name=axis_name)
  v, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(recon, x, mu, lv), argnums=(0, 2, 3))
  np.testing.assert_allclose(v, beta_vae_reference(recon, x, mu, lv, 4.0, "gaussian"), rtol=1e-5)


def test_beta_vae_bad_inputs():
  recon, x, mu, lv = _vae_batch(b=4)
  with pytest.raises(ValueError, match=r"recon and x must have the same shape; got \(4, 6\) and \(4, 5\)"):
    G.beta_vae(recon, x[:, :5], mu, lv)
  with pytest.raises(ValueError, match=r"mean and log_var must have the same shape"):
    G.beta_vae(recon, x, mu, lv[:, :2])
  with pytest.raises(ValueError, match="mean must have one row per example"):
    G.beta_vae(recon, x, mu[:3], lv[:3])
  with pytest.raises(ValueError, match="likelihood must be 'gaussian' or 'bernoulli'"):
    G.beta_vae(recon, x, mu, lv, likelihood="laplace")
  with pytest.raises(ValueError, match="beta must be >= 0"):
    G.beta_vae(recon, x, mu, lv, beta=-1.0)


def test_beta_vae_bfloat16_gives_float32():
  recon, x, mu, lv = _vae_batch(seed=4)
  got = G.beta_vae(*[jnp.asarray(a, jnp.bfloat16) for a in (recon, x, mu, lv)])
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, beta_vae_reference(recon, x, mu, lv, 4.0, "gaussian"), rtol=2e-2)


# ---------------------------------------------------------------------------------------------------- reparameterize

def test_reparameterize_moments_gradient_and_seed():
  mu, lv = jnp.array([[1.0, -2.0]]), jnp.array([[0.0, np.log(4.0)]])
  z = jax.vmap(lambda k: G.reparameterize(k, mu, lv))(jax.random.split(jax.random.key(0), 20_000))[:, 0]
  np.testing.assert_allclose(np.mean(z, axis=0), [1.0, -2.0], atol=0.05)
  np.testing.assert_allclose(np.std(z, axis=0), [1.0, 2.0], rtol=0.03)
  key = jax.random.key(1)
  np.testing.assert_array_equal(G.reparameterize(key, mu, lv), G.reparameterize(key, mu, lv))
  # dz/dmu = 1 and dz/dlog_var = 0.5 * sigma * eps with eps = (z - mu) / sigma.
  z1 = G.reparameterize(key, mu, lv)
  g_mu, g_lv = jax.grad(lambda m, v: jnp.sum(G.reparameterize(key, m, v)), argnums=(0, 1))(mu, lv)
  np.testing.assert_allclose(g_mu, np.ones((1, 2)), rtol=1e-6)
  np.testing.assert_allclose(g_lv, 0.5 * (np.asarray(z1) - np.asarray(mu)), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(G.reparameterize)(key, mu, lv), z1, rtol=1e-6)
  assert G.reparameterize(key, mu.astype(jnp.bfloat16), lv.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_reparameterize_bad_inputs():
  with pytest.raises(ValueError, match=r"mean and log_var must have the same shape; got \(2, 3\) and \(2, 2\)"):
    G.reparameterize(jax.random.key(0), jnp.zeros((2, 3)), jnp.zeros((2, 2)))
  with pytest.raises(ValueError, match=r"mean must have shape \[b, k\]"):
    G.reparameterize(jax.random.key(0), jnp.zeros(3), jnp.zeros(3))
