"""facornet_loss (FaCoRNet): a float64 NumPy reference written from the released code (wtnthu/FaCoR, losses.py),
gradients (features and attention), 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import kinship as K
from tests import multidevice
from tests.losses import numeric_grad


def facornet_reference(x1, x2, attention=None, temperature=0.08, scale=500.0):
  """z = [x1; x2]; tau_i = sum(A_i^2) / scale, repeated for both halves; for every row r,
  -log(exp(cos(z_r, z_r+-B) / tau) / sum_{j != r} exp(cos(z_r, z_j) / tau)); mean over the 2B rows."""
  x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
  b = len(x1)
  if attention is None:
    tau = np.full(b, temperature)
  else:
    tau = np.sum(np.asarray(attention, np.float64).reshape(b, -1) ** 2, axis=1) / scale
  z = np.concatenate([x1, x2])
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  tau = np.concatenate([tau, tau])
  sims = z @ z.T / tau[:, None]  # row r at the temperature of its pair
  pos = (np.arange(2 * b) + b) % (2 * b)
  num = np.exp(sims[np.arange(2 * b), pos])
  den = np.sum(np.exp(sims) * (1.0 - np.eye(2 * b)), axis=1)  # every j != r, the positive included
  return np.mean(-np.log(num / den))



def _inputs(b=4, d=6, n=3, seed=0):
  rng = np.random.RandomState(seed)
  att = jax.nn.softmax(jnp.asarray(rng.randn(b, n, n)), axis=-1)
  return rng.randn(b, d).astype(np.float32), rng.randn(b, d).astype(np.float32), np.asarray(att, np.float32)


def test_hand_case_and_positive_in_the_denominator():
  x = jnp.eye(4)
  # tau = 1 (uniform 10 x 10 attention of weight 0.1, scale 1): log((e + 6) / e), the positive counted below.
  np.testing.assert_allclose(K.facornet_loss(x, x, attention=jnp.full((4, 10, 10), 0.1), attention_scale=1.0),
                             np.log1p(6 / np.e), rtol=1e-6)
  np.testing.assert_allclose(K.facornet_loss(x, x, temperature=1.0), np.log1p(6 / np.e), rtol=1e-6)
  # One orthogonal pair: each face's only other face is its positive, so the loss is log(1) = 0 (the anchor
  # itself, cos 1, is left out of the denominator; were it in and the positive out, the loss would be 1 / tau).
  np.testing.assert_allclose(K.facornet_loss(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]]), temperature=0.5),
                             0.0, atol=1e-6)


@pytest.mark.parametrize("with_attention", [True, False])
def test_matches_float64_reference_and_jit(with_attention):
  x1, x2, att = _inputs(seed=1)
  att = att if with_attention else None
  want = facornet_reference(x1, x2, att, temperature=0.3, scale=2.0)
  got = K.facornet_loss(x1, x2, attention=att, temperature=0.3, attention_scale=2.0)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda a, b: K.facornet_loss(a, b, attention=att, temperature=0.3,
                                                                  attention_scale=2.0))(x1, x2), want, rtol=1e-5)
  low = K.facornet_loss(jnp.asarray(x1, jnp.bfloat16), jnp.asarray(x2, jnp.bfloat16), attention=att, temperature=0.3,
                        attention_scale=2.0)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, want, rtol=3e-2)


def test_per_pair_temperature_differs_from_a_shared_one():
  x1, x2, att = _inputs(seed=2)
  tau = np.sum(att.astype(np.float64).reshape(4, -1) ** 2, axis=1) / 2.0
  shared = facornet_reference(x1, x2, temperature=float(np.mean(tau)))
  assert abs(float(K.facornet_loss(x1, x2, attention=att, attention_scale=2.0)) - shared) > 1e-3


def test_gradients_features_and_attention_match_finite_differences():
  x1, x2, att = (a.astype(np.float64) for a in _inputs(b=3, d=4, n=2, seed=3))
  with jax.enable_x64(True):
    g1, g2, ga = jax.grad(lambda a, b, c: K.facornet_loss(a, b, attention=c, attention_scale=2.0), argnums=(0, 1, 2))(
        jnp.asarray(x1), jnp.asarray(x2), jnp.asarray(att))
  np.testing.assert_allclose(g1, numeric_grad(lambda v: facornet_reference(v, x2, att, scale=2.0), x1),
                             rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(g2, numeric_grad(lambda v: facornet_reference(x1, v, att, scale=2.0), x2),
                             rtol=1e-5, atol=1e-8)
  ref_a = numeric_grad(lambda v: facornet_reference(x1, x2, v, scale=2.0), att)
  assert np.abs(ref_a).max() > 1e-3  # the attention is trained through the temperature
  np.testing.assert_allclose(ga, ref_a, rtol=1e-5, atol=1e-8)


def test_facornet_1_equals_8(mesh8):
  x1, x2, att = _inputs(b=16, seed=4)
  fn = lambda a, b, c, axis_name=None: K.facornet_loss(a, b, attention=c, attention_scale=2.0, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(x1, x2, att))
  np.testing.assert_allclose(value, facornet_reference(x1, x2, att, scale=2.0), rtol=1e-5)


def test_facornet_bad_inputs():
  x1, x2, att = _inputs()
  with pytest.raises(ValueError, match=r"x1 and x2 must have the same shape; got \(4, 6\) and \(3, 6\)"):
    K.facornet_loss(x1, x2[:3])
  with pytest.raises(ValueError, match=r"attention must have shape \[4, \.\.\.\] \(one map per pair.*\(3, 3, 3\)"):
    K.facornet_loss(x1, x2, attention=att[:3])
  with pytest.raises(ValueError, match=r"attention must have shape \[4, \.\.\.\].*got shape \(4,\)"):
    K.facornet_loss(x1, x2, attention=att[:, 0, 0])
  with pytest.raises(ValueError, match=r"temperature must be > 0; got 0"):
    K.facornet_loss(x1, x2, temperature=0)
  with pytest.raises(ValueError, match=r"attention_scale must be > 0; got -1"):
    K.facornet_loss(x1, x2, attention=att, attention_scale=-1.0)
  with pytest.raises(ValueError, match=r"attention must be a floating array; got dtype int32"):
    K.facornet_loss(x1, x2, attention=np.ones((4, 2), np.int32))
