"""DeepCluster-v2 (the clustering stage of the joint image-volume method): float64 NumPy references written from
the released code (ssl_deepcluster_3D.py: `cluster_memory`, the loss and the memory update of `train`), gradients,
1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from rl.losses import deepcluster as D
from tests import multidevice
from tests.losses import numeric_grad

KEY = jax.random.key(3)


# ------------------------------------------------------------------------------------------------ references --

def loss_reference(scores, assignments, indices, num_crops, temperature=0.1):
  """Per head: nn.CrossEntropyLoss(ignore_index=-100)(output[h] / T, assignments[h][idx].repeat(num_crops)),
  one row at a time; the mean over the kept rows; then the mean over heads."""
  per_head = []
  for h, s in enumerate(scores):
    s = np.asarray(s, np.float64) / temperature
    b = len(s) // num_crops
    targets = [int(assignments[h][indices[i % b]]) for i in range(len(s))]  # torch's 1-D .repeat: tiled
    terms = []
    for row, y in zip(s, targets):
      if y == -100:
        continue
      m = row.max()
      terms.append(m + np.log(np.sum(np.exp(row - m))) - row[y])
    per_head.append(np.mean(terms))
  return np.mean(per_head)


def cluster_memory_reference(key, memory, memory_index, num_samples, num_clusters, iters=10):
  """The code's cluster_memory on one process: bank j = h mod M; E step = argmax of dot products; M step = the
  mean of each non-empty cluster, then every centroid normalised; iters M steps then a last E step. The initial
  slots are the documented `jax.random.choice(fold_in(key, h), S, (K,), replace=False)` draw."""
  memory = np.asarray(memory, np.float64)
  memory = memory / np.linalg.norm(memory, axis=-1, keepdims=True)
  assignments = -100 * np.ones((len(num_clusters), num_samples), np.int64)
  all_centroids = []
  for h, k in enumerate(num_clusters):
    x = memory[:, h % memory.shape[1]]
    init = np.asarray(jax.random.choice(jax.random.fold_in(key, h), len(x), (k,), replace=False))
    c = x[init].copy()
    for n_iter in range(iters + 1):
      a = np.array([int(np.argmax([x[i] @ c[q] for q in range(k)])) for i in range(len(x))])
      if n_iter == iters:
        break
      for q in range(k):
        if np.any(a == q):
          c[q] = x[a == q].mean(axis=0)
      c = c / np.linalg.norm(c, axis=1, keepdims=True)
    all_centroids.append(c)
    for slot, sample in enumerate(memory_index):
      assignments[h, sample] = a[slot]
  return all_centroids, assignments


def memory_update_reference(mem, mem_idx, ptr, emb, idx, num_crops, crops_for_assign):
  """The code's update: local_memory_embeddings[i][start:start + bs] = emb[crop * bs:(crop + 1) * bs], slot-major
  here and wrapping at S."""
  mem, mem_idx = np.array(mem), np.array(mem_idx)
  b = len(emb) // num_crops
  for i in range(b):
    slot = (ptr + i) % len(mem)
    mem_idx[slot] = idx[i]
    for m, crop in enumerate(crops_for_assign):
      mem[slot, m] = emb[crop * b + i]
  return mem, mem_idx, (ptr + b) % len(mem)


def crop_major(x):
  """[b, V, K] (sample-major, so sharding axis 0 gives each device all crops of its samples) -> [V*b, K]."""
  return jnp.swapaxes(x, 0, 1).reshape(-1, x.shape[-1])


def _loss_inputs(b=16, crops=2, ks=(3, 5), n=40, seed=0, ignored=3):
  rng = np.random.RandomState(seed)
  scores = [rng.randn(b, crops, k).astype(np.float32) for k in ks]  # sample-major
  assignments = np.stack([rng.randint(0, k, n) for k in ks]).astype(np.int32)
  indices = rng.permutation(n)[:b].astype(np.int32)
  assignments[:, indices[:ignored]] = -100  # a few samples of the batch were in no memory slot
  assignments[1, indices[ignored]] = -100  # and one has a cluster in head 0 only
  return scores, assignments, indices


def _memory(s=32, m=2, d=5, n=50, seed=0):
  rng = np.random.RandomState(seed)
  means = rng.randn(4, d) * 3
  mem = (means[rng.randint(0, 4, (s, m))] + rng.randn(s, m, d)).astype(np.float32)
  return mem, rng.permutation(n)[:s].astype(np.int32)


# ---------------------------------------------------------------------------------------------- deepcluster_v2 --

def test_loss_hand_case_and_ignored_targets():
  # One head, scores [0, log 3] for both crops of sample 0 (cluster 1) at tau = 1: ce = log(4) - log(3) per crop.
  # Sample 1 has no cluster (-100): its rows count neither in the sum nor in the mean (dividing by all 4 rows
  # would halve the loss).
  s = jnp.array([[0.0, np.log(3.0)], [9.0, 0.0], [0.0, np.log(3.0)], [0.0, 9.0]])
  a = jnp.array([[1, -100]])
  np.testing.assert_allclose(D.deepcluster_v2(s, a, jnp.array([0, 1]), num_crops=2, temperature=1.0),
                             np.log(4 / 3), rtol=1e-6)
  # tau = 0.5 doubles the logits: log(1 + 9) - log 9.
  np.testing.assert_allclose(D.deepcluster_v2(s[:1], a, jnp.array([0]), num_crops=1, temperature=0.5),
                             np.log(10 / 9), rtol=1e-6)
  # Two heads: the mean of the heads (log(4/3) and log(2) for the uniform head-1 scores of cluster 0).
  two = D.deepcluster_v2([s, jnp.zeros((4, 2))], jnp.array([[1, -100], [0, -100]]), jnp.array([0, 1]), num_crops=2,
                         temperature=1.0)
  np.testing.assert_allclose(two, (np.log(4 / 3) + np.log(2)) / 2, rtol=1e-6)


def test_loss_head_without_targets_contributes_zero():
  s = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  got = D.deepcluster_v2([s, s], jnp.array([[0, 1], [-100, -100]]), jnp.array([0, 1]), num_crops=1, temperature=1.0)
  np.testing.assert_allclose(got, loss_reference([s], np.array([[0, 1]]), [0, 1], 1, 1.0) / 2, rtol=1e-6)
  g = jax.grad(lambda x: D.deepcluster_v2([x, x], jnp.array([[-100, -100], [-100, -100]]), jnp.array([0, 1]),
                                          num_crops=1))(s)
  assert np.all(np.isfinite(g)) and not np.any(g)


@pytest.mark.parametrize("crops,temperature", [(2, 0.1), (3, 0.5)])
def test_loss_matches_float64_reference_jit_bfloat16(crops, temperature):
  scores, assignments, indices = _loss_inputs(crops=crops, seed=crops)
  flat = [crop_major(s) for s in scores]
  want = loss_reference(flat, assignments, indices, crops, temperature)
  fn = lambda *s: D.deepcluster_v2(list(s), assignments, indices, num_crops=crops, temperature=temperature)
  np.testing.assert_allclose(fn(*flat), want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(fn)(*flat), want, rtol=1e-5)
  low = fn(*[s.astype(jnp.bfloat16) for s in flat])
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, want, rtol=2e-2)


def test_loss_gradients_match_finite_differences():
  scores, assignments, indices = _loss_inputs(b=4, crops=2, ks=(3, 4), n=8, seed=5, ignored=1)
  flat = [np.asarray(crop_major(s), np.float64) for s in scores]
  with jax.enable_x64(True):
    got = jax.grad(lambda a, c: D.deepcluster_v2([a, c], jnp.asarray(assignments), jnp.asarray(indices),
                                                 num_crops=2, temperature=0.3), argnums=(0, 1))(*flat)
  for h in range(2):
    def f(x, h=h):
      s = list(flat)
      s[h] = x
      return loss_reference(s, assignments, indices, 2, 0.3)
    np.testing.assert_allclose(got[h], numeric_grad(f, flat[h]), rtol=1e-5, atol=1e-8)


def test_loss_8_devices_equals_1_device(mesh8):
  scores, assignments, indices = _loss_inputs(b=16, crops=2, seed=7)
  fn = lambda s0, s1, i, a, axis_name=None: D.deepcluster_v2([crop_major(s0), crop_major(s1)], a, i, num_crops=2,
                                                              axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (*scores, indices), (assignments,), argnums=(0, 1))
  np.testing.assert_allclose(v1, loss_reference([crop_major(s) for s in scores], assignments, indices, 2),
                             rtol=1e-5)


def test_loss_bad_inputs():
  s, a, i = jnp.zeros((4, 3)), jnp.zeros((1, 5), jnp.int32), jnp.array([0, 1])
  with pytest.raises(ValueError, match=r"scores must have shape \[num_crops \* b, K\] with num_crops=3.*\(4, 3\)"):
    D.deepcluster_v2(s, a, i, num_crops=3)
  with pytest.raises(ValueError, match=r"scores\[1\] must have shape .*4 rows as every head; got shape \(6, 3\)"):
    D.deepcluster_v2([s, jnp.zeros((6, 3))], jnp.zeros((2, 5), jnp.int32), i, num_crops=2)
  with pytest.raises(ValueError, match=r"assignments must be an integer array of shape \[2, N\].*got shape \(1, 5\)"):
    D.deepcluster_v2([s, s], a, i, num_crops=2)
  with pytest.raises(ValueError, match=r"assignments must be an integer array .*dtype float32"):
    D.deepcluster_v2(s, jnp.zeros((1, 5)), i, num_crops=2)
  with pytest.raises(ValueError, match=r"indices must have shape \[2\] \(one label per example\); got shape \(3,\)"):
    D.deepcluster_v2(s, a, jnp.array([0, 1, 2]), num_crops=2)
  with pytest.raises(ValueError, match=r"temperature must be > 0; got 0.0"):
    D.deepcluster_v2(s, a, i, num_crops=2, temperature=0.0)
  with pytest.raises(ValueError, match=r"num_crops must be an int >= 1; got 0"):
    D.deepcluster_v2(s, a, i, num_crops=0)


# -------------------------------------------------------------------------------------- deepcluster_v2_assign --

@pytest.mark.parametrize("iters", [0, 4])
def test_assign_matches_cluster_memory_reference(iters):
  mem, idx = _memory()
  ks = (3, 4, 2)  # head 2 clusters bank 0 again (h mod M)
  centroids, table = D.deepcluster_v2_assign(KEY, mem, idx, 50, num_clusters=ks, iters=iters)
  ref_c, ref_table = cluster_memory_reference(KEY, mem, idx, 50, ks, iters)
  for c, r in zip(centroids, ref_c):
    assert c.dtype == jnp.float32
    np.testing.assert_allclose(c, r, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(table, ref_table)
  assert table.dtype == jnp.int32
  unseen = np.setdiff1d(np.arange(50), idx)
  assert np.all(np.asarray(table)[:, unseen] == -100) and np.all(np.asarray(table)[:, idx] >= 0)
  jitted = jax.jit(lambda m, i: D.deepcluster_v2_assign(KEY, m, i, 50, num_clusters=ks, iters=iters))(mem, idx)
  np.testing.assert_array_equal(jitted[1], table)


def test_assign_hand_case_each_head_its_bank():
  # Bank 0 separates slots {0, 1} from {2, 3}; bank 1 separates {0, 2} from {1, 3}. Heads 0 and 2 read bank 0,
  # head 1 bank 1. Slot s holds dataset sample 3 - s; sample 4 is in no slot.
  e1, e2 = [1.0, 0.0], [0.0, 1.0]
  mem = jnp.array([[e1, e1], [e1, e2], [e2, e1], [e2, e2]])
  _, table = D.deepcluster_v2_assign(KEY, mem, jnp.array([3, 2, 1, 0]), 5, num_clusters=(2, 2, 2), iters=2)
  t = np.asarray(table)
  for h, (same, other) in enumerate((((3, 2), (1, 0)), ((3, 1), (2, 0)), ((3, 2), (1, 0)))):
    assert t[h, same[0]] == t[h, same[1]] != t[h, other[0]] == t[h, other[1]], (h, t[h])
  assert np.all(t[:, 4] == -100)


def test_assign_8_devices_equals_1_device(mesh8):
  mem, idx = _memory(s=32)
  ks = (3, 4)  # at most the 4 slots of one device, so that a k-means of the local shard alone would also run
  fn = lambda m, i, axis_name=None: D.deepcluster_v2_assign(KEY, m, i, 50, num_clusters=ks, iters=4,
                                                            axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, sharded=(mem, idx), out_specs=((P(), P()), P()))
  ref_c, ref_table = cluster_memory_reference(KEY, mem, idx, 50, ks, 4)
  np.testing.assert_array_equal(single[1], ref_table)
  for c, r in zip(single[0], ref_c):
    np.testing.assert_allclose(c, r, rtol=1e-5, atol=1e-6)
  for centroids, table in (sm, pm):
    np.testing.assert_array_equal(table, ref_table)
    for c, r in zip(centroids, single[0]):
      np.testing.assert_allclose(c, r, rtol=1e-5, atol=1e-6)


def test_assign_bad_inputs():
  mem, idx = _memory(s=8)
  with pytest.raises(ValueError, match=r"memory_embeddings must have shape \[S, M, d\]; got shape \(8, 5\)"):
    D.deepcluster_v2_assign(KEY, mem[:, 0], idx, 50, num_clusters=(2,))
  with pytest.raises(ValueError, match=r"memory_indices must have shape \[8\] .*got \(7,\)"):
    D.deepcluster_v2_assign(KEY, mem, idx[:7], 50, num_clusters=(2,))
  with pytest.raises(ValueError, match=r"memory_indices must be an integer array; got dtype float32"):
    D.deepcluster_v2_assign(KEY, mem, idx.astype(np.float32), 50, num_clusters=(2,))
  with pytest.raises(ValueError, match=r"num_clusters must be an integer in \[1, 8\]"):
    D.deepcluster_v2_assign(KEY, mem, idx, 50, num_clusters=(2, 9))
  with pytest.raises(ValueError, match=r"num_samples must be a positive int \(static\); got 0"):
    D.deepcluster_v2_assign(KEY, mem, idx, 0, num_clusters=(2,))
  with pytest.raises(ValueError, match=r"num_clusters must name at least one head"):
    D.deepcluster_v2_assign(KEY, mem, idx, 50, num_clusters=())


# ------------------------------------------------------------------------------- deepcluster_v2_memory_update --

@pytest.mark.parametrize("ptr,crops_for_assign", [(0, (0, 1)), (5, (2, 0))])
def test_memory_update_matches_reference(ptr, crops_for_assign):
  rng = np.random.RandomState(ptr)
  mem, mem_idx = rng.randn(7, 2, 3).astype(np.float32), rng.randint(0, 9, 7).astype(np.int32)
  emb, idx = rng.randn(3 * 4, 3).astype(np.float32), np.array([11, 12, 13, 14], np.int32)
  got = D.deepcluster_v2_memory_update(mem, mem_idx, jnp.int32(ptr), emb, idx, num_crops=3,
                                       crops_for_assign=crops_for_assign)
  want = memory_update_reference(mem, mem_idx, ptr, emb, idx, 3, crops_for_assign)
  np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_array_equal(got[1], want[1])
  assert int(got[2]) == want[2]
  g = jax.grad(lambda e: jnp.sum(D.deepcluster_v2_memory_update(mem, mem_idx, 0, e, idx, num_crops=3,
                                                                crops_for_assign=crops_for_assign)[0]))(emb)
  assert not np.any(g)  # the memory holds constants


def test_memory_update_per_device_shards(mesh8):
  # Each device writes its own samples into its own slots; the pointer advances by the local batch everywhere.
  rng = np.random.RandomState(1)
  mem, mem_idx = np.zeros((8 * 3, 2, 4), np.float32), np.zeros(8 * 3, np.int32)
  emb = rng.randn(8, 2, 2, 4).astype(np.float32)  # [devices, local b, crops, d]
  idx = np.arange(16, dtype=np.int32).reshape(8, 2)

  def local(m, mi, e, i, ptr):
    return D.deepcluster_v2_memory_update(m, mi, ptr, crop_major(e), i, num_crops=2)

  fn = jax.shard_map(local, mesh=mesh8, in_specs=(P("data"), P("data"), P("data"), P("data"), P()),
                     out_specs=(P("data"), P("data"), P()))
  put = lambda a, spec: jax.device_put(jnp.asarray(a), NamedSharding(mesh8, spec))
  got = jax.jit(fn)(put(mem, P("data")), put(mem_idx, P("data")), put(emb.reshape(16, 2, 4), P("data")),
                    put(idx.reshape(16), P("data")), put(np.int32(2), P()))
  assert int(got[2]) == 1  # (2 + 2) mod 3
  for dev in range(8):
    want = memory_update_reference(mem[3 * dev:3 * dev + 3], mem_idx[3 * dev:3 * dev + 3], 2,
                                   np.asarray(crop_major(emb[dev])), idx[dev], 2, (0, 1))
    np.testing.assert_array_equal(got[0][3 * dev:3 * dev + 3], want[0])
    np.testing.assert_array_equal(got[1][3 * dev:3 * dev + 3], want[1])


def test_memory_update_bad_inputs():
  mem, mi, e, i = jnp.zeros((4, 2, 3)), jnp.zeros(4, jnp.int32), jnp.zeros((4, 3)), jnp.array([0, 1])
  with pytest.raises(ValueError, match=r"memory_embeddings must have shape \[S, 1, d\] .*crops_for_assign=\(0,\)"):
    D.deepcluster_v2_memory_update(mem, mi, 0, e, i, num_crops=2, crops_for_assign=(0,))
  with pytest.raises(ValueError, match=r"crops_for_assign must be non-empty crop ids in \[0, 2\); got \(0, 2\)"):
    D.deepcluster_v2_memory_update(mem, mi, 0, e, i, num_crops=2, crops_for_assign=(0, 2))
  with pytest.raises(ValueError, match=r"embeddings must have shape \[num_crops \* b, 3\] .*got shape \(4, 5\)"):
    D.deepcluster_v2_memory_update(mem, mi, 0, jnp.zeros((4, 5)), i, num_crops=2)
  with pytest.raises(ValueError, match=r"indices must have shape \[2\]"):
    D.deepcluster_v2_memory_update(mem, mi, 0, e, jnp.array([0, 1, 2]), num_crops=2)
  with pytest.raises(ValueError, match=r"a batch of 6 samples does not fit in a memory of 4 slots"):
    D.deepcluster_v2_memory_update(mem, mi, 0, jnp.zeros((12, 3)), jnp.arange(6), num_crops=2)
  with pytest.raises(ValueError, match=r"ptr must be an integer scalar; got shape \(\) and dtype float32"):
    D.deepcluster_v2_memory_update(mem, mi, jnp.float32(0), e, i, num_crops=2)


# ------------------------------------------------------------------------------------------------- one epoch --

def test_one_epoch_pseudo_labels_follow_the_clusters():
  # Fill the memory over an epoch of 4 steps, cluster it, and score with the centroids as prototypes (VISSL's
  # 2-D stage): the loss against the k-means labels is below the loss against a shuffled labelling.
  rng = np.random.RandomState(0)
  means = rng.randn(3, 6) * 4
  labels = rng.randint(0, 3, 32)
  views = means[labels][:, None] + 0.3 * rng.randn(32, 2, 6)
  views = (views / np.linalg.norm(views, axis=-1, keepdims=True)).astype(np.float32)
  order = rng.permutation(32)
  mem, mem_idx, ptr = jnp.zeros((32, 2, 6)), jnp.zeros(32, jnp.int32), jnp.int32(0)
  for step in range(4):
    batch = order[8 * step:8 * step + 8]
    mem, mem_idx, ptr = D.deepcluster_v2_memory_update(mem, mem_idx, ptr, crop_major(views[batch]),
                                                       jnp.asarray(batch), num_crops=2)
  assert int(ptr) == 0 and sorted(np.asarray(mem_idx).tolist()) == list(range(32))
  (c,), table = D.deepcluster_v2_assign(KEY, mem, mem_idx, 32, num_clusters=(3,))
  t = np.asarray(table[0])
  assert all(len(set(t[labels == k])) == 1 for k in range(3)) and len(set(t)) == 3
  batch = jnp.arange(8)
  s = crop_major(views[:8]) @ c.T
  good = D.deepcluster_v2(s, table, batch, num_crops=2)
  bad = D.deepcluster_v2(s, (table + 1) % 3, batch, num_crops=2)
  assert float(good) < float(bad)
  np.testing.assert_allclose(good, loss_reference([s], np.asarray(table), np.arange(8), 2), rtol=1e-5)
