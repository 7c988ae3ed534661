"""taco, premier_taco_negatives, premier_taco, decorrelated_prediction, contrastive_transition_loss: hand cases,
float64 NumPy references, gradients, jit, 1 device == 8 devices."""
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import contrastive as C
from rl.losses import temporal as T
from tests import multidevice
from tests.losses import numeric_grad



def _logsumexp(v):
  m = np.max(v)
  return m + np.log(np.sum(np.exp(v - m)))


def _softplus(x):
  return np.logaddexp(0.0, x)


def _rows(b=16, d=6, n=3, seed=0):
  rng = np.random.RandomState(seed)
  return [rng.randn(b, d).astype(np.float32) for _ in range(n)]


# ----------------------------------------------------------------------------------------------------------------
# taco
# ----------------------------------------------------------------------------------------------------------------

def taco_reference(q, f, w, temperature, normalize=False):
  """TACO eq. 1 in float64 with CURL's bilinear score, one query at a time."""
  q, f = q.astype(np.float64), f.astype(np.float64)
  if normalize:
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
  w = np.eye(q.shape[1]) if w is None else w.astype(np.float64)
  total = 0.0
  for i in range(len(q)):
    s = np.array([q[i] @ w @ f[j] / temperature for j in range(len(f))])
    total += -s[i] + _logsumexp(s)
  return total / len(q)


def test_taco_hand_case():
  # q = f = (e1, e2), W = I, tau = 1: each row has s_ii = 1, s_ij = 0: l = -1 + log(e + 1).
  e = jnp.eye(2)
  np.testing.assert_allclose(T.taco(e, e), np.log(np.e + 1) - 1, rtol=1e-6)


@pytest.mark.parametrize("use_w,temperature,normalize", [(True, 0.5, False), (False, 1.0, False), (True, 0.2, True)])
def test_taco_matches_reference(use_w, temperature, normalize):
  q, f, w = _rows(d=6, n=3)
  w = w[:6] if use_w else None
  got = T.taco(q, f, w=w, temperature=temperature, normalize=normalize)
  np.testing.assert_allclose(got, taco_reference(q, f, w, temperature, normalize), rtol=1e-5)


def test_taco_normalized_without_w_is_info_nce():
  q, f = _rows(n=2)
  np.testing.assert_allclose(T.taco(q, f, normalize=True, temperature=0.1), C.info_nce(q, f, temperature=0.1),
                             rtol=1e-6)


def test_taco_gradients_float64():
  q, f, w = _rows(b=4, d=3, n=3, seed=1)
  with jax.enable_x64(True):
    args = tuple(jnp.asarray(x, jnp.float64) for x in (q, f, w[:3]))
    check_grads(lambda a, b, c: T.taco(a, b, w=c, temperature=0.5), args, order=1, modes=["rev"])


def test_taco_jit_and_bfloat16():
  q, f, w = _rows()
  w = 0.3 * w[:6]
  eager = T.taco(q, f, w=w)
  np.testing.assert_allclose(jax.jit(lambda a, b, c: T.taco(a, b, w=c))(q, f, w), eager, rtol=1e-6)
  got = T.taco(jnp.asarray(q, jnp.bfloat16), jnp.asarray(f, jnp.bfloat16), w=jnp.asarray(w, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, taco_reference(q, f, w, 1.0), rtol=3e-2)


def test_taco_8_devices_equals_1_device(mesh8):
  q, f, w = _rows(b=32)
  w = 0.3 * w[:6]
  fn = lambda a, b, c, axis_name=None: T.taco(a, b, w=c, temperature=0.5, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (q, f), (w,), argnums=(0, 1, 2))
  np.testing.assert_allclose(v1, taco_reference(q, f, w, 0.5), rtol=1e-5)


def test_taco_bad_inputs():
  with pytest.raises(ValueError, match=r"query and future must have the same shape; got \(4, 3\) and \(4, 2\)"):
    T.taco(jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match=r"w must have shape \[3, 3\].*got shape \(3, 2\)"):
    T.taco(jnp.ones((4, 3)), jnp.ones((4, 3)), w=jnp.ones((3, 2)))
  with pytest.raises(ValueError, match=r"temperature must be > 0; got 0.0"):
    T.taco(jnp.ones((4, 3)), jnp.ones((4, 3)), temperature=0.0)


# ----------------------------------------------------------------------------------------------------------------
# premier_taco_negatives
# ----------------------------------------------------------------------------------------------------------------

def test_negatives_hand_case_and_uniformity():
  # p = 1, L = 10, W = 3: the valid steps are 0, 2, 3, 4 (1 - 3 and 1 - 2 are before the start): 1/4 each.
  n = np.asarray(T.premier_taco_negatives(jax.random.key(0), jnp.ones(4000, jnp.int32), 10, window_size=3))
  values, counts = np.unique(n, return_counts=True)
  np.testing.assert_array_equal(values, [0, 2, 3, 4])
  np.testing.assert_allclose(counts / 4000, 0.25, atol=0.03)
  # A one-step episode has no other step: the positive index comes back.
  np.testing.assert_array_equal(T.premier_taco_negatives(jax.random.key(0), jnp.array([0]), 1), [0])


def test_negatives_stay_in_window_and_episode():
  rng = np.random.RandomState(0)
  length = rng.randint(2, 30, size=256)
  pos = np.array([rng.randint(0, l) for l in length])
  n = np.asarray(T.premier_taco_negatives(jax.random.key(1), jnp.asarray(pos), jnp.asarray(length), window_size=4))
  assert np.all(n != pos) and np.all(np.abs(n - pos) <= 4) and np.all(n >= 0) and np.all(n < length)
  again = T.premier_taco_negatives(jax.random.key(1), jnp.asarray(pos), jnp.asarray(length), window_size=4)
  other = T.premier_taco_negatives(jax.random.key(2), jnp.asarray(pos), jnp.asarray(length), window_size=4)
  np.testing.assert_array_equal(again, n)  # pure: same key, same draw
  assert np.mean(np.asarray(other) != n) > 0.3
  jitted = jax.jit(lambda k, p, l: T.premier_taco_negatives(k, p, l, window_size=4))(jax.random.key(1), pos, length)
  np.testing.assert_array_equal(jitted, n)


def test_negatives_8_devices_equal_1_device(mesh8):
  rng = np.random.RandomState(1)
  length = rng.randint(2, 30, size=64).astype(np.int32)
  pos = np.array([rng.randint(0, l) for l in length], np.int32)
  fn = lambda p, l, axis_name=None: T.premier_taco_negatives(jax.random.key(5), p, l, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (pos, length), out_specs=P("data"))
  np.testing.assert_array_equal(sm, single)
  np.testing.assert_array_equal(pm, single)


def test_negatives_bad_inputs():
  k = jax.random.key(0)
  with pytest.raises(ValueError, match=r"positive_index must be an integer array; got dtype float32"):
    T.premier_taco_negatives(k, jnp.ones(4), 10)
  with pytest.raises(ValueError, match=r"episode_length must be an int or an integer array of shape \[4\]"):
    T.premier_taco_negatives(k, jnp.ones(4, jnp.int32), jnp.ones(3, jnp.int32))
  with pytest.raises(ValueError, match=r"window_size must be an int >= 1; got 0"):
    T.premier_taco_negatives(k, jnp.ones(4, jnp.int32), 10, window_size=0)


# ----------------------------------------------------------------------------------------------------------------
# premier_taco
# ----------------------------------------------------------------------------------------------------------------

def premier_reference(q, f, n, w, temperature, binary=False):
  """Premier-TACO in float64: two-way InfoNCE per row (paper), or the code's logistic loss over 2B scores."""
  q, f, n = (x.astype(np.float64) for x in (q, f, n))
  w = np.eye(q.shape[1]) if w is None else w.astype(np.float64)
  total = 0.0
  for i in range(len(q)):
    sp, sn = q[i] @ w @ f[i] / temperature, q[i] @ w @ n[i] / temperature
    if binary:
      total += (-np.log(np.exp(sp) / (np.exp(sp) + 1)) - np.log(1 / (np.exp(sn) + 1))) / 2
    else:
      total += -np.log(np.exp(sp) / (np.exp(sp) + np.exp(sn)))
  return total / len(q)


def test_premier_taco_hand_case():
  # s+ = 2, s- = 0: paper: -log(e^2 / (e^2 + 1)); code: (softplus(-2) + softplus(0)) / 2.
  q, f, n = jnp.array([[2.0, 0.0]]), jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])
  np.testing.assert_allclose(T.premier_taco(q, f, n), np.log(1 + np.exp(-2.0)), rtol=1e-6)
  np.testing.assert_allclose(T.premier_taco(q, f, n, binary=True), (np.log(1 + np.exp(-2.0)) + np.log(2.0)) / 2,
                             rtol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_premier_taco_matches_reference(binary):
  q, f, n, w = _rows(n=4)
  w = 0.5 * w[:6]
  got = T.premier_taco(q, f, n, w=w, temperature=0.7, binary=binary)
  np.testing.assert_allclose(got, premier_reference(q, f, n, w, 0.7, binary), rtol=1e-5)


def test_premier_taco_gradients_float64():
  q, f, n, w = _rows(b=4, d=3, n=4, seed=2)
  with jax.enable_x64(True):
    args = tuple(jnp.asarray(x, jnp.float64) for x in (q, f, n, w[:3]))
    for binary in (False, True):
      check_grads(lambda a, b, c, d: T.premier_taco(a, b, c, w=d, binary=binary), args, order=1, modes=["rev"])


def test_premier_taco_jit_and_bfloat16():
  q, f, n = _rows()
  eager = T.premier_taco(q, f, n)
  np.testing.assert_allclose(jax.jit(lambda a, b, c: T.premier_taco(a, b, c))(q, f, n), eager, rtol=1e-6)
  got = T.premier_taco(*(jnp.asarray(x, jnp.bfloat16) for x in (q, f, n)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, premier_reference(q, f, n, None, 1.0), rtol=3e-2)


def test_premier_taco_8_devices_equals_1_device(mesh8):
  q, f, n, w = _rows(b=32, n=4)
  w = 0.3 * w[:6]
  fn = lambda a, b, c, d, axis_name=None: T.premier_taco(a, b, c, w=d, temperature=0.5, axis_name=axis_name)
  multidevice.assert_1_equals_8(fn, mesh8, (q, f, n), (w,), argnums=(0, 1, 2, 3))


def test_premier_taco_bad_inputs():
  with pytest.raises(ValueError, match=r"query and negative must have the same shape; got \(4, 3\) and \(4, 2\)"):
    T.premier_taco(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match=r"w must have shape \[3, 3\]"):
    T.premier_taco(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((4, 3)), w=jnp.ones((2, 2)))


# ----------------------------------------------------------------------------------------------------------------
# decorrelated_prediction
# ----------------------------------------------------------------------------------------------------------------

def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def simtpr_reference(pred, target, beta, lam, target_sg=None):
  """SimTPR in float64: symmetric BYOL prediction loss to the other view's (stop-gradient) target, plus beta times
  Barlow Twins between the normalised target views (BatchNorm standardisation, biased variance + 1e-5).
  `target_sg` is the value used inside the prediction term (the frozen copy for finite differences)."""
  pred, target = pred.astype(np.float64), target.astype(np.float64)
  target_sg = target if target_sg is None else target_sg.astype(np.float64)
  b = len(pred)
  byol = lambda p, y: np.mean([np.sum((_unit(p[i]) - _unit(y[i])) ** 2) for i in range(b)])
  prediction = 0.5 * (byol(pred[:, 0], target_sg[:, 1]) + byol(pred[:, 1], target_sg[:, 0]))
  y1, y2 = _unit(target[:, 0]), _unit(target[:, 1])
  n1 = (y1 - y1.mean(0)) / np.sqrt(y1.var(0) + 1e-5)
  n2 = (y2 - y2.mean(0)) / np.sqrt(y2.var(0) + 1e-5)
  c = n1.T @ n2 / b
  d = c.shape[0]
  barlow = sum((1 - c[i, i]) ** 2 for i in range(d)) + lam * sum(c[i, j] ** 2 for i in range(d) for j in range(d)
                                                                   if i != j)
  return prediction + beta * barlow, prediction, barlow


def _views(b=16, d=5, seed=0):
  rng = np.random.RandomState(seed)
  target = rng.randn(b, 2, d).astype(np.float32)
  pred = (target[:, ::-1] + 0.5 * rng.randn(b, 2, d)).astype(np.float32)
  return pred, target


def test_decorrelated_prediction_hand_case():
  # Targets: the 4 sign patterns of (+-1, +-1), identical views: normalised, each dimension has mean 0 and variance
  # 1/2, so C = I * 0.5/(0.5 + 1e-5) and the Barlow term is 2 (1e-5/0.50001)^2 ~ 8e-10.
  # Prediction of view 1 equals the target of view 0 (cos 1: 0); prediction of view 0 is orthogonal to the
  # target of view 1 (cos 0: 2). L_pred = (2 + 0) / 2 = 1.
  y = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], np.float32)
  target = np.stack([y, y], axis=1)
  pred = np.stack([y[:, ::-1] * np.array([1.0, -1.0], np.float32), y], axis=1)
  loss, terms = T.decorrelated_prediction(pred, target, return_terms=True)
  np.testing.assert_allclose(terms["prediction"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(terms["decorrelation"], 2 * (1e-5 / 0.50001) ** 2, rtol=1e-2, atol=1e-9)
  np.testing.assert_allclose(loss, 1.0 + 0.01 * terms["decorrelation"], rtol=1e-6)


@pytest.mark.parametrize("beta,lam", [(0.01, 0.005), (1.0, 0.1)])
def test_decorrelated_prediction_matches_reference(beta, lam):
  pred, target = _views()
  loss, terms = T.decorrelated_prediction(pred, target, decorrelation_weight=beta, off_diagonal_weight=lam,
                                          return_terms=True)
  ref, ref_pred, ref_barlow = simtpr_reference(pred, target, beta, lam)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose(terms["prediction"], ref_pred, rtol=1e-5)
  np.testing.assert_allclose(terms["decorrelation"], ref_barlow, rtol=1e-5)


def test_decorrelated_prediction_gradients_stop_only_the_prediction_target():
  pred, target = _views(b=6, d=3, seed=1)
  fn = lambda p, t: T.decorrelated_prediction(p, t, decorrelation_weight=1.0, off_diagonal_weight=0.1)
  gp, gt = jax.grad(fn, argnums=(0, 1))(pred, target)
  p64, t64 = pred.astype(np.float64), target.astype(np.float64)
  num_p = numeric_grad(lambda p: simtpr_reference(p, t64, 1.0, 0.1)[0], p64)
  # Through the target: only the decorrelation term (the prediction term sees a frozen copy).
  num_t = numeric_grad(lambda t: simtpr_reference(p64, t, 1.0, 0.1, target_sg=t64)[0], t64)
  np.testing.assert_allclose(gp, num_p, atol=2e-5)
  np.testing.assert_allclose(gt, num_t, atol=2e-5)
  assert np.abs(gt).max() > 1e-3


def test_decorrelated_prediction_jit_and_bfloat16():
  pred, target = _views()
  eager = T.decorrelated_prediction(pred, target)
  np.testing.assert_allclose(jax.jit(lambda p, t: T.decorrelated_prediction(p, t))(pred, target), eager, rtol=1e-6)
  got = T.decorrelated_prediction(jnp.asarray(pred, jnp.bfloat16), jnp.asarray(target, jnp.bfloat16))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, simtpr_reference(pred, target, 0.01, 0.005)[0], rtol=3e-2)


def test_decorrelated_prediction_8_devices_equals_1_device(mesh8):
  pred, target = _views(b=32)
  fn = lambda p, t, axis_name=None: T.decorrelated_prediction(p, t, decorrelation_weight=0.5, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (pred, target))
  np.testing.assert_allclose(v1, simtpr_reference(pred, target, 0.5, 0.005)[0], rtol=1e-5)
  # Batch statistics are global: the mean of per-device losses (4 rows each) is a different number.
  local_fn = jax.jit(fn)
  local = np.mean([float(local_fn(pred[k:k + 4], target[k:k + 4])) for k in range(0, 32, 4)])
  assert abs(local - float(v1)) > 1e-2
  terms_fn = lambda p, t, axis_name=None: T.decorrelated_prediction(p, t, return_terms=True, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(terms_fn, mesh8, (pred, target),
                                           out_specs=(P(), {"prediction": P(), "decorrelation": P()}))
  for out in (sm, pm):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), out, single)


def test_decorrelated_prediction_bad_inputs():
  with pytest.raises(ValueError, match=r"pred must have shape \[b, 2, d\] \(two augmented views\); got shape "
                                       r"\(4, 3, 2\)"):
    T.decorrelated_prediction(jnp.ones((4, 3, 2)), jnp.ones((4, 3, 2)))
  with pytest.raises(ValueError, match=r"pred and target must have the same shape; got \(4, 2, 3\) and \(4, 2, 2\)"):
    T.decorrelated_prediction(jnp.ones((4, 2, 3)), jnp.ones((4, 2, 2)))
  with pytest.raises(ValueError, match=r"target must have shape \[b, 2, d\]; got shape \(4, 3\)"):
    T.decorrelated_prediction(jnp.ones((4, 2, 3)), jnp.ones((4, 3)))


# ----------------------------------------------------------------------------------------------------------------
# contrastive_transition_loss
# ----------------------------------------------------------------------------------------------------------------

def transition_reference(phi, pos, neg, logits=False):
  """Contrastive UCB's loss in float64: log(1 + 1/f) on positives, log(1 + f) on negatives, half each."""
  phi, pos, neg = (x.astype(np.float64) for x in (phi, pos, neg))
  if neg.ndim == 2:
    neg = neg[:, None]
  ratio = (lambda u: np.exp(u)) if logits else (lambda u: u)
  lp = np.mean([np.log(1 + 1 / ratio(phi[i] @ pos[i])) for i in range(len(phi))])
  ln = np.mean([np.log(1 + ratio(phi[i] @ neg[i, k])) for i in range(len(phi)) for k in range(neg.shape[1])])
  return 0.5 * (lp + ln)


def _transitions(b=16, d=4, n=3, seed=0):
  rng = np.random.RandomState(seed)  # non-negative features: f = phi^T psi > 0 as the ratio form requires
  return (np.abs(rng.randn(b, d)).astype(np.float32), np.abs(rng.randn(b, d)).astype(np.float32),
          np.abs(rng.randn(b, n, d)).astype(np.float32))


def test_transition_hand_case():
  # f+ = 2: log(1 + 1/2); f- = 1/2: log(1 + 1/2); the loss is log 1.5.
  phi = jnp.array([[1.0, 1.0]]); pos = jnp.array([[2.0, 0.0]]); neg = jnp.array([[0.5, 0.0]])
  np.testing.assert_allclose(T.contrastive_transition_loss(phi, pos, neg), np.log(1.5), rtol=1e-6)
  # logits: u+ = 2, u- = 1/2: (softplus(-2) + softplus(1/2)) / 2
  np.testing.assert_allclose(T.contrastive_transition_loss(phi, pos, neg, logits=True),
                             (_softplus(-2.0) + _softplus(0.5)) / 2, rtol=1e-6)


@pytest.mark.parametrize("logits,many", [(False, True), (True, True), (False, False)])
def test_transition_matches_reference(logits, many):
  phi, pos, neg = _transitions()
  neg = neg if many else neg[:, 0]
  got = T.contrastive_transition_loss(phi, pos, neg, logits=logits)
  np.testing.assert_allclose(got, transition_reference(phi, pos, neg, logits), rtol=1e-5)


def test_transition_minimiser_is_the_density_ratio():
  # For one (s, a) with P(s'|s,a) = p and P^-(s') = r over 3 next states, the loss over the exact mixture is
  # minimised by f(s') = p(s') / r(s'); a scaled ratio gives a larger loss. The mixture is a batch of 10 pairs
  # (weights by repetition) and f(s') the 1-d feature of s', so the function itself is what is minimised.
  p, r = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.3, 0.5])

  def loss(f):
    f = f[:, None]
    return T.contrastive_transition_loss(jnp.ones((10, 1)), jnp.repeat(f, np.array([6, 3, 1]), 0,
                                                                       total_repeat_length=10),
                                         jnp.repeat(f, np.array([2, 3, 5]), 0, total_repeat_length=10))

  ratio = jnp.asarray(p / r, jnp.float32)
  np.testing.assert_allclose(jax.grad(loss)(ratio), 0.0, atol=1e-6)  # stationary at the density ratio ...
  assert loss(ratio) < loss(1.2 * ratio) and loss(ratio) < loss(0.8 * ratio)  # ... and a minimum
  assert np.abs(jax.grad(loss)(1.2 * ratio)).max() > 1e-3
  np.testing.assert_allclose(loss(ratio), 0.5 * (np.sum(p * np.log1p(r / p)) + np.sum(r * np.log1p(p / r))),
                             rtol=1e-5)


def test_transition_gradients_float64():
  phi, pos, neg = _transitions(b=3, d=2, n=2, seed=1)
  with jax.enable_x64(True):
    args = tuple(jnp.asarray(x, jnp.float64) for x in (phi, pos, neg))
    for logits in (False, True):
      check_grads(lambda a, b, c: T.contrastive_transition_loss(a, b, c, logits=logits), args, order=1,
                  modes=["rev"])


def test_transition_jit_and_bfloat16():
  phi, pos, neg = _transitions()
  eager = T.contrastive_transition_loss(phi, pos, neg)
  np.testing.assert_allclose(jax.jit(lambda a, b, c: T.contrastive_transition_loss(a, b, c))(phi, pos, neg), eager,
                             rtol=1e-6)
  got = T.contrastive_transition_loss(*(jnp.asarray(x, jnp.bfloat16) for x in (phi, pos, neg)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, transition_reference(phi, pos, neg), rtol=3e-2)


def test_transition_8_devices_equals_1_device(mesh8):
  phi, pos, neg = _transitions(b=32)
  fn = lambda a, b, c, axis_name=None: T.contrastive_transition_loss(a, b, c, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (phi, pos, neg))
  np.testing.assert_allclose(v1, transition_reference(phi, pos, neg), rtol=1e-5)


def test_transition_bad_inputs():
  with pytest.raises(ValueError, match=r"phi and mu_pos must have the same shape; got \(4, 3\) and \(4, 2\)"):
    T.contrastive_transition_loss(jnp.ones((4, 3)), jnp.ones((4, 2)), jnp.ones((4, 3)))
  with pytest.raises(ValueError, match=r"mu_neg must have shape \[4, 3\] or \[4, n, 3\] to match phi; got shape "
                                       r"\(4, 2, 2\)"):
    T.contrastive_transition_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((4, 2, 2)))
