"""nt_xent: hand case, float64 NumPy reference, gradients, jit, 1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import losses
from tests import multidevice


def nt_xent_reference(z1, z2, temperature):
  """SimCLR eq. 1 in float64, written from the paper, one anchor at a time."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  u = z / np.linalg.norm(z, axis=1, keepdims=True)
  n = len(u)
  b = n // 2
  total = 0.0
  for i in range(n):
    pos = (i + b) % n
    sims = np.array([u[i] @ u[k] / temperature for k in range(n) if k != i])
    m = sims.max()
    total += -(u[i] @ u[pos]) / temperature + m + np.log(np.exp(sims - m).sum())
  return total / n


def numeric_grad(f, x, eps=1e-6):
  g = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


def _pairs(b=16, d=8, seed=0):
  rng = np.random.RandomState(seed)
  z1 = rng.randn(b, d).astype(np.float32)
  z2 = (z1 + 0.5 * rng.randn(b, d)).astype(np.float32)
  return z1, z2


def test_hand_case_two_orthogonal_pairs():
  # b = 2, views identical and orthogonal across examples: each anchor sees its positive at cos 1 and
  # two negatives at cos 0, so l = -1/t + log(e^{1/t} + 2).
  z = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  t = 0.5
  expected = -1 / t + np.log(np.exp(1 / t) + 2.0)
  np.testing.assert_allclose(losses.nt_xent(z, z, temperature=t), expected, rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_float64_reference(temperature):
  z1, z2 = _pairs()
  got = losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature=temperature)
  np.testing.assert_allclose(got, nt_xent_reference(z1, z2, temperature), rtol=1e-5)


def test_gradient_matches_finite_differences_of_reference():
  z1, z2 = _pairs(b=4, d=3, seed=1)
  g1, g2 = jax.grad(lambda a, b: losses.nt_xent(a, b, temperature=0.5), argnums=(0, 1))(z1, z2)
  n1 = numeric_grad(lambda a: nt_xent_reference(a, z2, 0.5), z1.astype(np.float64))
  n2 = numeric_grad(lambda b: nt_xent_reference(z1, b, 0.5), z2.astype(np.float64))
  np.testing.assert_allclose(g1, n1, atol=2e-5)
  np.testing.assert_allclose(g2, n2, atol=2e-5)


def test_jit_equals_eager_and_scale_invariance():
  z1, z2 = _pairs()
  eager = losses.nt_xent(z1, z2)
  jitted = jax.jit(lambda a, b: losses.nt_xent(a, b))(z1, z2)
  np.testing.assert_allclose(jitted, eager, rtol=1e-6)
  # Embeddings are normalised: scaling a row does not change the loss.
  np.testing.assert_allclose(losses.nt_xent(3.0 * z1, z2), eager, rtol=1e-5)


def test_bfloat16_inputs_accumulate_in_float32():
  z1, z2 = _pairs()
  got = losses.nt_xent(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, nt_xent_reference(z1, z2, 0.1), rtol=2e-2)


def test_shard_map_8_devices_equals_1_device(mesh8):
  z1, z2 = _pairs(b=32)
  fn = lambda a, b, axis_name=None: losses.nt_xent(a, b, temperature=0.2, axis_name=axis_name)
  v1, (g1a, g1b) = multidevice.single_value_and_grad(fn, z1, z2)
  v8, (g8a, g8b) = multidevice.shard_map_value_and_grad(fn, mesh8, z1, z2)
  np.testing.assert_allclose(v8, v1, rtol=1e-5)
  np.testing.assert_allclose(g8a, g1a, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(g8b, g1b, rtol=1e-5, atol=1e-7)
  # The value is the global-batch loss, not the mean of per-device losses over local negatives.
  local_only = np.mean([nt_xent_reference(z1[i:i + 4], z2[i:i + 4], 0.2) for i in range(0, 32, 4)])
  assert abs(float(v8) - local_only) > 1e-3


def test_param_gradients_shard_map_and_pmap_equal_1_device(mesh8):
  z1, z2 = _pairs(b=32, d=8)
  w = jnp.asarray(np.random.RandomState(3).randn(8, 6).astype(np.float32))
  fn = lambda a, b, axis_name=None: losses.nt_xent(a, b, temperature=0.2, axis_name=axis_name)
  v1, g1 = multidevice.single_param_grad(fn, w, z1, z2)
  vs, gs = multidevice.shard_map_param_grad(fn, mesh8, w, z1, z2)
  vp, gp = multidevice.pmap_param_grad(fn, w, z1, z2)
  for v, g in [(vs, gs), (vp, gp)]:
    np.testing.assert_allclose(v, v1, rtol=1e-5)
    np.testing.assert_allclose(g, g1, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("z1,z2,match", [
    (np.ones((4, 3)), np.ones((4, 2)), r"z1 and z2 must have the same shape; got \(4, 3\) and \(4, 2\)"),
    (np.ones((4,)), np.ones((4,)), r"z1 must have shape \[b, d\]; got shape \(4,\)"),
    (np.ones((4, 3), np.int32), np.ones((4, 3), np.int32), "z1 must be a floating array"),
])
def test_bad_inputs_name_the_argument(z1, z2, match):
  with pytest.raises(ValueError, match=match):
    losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2))


def test_nonpositive_temperature_is_refused():
  with pytest.raises(ValueError, match="temperature must be > 0; got 0.0"):
    losses.nt_xent(jnp.ones((2, 2)), jnp.ones((2, 2)), temperature=0.0)


def test_general_multidevice_helper_on_nt_xent(mesh8):
  z1, z2 = _pairs(b=32)
  fn = lambda a, b, axis_name=None: losses.nt_xent(a, b, temperature=0.2, axis_name=axis_name)
  v1, g1 = multidevice.assert_1_equals_8(fn, mesh8, (z1, z2))
  # Temperature as a replicated, differentiated argument.
  fn_t = lambda a, b, t, axis_name=None: losses.nt_xent(a, b, temperature=t, axis_name=axis_name)
  multidevice.assert_1_equals_8(fn_t, mesh8, (z1, z2), (jnp.float32(0.3),), argnums=(0, 1, 2))
  single, sm, pm = multidevice.run_1_and_8(lambda a, axis_name=None: a * 2, mesh8, (z1,),
                                           out_specs=multidevice.P("data"))
  np.testing.assert_allclose(sm, single)
  np.testing.assert_allclose(pm, single)
