"""Tests of rl.models.dense: PixPro's propagation weights and Pixel Propagation Module."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.models.dense import PixelPropagation
from rl.models.dense import propagation_weights


def _weights_reference(x, gamma):
  """Eq. 4 of PixPro, one pair at a time: max(cos, 0) ** gamma."""
  b, h, w, d = x.shape
  f = x.reshape(b, h * w, d).astype(np.float64)
  out = np.zeros((b, h * w, h * w))
  for n in range(b):
    for i in range(h * w):
      for j in range(h * w):
        cos = f[n, i] @ f[n, j] / (np.linalg.norm(f[n, i]) * np.linalg.norm(f[n, j]))
        out[n, i, j] = max(cos, 0.0) ** gamma
  return out


def test_propagation_weights_hand_case():
  # Pixels a = (1, 0), b = (1, 1), c = (-1, 0): cos(a, b) = 1/sqrt(2), cos(a, c) = -1 (clipped to 0),
  # cos(b, c) = -1/sqrt(2) (clipped). With gamma = 2: s(a, b) = 1/2; gamma = 1: 1/sqrt(2).
  x = jnp.array([[[[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]]])
  want2 = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(propagation_weights(x, gamma=2.0)[0], want2, atol=1e-6)
  want1 = np.array([[1.0, 2 ** -0.5, 0.0], [2 ** -0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(propagation_weights(x, gamma=1.0)[0], want1, atol=1e-6)


@pytest.mark.parametrize('gamma', [0.5, 2.0])
def test_propagation_weights_match_reference(gamma):
  x = np.random.RandomState(0).randn(2, 3, 2, 4).astype(np.float32)
  atol = 2e-6 if gamma >= 1 else 2e-3  # gamma < 1 adds 1e-6 before the power, as the official code
  np.testing.assert_allclose(propagation_weights(jnp.asarray(x), gamma=gamma), _weights_reference(x, gamma),
                             rtol=1e-5, atol=atol)


def test_identity_transform_hand_case():
  # num_layers = 0 and no value normalisation: y = S x. With a = (1, 0), b = (1, 1), c = (-1, 0) and the
  # weights above: y_a = a + b/2 = (1.5, 0.5), y_b = a/2 + b = (1.5, 1), y_c = c.
  x = jnp.array([[[[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]]])
  ppm = PixelPropagation(num_layers=0, normalize_values=False)
  variables = ppm.init(jax.random.key(0), x, train=False)
  assert not jax.tree.leaves(variables)
  y = ppm.apply(variables, x, train=False)
  np.testing.assert_allclose(y[0, 0], [[1.5, 0.5], [1.5, 1.0], [-1.0, 0.0]], atol=1e-6)
  # With normalised values b enters as b / sqrt(2): y_a = (1 + 1/(2 sqrt 2), 1/(2 sqrt 2)).
  y_n = PixelPropagation(num_layers=0).apply({}, x, train=False)
  r = 1 / (2 * np.sqrt(2))
  np.testing.assert_allclose(y_n[0, 0, 0], [1 + r, r], atol=1e-6)


def test_one_layer_is_linear_transform_then_propagation():
  x = jax.random.normal(jax.random.key(1), (2, 3, 3, 8))
  ppm = PixelPropagation()  # gamma 2, one linear layer: the paper's default
  variables = ppm.init(jax.random.key(0), x, train=False)
  kernel, bias = variables['params']['dense0']['kernel'], variables['params']['dense0']['bias']
  assert kernel.shape == (8, 8) and bias.shape == (8,)
  y = ppm.apply(variables, x, train=False)
  assert y.shape == (2, 3, 3, 8)
  g = np.asarray(x, np.float64).reshape(2, 9, 8) @ np.asarray(kernel, np.float64) + np.asarray(bias)
  g /= np.linalg.norm(g, axis=-1, keepdims=True)
  want = np.einsum('bij,bjd->bid', _weights_reference(np.asarray(x), 2.0), g).reshape(2, 3, 3, 8)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


def test_two_layers_have_batchnorm_and_jit_matches():
  x = jax.random.normal(jax.random.key(2), (4, 2, 3, 6))
  ppm = PixelPropagation(num_layers=2, hidden_dim=5)
  variables = ppm.init(jax.random.key(0), x, train=False)
  assert set(variables['params']) == {'dense0', 'bn0', 'dense1'}
  assert variables['params']['dense0']['kernel'].shape == (6, 5)
  assert variables['params']['dense1']['kernel'].shape == (5, 6)
  y, updates = ppm.apply(variables, x, train=True, mutable=['batch_stats'])
  assert y.shape == x.shape
  assert not np.allclose(updates['batch_stats']['bn0']['mean'], variables['batch_stats']['bn0']['mean'])
  jitted = jax.jit(lambda v, x: ppm.apply(v, x, train=False))
  np.testing.assert_allclose(jitted(variables, x), ppm.apply(variables, x, train=False), rtol=1e-5, atol=1e-6)


def test_gradients_are_finite_for_small_gamma_and_bfloat16_runs():
  x = jax.random.normal(jax.random.key(3), (2, 2, 2, 4))
  ppm = PixelPropagation(gamma=0.5)
  variables = ppm.init(jax.random.key(0), x, train=False)
  grads = jax.grad(lambda v, x: jnp.sum(ppm.apply(v, x, train=False) ** 2), argnums=(0, 1))(variables, x)
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  y16 = PixelPropagation(dtype=jnp.bfloat16).apply(variables, x.astype(jnp.bfloat16), train=False)
  assert y16.dtype == jnp.float32 and y16.shape == x.shape
  np.testing.assert_allclose(y16, PixelPropagation().apply(variables, x, train=False), rtol=5e-2, atol=5e-2)


def test_bad_inputs():
  with pytest.raises(ValueError, match=r'x must have shape \[b, h, w, d\]'):
    PixelPropagation().init(jax.random.key(0), jnp.ones((2, 8)), train=False)
  with pytest.raises(ValueError, match='num_layers must be >= 0'):
    PixelPropagation(num_layers=-1).init(jax.random.key(0), jnp.ones((1, 2, 2, 3)), train=False)
  with pytest.raises(ValueError, match='gamma must be > 0'):
    propagation_weights(jnp.ones((1, 2, 2, 3)), gamma=0.0)
