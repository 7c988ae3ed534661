"""ODC: memory init, re-weighted pseudo-label loss, memory update, small-cluster fix; NumPy references written
from the paper / mmselfsup's description, 1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from rl.losses import online_clustering as L
from tests import multidevice


def normalize_np(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def class_weights_reference(labels, num_classes, power=0.5):
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  w = np.array([c ** -power if c > 0 else 0.0 for c in counts])
  return w * (np.count_nonzero(counts) / w.sum())


def odc_loss_reference(logits, indices, label_bank, weights=None):
  logits = np.asarray(logits, np.float64)
  total = 0.0
  for i, j in enumerate(indices):
    y = label_bank[j]
    m = logits[i].max()
    ce = m + np.log(np.exp(logits[i] - m).sum()) - logits[i, y]
    total += (1.0 if weights is None else weights[y]) * ce
  return total / len(indices)


def odc_update_reference(bank, labels, centroids, features, indices, momentum):
  """One sample at a time: EMA the bank feature, re-label against the old centroids, refresh touched clusters."""
  bank, labels, centroids = np.array(bank, np.float64), np.array(labels), np.array(centroids, np.float64)
  old_centroids = centroids.copy()
  f = normalize_np(np.asarray(features, np.float64))
  touched, changed = set(), 0
  for i, j in enumerate(indices):
    bank[j] = normalize_np(momentum * bank[j] + (1 - momentum) * f[i])
    new = int(np.argmax(old_centroids @ bank[j]))
    if new != labels[j]:
      touched |= {new, int(labels[j])}
      changed += 1
    labels[j] = new
  for c in touched:
    members = bank[labels == c]
    if len(members):
      centroids[c] = normalize_np(members.mean(axis=0))
  return bank, labels, centroids, changed


def _memory(n=64, d=4, c=5, seed=0):
  rng = np.random.RandomState(seed)
  feats = rng.randn(n, d).astype(np.float32)
  labels = np.concatenate([np.arange(c), rng.randint(0, c, n - c)]).astype(np.int32)
  return feats, labels, L.odc_init(jnp.asarray(feats), jnp.asarray(labels), c)


# ------------------------------------------------------------------------------------------------------------
# odc_init, odc_class_weights, odc
# ------------------------------------------------------------------------------------------------------------

def test_init_centroids_are_normalised_class_means():
  feats, labels, mem = _memory()
  np.testing.assert_allclose(mem.feature_bank, normalize_np(feats), rtol=1e-5)
  np.testing.assert_array_equal(mem.label_bank, labels)
  u = normalize_np(feats.astype(np.float64))
  want = np.stack([normalize_np(u[labels == c].mean(axis=0)) for c in range(5)])
  np.testing.assert_allclose(mem.centroids, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"labels must use every class in \[0, 3\).*\[1, 0, 1\]"):
    L.odc_init(jnp.ones((2, 2)), jnp.array([0, 2]), 3)
  with pytest.raises(ValueError, match=r"labels must have shape \[2\]"):
    L.odc_init(jnp.ones((2, 2)), jnp.array([0, 1, 1]), 2)


def test_loss_hand_case():
  # logits [0, log 3], pseudo-label 1: ce = log(1 + 3) - log 3 = log(4/3).
  # Label bank [1, 1, 1, 0]: sizes [1, 3], raw weights [1, 3^-1/2], scaled to mean 1: w_1 = 2 * 3^-1/2 / (1 + 3^-1/2).
  logits, idx, bank = jnp.array([[0.0, np.log(3.0)]]), jnp.array([2]), jnp.array([1, 1, 1, 0])
  np.testing.assert_allclose(L.odc(logits, idx, bank, reweight=False), np.log(4 / 3), rtol=1e-6)
  w1 = 2 * 3 ** -0.5 / (1 + 3 ** -0.5)
  np.testing.assert_allclose(L.odc(logits, idx, bank), w1 * np.log(4 / 3), rtol=1e-6)
  np.testing.assert_allclose(L.odc(logits, idx, bank, class_weights=jnp.array([5.0, 2.0])), 2 * np.log(4 / 3),
                             rtol=1e-6)


def test_loss_matches_float64_reference_and_jit():
  rng = np.random.RandomState(1)
  label_bank = np.concatenate([np.zeros(20), rng.randint(0, 6, 44)]).astype(np.int32)  # unbalanced
  logits = rng.randn(16, 6).astype(np.float32)
  idx = rng.permutation(64)[:16].astype(np.int32)
  w = class_weights_reference(label_bank, 6)
  np.testing.assert_allclose(L.odc_class_weights(jnp.asarray(label_bank), 6), w, rtol=1e-5)
  got = L.odc(logits, idx, label_bank)
  np.testing.assert_allclose(got, odc_loss_reference(logits, idx, label_bank, w), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.odc)(logits, idx, label_bank), got, rtol=1e-6)
  np.testing.assert_allclose(L.odc(logits, idx, label_bank, reweight=False),
                             odc_loss_reference(logits, idx, label_bank), rtol=1e-5)
  got_bf16 = L.odc(jnp.asarray(logits, jnp.bfloat16), idx, label_bank)
  assert got_bf16.dtype == jnp.float32
  np.testing.assert_allclose(got_bf16, got, rtol=2e-2)


def test_loss_gradients():
  rng = np.random.RandomState(2)
  label_bank = jnp.array([0, 0, 0, 1, 2, 2])
  logits = rng.randn(4, 3)
  with jax.enable_x64(True):
    check_grads(lambda x: L.odc(x, jnp.array([0, 3, 4, 1]), label_bank), (jnp.asarray(logits),), order=1,
                modes=["rev"])


def test_loss_8_devices_equals_1_device(mesh8):
  rng = np.random.RandomState(3)
  label_bank = rng.randint(0, 5, 64).astype(np.int32)
  logits = rng.randn(32, 5).astype(np.float32)
  idx = rng.permutation(64)[:32].astype(np.int32)
  fn = lambda x, i, bank, axis_name=None: L.odc(x, i, bank, axis_name=axis_name)
  v1, _ = multidevice.assert_1_equals_8(fn, mesh8, (logits, idx), (label_bank,))
  w = class_weights_reference(label_bank, 5)
  np.testing.assert_allclose(v1, odc_loss_reference(logits, idx, label_bank, w), rtol=1e-5)


def test_loss_bad_inputs():
  with pytest.raises(ValueError, match=r"logits must have shape \[b, C\]; got shape \(3,\)"):
    L.odc(jnp.zeros(3), jnp.array([0]), jnp.array([0]))
  with pytest.raises(ValueError, match=r"indices must have shape \[2\]"):
    L.odc(jnp.zeros((2, 3)), jnp.array([0]), jnp.array([0, 1]))
  with pytest.raises(ValueError, match="label_bank must be an integer array"):
    L.odc(jnp.zeros((1, 3)), jnp.array([0]), jnp.array([0.0]))
  with pytest.raises(ValueError, match=r"class_weights must have shape \[3\]"):
    L.odc(jnp.zeros((1, 3)), jnp.array([0]), jnp.array([0]), class_weights=jnp.ones(2))


# ------------------------------------------------------------------------------------------------------------
# odc_update, odc_update_centroids
# ------------------------------------------------------------------------------------------------------------

def _batch(n=64, b=32, d=4, seed=5):
  rng = np.random.RandomState(seed)
  return rng.randn(b, d).astype(np.float32), rng.permutation(n)[:b].astype(np.int32)


@pytest.mark.parametrize("momentum", [0.5, 0.0])
def test_update_matches_reference(momentum):
  _, _, mem = _memory()
  feats, idx = _batch()
  new, aux = jax.jit(lambda m, f, i: L.odc_update(m, f, i, momentum=momentum))(mem, feats, idx)
  bank, labels, cents, changed = odc_update_reference(*mem, feats, idx, momentum)
  assert changed > 0  # the test exercises relabelling and centroid refresh
  np.testing.assert_allclose(new.feature_bank, bank, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(new.label_bank, labels)
  np.testing.assert_allclose(new.centroids, cents, rtol=1e-5, atol=1e-6)
  assert int(aux["num_changed"]) == changed
  np.testing.assert_allclose(aux["change_ratio"], changed / len(idx), rtol=1e-6)
  # Without the centroid refresh the centroids stay; odc_update_centroids then recomputes all of them.
  kept, _ = L.odc_update(mem, feats, idx, momentum=momentum, update_centroids=False)
  np.testing.assert_array_equal(kept.centroids, mem.centroids)
  full = L.odc_update_centroids(kept)
  want = np.stack([normalize_np(bank[labels == c].mean(axis=0)) for c in range(5)])
  np.testing.assert_allclose(full.centroids, want, rtol=1e-5, atol=1e-6)


def test_update_8_devices_equals_1_device(mesh8):
  _, _, mem = _memory(seed=6)
  feats, idx = _batch(seed=7)

  def fn(f, i, bank, labels, cents, axis_name=None):
    return L.odc_update(L.ODCMemory(bank, labels, cents), f, i, axis_name=axis_name)

  specs = (L.ODCMemory(P(), P(), P()), {"num_changed": P(), "change_ratio": P()})
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (feats, idx), tuple(mem), out_specs=specs)
  bank, labels, cents, changed = odc_update_reference(*mem, feats, idx, 0.5)
  np.testing.assert_allclose(single[0].feature_bank, bank, rtol=1e-5, atol=1e-6)
  assert int(single[1]["num_changed"]) == changed > 0
  for other in (sm, pm):
    for a, b in zip(jax.tree.leaves(other), jax.tree.leaves(single)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_update_bad_inputs():
  _, _, mem = _memory()
  with pytest.raises(ValueError, match=r"features must have shape \[b, 4\] to match the feature bank; got shape"):
    L.odc_update(mem, jnp.zeros((2, 3)), jnp.array([0, 1]))
  with pytest.raises(ValueError, match=r"indices must have shape \[2\]"):
    L.odc_update(mem, jnp.zeros((2, 4)), jnp.array([0, 1, 2]))
  with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\]"):
    L.odc_update(mem, jnp.zeros((2, 4)), jnp.array([0, 1]), momentum=2.0)
  with pytest.raises(ValueError, match=r"memory.centroids must have shape \[C, 4\]"):
    L.odc_update(mem._replace(centroids=jnp.zeros((5, 3))), jnp.zeros((2, 4)), jnp.array([0, 1]))


# ------------------------------------------------------------------------------------------------------------
# odc_fix_small_clusters
# ------------------------------------------------------------------------------------------------------------

def _blobs(rng, center, n):
  return center + 0.05 * rng.randn(n, len(center))


def test_fix_small_clusters_dissolves_and_splits_the_largest():
  rng = np.random.RandomState(0)
  e = np.eye(4)
  # Cluster 0: 15 near e0. Cluster 1 (largest, 20): two blobs near e1 and e2. Cluster 2 (small, 3): near e0.
  # Cluster 3: 12 near e3.
  feats = np.concatenate([_blobs(rng, e[0], 15), _blobs(rng, e[1], 10), _blobs(rng, e[2], 10),
                          _blobs(rng, e[0], 3), _blobs(rng, e[3], 12)]).astype(np.float32)
  labels = np.array([0] * 15 + [1] * 20 + [2] * 3 + [3] * 12, np.int32)
  mem = L.odc_init(jnp.asarray(feats), jnp.asarray(labels), 4)
  new, aux = jax.jit(lambda m, k: L.odc_fix_small_clusters(m, k, min_cluster=5))(mem, jax.random.key(0))
  got = np.asarray(new.label_bank)
  assert int(aux["num_small"]) == 1
  np.testing.assert_array_equal(got[35:38], 0)  # the small cluster's samples joined the nearest big centroid
  np.testing.assert_array_equal(got[:15], 0)
  np.testing.assert_array_equal(got[38:], 3)
  # Cluster 1 was split along its two blobs; one of them is now cluster 2.
  assert len(set(got[15:25])) == 1 and len(set(got[25:35])) == 1 and {got[15], got[25]} == {1, 2}
  u = normalize_np(feats.astype(np.float64))
  for c in (1, 2):
    np.testing.assert_allclose(new.centroids[c], normalize_np(u[got == c].mean(axis=0)), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(new.centroids[3], mem.centroids[3])
  # Nothing small: nothing changes.
  same, aux = L.odc_fix_small_clusters(mem, jax.random.key(0), min_cluster=3)
  assert int(aux["num_small"]) == 0
  np.testing.assert_array_equal(same.label_bank, labels)


def test_fix_small_clusters_random_halving_of_identical_features():
  # The largest cluster holds 8 identical features: 2-means cannot split it, so it is halved at random.
  feats = np.concatenate([np.tile([[1.0, 0.0]], (8, 1)), [[0.0, 1.0]]]).astype(np.float32)
  labels = np.array([0] * 8 + [1], np.int32)
  mem = L.ODCMemory(jnp.asarray(feats), jnp.asarray(labels), jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
  new, _ = L.odc_fix_small_clusters(mem, jax.random.key(1), min_cluster=1)  # cluster 2 is empty
  counts = np.bincount(np.asarray(new.label_bank), minlength=3)
  np.testing.assert_array_equal(counts, [4, 1, 4])
  with pytest.raises(ValueError, match="min_cluster must be > 0"):
    L.odc_fix_small_clusters(mem, jax.random.key(1), min_cluster=0)
