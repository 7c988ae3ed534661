"""clip and siglip: hand cases, float64 NumPy references, gradients, jit, 1 device == 8 devices."""
import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import image_text as L
from tests import multidevice


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _lse(values):
  v = np.asarray(values, np.float64)
  m = v.max()
  return m + np.log(np.exp(v - m).sum())


def clip_reference(x, y, scale):
  """CLIP (Radford et al., Figure 3) in float64: mean of the row and column cross-entropies."""
  s = scale * _unit(x) @ _unit(y).T
  n = len(s)
  rows = np.mean([_lse(s[i, :]) - s[i, i] for i in range(n)])
  cols = np.mean([_lse(s[:, j]) - s[j, j] for j in range(n)])
  return (rows + cols) / 2


def siglip_reference(x, y, scale, bias):
  """SigLIP (Zhai et al., Algorithm 1) in float64: -sum_ij log sigmoid(z_ij s_ij) / n."""
  s = scale * _unit(x) @ _unit(y).T + bias
  n = len(s)
  total = 0.0
  for i in range(n):
    for j in range(n):
      z = 1.0 if i == j else -1.0
      total += np.log1p(np.exp(-z * s[i, j]))  # -log sigmoid(z s)
  return total / n


def _pairs(b=16, d=8, seed=0):
  rng = np.random.RandomState(seed)
  x = rng.randn(b, d).astype(np.float32)
  return x, (x + 0.7 * rng.randn(b, d)).astype(np.float32)


# clip -----------------------------------------------------------------------------------------------------------

def test_clip_hand_case():
  # x = y = I_2 with scale s: every row and column has its match at logit s and one mismatch at 0, so both
  # cross-entropies are log(e^s + 1) - s.
  z = jnp.eye(2)
  np.testing.assert_allclose(L.clip(z, z, logit_scale=3.0), np.log(np.exp(3.0) + 1) - 3.0, rtol=1e-6)


def test_clip_is_symmetric_but_not_row_only():
  # Rows and columns differ for a non-symmetric similarity matrix; the loss averages both, so swapping the
  # modalities leaves it unchanged while the row-only cross-entropy changes.
  x, y = _pairs(seed=1)
  np.testing.assert_allclose(L.clip(x, y, logit_scale=5.0), L.clip(y, x, logit_scale=5.0), rtol=1e-6)
  s = 5.0 * _unit(x) @ _unit(y).T
  row_only = np.mean([_lse(s[i]) - s[i, i] for i in range(len(s))])
  assert abs(float(L.clip(x, y, logit_scale=5.0)) - row_only) > 1e-3


@pytest.mark.parametrize("scale", [1.0, 1 / 0.07])
def test_clip_matches_reference_and_jit(scale):
  x, y = _pairs(seed=2)
  got = L.clip(x, y, logit_scale=scale)
  np.testing.assert_allclose(got, clip_reference(x, y, scale), rtol=1e-5)
  jitted = jax.jit(lambda a, b, s: L.clip(a, b, logit_scale=s))(x, y, scale)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_clip_gradients_float64_including_scale():
  x, y = _pairs(b=4, d=3, seed=3)
  with jax.enable_x64(True):
    f = jax.jit(lambda a, b, s: L.clip(a, b, logit_scale=s))
    check_grads(f, (jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), jnp.float64(2.5)),
                order=1, modes=["rev"])


def test_clip_8_devices_with_learnable_scale(mesh8):
  x, y = _pairs(b=32, seed=4)
  fn = lambda a, b, s, axis_name=None: L.clip(a, b, logit_scale=s, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (x, y), (jnp.float32(10.0),), argnums=(0, 1, 2))
  local_only = np.mean([clip_reference(x[i:i + 4], y[i:i + 4], 10.0) for i in range(0, 32, 4)])
  assert abs(float(v1) - local_only) > 1e-3


def test_clip_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"x and y must have the same shape; got \(4, 3\) and \(5, 3\)"):
    L.clip(jnp.ones((4, 3)), jnp.ones((5, 3)), logit_scale=1.0)
  with pytest.raises(ValueError, match="logit_scale must be > 0; got -1.0"):
    L.clip(jnp.ones((4, 3)), jnp.ones((4, 3)), logit_scale=-1.0)
  x, y = _pairs(seed=5)
  got = L.clip(jnp.asarray(x, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16), logit_scale=10.0)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, clip_reference(x, y, 10.0), rtol=2e-2)


# siglip ---------------------------------------------------------------------------------------------------------

def test_siglip_hand_case():
  # x = y = I_2, t = 1, b = 0: two positives with logit 1 give -log sigmoid(1) = log(1 + e^-1) each; two
  # negatives with logit 0 give -log sigmoid(0) = log 2 each. Divided by n = 2: log(1 + e^-1) + log 2.
  z = jnp.eye(2)
  np.testing.assert_allclose(L.siglip(z, z, logit_scale=1.0, logit_bias=0.0),
                             np.log1p(np.exp(-1.0)) + np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("scale,bias", [(10.0, -10.0), (2.0, 0.5)])
def test_siglip_matches_reference_and_jit(scale, bias):
  x, y = _pairs(seed=6)
  got = L.siglip(x, y, logit_scale=scale, logit_bias=bias)
  np.testing.assert_allclose(got, siglip_reference(x, y, scale, bias), rtol=1e-5)
  jitted = jax.jit(lambda a, b, s, c: L.siglip(a, b, logit_scale=s, logit_bias=c))(x, y, scale, bias)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_siglip_gradients_float64_including_scale_and_bias():
  x, y = _pairs(b=4, d=3, seed=7)
  with jax.enable_x64(True):
    f = jax.jit(lambda a, b, s, c: L.siglip(a, b, logit_scale=s, logit_bias=c))
    check_grads(f, (jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), jnp.float64(3.0),
                    jnp.float64(-2.0)), order=1, modes=["rev"])


def test_siglip_8_devices_with_learnable_scale_and_bias(mesh8):
  x, y = _pairs(b=32, seed=8)
  fn = lambda a, b, s, c, axis_name=None: L.siglip(a, b, logit_scale=s, logit_bias=c, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (x, y), (jnp.float32(10.0), jnp.float32(-10.0)),
                                        argnums=(0, 1, 2, 3))
  # Normalised by the GLOBAL batch and summed over all B^2 pairs: not the mean of per-device losses.
  local_only = np.mean([siglip_reference(x[i:i + 4], y[i:i + 4], 10.0, -10.0) for i in range(0, 32, 4)])
  assert abs(float(v1) - local_only) > 1e-3


def test_siglip_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"x must have shape \[b, d\]; got shape \(2, 3, 4\)"):
    L.siglip(jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4)), logit_scale=1.0, logit_bias=0.0)
  with pytest.raises(ValueError, match="y must be a floating array"):
    L.siglip(jnp.ones((2, 3)), jnp.ones((2, 3), jnp.int32), logit_scale=1.0, logit_bias=0.0)
  x, y = _pairs(seed=9)
  got = L.siglip(jnp.asarray(x, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16), logit_scale=10.0, logit_bias=-10.0)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, siglip_reference(x, y, 10.0, -10.0), rtol=2e-2)
