"""nt_xent, info_nce, dcl, supcon, supcon_simclr, contrastive_unsupervised_loss: hand cases, float64 NumPy references, gradients, jit,
1 device == 8 devices."""
import math

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl import losses
from rl.losses import contrastive as C
from tests import multidevice
from tests.losses import numeric_grad


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


# ---------------------------------------------------------------------------------------------------------------
# info_nce, dcl, supcon, supcon_simclr
# ---------------------------------------------------------------------------------------------------------------

def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _lse(values):
  v = np.asarray(values, np.float64)
  m = v.max()
  return m + np.log(np.exp(v - m).sum())


def info_nce_reference(q, k, t, negatives=None):
  """CPC's InfoNCE (eq. 4) in float64: key i is the positive of query i among all keys and the queue."""
  u, v = _unit(q), _unit(k)
  w = _unit(negatives) if negatives is not None else np.zeros((0, u.shape[1]))
  total = 0.0
  for i in range(len(u)):
    scores = [u[i] @ v[j] / t for j in range(len(v))] + [u[i] @ w[j] / t for j in range(len(w))]
    total += -(u[i] @ v[i]) / t + _lse(scores)
  return total / len(u)


def dcl_reference(z1, z2, t, weighted=False, sigma=0.5):
  """DCL (Yeh et al. eq. 6) in float64; DCLW weight w = 2 - exp(s_i/sigma) / mean_j exp(s_j/sigma)."""
  u = _unit(np.concatenate([z1, z2]))
  n = len(u)
  b = n // 2
  s = np.array([u[i] @ u[i + b] for i in range(b)])
  w = 2.0 - np.exp(s / sigma) / np.mean(np.exp(s / sigma)) if weighted else np.ones(b)
  total = 0.0
  for i in range(n):
    p = (i + b) % n
    negs = [u[i] @ u[k] / t for k in range(n) if k not in (i, p)]
    total += -w[i % b] * (u[i] @ u[p]) / t + _lse(negs)
  return total / n


def supcon_reference(z, labels, t, base_temperature=None):
  """SupCon L^sup_out (Khosla et al. eq. 2) in float64, one anchor at a time."""
  b, views, d = z.shape
  u = _unit(np.asarray(z).reshape(b * views, d))
  lab = np.repeat(np.asarray(labels), views)
  n = len(u)
  total = 0.0
  for i in range(n):
    others = [a for a in range(n) if a != i]
    log_den = _lse([u[i] @ u[a] / t for a in others])
    positives = [p for p in others if lab[p] == lab[i]]
    total += -sum(u[i] @ u[p] / t - log_den for p in positives) / len(positives)
  scale = 1.0 if base_temperature is None else t / base_temperature
  return scale * total / n


def _views(b=16, v=2, d=8, seed=0):
  rng = np.random.RandomState(seed)
  base = rng.randn(b, 1, d)
  return (base + 0.6 * rng.randn(b, v, d)).astype(np.float32), rng.randint(0, 3, size=b).astype(np.int32)


# info_nce -------------------------------------------------------------------------------------------------------

def test_info_nce_hand_case_with_queue():
  # q = k = I_2, t = 0.5: each query sees its key at cos 1 (logit 2) and the other key at cos 0 (logit 0), so
  # l = -2 + log(e^2 + 1). A queue row (-1, 0) adds e^{-2} for query 0 (cos -1) and e^0 for query 1 (cos 0).
  z = jnp.eye(2)
  np.testing.assert_allclose(C.info_nce(z, z, temperature=0.5), -2 + np.log(np.exp(2) + 1), rtol=1e-6)
  queue = jnp.array([[-3.0, 0.0]])  # normalised inside
  expected = (-2 + np.log(np.exp(2) + 1 + np.exp(-2)) - 2 + np.log(np.exp(2) + 2)) / 2
  np.testing.assert_allclose(C.info_nce(z, z, temperature=0.5, negatives=queue), expected, rtol=1e-6)


@pytest.mark.parametrize("with_queue", [False, True])
def test_info_nce_matches_reference_and_jit(with_queue):
  q, k = _pairs(b=16, d=8, seed=4)
  negs = np.random.RandomState(5).randn(24, 8).astype(np.float32) if with_queue else None
  got = C.info_nce(q, k, temperature=0.2, negatives=negs)
  np.testing.assert_allclose(got, info_nce_reference(q, k, 0.2, negs), rtol=1e-5)
  jitted = jax.jit(lambda a, b, n: C.info_nce(a, b, temperature=0.2, negatives=n))(q, k, negs)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_info_nce_gradients_float64():
  q, k = _pairs(b=4, d=3, seed=6)
  negs = np.random.RandomState(7).randn(5, 3)
  with jax.enable_x64(True):
    f = lambda a, b, n: C.info_nce(a, b, temperature=0.3, negatives=n)
    args = tuple(jnp.asarray(x, jnp.float64) for x in (q, k, negs))
    check_grads(jax.jit(f), args, order=1, modes=["rev"])


def test_info_nce_8_devices_with_replicated_queue(mesh8):
  q, k = _pairs(b=32, d=8, seed=8)
  negs = np.random.RandomState(9).randn(16, 8).astype(np.float32)
  fn = lambda a, b, n, axis_name=None: C.info_nce(a, b, temperature=0.2, negatives=n, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (q, k), (negs,), argnums=(0, 1, 2))
  local_only = np.mean([info_nce_reference(q[i:i + 4], k[i:i + 4], 0.2, negs) for i in range(0, 32, 4)])
  assert abs(float(v1) - local_only) > 1e-3  # negatives come from the global batch


def test_info_nce_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"query and key must have the same shape; got \(4, 3\) and \(4, 2\)"):
    C.info_nce(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match=r"negatives must have shape \[n, 3\].*got shape \(5, 2\)"):
    C.info_nce(jnp.ones((4, 3)), jnp.ones((4, 3)), negatives=jnp.ones((5, 2)))
  q, k = _pairs()
  got = C.info_nce(jnp.asarray(q, jnp.bfloat16), jnp.asarray(k, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, info_nce_reference(q, k, 0.1), rtol=2e-2)


# dcl ------------------------------------------------------------------------------------------------------------

def test_dcl_hand_cases():
  # z1 = z2 = I_2, t = 0.5: the positive (logit 2) leaves the denominator, which keeps the two views of the
  # other example at cos 0: l = -2 + log(2) for all four anchors.
  z = jnp.eye(2)
  np.testing.assert_allclose(C.dcl(z, z, temperature=0.5), -2 + np.log(2.0), rtol=1e-6)
  # DCLW with positive cosines s = (1, 0), sigma = 0.5: w_1 = 2 - 2 e^2 / (e^2 + 1), so 1 - w_1 = tanh(1), and
  # the pair with s = 0 contributes nothing to the positive term. DCLW - DCL = (1/2B) * 2 * (1 - w_1) * s_1 / t
  # = tanh(1) / (2 t) with B = 2.
  z1, z2 = jnp.eye(2), jnp.array([[1.0, 0.0], [1.0, 0.0]])
  diff = C.dcl(z1, z2, temperature=0.5, weighted=True) - C.dcl(z1, z2, temperature=0.5)
  np.testing.assert_allclose(diff, np.tanh(1.0) / (2 * 0.5), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_dcl_matches_reference_and_jit(weighted):
  z1, z2 = _pairs(b=16, d=8, seed=10)
  got = C.dcl(z1, z2, temperature=0.2, weighted=weighted, sigma=0.5)
  np.testing.assert_allclose(got, dcl_reference(z1, z2, 0.2, weighted, 0.5), rtol=1e-5)
  jitted = jax.jit(lambda a, b: C.dcl(a, b, temperature=0.2, weighted=weighted))(z1, z2)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_dcl_gradients_float64_including_the_weight():
  z1, z2 = _pairs(b=4, d=3, seed=11)
  with jax.enable_x64(True):
    f = lambda a, b: C.dcl(a, b, temperature=0.3, weighted=True, sigma=0.5)
    check_grads(jax.jit(f), (jnp.asarray(z1, jnp.float64), jnp.asarray(z2, jnp.float64)), order=1, modes=["rev"])


def test_dclw_8_devices_equals_1_device(mesh8):
  z1, z2 = _pairs(b=32, d=8, seed=12)
  fn = lambda a, b, axis_name=None: C.dcl(a, b, temperature=0.2, weighted=True, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (z1, z2))
  # The DCLW weights are normalised over the global batch, not per device.
  local_only = np.mean([dcl_reference(z1[i:i + 4], z2[i:i + 4], 0.2, True) for i in range(0, 32, 4)])
  assert abs(float(v1) - local_only) > 1e-3


def test_dcl_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"z1 must have shape \[b, d\]; got shape \(4,\)"):
    C.dcl(jnp.ones(4), jnp.ones(4))
  with pytest.raises(ValueError, match="sigma must be > 0; got 0.0"):
    C.dcl(jnp.ones((2, 2)), jnp.ones((2, 2)), weighted=True, sigma=0.0)
  z1, z2 = _pairs()
  got = C.dcl(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16), weighted=True)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, dcl_reference(z1, z2, 0.1, True), rtol=2e-2)


# supcon and supcon_simclr ---------------------------------------------------------------------------------------

def test_supcon_hand_cases():
  # Example 0 has two views at e1, example 1 two views at e2, t = 0.5. Each anchor's denominator holds one view
  # at cos 1 and two at cos 0: log(e^2 + 2). Distinct labels: one positive (logit 2), l = log(e^2 + 2) - 2.
  # One shared label: three positives with logits 2, 0, 0, l = log(e^2 + 2) - 2/3.
  z = jnp.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])  # [b=2, views=2, d=2]
  lse = np.log(np.exp(2) + 2)
  np.testing.assert_allclose(C.supcon(z, jnp.array([0, 1]), temperature=0.5), lse - 2, rtol=1e-6)
  np.testing.assert_allclose(C.supcon(z, jnp.array([7, 7]), temperature=0.5), lse - 2 / 3, rtol=1e-6)
  # base_temperature scales by t / t_b.
  np.testing.assert_allclose(C.supcon(z, jnp.array([0, 1]), temperature=0.5, base_temperature=0.25),
                             2 * (lse - 2), rtol=1e-6)


@pytest.mark.parametrize("views", [2, 3])
def test_supcon_matches_reference_and_jit(views):
  z, y = _views(b=12, v=views, seed=13)
  got = C.supcon(z, y, temperature=0.2, base_temperature=0.07)
  np.testing.assert_allclose(got, supcon_reference(z, y, 0.2, 0.07), rtol=1e-5)
  jitted = jax.jit(lambda a, b: C.supcon(a, b, temperature=0.2, base_temperature=0.07))(z, y)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_supcon_gradients_float64():
  z, y = _views(b=4, v=2, d=3, seed=14)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a: C.supcon(a, jnp.asarray(y), temperature=0.3)), (jnp.asarray(z, jnp.float64),),
                order=1, modes=["rev"])


def test_supcon_8_devices_equals_1_device(mesh8):
  z, y = _views(b=32, v=2, seed=15)
  fn = lambda a, lab, axis_name=None: C.supcon(a, lab, temperature=0.2, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (z, y), argnums=(0,))
  local_only = np.mean([supcon_reference(z[i:i + 4], y[i:i + 4], 0.2) for i in range(0, 32, 4)])
  assert abs(float(v1) - local_only) > 1e-3  # positives and negatives come from every device


def test_supcon_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"z must have shape \[b, views, d\]; got shape \(4, 3\)"):
    C.supcon(jnp.ones((4, 3)), jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match=r"z must have at least 2 views.*got shape \(4, 1, 3\)"):
    C.supcon(jnp.ones((4, 1, 3)), jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match=r"labels must have shape \[4\].*got shape \(5,\)"):
    C.supcon(jnp.ones((4, 2, 3)), jnp.zeros(5, jnp.int32))
  with pytest.raises(ValueError, match="labels must be an integer array; got dtype float32"):
    C.supcon(jnp.ones((4, 2, 3)), jnp.zeros(4, jnp.float32))
  z, y = _views(seed=16)
  got = C.supcon(jnp.asarray(z, jnp.bfloat16), y)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, supcon_reference(z, y, 0.1), rtol=2e-2)


def test_supcon_simclr_two_views_is_supcon_plus_nt_xent():
  z, y = _views(b=16, v=2, seed=17)
  got = C.supcon_simclr(z, y, weight=0.3, temperature=0.2)
  expected = 0.7 * supcon_reference(z, y, 0.2) + 0.3 * nt_xent_reference(z[:, 0], z[:, 1], 0.2)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  np.testing.assert_allclose(C.supcon_simclr(z, y, weight=1.0, temperature=0.2),
                             nt_xent_reference(z[:, 0], z[:, 1], 0.2), rtol=1e-5)
  jitted = jax.jit(lambda a, b: C.supcon_simclr(a, b, weight=0.3, temperature=0.2))(z, y)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_supcon_simclr_three_views_uses_multi_positive_nt_xent():
  z, y = _views(b=8, v=3, seed=18)
  unsup = supcon_reference(z, np.arange(8), 0.2)  # every example its own class
  expected = 0.6 * supcon_reference(z, y, 0.2) + 0.4 * unsup
  np.testing.assert_allclose(C.supcon_simclr(z, y, weight=0.4, temperature=0.2), expected, rtol=1e-5)


def test_supcon_simclr_gradients_and_8_devices(mesh8):
  z, y = _views(b=4, v=2, d=3, seed=19)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a: C.supcon_simclr(a, jnp.asarray(y), weight=0.5, temperature=0.3)),
                (jnp.asarray(z, jnp.float64),), order=1, modes=["rev"])
  z, y = _views(b=32, v=2, seed=20)
  fn = lambda a, lab, w, axis_name=None: C.supcon_simclr(a, lab, weight=w, temperature=0.2, axis_name=axis_name)
  multidevice.assert_1_equals_8(fn, mesh8, (z, y), (jnp.float32(0.4),), argnums=(0, 2))


def test_supcon_simclr_bad_inputs_and_bfloat16():
  with pytest.raises(ValueError, match=r"weight must be in \[0.0, 1.0\]; got 1.5"):
    C.supcon_simclr(jnp.ones((4, 2, 3)), jnp.zeros(4, jnp.int32), weight=1.5)
  z, y = _views(seed=21)
  got = C.supcon_simclr(jnp.asarray(z, jnp.bfloat16), y)
  assert got.dtype == jnp.float32
  expected = 0.5 * supcon_reference(z, y, 0.1) + 0.5 * nt_xent_reference(z[:, 0], z[:, 1], 0.1)
  np.testing.assert_allclose(got, expected, rtol=2e-2)


# ------------------------------------------------------------------------------------------------------------
# contrastive_unsupervised_loss (Arora et al. 2019)
# ------------------------------------------------------------------------------------------------------------

def arora_reference(anchor, positive, negatives, loss):
  """Arora et al. L_un, float64, anchor by anchor: v_i = f(x).(f(x+) - f(x_i-)), then the hinge
  max(0, 1 + max_i -v_i) or the logistic log2(1 + sum_i exp(-v_i)), averaged over anchors.

  `negatives` is [b, k, d], or None for in-batch negatives (every other example's positive)."""
  a, p = np.asarray(anchor, np.float64), np.asarray(positive, np.float64)
  total = 0.0
  for i in range(len(a)):
    if negatives is None:
      negs = [p[j] for j in range(len(a)) if j != i]
    else:
      negs = list(np.asarray(negatives, np.float64)[i])
    v = np.array([a[i] @ (p[i] - n) for n in negs])
    if loss == "hinge":
      total += max(0.0, 1.0 + max(-v))
    else:
      total += math.log2(1.0 + sum(math.exp(-x) for x in v))
  return total / len(a)


def _triplets(b=8, k=3, d=4, seed=0, scale=0.7):
  rng = np.random.RandomState(seed)
  a = (scale * rng.randn(b, d)).astype(np.float32)
  p = (a + 0.5 * rng.randn(b, d)).astype(np.float32)
  n = (scale * rng.randn(b, k, d)).astype(np.float32)
  return a, p, n


def test_arora_hand_cases():
  a, p = jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.0]])
  n = jnp.array([[[0.0, 1.0], [1.0, 0.0]]])  # v = (0.5, -0.5)
  # hinge: 1 + max(-0.5, 0.5) = 1.5; logistic: log2(1 + e^-0.5 + e^0.5).
  np.testing.assert_allclose(C.contrastive_unsupervised_loss(a, p, negatives=n, loss="hinge"), 1.5, rtol=1e-6)
  np.testing.assert_allclose(C.contrastive_unsupervised_loss(a, p, negatives=n), math.log2(1 + math.exp(-0.5) + math.exp(0.5)),
                             rtol=1e-6)
  # k = 1 given as [b, d]: the paper's binary losses, max(0, 1 - v) and log2(1 + e^-v), v = 0.5.
  np.testing.assert_allclose(C.contrastive_unsupervised_loss(a, p, negatives=n[:, 0], loss="hinge"), 0.5, rtol=1e-6)
  np.testing.assert_allclose(C.contrastive_unsupervised_loss(a, p, negatives=n[:, 0]), math.log2(1 + math.exp(-0.5)), rtol=1e-6)


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
@pytest.mark.parametrize("in_batch", [False, True])
def test_arora_matches_float64_reference_and_jit(loss, in_batch):
  a, p, n = _triplets()
  neg = None if in_batch else n
  got = C.contrastive_unsupervised_loss(a, p, negatives=neg, loss=loss)
  np.testing.assert_allclose(got, arora_reference(a, p, neg, loss), rtol=1e-5)
  jitted = jax.jit(lambda x, y, z: C.contrastive_unsupervised_loss(x, y, negatives=z, loss=loss))(a, p, neg)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_arora_gradients_match_finite_differences_of_reference(loss):
  a, p, n = (x.astype(np.float64) for x in _triplets(b=4, k=2, d=3, seed=1))
  with jax.enable_x64(True):
    ga, gp, gn = jax.grad(lambda x, y, z: C.contrastive_unsupervised_loss(x, y, negatives=z, loss=loss),
                          argnums=(0, 1, 2))(
        jnp.asarray(a), jnp.asarray(p), jnp.asarray(n))
    gb = jax.grad(lambda x: C.contrastive_unsupervised_loss(x, jnp.asarray(p), loss=loss))(jnp.asarray(a))
  np.testing.assert_allclose(ga, numeric_grad(lambda x: arora_reference(x, p, n, loss), a), rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(gp, numeric_grad(lambda x: arora_reference(a, x, n, loss), p), rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(gn, numeric_grad(lambda x: arora_reference(a, p, x, loss), n), rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(gb, numeric_grad(lambda x: arora_reference(x, p, None, loss), a), rtol=1e-5, atol=1e-8)
  assert np.abs(gn).max() > 1e-3


@pytest.mark.parametrize("in_batch", [False, True])
def test_arora_8_devices_equals_1_device(mesh8, in_batch):
  a, p, n = _triplets(b=16, seed=2)
  sharded = (a, p) if in_batch else (a, p, n)
  fn = lambda x, y, z=None, axis_name=None: C.contrastive_unsupervised_loss(x, y, negatives=z, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=sharded)
  np.testing.assert_allclose(value, arora_reference(a, p, None if in_batch else n, "logistic"), rtol=1e-5)
  if in_batch:  # negatives from every device, not only the 2 rows of a shard
    local = np.mean([float(fn(a[k:k + 2], p[k:k + 2])) for k in range(0, 16, 2)])
    assert abs(local - float(value)) > 1e-2


def test_arora_bad_inputs_and_bfloat16():
  a, p, n = _triplets()
  with pytest.raises(ValueError, match=r"anchor and positive must have the same shape; got \(8, 4\) and \(8, 3\)"):
    C.contrastive_unsupervised_loss(a, p[:, :3])
  with pytest.raises(ValueError, match=r"negatives must have shape \[8, k, 4\].*got shape \(7, 3, 4\)"):
    C.contrastive_unsupervised_loss(a, p, negatives=n[:7])
  with pytest.raises(ValueError, match=r"negatives must have shape \[8, k, 4\].*got shape \(8, 3, 2\)"):
    C.contrastive_unsupervised_loss(a, p, negatives=n[..., :2])
  with pytest.raises(ValueError, match=r'loss must be "logistic" or "hinge"; got \'softmax\''):
    C.contrastive_unsupervised_loss(a, p, negatives=n, loss="softmax")
  low = C.contrastive_unsupervised_loss(*(jnp.asarray(x, jnp.bfloat16) for x in (a, p)),
                                        negatives=jnp.asarray(n, jnp.bfloat16))
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, C.contrastive_unsupervised_loss(a, p, negatives=n), rtol=2e-2)
