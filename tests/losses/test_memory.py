"""Stateful objectives: queue_push, moco, nearest_neighbor, nnclr, npid (+ NCE), memory_bank_update."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl.losses import memory as L
from tests import multidevice

P = multidevice.P
KEY = jax.random.PRNGKey(0)  # raw uint32 [2]: passes through shard_map/pmap as a replicated argument


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _lse(x):
  m = np.max(x)
  return m + np.log(np.sum(np.exp(x - m)))


def _randn(*shape, seed=0):
  return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------------
# queue_push
# ------------------------------------------------------------------------------------------------------------------

def queue_push_reference(queue, ptr, keys):
  """FIFO ring buffer written one key at a time."""
  queue = np.array(queue, np.float64)
  for key in keys:
    queue[ptr] = key
    ptr = (ptr + 1) % len(queue)
  return queue, ptr


def test_queue_push_hand_case_wraps_around():
  # K = 5, ptr = 3, B = 4 keys: rows 3, 4, 0, 1 are written (in this order), row 2 keeps its value; ptr -> 7 % 5 = 2.
  queue = jnp.zeros((5, 1))
  keys = jnp.array([[1.0], [2.0], [3.0], [4.0]])
  new_queue, new_ptr = L.queue_push(queue, jnp.int32(3), keys)
  np.testing.assert_array_equal(new_queue[:, 0], [3.0, 4.0, 0.0, 1.0, 2.0])
  assert int(new_ptr) == 2 and new_ptr.dtype == jnp.int32


def test_queue_push_matches_reference_jit_and_stops_gradient():
  queue, keys = _randn(7, 3, seed=1), _randn(3, 3, seed=2)
  for ptr in range(7):
    new_queue, new_ptr = jax.jit(L.queue_push)(queue, jnp.int32(ptr), keys)
    ref_queue, ref_ptr = queue_push_reference(queue, ptr, keys)
    np.testing.assert_allclose(new_queue, ref_queue, rtol=1e-7)
    assert int(new_ptr) == ref_ptr
  eager, _ = L.queue_push(queue, jnp.int32(5), keys)
  np.testing.assert_array_equal(eager, queue_push_reference(queue, 5, keys)[0].astype(np.float32))
  g = jax.grad(lambda k: jnp.sum(L.queue_push(queue, jnp.int32(0), k)[0] ** 2))(keys)
  np.testing.assert_array_equal(g, np.zeros_like(keys))  # 2 * keys without the stop-gradient


def test_queue_push_8_devices_writes_global_batch_in_order(mesh8):
  # B = 32 does not divide K = 40 and the write wraps around from ptr = 30.
  queue, keys = _randn(40, 4, seed=3), _randn(32, 4, seed=4)
  fn = lambda k, q, p, axis_name=None: L.queue_push(q, p, k, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (keys,), (queue, jnp.int32(30)), out_specs=(P(), P()))
  ref_queue, ref_ptr = queue_push_reference(queue, 30, keys)
  for q, p in (single, sm, pm):
    np.testing.assert_allclose(q, ref_queue, rtol=1e-5)
    assert int(p) == ref_ptr == 22


def test_queue_push_bad_inputs():
  with pytest.raises(ValueError, match=r"global batch of 6 keys does not fit in a queue of 4 rows"):
    L.queue_push(jnp.zeros((4, 2)), jnp.int32(0), jnp.ones((6, 2)))
  with pytest.raises(ValueError, match=r"keys must have shape \[b, 2\] to match queue \(4, 2\); got shape \(3, 5\)"):
    L.queue_push(jnp.zeros((4, 2)), jnp.int32(0), jnp.ones((3, 5)))
  with pytest.raises(ValueError, match=r"ptr must be an integer scalar"):
    L.queue_push(jnp.zeros((4, 2)), jnp.float32(0), jnp.ones((3, 2)))


# ------------------------------------------------------------------------------------------------------------------
# moco
# ------------------------------------------------------------------------------------------------------------------

def moco_reference(q, k, queue, temperature):
  """MoCo eq. 1 in float64, one query at a time: positive its own key, negatives the whole queue."""
  u, w, n = _unit(q), _unit(k), _unit(queue)
  total = 0.0
  for i in range(len(u)):
    logits = np.array([u[i] @ w[i]] + [u[i] @ nj for nj in n]) / temperature
    total += -logits[0] + _lse(logits)
  return total / len(u)


def _moco_inputs(b=16, d=8, k=24, seed=0):
  q = _randn(b, d, seed=seed)
  return q, q + 0.5 * _randn(b, d, seed=seed + 1), _randn(k, d, seed=seed + 2)


def test_moco_hand_case():
  # q = k = (1, 0), one negative (0, 1), tau = 1: l = -1 + log(e^1 + e^0) = log(1 + e^-1).
  got = L.moco(jnp.array([[2.0, 0.0]]), jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 3.0]]), temperature=1.0)
  np.testing.assert_allclose(got, np.log1p(np.exp(-1.0)), rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.07, 0.2])
def test_moco_matches_float64_reference_and_jit(temperature):
  q, k, queue = _moco_inputs()
  got = L.moco(q, k, queue, temperature=temperature)
  np.testing.assert_allclose(got, moco_reference(q, k, queue, temperature), rtol=1e-5)
  jitted = jax.jit(lambda a, b, c: L.moco(a, b, c, temperature=temperature))(q, k, queue)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_moco_gradients():
  q, k, queue = (x.astype(np.float64) for x in _moco_inputs(b=4, d=3, k=5))
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a: L.moco(a, k, queue, temperature=0.5)), (q,), order=1, modes=["rev"])
    gk, gqueue = jax.grad(lambda b, c: L.moco(q, b, c), argnums=(0, 1))(k, queue)
  # The key and the queue come from the momentum encoder: no gradient reaches them.
  np.testing.assert_array_equal(gk, 0.0)
  np.testing.assert_array_equal(gqueue, 0.0)


def test_moco_8_devices_equals_1_device(mesh8):
  q, k, queue = _moco_inputs(b=32, d=8, k=40)
  fn = lambda a, b, c, axis_name=None: L.moco(a, b, c, temperature=0.2, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (q, k), (queue,), argnums=(0, 1))
  np.testing.assert_allclose(v1, moco_reference(q, k, queue, 0.2), rtol=1e-5)


def test_moco_bfloat16_and_bad_inputs():
  q, k, queue = _moco_inputs()
  got = L.moco(*(jnp.asarray(x, jnp.bfloat16) for x in (q, k, queue)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, moco_reference(q, k, queue, 0.2), rtol=3e-2)
  with pytest.raises(ValueError, match=r"queue must have shape \[K, 8\] to match the embeddings of dimension 8"):
    L.moco(q, k, queue[:, :5])
  with pytest.raises(ValueError, match=r"q and k must have the same shape; got \(16, 8\) and \(15, 8\)"):
    L.moco(q, k[:15], queue)
  with pytest.raises(ValueError, match="temperature must be > 0; got -0.1"):
    L.moco(q, k, queue, temperature=-0.1)


# ------------------------------------------------------------------------------------------------------------------
# nearest_neighbor, nnclr
# ------------------------------------------------------------------------------------------------------------------

def nn_reference(z, support):
  """argmax of the cosine similarity, scanning the support set."""
  u, s = _unit(z), _unit(support)
  idx = np.array([int(np.argmax([ui @ sj for sj in s])) for ui in u])
  return s[idx], idx


def nnclr_reference(z1, z2, p1, p2, support, temperature):
  """NNCLR eq. 2, symmetrised as in Algorithm 1: L(NN(z1), p2)/2 + L(NN(z2), p1)/2, all in float64."""
  def info_nce(nn, p):
    p = _unit(p)
    total = 0.0
    for i in range(len(nn)):
      logits = np.array([nn[i] @ pk for pk in p]) / temperature
      total += -logits[i] + _lse(logits)
    return total / len(nn)
  return 0.5 * info_nce(nn_reference(z1, support)[0], p2) + 0.5 * info_nce(nn_reference(z2, support)[0], p1)


def _nnclr_inputs(b=16, d=8, n=24, seed=0):
  z1 = _randn(b, d, seed=seed)
  z2 = z1 + 0.5 * _randn(b, d, seed=seed + 1)
  p1, p2 = _randn(b, d, seed=seed + 2), _randn(b, d, seed=seed + 3)
  return z1, z2, p1, p2, _randn(n, d, seed=seed + 4)


def test_nearest_neighbor_hand_case_reference_and_no_gradient():
  # cos((1, 0.2), (0, 2)) ~ 0.2 and cos((1, 0.2), (3, -1)) ~ 0.75: the second row wins, returned normalised.
  got = L.nearest_neighbor(jnp.array([[1.0, 0.2]]), jnp.array([[0.0, 2.0], [3.0, -1.0]]))
  np.testing.assert_allclose(got, [[3 / np.sqrt(10), -1 / np.sqrt(10)]], rtol=1e-6)
  z, support = _randn(16, 8, seed=5), _randn(30, 8, seed=6)
  ref_nn, ref_idx = nn_reference(z, support)
  np.testing.assert_array_equal(L.nearest_neighbor_index(z, support), ref_idx)
  np.testing.assert_allclose(jax.jit(L.nearest_neighbor)(z, support), ref_nn, rtol=1e-6)
  g = jax.grad(lambda a, s: jnp.sum(L.nearest_neighbor(a, s)), argnums=(0, 1))(z, support)
  np.testing.assert_array_equal(g[0], 0.0)
  np.testing.assert_array_equal(g[1], 0.0)
  with pytest.raises(ValueError, match=r"support must have shape \[n, 8\] to match the embeddings of dimension 8"):
    L.nearest_neighbor(z, support[:, :3])


def test_nnclr_hand_case():
  # z1 = z2 = eye(2), support = eye(2): NN(z_i) = e_i, so each term is -log(e^1 / (e^1 + e^0)) = log(1 + e^-1).
  z = jnp.eye(2)
  np.testing.assert_allclose(L.nnclr(z, z, 3.0 * jnp.eye(2), temperature=1.0), np.log1p(np.exp(-1.0)), rtol=1e-6)


@pytest.mark.parametrize("with_predictor", [False, True])
def test_nnclr_matches_float64_reference_and_jit(with_predictor):
  z1, z2, p1, p2, support = _nnclr_inputs()
  if not with_predictor:
    p1, p2 = z1, z2
  got = L.nnclr(z1, z2, support, p1=p1, p2=p2, temperature=0.1)
  np.testing.assert_allclose(got, nnclr_reference(z1, z2, p1, p2, support, 0.1), rtol=1e-5)
  jitted = jax.jit(lambda *a: L.nnclr(a[0], a[1], a[2], p1=a[3], p2=a[4]))(z1, z2, support, p1, p2)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_nnclr_gradients():
  z1, z2, p1, p2, support = (x.astype(np.float64) for x in _nnclr_inputs(b=4, d=3, n=6, seed=7))
  with jax.enable_x64(True):
    # Finite differences do not move the arg-max, so the numerical derivative matches the stop-gradient one.
    check_grads(jax.jit(lambda a, b: L.nnclr(z1, z2, support, p1=a, p2=b, temperature=0.5)), (p1, p2), order=1,
                modes=["rev"])
    check_grads(jax.jit(lambda a, b: L.nnclr(a, b, support, temperature=0.5)), (z1, z2), order=1, modes=["rev"])


def test_nnclr_8_devices_equals_1_device(mesh8):
  z1, z2, p1, p2, support = _nnclr_inputs(b=32, d=8, n=40)
  fn = lambda a, b, c, d, s, axis_name=None: L.nnclr(a, b, s, p1=c, p2=d, temperature=0.1, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (z1, z2, p1, p2), (support,), argnums=(0, 1, 2, 3))
  np.testing.assert_allclose(v1, nnclr_reference(z1, z2, p1, p2, support, 0.1), rtol=1e-5)
  # Negatives come from the whole batch: the value is not the mean of per-device losses with local negatives.
  local = np.mean([nnclr_reference(z1[i:i + 4], z2[i:i + 4], p1[i:i + 4], p2[i:i + 4], support, 0.1)
                   for i in range(0, 32, 4)])
  assert abs(float(v1) - local) > 1e-2  # v1 == the 8-device value (asserted above)


def test_nnclr_bfloat16_and_bad_inputs():
  z1, z2, p1, p2, support = _nnclr_inputs()
  got = L.nnclr(*(jnp.asarray(x, jnp.bfloat16) for x in (z1, z2, support)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, nnclr_reference(z1, z2, z1, z2, support, 0.1), rtol=3e-2)
  with pytest.raises(ValueError, match=r"z1 and p2 must have the same shape; got \(16, 8\) and \(16, 4\)"):
    L.nnclr(z1, z2, support, p2=p2[:, :4])
  with pytest.raises(ValueError, match=r"support must have shape \[n, 8\]"):
    L.nnclr(z1, z2, support[:, :4])


# ------------------------------------------------------------------------------------------------------------------
# npid, npid_nce_normalizer, memory_bank_update
# ------------------------------------------------------------------------------------------------------------------

def npid_softmax_reference(features, indices, bank, temperature):
  """Paper eq. 2: P(i|v) = exp(v_i.f/T) / sum_j exp(v_j.f/T) over the whole bank; mean of -log P(index|f)."""
  f, bank = _unit(features), np.asarray(bank, np.float64)
  total = 0.0
  for fi, i in zip(f, indices):
    scores = np.array([vj @ fi for vj in bank]) / temperature
    total += -scores[i] + _lse(scores)
  return total / len(f)


def noise_indices(key, batch, m, n):
  """The sampling rule of the spec: example r's noise is randint(fold_in(key, r), (m,), 0, N)."""
  draw = lambda r: jax.random.randint(jax.random.fold_in(key, r), (m,), 0, n)
  return np.asarray(jax.jit(jax.vmap(draw))(jnp.arange(batch)))


def npid_nce_reference(features, indices, bank, temperature, noise, z=None):
  """Paper eq. 5-7 in float64: P(i|v) = exp(v.f/T)/Z, h = P/(P + m/N), Z = N * mean of the noise terms."""
  f, bank = _unit(features), np.asarray(bank, np.float64)
  n, m = len(bank), noise.shape[1]
  if z is None:
    z = n * np.mean([np.exp(bank[j] @ fi / temperature) for fi, row in zip(f, noise) for j in row])
  prob = lambda v, fi: np.exp(v @ fi / temperature) / z
  total = 0.0
  for fi, i, row in zip(f, indices, noise):
    h_pos = prob(bank[i], fi) / (prob(bank[i], fi) + m / n)
    total += -np.log(h_pos) - sum(np.log(1 - prob(bank[j], fi) / (prob(bank[j], fi) + m / n)) for j in row)
  return total / len(f), z


def _npid_inputs(b=16, d=8, n=40, seed=0):
  bank = _unit(_randn(n, d, seed=seed)).astype(np.float32)
  indices = np.random.RandomState(seed + 1).permutation(n)[:b].astype(np.int32)
  features = bank[indices] + 0.7 * _randn(b, d, seed=seed + 2)
  return features, indices, bank


def test_npid_hand_case_full_softmax():
  # f = e1, bank = eye(2), index 0, T = 1: -1 + log(e^1 + e^0) = log(1 + e^-1).
  got = L.npid(jnp.array([[5.0, 0.0]]), jnp.array([0]), jnp.eye(2), temperature=1.0)
  np.testing.assert_allclose(got, np.log1p(np.exp(-1.0)), rtol=1e-6)


def test_npid_hand_case_nce():
  # N = 2, m = 1, T = 1, bank = eye(2), f = e1 at index 0, fixed Z = e. P(pos) = e^1/e = 1 and, for a noise row
  # j, P = e^{f.v_j}/e; m Pn = 1/2, so -log h_pos = -log(1 / 1.5) = log 1.5.
  noise = noise_indices(KEY, 1, 1, 2)[0, 0]
  p_neg = np.exp([1.0, 0.0][noise]) / np.e
  expected = np.log(1.5) - np.log(0.5 / (p_neg + 0.5))
  got = L.npid(jnp.array([[1.0, 0.0]]), jnp.array([0]), jnp.eye(2), temperature=1.0, num_negatives=1, key=KEY,
               nce_normalizer=np.e)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_npid_full_softmax_matches_reference_and_jit(temperature):
  features, indices, bank = _npid_inputs()
  got = L.npid(features, indices, bank, temperature=temperature)
  np.testing.assert_allclose(got, npid_softmax_reference(features, indices, bank, temperature), rtol=1e-5)
  jitted = jax.jit(lambda a, b, c: L.npid(a, b, c, temperature=temperature))(features, indices, bank)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_npid_nce_matches_reference_estimated_and_fixed_normalizer():
  features, indices, bank = _npid_inputs()
  noise = noise_indices(KEY, 16, 6, 40)
  ref, ref_z = npid_nce_reference(features, indices, bank, 0.07, noise)
  got = jax.jit(lambda a, b, c, k: L.npid(a, b, c, num_negatives=6, key=k))(features, indices, bank, KEY)
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  z = L.npid_nce_normalizer(features, indices, bank, num_negatives=6, key=KEY)
  np.testing.assert_allclose(z, ref_z, rtol=1e-5)
  # A fixed Z (e.g. kept from the first batch) replaces the estimate.
  fixed = L.npid(features, indices, bank, num_negatives=6, key=KEY, nce_normalizer=3.0 * ref_z)
  np.testing.assert_allclose(fixed, npid_nce_reference(features, indices, bank, 0.07, noise, 3.0 * ref_z)[0],
                             rtol=1e-5)


def test_npid_gradients():
  features, indices, bank = _npid_inputs(b=4, d=3, n=6, seed=3)
  features, bank = features.astype(np.float64), bank.astype(np.float64)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda f: L.npid(f, indices, bank, temperature=0.5)), (features,), order=1, modes=["rev"])
    # With a fixed Z (as in training after the first batch) the NCE loss is an ordinary function of f; the
    # batch estimate of Z is a stop-gradient constant, which finite differences would not see as one.
    nce = lambda f: L.npid(f, indices, bank, temperature=0.5, num_negatives=3, key=KEY, nce_normalizer=4.0)
    check_grads(jax.jit(nce), (features,), order=1, modes=["rev"])
    g_bank = jax.grad(lambda v: L.npid(features, indices, v))(bank)
  np.testing.assert_array_equal(g_bank, 0.0)  # the bank is a constant


def test_npid_8_devices_equals_1_device(mesh8):
  features, indices, bank = _npid_inputs(b=32, d=8, n=48)
  full = lambda f, i, v, axis_name=None: L.npid(f, i, v, temperature=0.1, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(full, mesh8, (features, indices), (bank,), argnums=(0,))
  np.testing.assert_allclose(v1, npid_softmax_reference(features, indices, bank, 0.1), rtol=1e-5)
  nce = lambda f, i, v, k, axis_name=None: L.npid(f, i, v, temperature=0.1, num_negatives=5, key=k,
                                                  axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(nce, mesh8, (features, indices), (bank, KEY), argnums=(0,))
  ref, ref_z = npid_nce_reference(features, indices, bank, 0.1, noise_indices(KEY, 32, 5, 48))
  np.testing.assert_allclose(v1, ref, rtol=1e-5)
  # Z is a global-batch statistic: on 8 devices every device holds the estimate over all 32 examples.
  zfn = lambda f, i, v, k, axis_name=None: L.npid_nce_normalizer(f, i, v, temperature=0.1, num_negatives=5, key=k,
                                                                 axis_name=axis_name)
  for z in multidevice.run_1_and_8(zfn, mesh8, (features, indices), (bank, KEY)):
    np.testing.assert_allclose(z, ref_z, rtol=1e-5)
  shard_z = npid_nce_reference(features[:4], indices[:4], bank, 0.1, noise_indices(KEY, 4, 5, 48))[1]
  assert abs(shard_z - ref_z) > 1e-3 * ref_z


def test_npid_bfloat16_and_bad_inputs():
  features, indices, bank = _npid_inputs()
  got = L.npid(jnp.asarray(features, jnp.bfloat16), indices, jnp.asarray(bank, jnp.bfloat16), temperature=0.5)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, npid_softmax_reference(features, indices, bank, 0.5), rtol=3e-2)
  with pytest.raises(ValueError, match=r"indices must have shape \[16\] \(one label per example\); got shape \(15,\)"):
    L.npid(features, indices[:15], bank)
  with pytest.raises(ValueError, match=r"memory_bank must have shape \[N, 8\]"):
    L.npid(features, indices, bank[:, :4])
  with pytest.raises(ValueError, match="needs a PRNG key"):
    L.npid(features, indices, bank, num_negatives=4)
  with pytest.raises(ValueError, match="nce_normalizer must be > 0; got 0.0"):
    L.npid(features, indices, bank, num_negatives=4, key=KEY, nce_normalizer=0.0)


def memory_bank_reference(bank, features, indices, momentum):
  """Paper sec. 3.4 update, one row at a time; an index repeated in the batch uses the mean of its features."""
  bank, f = np.array(bank, np.float64), _unit(features)
  for i in np.unique(indices):
    v = momentum * bank[i] + (1 - momentum) * f[indices == i].mean(axis=0)
    bank[i] = v / np.linalg.norm(v)
  return bank


def test_memory_bank_update_matches_reference_with_duplicates():
  features, indices, bank = _npid_inputs()
  indices = indices.copy()
  indices[[3, 9, 12]] = indices[0]  # one row appears four times
  got = jax.jit(L.memory_bank_update)(bank, features, indices)
  np.testing.assert_allclose(got, memory_bank_reference(bank, features, indices, 0.5), rtol=1e-5, atol=1e-7)
  untouched = np.setdiff1d(np.arange(40), indices)
  np.testing.assert_array_equal(np.asarray(got)[untouched], bank[untouched])
  # momentum 0 stores the normalised features.
  fresh = L.memory_bank_update(bank, features[:2], indices[1:3], momentum=0.0)
  np.testing.assert_allclose(fresh[indices[1:3]], _unit(features[:2]), rtol=1e-6)


def test_memory_bank_update_8_devices_equals_1_device(mesh8):
  features, indices, bank = _npid_inputs(b=32, d=8, n=48)
  indices = indices.copy()
  indices[[5, 20, 31]] = indices[2]  # duplicates on different devices
  fn = lambda f, i, v, axis_name=None: L.memory_bank_update(v, f, i, momentum=0.5, axis_name=axis_name)
  ref = memory_bank_reference(bank, features, indices, 0.5)
  for out in multidevice.run_1_and_8(fn, mesh8, (features, indices), (bank,)):
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)


def test_memory_bank_update_bad_inputs():
  features, indices, bank = _npid_inputs()
  with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\); got 1.0"):
    L.memory_bank_update(bank, features, indices, momentum=1.0)
  with pytest.raises(ValueError, match="indices must be an integer array"):
    L.memory_bank_update(bank, features, indices.astype(np.float32))
