"""The environment disentangler's objectives (rl.losses.speaker): float64 NumPy references written from the
released code (kaistmm/voxceleb-disentangler), gradients, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import speaker as S
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References, float64 NumPy, from loss/MAPC.py, models/ENV_Discriminator.py and SpeakerNet.py.
# ------------------------------------------------------------------------------------------------------------

def mapc_reference(s, e):
  """mean_i |pearson(s_i, e_i)|, each row centred over its own features."""
  s = np.asarray(s, np.float64).reshape(-1, s.shape[-1])
  e = np.asarray(e, np.float64).reshape(-1, e.shape[-1])
  values = []
  for a, b in zip(s, e):
    a, b = a - a.mean(), b - b.mean()
    values.append(abs(a @ b) / (np.sqrt(a @ a) * np.sqrt(b @ b)))
  return np.mean(values)


def triplet_reference(a, p, n, margin=0.3):
  """mean relu(|a - p|^2 - |a - n|^2 + margin) of the L2-normalised discriminator outputs."""
  unit = lambda x: np.asarray(x, np.float64) / np.linalg.norm(np.asarray(x, np.float64), axis=-1, keepdims=True)
  a, p, n = unit(a), unit(p), unit(n)
  return np.mean(np.maximum(np.sum((a - p) ** 2, -1) - np.sum((a - n) ** 2, -1) + margin, 0.0))


def disentangler_terms_reference(x, x_hat, s, e, d_e, d_s, margin=0.3):
  return {"reconstruction": np.mean(np.abs(np.asarray(x_hat, np.float64) - x)),
          "correlation": mapc_reference(s, e),
          "environment": triplet_reference(d_e[:, 0], d_e[:, 1], d_e[:, 2], margin),
          "adversarial": triplet_reference(d_s[:, 0], d_s[:, 1], d_s[:, 2], margin)}



def _inputs(b=4, d=5, c=4, k=3, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  shapes = [(b, 3, d), (b, 3, d), (b, 3, c), (b, 3, c), (b, 3, k), (b, 3, k)]
  return [rng.randn(*shape).astype(dtype) for shape in shapes]


# ------------------------------------------------------------------------------------------------------------
# gradient_reversal
# ------------------------------------------------------------------------------------------------------------

def test_gradient_reversal_is_identity_forward_and_negates_the_gradient():
  x = jnp.array([1.0, -2.0, 3.0])
  np.testing.assert_array_equal(S.gradient_reversal(x), x)
  g = jax.grad(lambda v: jnp.sum(jnp.array([1.0, 2.0, 3.0]) * S.gradient_reversal(v, scale=0.5)))(x)
  np.testing.assert_allclose(g, [-0.5, -1.0, -1.5])
  np.testing.assert_allclose(jax.jit(jax.grad(lambda v: jnp.sum(S.gradient_reversal(v))))(x), -np.ones(3))
  with pytest.raises(ValueError, match=r"scale must be a Python number >= 0; got -1"):
    S.gradient_reversal(x, scale=-1)
  with pytest.raises(ValueError, match=r"x must be a floating array.*int32"):
    S.gradient_reversal(jnp.arange(3))


# ------------------------------------------------------------------------------------------------------------
# mapc_loss
# ------------------------------------------------------------------------------------------------------------

def test_mapc_hand_case_and_sign_of_each_correlation_counts():
  s = jnp.array([[1.0, 2.0, 3.0], [1.0, 0.0, 1.0]])
  e = jnp.array([[3.0, 2.0, 1.0], [2.0, 2.0, 5.0]])  # rho = -1 and +0.5: |.| averages to 0.75, not -0.25
  np.testing.assert_allclose(S.mapc_loss(s, e), 0.75, rtol=1e-6)
  # Centring is per row over features, not over the batch: a constant shift of one row changes nothing.
  np.testing.assert_allclose(S.mapc_loss(s + jnp.array([[10.0], [-3.0]]), e), 0.75, rtol=1e-6)


def test_mapc_matches_reference_value_gradient_and_jit():
  _, _, s, e, _, _ = _inputs(seed=1)
  np.testing.assert_allclose(S.mapc_loss(s, e), mapc_reference(s, e), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(S.mapc_loss)(s, e), mapc_reference(s, e), rtol=1e-5)
  low = S.mapc_loss(jnp.asarray(s, jnp.bfloat16), jnp.asarray(e, jnp.bfloat16))
  assert low.dtype == jnp.float32
  s64, e64 = s.astype(np.float64), e.astype(np.float64)
  with jax.enable_x64(True):
    gs, ge = jax.grad(S.mapc_loss, argnums=(0, 1))(jnp.asarray(s64), jnp.asarray(e64))
  np.testing.assert_allclose(gs, numeric_grad(lambda a: mapc_reference(a, e64), s64), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(ge, numeric_grad(lambda a: mapc_reference(s64, a), e64), rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------------------------------------------------------
# environment_triplet_loss
# ------------------------------------------------------------------------------------------------------------

def test_triplet_hand_cases_margin_and_normalisation():
  a, n = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])
  np.testing.assert_allclose(S.environment_triplet_loss(a, a, n), 0.0, atol=1e-7)
  np.testing.assert_allclose(S.environment_triplet_loss(a, n, a), 2.3, rtol=1e-6)
  np.testing.assert_allclose(S.environment_triplet_loss(5 * a, 0.1 * n, a, margin=1.0), 3.0, rtol=1e-6)
  # Hinge: equal distances leave exactly the margin.
  np.testing.assert_allclose(S.environment_triplet_loss(a, n, -n), 0.3, rtol=1e-6)


def test_triplet_matches_reference_value_and_gradient():
  _, _, _, _, d, _ = _inputs(b=6, seed=2)
  a, p, n = d[:, 0], d[:, 1], d[:, 2]
  np.testing.assert_allclose(S.environment_triplet_loss(a, p, n, margin=0.7), triplet_reference(a, p, n, 0.7),
                             rtol=1e-5)
  a64, p64, n64 = (v.astype(np.float64) for v in (a, p, n))
  with jax.enable_x64(True):
    grads = jax.grad(lambda *v: S.environment_triplet_loss(*v, margin=0.7), argnums=(0, 1, 2))(a64, p64, n64)
  refs = (numeric_grad(lambda v: triplet_reference(v, p64, n64, 0.7), a64),
          numeric_grad(lambda v: triplet_reference(a64, v, n64, 0.7), p64),
          numeric_grad(lambda v: triplet_reference(a64, p64, v, 0.7), n64))
  for got, want in zip(grads, refs):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
  assert np.abs(refs[2]).max() > 1e-3  # some triplets are active: the gradient test is not vacuous


# ------------------------------------------------------------------------------------------------------------
# disentangler_decoder_input
# ------------------------------------------------------------------------------------------------------------

def test_decoder_input_normalises_and_rotates_speaker_codes():
  _, _, s, e, _, _ = _inputs(seed=3)
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
  key = jax.random.key(0)
  kept = S.disentangler_decoder_input(key, s, e, swap_probability=0.0)
  np.testing.assert_allclose(kept, np.concatenate([unit(s), unit(e)], -1), rtol=1e-5)
  swapped = S.disentangler_decoder_input(key, s, e, swap_probability=1.0)
  np.testing.assert_allclose(swapped, np.concatenate([unit(s)[:, [2, 0, 1]], unit(e)], -1), rtol=1e-5)
  draws = [bool(np.allclose(S.disentangler_decoder_input(jax.random.key(i), s, e), swapped))
           for i in range(40)]
  assert 8 < sum(draws) < 32  # one coin per call, p = 0.5


# ------------------------------------------------------------------------------------------------------------
# disentangler_loss
# ------------------------------------------------------------------------------------------------------------

def test_disentangler_loss_matches_reference_terms_and_weighting():
  args = _inputs(seed=4)
  loss, terms = S.disentangler_loss(*args, adversarial_weight=0.25, margin=0.5, return_terms=True)
  ref = disentangler_terms_reference(*args, margin=0.5)
  for name in ref:
    np.testing.assert_allclose(terms[name], ref[name], rtol=1e-5, err_msg=name)
  want = ref["reconstruction"] + ref["correlation"] + ref["environment"] + 0.25 * ref["adversarial"]
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda *a: S.disentangler_loss(*a, adversarial_weight=0.25, margin=0.5))(
      *args), want, rtol=1e-5)


def test_disentangler_gradients_reversed_adversary_and_stopped_target():
  args = [a.astype(np.float64) for a in _inputs(b=2, d=3, c=3, k=2, seed=5)]
  with jax.enable_x64(True):
    grads = jax.grad(lambda *a: S.disentangler_loss(*a, adversarial_weight=0.5), argnums=tuple(range(6)))(
        *[jnp.asarray(a) for a in args])
  x, x_hat, s, e, d_e, d_s = args
  total = lambda **kw: sum(w * v for w, v in zip((1, 1, 1, 0.5), disentangler_terms_reference(
      **{**dict(x=x, x_hat=x_hat, s=s, e=e, d_e=d_e, d_s=d_s), **kw}).values()))
  np.testing.assert_array_equal(grads[0], 0.0)  # the embeddings are the stop-gradient target
  np.testing.assert_allclose(grads[1], numeric_grad(lambda v: total(x_hat=v), x_hat), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(grads[2], numeric_grad(lambda v: total(s=v), s), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(grads[3], numeric_grad(lambda v: total(e=v), e), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(grads[4], numeric_grad(lambda v: total(d_e=v), d_e), rtol=1e-5, atol=1e-9)
  # The adversarial term's gradient is reversed: -alpha times the gradient of its value.
  adv = numeric_grad(lambda v: 0.5 * disentangler_terms_reference(x, x_hat, s, e, d_e, v)["adversarial"], d_s)
  assert np.abs(adv).max() > 1e-3
  np.testing.assert_allclose(grads[5], -adv, rtol=1e-5, atol=1e-9)


def test_disentangler_loss_1_equals_8(mesh8):
  args = _inputs(b=16, seed=6)
  fn = lambda *a, axis_name=None: S.disentangler_loss(*a, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=args, argnums=(1, 2, 3, 4, 5))
  ref = disentangler_terms_reference(*args)
  np.testing.assert_allclose(value, sum(ref.values()) - 0.5 * ref["adversarial"], rtol=1e-5)


def test_mapc_and_triplet_1_equals_8(mesh8):
  args = _inputs(b=16, seed=6)
  s, e = args[2], args[3]
  multidevice.assert_1_equals_8(lambda a, b, axis_name=None: S.mapc_loss(a, b, axis_name=axis_name), mesh8,
                                sharded=(s, e))
  d = args[4]
  multidevice.assert_1_equals_8(lambda a, p, n, axis_name=None: S.environment_triplet_loss(
      a, p, n, axis_name=axis_name), mesh8, sharded=(d[:, 0], d[:, 1], d[:, 2]))


def test_speaker_bad_inputs():
  x, x_hat, s, e, d_e, d_s = _inputs()
  with pytest.raises(ValueError, match=r"speaker_code and env_code must have the same shape; got \(4, 3, 4\) and "
                                       r"\(4, 3, 3\)"):
    S.mapc_loss(s, e[..., :3])
  with pytest.raises(ValueError, match=r"speaker_code must have shape \[\.\.\., c\] with at least one row axis"):
    S.mapc_loss(s[0, 0], e[0, 0])
  with pytest.raises(ValueError, match=r"anchor and negative must have the same shape; got \(4, 3\) and \(3, 3\)"):
    S.environment_triplet_loss(d_e[:, 0], d_e[:, 1], d_e[:3, 2])
  with pytest.raises(ValueError, match=r"embeddings must have shape \[b, 3, d\] with 3 utterances.*\(4, 2, 5\)"):
    S.disentangler_loss(x[:, :2], x_hat[:, :2], s, e, d_e, d_s)
  with pytest.raises(ValueError, match=r"env_scores must have 4 rows \(the b of embeddings.*got shape \(2, 3, 3\)"):
    S.disentangler_loss(x, x_hat, s, e, d_e[:2], d_s)
  with pytest.raises(ValueError, match=r"speaker_env_scores must have shape \[b, 3, k'\]; got shape \(4, 3\)"):
    S.disentangler_loss(x, x_hat, s, e, d_e, d_s[..., 0])
  with pytest.raises(ValueError, match=r"swap_probability must be in \[0.0, 1.0\]; got 1.5"):
    S.disentangler_decoder_input(jax.random.key(0), s, e, swap_probability=1.5)
  with pytest.raises(ValueError, match=r"env_code must have 4 rows.*got shape \(2, 3, 4\)"):
    S.disentangler_decoder_input(jax.random.key(0), s, e[:2])
