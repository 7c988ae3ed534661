"""soft_nearest_neighbor and snn_annealing_schedule: hand cases, float64 NumPy reference, gradients (features and
temperature), jit, 1 device == 8."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import neighbors as L
from tests import multidevice


def snn_reference(x, labels, temperature, distance="squared_euclidean"):
  """Frosst et al. eq. 1, anchor by anchor; anchors alone in their class are left out of the mean."""
  x = np.asarray(x, np.float64)
  labels = np.asarray(labels)
  n = len(x)

  def dist(i, j):
    if distance == "cosine":
      return 1.0 - x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
    return float(np.sum((x[i] - x[j]) ** 2))

  terms = []
  for i in range(n):
    same = [j for j in range(n) if j != i and labels[j] == labels[i]]
    if not same:
      continue
    num = sum(math.exp(-dist(i, j) / temperature) for j in same)
    den = sum(math.exp(-dist(i, k) / temperature) for k in range(n) if k != i)
    terms.append(-math.log(num / den))
  return float(np.mean(terms)) if terms else 0.0


def make_inputs(b=16, d=4, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((b, d)).astype(np.float32)
  labels = rng.integers(0, 3, b).astype(np.int32)
  labels[-1] = 7  # a singleton class: that anchor is excluded
  return x, labels


def test_hand_case():
  # x = 0, 1, 3 (1-D), labels 0, 0, 1, T = 1. Anchor 0: same-class d = 1, all d = 1 and 9:
  # l0 = -log(e^-1 / (e^-1 + e^-9)) = log(1 + e^-8). Anchor 1: same d = 1, others 1 and 4: l1 = log(1 + e^-3).
  # Anchor 2 has no same-class neighbour and is excluded: L = (l0 + l1) / 2.
  x = jnp.array([[0.0], [1.0], [3.0]])
  got = L.soft_nearest_neighbor(x, jnp.array([0, 0, 1]), temperature=1.0)
  np.testing.assert_allclose(float(got), (math.log1p(math.exp(-8)) + math.log1p(math.exp(-3))) / 2, rtol=1e-6)


@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
def test_matches_reference(distance):
  x, labels = make_inputs()
  got = L.soft_nearest_neighbor(x, labels, temperature=2.5, distance=distance)
  np.testing.assert_allclose(float(got), snn_reference(x, labels, 2.5, distance), rtol=1e-5)


def test_no_valid_anchor_gives_zero_and_finite_gradient():
  x = jnp.asarray(make_inputs(b=4)[0])
  labels = jnp.arange(4, dtype=jnp.int32)  # every class is a singleton
  value, grad = jax.value_and_grad(L.soft_nearest_neighbor)(x, labels)
  assert float(value) == 0.0
  np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_gradients_in_features_and_temperature_float64():
  x, labels = make_inputs(b=8)
  with jax.enable_x64(True):
    x64 = jnp.asarray(x, jnp.float64)
    f = jax.jit(lambda x, t: L.soft_nearest_neighbor(x, labels, temperature=t))
    check_grads(f, (x64, jnp.asarray(1.7, jnp.float64)), order=1, modes=["rev"])
    check_grads(jax.jit(lambda x: L.soft_nearest_neighbor(x, labels, temperature=0.9, distance="cosine")),
                (x64,), order=1, modes=["rev"])
  # dL/dT against central differences of the float64 reference.
  eps = 1e-5
  want = (snn_reference(x, labels, 1.7 + eps) - snn_reference(x, labels, 1.7 - eps)) / (2 * eps)
  got = jax.grad(lambda t: L.soft_nearest_neighbor(x, labels, temperature=t))(1.7)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_jit_with_traced_temperature_and_bfloat16():
  x, labels = make_inputs()
  eager = L.soft_nearest_neighbor(x, labels, temperature=2.0)
  jitted = jax.jit(lambda x, t: L.soft_nearest_neighbor(x, labels, temperature=t))(x, jnp.float32(2.0))
  np.testing.assert_allclose(float(jitted), float(eager), rtol=1e-6)
  bf = L.soft_nearest_neighbor(jnp.asarray(x, jnp.bfloat16), labels, temperature=2.0)
  assert bf.dtype == jnp.float32
  np.testing.assert_allclose(float(bf), float(eager), rtol=3e-2)


def test_1_equals_8_with_replicated_temperature(mesh8):
  x, labels = make_inputs(b=32, seed=1)
  labels[3] = 9  # singletons on two different devices
  loss = lambda x, labels, t, axis_name=None: L.soft_nearest_neighbor(x, labels, temperature=t, axis_name=axis_name)
  value, (gx, gt) = multidevice.assert_1_equals_8(loss, mesh8, sharded=(x, labels), replicated=(jnp.float32(1.5),),
                                                  argnums=(0, 2))
  np.testing.assert_allclose(float(value), snn_reference(x, labels, 1.5), rtol=1e-5)
  assert float(gt) != 0.0
  # Candidates come from the whole batch: the mean of per-device losses is another number.
  local = np.mean([float(L.soft_nearest_neighbor(x[i:i + 4], labels[i:i + 4], temperature=1.5))
                   for i in range(0, 32, 4)])
  assert abs(local - float(value)) > 1e-3


def test_bad_inputs():
  x, labels = make_inputs(b=4)
  with pytest.raises(ValueError, match=r"labels must have shape \[4\]"):
    L.soft_nearest_neighbor(x, labels[:3])
  with pytest.raises(ValueError, match="labels must be an integer array"):
    L.soft_nearest_neighbor(x, labels.astype(np.float32))
  with pytest.raises(ValueError, match=r"x must have shape \[b, d\]"):
    L.soft_nearest_neighbor(x[0], labels)
  with pytest.raises(ValueError, match="temperature must be > 0"):
    L.soft_nearest_neighbor(x, labels, temperature=0.0)
  with pytest.raises(ValueError, match="distance must be one of"):
    L.soft_nearest_neighbor(x, labels, distance="l1")


def test_annealing_schedule():
  # T(t) = T0 / (1 + t)^gamma: T(0) = 1, T(3) = 4^-0.55, T(1) with T0 = 2, gamma = 1: 2 / 2 = 1.
  assert float(L.snn_annealing_schedule(0)) == 1.0
  np.testing.assert_allclose(float(L.snn_annealing_schedule(3)), 4.0 ** -0.55, rtol=1e-6)
  np.testing.assert_allclose(float(L.snn_annealing_schedule(1, initial_temperature=2.0, gamma=1.0)), 1.0)
  steps = jnp.arange(5)
  np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(L.snn_annealing_schedule))(steps)),
                             (1.0 + np.arange(5)) ** -0.55, rtol=1e-6)
  with pytest.raises(ValueError, match="step must be >= 0"):
    L.snn_annealing_schedule(-1)
  with pytest.raises(ValueError, match="initial_temperature must be > 0"):
    L.snn_annealing_schedule(1, initial_temperature=0.0)
  with pytest.raises(ValueError, match="gamma must be in"):
    L.snn_annealing_schedule(1, gamma=-0.5)
