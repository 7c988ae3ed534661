"""rasa_remove_position, rasa_position_loss (Franca's RASA): hand cases, float64 NumPy references, gradients,
jit, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import positional as R
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References written from the released RASA code and README, float64 NumPy.
# ------------------------------------------------------------------------------------------------------------

def remove_reference(z, weights):
  """README: Z <- Z - <Z, u_r> u_r - <Z, u_c> u_c with u_r = w_r / |w_r|, u_c the normalised part of
  w_c / |w_c| orthogonal to u_r (Gram-Schmidt); a 1-row weight removes Z's component along w. Heads in order."""
  z = np.asarray(z, np.float64)
  for w in weights:
    w = np.asarray(w, np.float64)
    if len(w) == 1:
      z = z - np.outer(z.reshape(-1, z.shape[-1]) @ w[0], w[0]).reshape(z.shape) / (w[0] @ w[0])
      continue
    u_r = w[0] / np.linalg.norm(w[0])
    v = w[1] / np.linalg.norm(w[1])
    u_c = v - (v @ u_r) * u_r
    u_c = u_c / np.linalg.norm(u_c)
    z = z - (z @ u_r)[..., None] * u_r - (z @ u_c)[..., None] * u_c
  return z


def position_loss_reference(z, w, grid, pre=(), activation="sigmoid"):
  """RASA.training_step: MSE between act(W z_p) and patch p's (row / (h - 1), col / (w - 1)), p = row * w + col
  (or i / (n - 1) on a 1-D grid), over every output of every patch of every image."""
  z = remove_reference(z, pre)
  w = np.asarray(w, np.float64)
  act = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh, None: lambda v: v}[activation]
  errors = []
  for b in range(z.shape[0]):
    for p in range(z.shape[1]):
      if len(grid) == 2:
        row, col = divmod(p, grid[1])
        target = np.array([row / (grid[0] - 1), col / (grid[1] - 1)])
      else:
        target = np.array([p / (grid[0] - 1)])
      errors.extend((act(w @ z[b, p]) - target) ** 2)
  return np.mean(errors)



def _tokens(b=4, n=6, d=5, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, n, d).astype(np.float32), rng.randn(2, d).astype(np.float32), rng.randn(2, d).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# rasa_remove_position
# ------------------------------------------------------------------------------------------------------------

def test_remove_hand_case_and_the_head_reads_zero():
  z = jnp.array([[3.0, 4.0, 5.0]])
  # Rows (1, 0, 0) and (1, 1, 0) span the x-y plane (not orthogonal: Gram-Schmidt is needed).
  np.testing.assert_allclose(R.rasa_remove_position(z, jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])),
                             [[0.0, 0.0, 5.0]], atol=1e-6)
  debiased, positional = R.rasa_remove_position(z, jnp.array([[0.0, 2.0, 0.0]]), return_positional=True)
  np.testing.assert_allclose(debiased, [[3.0, 0.0, 5.0]], atol=1e-6)
  np.testing.assert_allclose(positional, [[0.0, 4.0, 0.0]], atol=1e-6)
  x, w, _ = _tokens()
  out = np.asarray(R.rasa_remove_position(x, w))
  np.testing.assert_allclose(out @ w.T, 0.0, atol=1e-5)  # no position left for this head to read
  # Directions orthogonal to the head's plane are untouched.
  q = np.linalg.svd(w)[2][2:]  # an orthonormal basis of the complement of the plane
  np.testing.assert_allclose(out @ q.T, x @ q.T, atol=1e-5)


def test_remove_matches_float64_reference_several_heads():
  x, w1, w2 = _tokens(seed=1)
  w3 = np.random.RandomState(2).randn(1, 5).astype(np.float32)
  got = R.rasa_remove_position(x, [w1, w2, w3])
  np.testing.assert_allclose(got, remove_reference(x, [w1, w2, w3]), rtol=1e-5, atol=1e-5)
  d, pos = R.rasa_remove_position(x, [w1, w2], return_positional=True)
  after_first = remove_reference(x, [w1])
  np.testing.assert_allclose(pos, after_first - remove_reference(x, [w1, w2]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda a: R.rasa_remove_position(a, [w1, w2, w3]))(x), got, rtol=1e-6,
                             atol=1e-6)


def test_remove_gradients_match_finite_differences():
  x, w1, w2 = (a.astype(np.float64) for a in _tokens(b=2, n=2, d=4, seed=3))
  up = np.random.RandomState(4).randn(*x.shape)
  loss = lambda a, u, v: jnp.sum(jnp.asarray(up) * R.rasa_remove_position(a, [u, v]) ** 2)
  with jax.enable_x64(True):
    gx, g1, g2 = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), jnp.asarray(w1), jnp.asarray(w2))
  ref = lambda a, u, v: np.sum(up * remove_reference(a, [u, v]) ** 2)
  np.testing.assert_allclose(gx, numeric_grad(lambda a: ref(a, w1, w2), x), rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(g1, numeric_grad(lambda u: ref(x, u, w2), w1), rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(g2, numeric_grad(lambda v: ref(x, w1, v), w2), rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------------------------------------------
# rasa_position_loss
# ------------------------------------------------------------------------------------------------------------

def test_position_loss_hand_cases():
  # Featureless patches: sigmoid(0) = 0.5 against coordinates 0 or 1 on a 2 x 2 grid: 0.25.
  np.testing.assert_allclose(R.rasa_position_loss(jnp.zeros((1, 4, 3)), jnp.zeros((2, 3))), 0.25, rtol=1e-6)
  # Features that are the coordinates (row / 1, col / 2 on a 2 x 3 grid) and an identity head: no error.
  rows, cols = np.meshgrid(np.arange(2) / 1, np.arange(3) / 2, indexing="ij")
  z = np.stack([rows.ravel(), cols.ravel(), np.full(6, 7.0)], axis=-1)[None]
  head = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  np.testing.assert_allclose(R.rasa_position_loss(z, head, grid_shape=(2, 3), activation=None), 0.0, atol=1e-7)
  # The same with rows and columns swapped in the head: the order of the targets matters.
  assert float(R.rasa_position_loss(z, head[::-1], grid_shape=(2, 3), activation=None)) > 0.1


@pytest.mark.parametrize("grid,activation", [((2, 3), "sigmoid"), (None, "tanh"), ((3, 2), None)])
def test_position_loss_matches_float64_reference_and_jit(grid, activation):
  x, w, pre = _tokens(n=6 if grid else 9)
  got = R.rasa_position_loss(x, w, grid_shape=grid, pre_weights=[pre], activation=activation)
  np.testing.assert_allclose(got, position_loss_reference(x, w, grid or (3, 3), [pre], activation), rtol=1e-5)
  jitted = jax.jit(lambda a, b: R.rasa_position_loss(a, b, grid_shape=grid, pre_weights=[pre],
                                                     activation=activation))(x, w)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)
  low = R.rasa_position_loss(jnp.asarray(x, jnp.bfloat16), w, grid_shape=grid, pre_weights=[pre],
                             activation=activation)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, got, rtol=3e-2)


def test_position_loss_one_dimensional_grid():
  x = np.random.RandomState(5).randn(3, 5, 4).astype(np.float32)
  w = np.random.RandomState(6).randn(1, 4).astype(np.float32)
  got = R.rasa_position_loss(x, w, grid_shape=(5,))
  np.testing.assert_allclose(got, position_loss_reference(x, w, (5,)), rtol=1e-5)


def test_position_loss_gradients_match_finite_differences_and_earlier_heads_are_frozen():
  x, w, pre = (a.astype(np.float64) for a in _tokens(b=2, n=4, d=3, seed=7))
  with jax.enable_x64(True):
    gx, gw, gp = jax.grad(lambda a, b, c: R.rasa_position_loss(a, b, pre_weights=[c]), argnums=(0, 1, 2))(
        jnp.asarray(x), jnp.asarray(w), jnp.asarray(pre))
  np.testing.assert_allclose(gw, numeric_grad(lambda b: position_loss_reference(x, b, (2, 2), [pre]), w),
                             rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(gx, numeric_grad(lambda a: position_loss_reference(a, w, (2, 2), [pre]), x),
                             rtol=1e-5, atol=1e-9)
  assert np.abs(gw).max() > 1e-3 and not np.any(gp)


def test_position_loss_1_equals_8(mesh8):
  x, w, pre = _tokens(b=16, n=4, d=5, seed=8)
  fn = lambda a, b, c, axis_name=None: R.rasa_position_loss(a, b, pre_weights=[c], axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(x,), replicated=(w, pre), argnums=(0, 1))
  np.testing.assert_allclose(value, position_loss_reference(x, w, (2, 2), [pre]), rtol=1e-5)


def test_rasa_bad_inputs():
  x, w, pre = _tokens()
  with pytest.raises(ValueError, match=r"n = 6 patches, not a square grid; pass grid_shape"):
    R.rasa_position_loss(x, w)
  with pytest.raises(ValueError, match=r"grid_shape=\(2, 2\) must hold the n = 6 patches"):
    R.rasa_position_loss(x, w, grid_shape=(2, 2))
  with pytest.raises(ValueError, match=r"grid_shape must have 2 entries >= 2.*got \(6,\)"):
    R.rasa_position_loss(x, w, grid_shape=(6,))
  with pytest.raises(ValueError, match=r"weight must have shape \[r, 5\].*got shape \(2, 4\)"):
    R.rasa_position_loss(x, w[:, :4], grid_shape=(2, 3))
  with pytest.raises(ValueError, match=r"pre_weights\[0\] must have shape \[r, 5\].*got shape \(2, 3\)"):
    R.rasa_position_loss(x, w, grid_shape=(2, 3), pre_weights=[pre[:, :3]])
  with pytest.raises(ValueError, match=r"patch_features must have shape \[b, n, d\]; got shape \(6, 5\)"):
    R.rasa_position_loss(x[0], w)
  with pytest.raises(ValueError, match=r'activation must be "sigmoid", "tanh" or None; got \'relu\''):
    R.rasa_position_loss(x, w, grid_shape=(2, 3), activation="relu")
  with pytest.raises(ValueError, match=r"weights\[1\] must have shape \[r, 5\].*got shape \(6, 5\)"):
    R.rasa_remove_position(x, [w, np.zeros((6, 5), np.float32)])
  with pytest.raises(ValueError, match=r"weights must be an \[r, 5\] array or a list of them; got int"):
    R.rasa_remove_position(x, 3)
