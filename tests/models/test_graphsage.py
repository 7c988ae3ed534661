"""GraphSAGE: sample_neighbors (membership, uniformity, dead ends, seeding) and SAGEConv (Algorithm 1 against a
float64 NumPy reference for both aggregators, masks, target subsets, gradients, jit, bad inputs), plus the
unsupervised loss of paper eq. 1 assembled from rl.losses.graph."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import graph as Gr
from rl.losses.graph import sample_neighbors
from rl.models.graphsage import SAGEConv


def to_csr(num_nodes, edges):
  rows = collections.defaultdict(set)
  for a, b in edges:
    rows[a].add(b)
    rows[b].add(a)
  indptr, indices = [0], []
  for v in range(num_nodes):
    indices += sorted(rows[v])
    indptr.append(len(indices))
  return np.array(indptr, np.int32), np.array(indices, np.int32)


# Node 5 is isolated.
INDPTR, INDICES = to_csr(6, [(0, 1), (0, 2), (0, 3), (1, 2), (3, 4)])


# ---------------------------------------------------------------------------------------------------- sampling

def test_sample_neighbors_membership_uniformity_and_dead_ends():
  nodes = jnp.array([0, 4, 5, 0])
  nb, mask = sample_neighbors(jax.random.key(0), INDPTR, INDICES, nodes, num_samples=3000)
  assert nb.shape == mask.shape == (4, 3000) and nb.dtype == jnp.int32 and mask.dtype == jnp.bool_
  nb, mask = np.asarray(nb), np.asarray(mask)
  # Node 0 has neighbours {1, 2, 3}: each drawn with probability 1/3 (with replacement).
  np.testing.assert_allclose([np.mean(nb[0] == k) for k in (1, 2, 3)], [1 / 3] * 3, atol=0.03)
  assert set(nb[3]) == {1, 2, 3} and not np.array_equal(nb[0], nb[3])  # independent draws per row
  assert set(nb[1]) == {3}
  assert mask[:2].all() and not mask[2].any()
  np.testing.assert_array_equal(nb[2], 5)  # isolated: itself, masked out


def test_sample_neighbors_seeding_jit_and_bad_inputs():
  nodes = jnp.arange(6)
  a = sample_neighbors(jax.random.key(1), INDPTR, INDICES, nodes, num_samples=4)
  b = jax.jit(lambda k: sample_neighbors(k, INDPTR, INDICES, nodes, num_samples=4))(jax.random.key(1))
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.array_equal(a[0], sample_neighbors(jax.random.key(2), INDPTR, INDICES, nodes, num_samples=4)[0])
  with pytest.raises(ValueError, match="num_samples must be an int >= 1"):
    sample_neighbors(jax.random.key(0), INDPTR, INDICES, nodes, num_samples=0)
  with pytest.raises(ValueError, match="nodes must be an integer array"):
    sample_neighbors(jax.random.key(0), INDPTR, INDICES, nodes.astype(jnp.float32))


# ---------------------------------------------------------------------------------------------------- SAGEConv

def sage_reference(params, x, nb, mask, aggregator, activate=True, normalize=True):
  """Algorithm 1, one layer, in float64: h = ReLU(W [h_v ; AGG(h_u, u in N(v))]); h / ||h||."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
  x = np.asarray(x, np.float64)
  out = []
  for v in range(nb.shape[0]):
    real = [u for u, m in zip(nb[v], mask[v]) if m]
    if aggregator == "mean":
      agg = np.mean([x[u] for u in real], axis=0) if real else np.zeros(x.shape[1])
    else:
      pooled = [np.maximum(x[u] @ p["pool"]["kernel"] + p["pool"]["bias"], 0.0) for u in real]
      agg = np.max(pooled, axis=0) if real else np.zeros(p["pool"]["kernel"].shape[1])
    h = np.concatenate([x[v], agg]) @ p["dense"]["kernel"]
    if "bias" in p["dense"]:
      h = h + p["dense"]["bias"]
    if activate:
      h = np.maximum(h, 0.0)
    if normalize:
      h = h / max(np.linalg.norm(h), 1e-12)
    out.append(h)
  return np.array(out)


def _graph_inputs(seed=0):
  rng = np.random.RandomState(seed)
  x = rng.randn(6, 5).astype(np.float32)
  nb, mask = sample_neighbors(jax.random.key(seed), INDPTR, INDICES, jnp.arange(6), num_samples=4)
  return x, np.asarray(nb), np.asarray(mask)


@pytest.mark.parametrize("aggregator", ["mean", "maxpool"])
def test_sage_conv_matches_float64_reference(aggregator):
  x, nb, mask = _graph_inputs()
  mask = mask.copy()
  mask[0, 1:] = False  # a partly masked row
  layer = SAGEConv(features=7, aggregator=aggregator, pool_features=6)
  params = layer.init(jax.random.key(3), x, nb, mask)
  out = layer.apply(params, x, nb, mask)
  assert out.shape == (6, 7)
  np.testing.assert_allclose(out, sage_reference(params, x, nb, mask, aggregator), rtol=1e-5, atol=1e-6)
  norms = np.linalg.norm(out, axis=1)  # unit rows, except an all-zero ReLU output (stays 0, finite)
  assert (norms > 0).sum() >= 4
  np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
  raw = SAGEConv(features=7, aggregator=aggregator, pool_features=6, use_bias=True, activate=False,
                 normalize=False)
  params = raw.init(jax.random.key(4), x, nb, mask)
  np.testing.assert_allclose(raw.apply(params, x, nb, mask),
                             sage_reference(params, x, nb, mask, aggregator, activate=False, normalize=False),
                             rtol=1e-5, atol=1e-6)


def test_hand_case_mean_aggregator():
  # W = identity on [h_v ; mean h_u]: node 0 with neighbours 1 and 2 -> [1, 0 ; (0 + 2)/2, (3 + 1)/2] = [1, 0, 1, 2],
  # ReLU keeps it, norm sqrt(6).
  x = jnp.array([[1.0, 0.0], [0.0, 3.0], [2.0, 1.0]])
  nb, mask = jnp.array([[1, 2]]), jnp.array([[True, True]])
  params = {"params": {"dense": {"kernel": jnp.eye(4)}}}
  out = SAGEConv(features=4).apply(params, x, nb, mask, nodes=jnp.array([0]))
  np.testing.assert_allclose(out, np.array([[1.0, 0.0, 1.0, 2.0]]) / np.sqrt(6.0), rtol=1e-6)


@pytest.mark.parametrize("aggregator", ["mean", "maxpool"])
def test_masked_slots_are_ignored_and_nodes_subset(aggregator):
  x, nb, mask = _graph_inputs(seed=1)
  layer = SAGEConv(features=4, aggregator=aggregator)
  params = layer.init(jax.random.key(0), x, nb, mask)
  full = layer.apply(params, x, nb, mask)
  scrambled = np.where(mask, nb, (nb + 3) % 6)  # masked slots point elsewhere: no effect
  np.testing.assert_allclose(layer.apply(params, x, scrambled, mask), full, rtol=1e-6)
  sub = jnp.array([4, 0])
  np.testing.assert_allclose(layer.apply(params, x, nb[sub], mask[sub], nodes=sub), full[sub], rtol=1e-6)
  # Isolated node 5 aggregates to zeros: its output depends on its own features only.
  x2 = x.copy()
  x2[5] *= 2.0
  np.testing.assert_allclose(layer.apply(params, x2, nb, mask)[5], full[5], rtol=1e-5)  # unit norm: scale-free
  np.testing.assert_allclose(jax.jit(layer.apply)(params, x, nb, mask), full, rtol=1e-6)


def test_bad_inputs():
  x, nb, mask = _graph_inputs()
  layer = SAGEConv(features=4)
  params = layer.init(jax.random.key(0), x, nb, mask)
  with pytest.raises(ValueError, match=r"mask must have the shape of neighbors, \(6, 4\); got shape \(6, 3\)"):
    layer.apply(params, x, nb, mask[:, :3])
  with pytest.raises(ValueError, match="neighbors must have one row per row of x"):
    layer.apply(params, x, nb[:3], mask[:3])
  with pytest.raises(ValueError, match=r"nodes must have shape \[3\]"):
    layer.apply(params, x, nb[:3], mask[:3], nodes=jnp.arange(2))
  with pytest.raises(ValueError, match="aggregator must be 'mean' or 'maxpool'"):
    SAGEConv(features=4, aggregator="lstm").init(jax.random.key(0), x, nb, mask)
  with pytest.raises(ValueError, match="neighbors must be an integer array"):
    layer.apply(params, x, nb.astype(np.float32), mask)


def test_unsupervised_loss_eq1_from_walks_trains():
  # Paper eq. 1: skip-gram with negative sampling over nodes co-occurring on short uniform random walks.
  x, nb, mask = _graph_inputs(seed=2)
  walks = Gr.node2vec_walks(jax.random.key(0), INDPTR, INDICES, jnp.arange(5), walk_length=5)
  center, context = Gr.walk_context_pairs(walks, window=2)
  negatives = jax.random.randint(jax.random.key(1), (center.shape[0], 3), 0, 6)
  layer = SAGEConv(features=8, aggregator="maxpool")
  params = layer.init(jax.random.key(2), x, nb, mask)

  def loss(params):
    z = layer.apply(params, x, nb, mask)
    return Gr.skipgram_negative_sampling(z[center], z[context], z[negatives])

  value_and_grad = jax.jit(jax.value_and_grad(loss))
  first, g = value_and_grad(params)
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(g))
  for _ in range(20):
    _, g = value_and_grad(params)
    params = jax.tree.map(lambda p, g: p - 0.5 * g, params, g)
  assert float(value_and_grad(params)[0]) < float(first)


@pytest.mark.parametrize("aggregator", ["mean", "maxpool"])
def test_sage_conv_gradients_float64(aggregator):
  from jax.test_util import check_grads
  x, nb, mask = _graph_inputs(seed=3)
  with jax.enable_x64(True):
    layer = SAGEConv(features=4, aggregator=aggregator, use_bias=True, dtype=jnp.float64)
    params = jax.tree.map(lambda a: a.astype(np.float64), layer.init(jax.random.key(0), x, nb, mask))
    check_grads(lambda p, x: layer.apply(p, x, nb, mask), (params, x.astype(np.float64)), order=1, modes=["rev"])


def test_sage_conv_bfloat16_computation():
  x, nb, mask = _graph_inputs(seed=4)
  layer = SAGEConv(features=4, aggregator="maxpool")
  params = layer.init(jax.random.key(0), x, nb, mask)
  out = SAGEConv(features=4, aggregator="maxpool", dtype=jnp.bfloat16).apply(params, x, nb, mask)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), layer.apply(params, x, nb, mask), atol=3e-2)
