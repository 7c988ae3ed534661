"""intra_negatives, iic, bidirectional_prediction: hand cases, float64 NumPy references, gradients, jit,
1 device == 8 devices, bad inputs, bfloat16, docstring examples."""
import itertools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import video as V
from tests import multidevice

KEY = jax.random.PRNGKey(0)


def labelled_clips(b, t, h=2, w=2, c=1):
  """Clip i, frame k holds the value 100 i + k everywhere, so a frame's origin can be read back."""
  v = 100 * np.arange(b)[:, None] + np.arange(t)[None, :]
  return np.broadcast_to(v[:, :, None, None, None], (b, t, h, w, c)).astype(np.float32)


def frame_ids(out):
  """[b, t] frame values read from the first pixel, after checking each frame is constant."""
  out = np.asarray(out)
  np.testing.assert_array_equal(out, np.broadcast_to(out[:, :, :1, :1, :1], out.shape))
  return out[:, :, 0, 0, 0]


# ---------------------------------------------------------------------------------------------------------------
# intra_negatives
# ---------------------------------------------------------------------------------------------------------------

def test_repeat_gives_one_frame_of_the_same_clip_repeated():
  b, t = 64, 5
  ids = frame_ids(V.intra_negatives(KEY, jnp.asarray(labelled_clips(b, t)), mode="repeat"))
  np.testing.assert_array_equal(ids, np.broadcast_to(ids[:, :1], ids.shape))  # one frame, t times
  np.testing.assert_array_equal(ids[:, 0] // 100, np.arange(b))  # taken from its own clip
  assert set((ids[:, 0] % 100).tolist()) == set(range(t))  # per-example draws cover every frame


def test_shuffle_with_two_frames_always_swaps():
  # The only non-identity permutation of 2 frames is the swap: every clip must come back reversed.
  x = labelled_clips(32, 2)
  ids = frame_ids(V.intra_negatives(KEY, jnp.asarray(x), mode="shuffle"))
  np.testing.assert_array_equal(ids, x[:, ::-1, 0, 0, 0])


def test_shuffle_is_a_non_identity_permutation_uniform_over_the_others():
  b, t = 600, 3
  ids = frame_ids(V.intra_negatives(jax.random.PRNGKey(3), jnp.asarray(labelled_clips(b, t)), mode="shuffle"))
  np.testing.assert_array_equal(ids // 100, np.broadcast_to(np.arange(b)[:, None], ids.shape))
  orders = [tuple(r) for r in (ids % 100).astype(int)]
  counts = {perm: orders.count(perm) for perm in itertools.permutations(range(t))}
  assert counts[(0, 1, 2)] == 0
  # 5 non-identity permutations, 120 expected each; binomial sd ~ 9.8, so 60..180 is ~6 sd.
  for perm, n in counts.items():
    if perm != (0, 1, 2):
      assert 60 <= n <= 180, counts


def test_draws_depend_on_the_global_example_index_and_key():
  x = jnp.asarray(labelled_clips(16, 4))
  full = V.intra_negatives(KEY, x, mode="shuffle")
  np.testing.assert_array_equal(V.intra_negatives(KEY, x[:8], mode="shuffle"), full[:8])  # fold_in(key, i)
  np.testing.assert_array_equal(V.intra_negatives(KEY, x, mode="shuffle"), full)
  assert not np.array_equal(V.intra_negatives(jax.random.PRNGKey(1), x, mode="shuffle"), full)
  assert len({tuple(r) for r in frame_ids(full) % 100}) > 1  # examples differ from each other


def test_intra_negatives_jit_and_dtype():
  x = jnp.asarray(labelled_clips(16, 4)).astype(jnp.uint8)
  for mode in ("shuffle", "repeat"):
    eager = V.intra_negatives(KEY, x, mode=mode)
    assert eager.dtype == jnp.uint8 and eager.shape == x.shape
    jitted = jax.jit(lambda k, c: V.intra_negatives(k, c, mode=mode))(KEY, x)
    np.testing.assert_array_equal(jitted, eager)
  typed = V.intra_negatives(jax.random.key(0), x, mode="repeat")  # new-style typed keys work too
  assert typed.shape == x.shape


@pytest.mark.parametrize("mode", ["shuffle", "repeat"])
def test_intra_negatives_1_device_equals_8(mesh8, mode):
  x = labelled_clips(16, 4)
  fn = lambda clips, key, axis_name: V.intra_negatives(key, clips, mode=mode, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (x,), (KEY,), out_specs=P("data"))
  for out in (sm, pm):
    np.testing.assert_array_equal(out, single)


def test_intra_negatives_bad_inputs():
  with pytest.raises(ValueError, match=r"clips must have shape \[b, t, h, w, c\]; got shape \(2, 4, 4, 3\)"):
    V.intra_negatives(KEY, jnp.zeros((2, 4, 4, 3)))
  with pytest.raises(ValueError, match=r"mode must be one of .*'reverse'"):
    V.intra_negatives(KEY, jnp.zeros((2, 4, 2, 2, 3)), mode="reverse")
  with pytest.raises(ValueError, match=r"at least 2 frames.*\(2, 1, 2, 2, 3\)"):
    V.intra_negatives(KEY, jnp.zeros((2, 1, 2, 2, 3)), mode="shuffle")
  V.intra_negatives(KEY, jnp.zeros((2, 1, 2, 2, 3)), mode="repeat")  # a 1-frame still clip is allowed


# ---------------------------------------------------------------------------------------------------------------
# iic
# ---------------------------------------------------------------------------------------------------------------

def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _nll(scores, pos):
  m = max(scores)
  return -(scores[pos] - m - np.log(sum(np.exp(s - m) for s in scores)))


def iic_reference(anchor, positive, intra, temperature, symmetric):
  """The inter-intra InfoNCE in float64, one anchor at a time: candidates are every clip's view-2 (or view-1)
  embedding followed by every clip's intra-negative; the positive is the anchor's own other view."""
  a, p, n = _unit(anchor), _unit(positive), _unit(intra)
  big_b = len(a)
  directions = [(a, p), (p, a)] if symmetric else [(a, p)]
  total = 0.0
  for q, k in directions:
    for i in range(big_b):
      cands = [k[j] for j in range(big_b)] + [n[j] for j in range(big_b)]
      total += _nll([q[i] @ c / temperature for c in cands], i) / big_b
  return total


def _triples(b=16, d=8, seed=0):
  rng = np.random.RandomState(seed)
  a = rng.randn(b, d).astype(np.float32)
  p = (a + 0.5 * rng.randn(b, d)).astype(np.float32)
  n = (a + 1.0 * rng.randn(b, d)).astype(np.float32)
  return a, p, n


def test_iic_hand_case():
  # a = p = [e1, e2], intra-negatives [e2, e1], tau = 1/2. Anchor e1 sees keys e1 (cos 1), e2 (0) and
  # intra-negatives e2 (0), e1 (1): l = -2 + log(2 e^2 + 2); anchor e2 is the mirror image. One direction
  # averages to that; symmetric sums two identical directions.
  a = jnp.eye(2)
  n = jnp.eye(2)[::-1]
  one = -2.0 + np.log(2 * np.exp(2.0) + 2.0)
  np.testing.assert_allclose(V.iic(a, a, n, temperature=0.5, symmetric=False), one, rtol=1e-6)
  np.testing.assert_allclose(V.iic(a, a, n, temperature=0.5), 2 * one, rtol=1e-6)


@pytest.mark.parametrize("temperature,symmetric", [(0.07, True), (0.5, False)])
def test_iic_matches_float64_reference(temperature, symmetric):
  a, p, n = _triples()
  got = V.iic(jnp.asarray(a), jnp.asarray(p), jnp.asarray(n), temperature=temperature, symmetric=symmetric)
  np.testing.assert_allclose(got, iic_reference(a, p, n, temperature, symmetric), rtol=1e-5)


def test_iic_gradients_float64_and_jit():
  a, p, n = _triples(b=4, d=3, seed=1)
  with jax.enable_x64(True):
    f = lambda x, y, z: V.iic(x, y, z, temperature=0.3)
    check_grads(jax.jit(f), tuple(jnp.asarray(v, jnp.float64) for v in (a, p, n)), order=1, modes=["rev"])
  args = tuple(jnp.asarray(v) for v in (a, p, n))
  np.testing.assert_allclose(jax.jit(V.iic)(*args), V.iic(*args), rtol=1e-6)


def test_iic_1_device_equals_8(mesh8):
  a, p, n = _triples(seed=2)
  fn = lambda x, y, z, axis_name: V.iic(x, y, z, temperature=0.2, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (a, p, n))
  np.testing.assert_allclose(v1, iic_reference(a, p, n, 0.2, True), rtol=1e-5)
  # Negatives are global: the mean of 8 per-shard losses (2 clips each, 2 + 2 candidates) is a different number.
  local = np.mean([iic_reference(a[k:k + 2], p[k:k + 2], n[k:k + 2], 0.2, True) for k in range(0, 16, 2)])
  assert abs(v1 - local) > 0.1, (v1, local)


def test_iic_bad_inputs_and_bfloat16():
  a, p, n = _triples(b=8, d=4, seed=3)
  with pytest.raises(ValueError, match=r"anchor and intra_negative must have the same shape; got \(8, 4\) and "
                                       r"\(8, 3\)"):
    V.iic(a, p, n[:, :3])
  with pytest.raises(ValueError, match=r"temperature must be > 0; got 0"):
    V.iic(a, p, n, temperature=0)
  got = V.iic(*(jnp.asarray(v, jnp.bfloat16) for v in (a, p, n)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, iic_reference(a, p, n, 0.07, True), rtol=3e-2)


# ---------------------------------------------------------------------------------------------------------------
# bidirectional_prediction
# ---------------------------------------------------------------------------------------------------------------

def bidirectional_reference(pred_future, pred_past, future, past, temperature, temporal_negatives):
  """float64, one clip at a time: score of a candidate (x, y) = (cos(f^_i, x) + cos(p^_i, y)) / (2 tau); the
  candidates are (f_j, p_j) for every clip j and, with temporal negatives, the swapped (p_j, f_j)."""
  hf, hp, f, p = (_unit(x) for x in (pred_future, pred_past, future, past))
  big_b = len(hf)
  pairs = [(f[j], p[j]) for j in range(big_b)]
  if temporal_negatives:
    pairs += [(p[j], f[j]) for j in range(big_b)]
  total = 0.0
  for i in range(big_b):
    scores = [(hf[i] @ x + hp[i] @ y) / (2 * temperature) for x, y in pairs]
    total += _nll(scores, i)
  return total / big_b


def _quads(b=16, d=8, seed=0):
  rng = np.random.RandomState(seed)
  f = rng.randn(b, d).astype(np.float32)
  p = rng.randn(b, d).astype(np.float32)
  hf = (f + 0.7 * rng.randn(b, d)).astype(np.float32)
  hp = (p + 0.7 * rng.randn(b, d)).astype(np.float32)
  return hf, hp, f, p


def test_bidirectional_hand_cases():
  # One clip, future e1, past e2, predicted exactly, tau = 1/2. Positive score (1 + 1) / (2 tau) = 2; the
  # swapped pair scores (e1.e2 + e2.e1) / (2 tau) = 0, so l = -2 + log(e^2 + 1).
  e1, e2 = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])
  np.testing.assert_allclose(V.bidirectional_prediction(e1, e2, e1, e2, temperature=0.5),
                             -2.0 + np.log(np.exp(2.0) + 1.0), rtol=1e-6)
  # Predicting the swapped order: the true pair scores 0 and the swapped one 2: l = 0 + log(1 + e^2).
  np.testing.assert_allclose(V.bidirectional_prediction(e2, e1, e1, e2, temperature=0.5),
                             np.log(np.exp(2.0) + 1.0), rtol=1e-6)
  # Without temporal negatives a single clip has no negative at all: l = -s + log(e^s) = 0.
  np.testing.assert_allclose(V.bidirectional_prediction(e2, e1, e1, e2, temporal_negatives=False), 0.0, atol=1e-6)


@pytest.mark.parametrize("temperature,temporal_negatives", [(0.1, True), (0.5, False)])
def test_bidirectional_matches_float64_reference(temperature, temporal_negatives):
  hf, hp, f, p = _quads()
  got = V.bidirectional_prediction(*(jnp.asarray(x) for x in (hf, hp, f, p)), temperature=temperature,
                                   temporal_negatives=temporal_negatives)
  np.testing.assert_allclose(got, bidirectional_reference(hf, hp, f, p, temperature, temporal_negatives), rtol=1e-5)


def test_bidirectional_gradients_float64_and_jit():
  quads = _quads(b=4, d=3, seed=1)
  with jax.enable_x64(True):
    f = lambda *x: V.bidirectional_prediction(*x, temperature=0.3)
    check_grads(jax.jit(f), tuple(jnp.asarray(v, jnp.float64) for v in quads), order=1, modes=["rev"])
  args = tuple(jnp.asarray(v) for v in quads)
  np.testing.assert_allclose(jax.jit(V.bidirectional_prediction)(*args), V.bidirectional_prediction(*args),
                             rtol=1e-5)


def test_bidirectional_1_device_equals_8(mesh8):
  quads = _quads(seed=2)
  fn = lambda a, b, c, d, axis_name: V.bidirectional_prediction(a, b, c, d, temperature=0.2, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, quads)
  np.testing.assert_allclose(v1, bidirectional_reference(*quads, 0.2, True), rtol=1e-5)


def test_bidirectional_bad_inputs_and_bfloat16():
  hf, hp, f, p = _quads(b=8, d=4, seed=3)
  with pytest.raises(ValueError, match=r"pred_future and past must have the same shape; got \(8, 4\) and "
                                       r"\(7, 4\)"):
    V.bidirectional_prediction(hf, hp, f, p[:7])
  with pytest.raises(ValueError, match=r"future must have shape \[b, d\]; got shape \(8, 2, 2\)"):
    V.bidirectional_prediction(hf, hp, f.reshape(8, 2, 2), p)
  with pytest.raises(ValueError, match=r"temperature must be > 0; got -1.0"):
    V.bidirectional_prediction(hf, hp, f, p, temperature=-1.0)
  got = V.bidirectional_prediction(*(jnp.asarray(v, jnp.bfloat16) for v in (hf, hp, f, p)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, bidirectional_reference(hf, hp, f, p, 0.1, True), rtol=3e-2)
