"""sieve_aux_loss, sieve_forget_loss, sieve_forget_schedule (SiFer) and lens_loss (automatic shortcut removal):
hand cases, float64 NumPy references of the equations, gradients, jit, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import shortcuts as S
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References, float64 NumPy, written from the equations (SiFer's released code; the lens paper's equations).
# ------------------------------------------------------------------------------------------------------------

def log_softmax(z):
  z = np.asarray(z, np.float64)
  m = z.max(axis=-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def aux_reference(logits, labels):
  """Mean over examples of -log softmax(a_i)[y_i]."""
  lp = log_softmax(logits)
  return np.mean([-lp[i, y] for i, y in enumerate(labels)])


def forget_reference(logits):
  """torch CrossEntropyLoss with the soft target 1/K for every class: mean_i -sum_k (1/K) log softmax(a_i)_k."""
  lp = log_softmax(logits)
  k = lp.shape[1]
  return np.mean(-(np.full_like(lp, 1.0 / k) * lp).sum(axis=1))


def lens_reference(logits, images, lensed, weight, labels=None, adversarial="least_likely"):
  """(1/N) sum_i [adv_i + lambda ||x_i - L(x_i)||^2]: adv_i = -log p(y_LL | .) with y_LL = argmin_y p(y | .), or
  adv_i = -L_SSL_i = log p(y_i | .)."""
  lp = log_softmax(logits)
  adv, rec = [], []
  for i in range(lp.shape[0]):
    if adversarial == "least_likely":
      adv.append(-lp[i, np.argmin(lp[i])])
    else:
      adv.append(lp[i, labels[i]])
    rec.append(np.sum((np.asarray(images[i], np.float64) - np.asarray(lensed[i], np.float64)) ** 2))
  return np.mean(adv) + weight * np.mean(rec), np.mean(adv), np.mean(rec)



def _logits(b=4, k=5, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, k).astype(np.float32), rng.randint(0, k, size=b).astype(np.int32)


# ------------------------------------------------------------------------------------------------------------
# sieve_aux_loss, sieve_forget_loss, sieve_forget_schedule
# ------------------------------------------------------------------------------------------------------------

def test_sieve_hand_cases():
  np.testing.assert_allclose(S.sieve_aux_loss(jnp.zeros((2, 4)), jnp.array([0, 3])), np.log(4), rtol=1e-6)
  np.testing.assert_allclose(S.sieve_forget_loss(jnp.zeros((3, 4))), np.log(4), rtol=1e-6)
  # A confident head is far from uniform: log(e^9 + 1) - 9 / 2 for K = 2.
  np.testing.assert_allclose(S.sieve_forget_loss(jnp.array([[9.0, 0.0]])), np.log(np.exp(9) + 1) - 4.5, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_sieve_losses_match_float64_reference_jit_and_bfloat16(seed):
  a, y = _logits(seed=seed)
  np.testing.assert_allclose(S.sieve_aux_loss(a, y), aux_reference(a, y), rtol=1e-6)
  np.testing.assert_allclose(S.sieve_forget_loss(a), forget_reference(a), rtol=1e-6)
  np.testing.assert_allclose(jax.jit(S.sieve_forget_loss)(a), forget_reference(a), rtol=1e-6)
  low = S.sieve_forget_loss(jnp.asarray(a, jnp.bfloat16))
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, forget_reference(a), rtol=2e-2)


def test_sieve_gradients_match_finite_differences():
  a, y = (v.astype(np.float64) if v.dtype == np.float32 else v for v in _logits(b=3, k=4, seed=2))
  with jax.enable_x64(True):
    g_aux = jax.grad(lambda z: S.sieve_aux_loss(z, jnp.asarray(y)))(jnp.asarray(a))
    g_forget = jax.grad(S.sieve_forget_loss)(jnp.asarray(a))
  np.testing.assert_allclose(g_aux, numeric_grad(lambda z: aux_reference(z, y), a), rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(g_forget, numeric_grad(forget_reference, a), rtol=1e-6, atol=1e-9)
  # The forgetting gradient pushes every example towards the uniform prediction: it sums to 0 over classes.
  np.testing.assert_allclose(np.asarray(g_forget).sum(axis=1), 0.0, atol=1e-12)


def test_sieve_losses_1_equals_8(mesh8):
  a, y = _logits(b=16, seed=3)
  value, _ = multidevice.assert_1_equals_8(lambda z, l, axis_name=None: S.sieve_aux_loss(z, l, axis_name=axis_name),
                                           mesh8, sharded=(a, y))
  np.testing.assert_allclose(value, aux_reference(a, y), rtol=1e-5)
  value, _ = multidevice.assert_1_equals_8(lambda z, axis_name=None: S.sieve_forget_loss(z, axis_name=axis_name),
                                           mesh8, sharded=(a,))
  np.testing.assert_allclose(value, forget_reference(a), rtol=1e-5)


def test_sieve_forget_schedule():
  assert S.sieve_forget_schedule(jnp.arange(11), forget_after_iters=5).tolist() == [
      True, False, False, False, False, True, False, False, False, False, True]
  assert bool(S.sieve_forget_schedule(0)) and not bool(S.sieve_forget_schedule(7))
  assert jax.jit(lambda s: S.sieve_forget_schedule(s, forget_after_iters=3))(jnp.int32(9))


def test_sieve_bad_inputs():
  a, y = _logits()
  with pytest.raises(ValueError, match=r"aux_logits must have shape \[b, K\]; got shape \(5,\)"):
    S.sieve_forget_loss(a[0])
  with pytest.raises(ValueError, match=r"aux_logits must have shape \[b, K\] with K >= 2 classes; got shape \(4, 1\)"):
    S.sieve_aux_loss(a[:, :1], y)
  with pytest.raises(ValueError, match=r"labels must have shape \[4\] \(one label per example\); got shape \(3,\)"):
    S.sieve_aux_loss(a, y[:3])
  with pytest.raises(ValueError, match=r"forget_after_iters must be an int >= 1; got 0"):
    S.sieve_forget_schedule(3, forget_after_iters=0)
  with pytest.raises(ValueError, match=r"step must be an integer .*got dtype float32"):
    S.sieve_forget_schedule(jnp.float32(3.0))


# ------------------------------------------------------------------------------------------------------------
# lens_loss
# ------------------------------------------------------------------------------------------------------------

def _lens_inputs(b=4, seed=0):
  rng = np.random.RandomState(seed)
  logits, labels = _logits(b=b, k=4, seed=seed)
  images = rng.rand(b, 3, 3, 2).astype(np.float32)
  lensed = (images + 0.1 * rng.randn(b, 3, 3, 2)).astype(np.float32)
  return logits, labels, images, lensed


def test_lens_hand_case():
  x = jnp.zeros((1, 2, 2, 1))
  lensed = x.at[0, 0, 0, 0].set(1.0)
  loss, terms = S.lens_loss(jnp.array([[0.0, 0.0]]), x, lensed, reconstruction_weight=0.5, return_terms=True)
  np.testing.assert_allclose([terms["adversarial"], terms["reconstruction"], loss], [np.log(2), 1.0, np.log(2) + 0.5],
                             rtol=1e-6)
  # The least-likely class is the target: a head sure of class 0 pays -log p(class 1).
  logits = jnp.array([[5.0, -5.0]])
  np.testing.assert_allclose(S.lens_loss(logits, x, x, reconstruction_weight=1.0), -log_softmax([[5.0, -5.0]])[0, 1],
                             rtol=1e-6)
  # "full" is the negated task loss: log p(y).
  np.testing.assert_allclose(S.lens_loss(logits, x, x, reconstruction_weight=1.0, labels=jnp.array([0]),
                                         adversarial="full"), log_softmax([[5.0, -5.0]])[0, 0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("adversarial", ["least_likely", "full"])
def test_lens_matches_float64_reference_jit_and_terms(adversarial):
  logits, labels, images, lensed = _lens_inputs(seed=1)
  want, adv, rec = lens_reference(logits, images, lensed, 3.0, labels, adversarial)
  fn = lambda a, b: S.lens_loss(a, images, b, reconstruction_weight=3.0, labels=labels, adversarial=adversarial,
                                return_terms=True)
  loss, terms = fn(logits, lensed)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose([terms["adversarial"], terms["reconstruction"]], [adv, rec], rtol=1e-5)
  np.testing.assert_allclose(jax.jit(fn)(logits, lensed)[0], want, rtol=1e-5)
  low = S.lens_loss(jnp.asarray(logits, jnp.bfloat16), images, jnp.asarray(lensed, jnp.bfloat16),
                    reconstruction_weight=3.0, labels=labels, adversarial=adversarial)
  assert low.dtype == jnp.float32


@pytest.mark.parametrize("adversarial", ["least_likely", "full"])
def test_lens_gradients_match_finite_differences(adversarial):
  logits, labels, images, lensed = (v.astype(np.float64) if v.dtype == np.float32 else v
                                    for v in _lens_inputs(b=3, seed=2))
  with jax.enable_x64(True):
    ga, gl = jax.grad(lambda a, b: S.lens_loss(a, jnp.asarray(images), b, reconstruction_weight=2.0,
                                               labels=jnp.asarray(labels), adversarial=adversarial),
                      argnums=(0, 1))(jnp.asarray(logits), jnp.asarray(lensed))
  ref = lambda a, b: lens_reference(a, images, b, 2.0, labels, adversarial)[0]
  np.testing.assert_allclose(ga, numeric_grad(lambda a: ref(a, lensed), logits), rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(gl, numeric_grad(lambda b: ref(logits, b), lensed), rtol=1e-6, atol=1e-9)


def test_lens_1_equals_8(mesh8):
  logits, labels, images, lensed = _lens_inputs(b=16, seed=3)
  fn = lambda a, x, b, y, axis_name=None: S.lens_loss(a, x, b, reconstruction_weight=0.7, labels=y,
                                                      adversarial="full", axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(logits, images, lensed, labels), argnums=(0, 2))
  np.testing.assert_allclose(value, lens_reference(logits, images, lensed, 0.7, labels, "full")[0], rtol=1e-5)
  fn_ll = lambda a, x, b, axis_name=None: S.lens_loss(a, x, b, reconstruction_weight=0.7, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn_ll, mesh8, sharded=(logits, images, lensed), argnums=(0, 2))
  np.testing.assert_allclose(value, lens_reference(logits, images, lensed, 0.7)[0], rtol=1e-5)


def test_lens_bad_inputs():
  logits, labels, images, lensed = _lens_inputs()
  with pytest.raises(ValueError, match=r"images must have shape \[b, \.\.\.\] with b = 4 .*got shape \(3, 3, 3, 2\)"):
    S.lens_loss(logits, images[:3], lensed[:3], reconstruction_weight=1.0)
  with pytest.raises(ValueError, match=r"images and lensed_images must have the same shape; got \(4, 3, 3, 2\) and "
                                       r"\(4, 3, 2, 2\)"):
    S.lens_loss(logits, images, lensed[:, :, :2], reconstruction_weight=1.0)
  with pytest.raises(ValueError, match=r"labels must be given \(int \[b\] pretext labels\) when adversarial=\"full\""):
    S.lens_loss(logits, images, lensed, reconstruction_weight=1.0, adversarial="full")
  with pytest.raises(ValueError, match=r'adversarial must be "least_likely" or "full"; got \'negative\''):
    S.lens_loss(logits, images, lensed, reconstruction_weight=1.0, adversarial="negative")
  with pytest.raises(ValueError, match=r"reconstruction_weight must be in \[0.0, inf\]; got -1.0"):
    S.lens_loss(logits, images, lensed, reconstruction_weight=-1.0)
  with pytest.raises(TypeError, match="reconstruction_weight"):
    S.lens_loss(logits, images, lensed)  # pylint: disable=missing-kwoa
