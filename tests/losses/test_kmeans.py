"""spherical_kmeans and assign_topk: hand cases, float64 NumPy references, 1 device == 8 devices, C = 10^6
centroids without an [n, C] intermediate."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rl.losses import kmeans as K
from tests import multidevice

KEY = jax.random.key(7)


def unit(a):
  a = np.asarray(a, np.float64)
  return a / np.linalg.norm(a, axis=1, keepdims=True)


def kmeans_reference(key, x, num_clusters, iters):
  """Lloyd on the sphere in float64, one point at a time; init: the documented jax.random.choice draw."""
  u = unit(x)
  init = np.asarray(jax.random.choice(key, len(u), (num_clusters,), replace=False))
  c = u[init].copy()
  for _ in range(iters):
    a = [int(np.argmax([u[i] @ c[k] for k in range(num_clusters)])) for i in range(len(u))]
    for k in range(num_clusters):
      members = [u[i] for i in range(len(u)) if a[i] == k]
      if members:
        s = np.sum(members, axis=0)
        c[k] = s / np.linalg.norm(s)
  return c, np.array([int(np.argmax(u[i] @ c.T)) for i in range(len(u))])


def blobs(b=32, d=6, centres=4, seed=0):
  rng = np.random.RandomState(seed)
  means = rng.randn(centres, d) * 3
  return (means[rng.randint(0, centres, size=b)] + rng.randn(b, d)).astype(np.float32)


# ----------------------------------------------------------------------------------------- spherical_kmeans --

def test_kmeans_hand_case():
  # Two tight pairs around e1 and e2: each centroid is the normalised sum of its pair, (2, 0)/2 and (0, 2)/2.
  x = jnp.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])
  c, a = K.spherical_kmeans(KEY, x, 2, iters=3)
  np.testing.assert_allclose(np.sort(np.asarray(c), axis=0), [[0.0, 0.0], [1.0, 1.0]], atol=1e-6)
  assert a[0] == a[1] and a[2] == a[3] and a[0] != a[2]


@pytest.mark.parametrize("iters", [0, 5])
def test_kmeans_matches_reference(iters):
  x = blobs()
  c, a = K.spherical_kmeans(KEY, x, 5, iters=iters)
  ref_c, ref_a = kmeans_reference(KEY, x, 5, iters)
  np.testing.assert_allclose(c, ref_c, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(a, ref_a)
  np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)


def test_kmeans_empty_cluster_keeps_its_centroid():
  # Three copies of a and one b, K = 3: any 3 distinct initial points include two copies of a; ties go to the
  # first, so the second a-centroid gets no point and must stay a (not become NaN or 0).
  a, b = [0.6, 0.8], [1.0, 0.0]
  c, assign = K.spherical_kmeans(KEY, jnp.array([a, a, a, b]), 3, iters=2)
  rows = lambda m: m[np.lexsort(m.T)]  # compare as a set of rows
  np.testing.assert_allclose(rows(np.asarray(c)), rows(np.array([a, a, b])), atol=1e-6)
  assert len(set(np.asarray(assign).tolist())) == 2


def test_kmeans_jit_bfloat16():
  x = blobs()
  f = lambda v: K.spherical_kmeans(KEY, v, 4, iters=4)
  c, a = f(x)
  cj, aj = jax.jit(f)(x)
  np.testing.assert_allclose(cj, c, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(aj, a)
  ch, _ = f(jnp.asarray(x, jnp.bfloat16))
  assert ch.dtype == jnp.float32


def test_kmeans_1_equals_8(mesh8):
  x = blobs(b=32)
  fn = lambda v, axis_name=None: K.spherical_kmeans(KEY, v, 6, iters=5, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, sharded=(x,), out_specs=(P(), P("data")))
  ref_c, ref_a = kmeans_reference(KEY, x, 6, 5)
  np.testing.assert_allclose(single[0], ref_c, rtol=1e-5, atol=1e-6)
  for c, a in (sm, pm):
    np.testing.assert_allclose(c, single[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a, single[1])
  # The equality is the collectives' doing: without axis_name, each of 2 devices clusters its own 16 points (its own
  # initial draw and sums) and gets other centroids than the global clustering.
  mesh2 = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2], axis_types=(jax.sharding.AxisType.Auto,))
  local = jax.jit(jax.shard_map(lambda v: K.spherical_kmeans(KEY, v, 6, iters=5)[0][None], mesh=mesh2,
                                in_specs=P("data"), out_specs=P("data")))(x)
  for c in np.asarray(local):
    assert not np.allclose(c, np.asarray(single[0]), atol=1e-3)
  np.testing.assert_allclose(local[0], kmeans_reference(KEY, x[:16], 6, 5)[0], rtol=1e-5, atol=1e-6)


def test_kmeans_bad_inputs():
  with pytest.raises(ValueError, match=r"num_clusters must be an integer in \[1, 32\]"):
    K.spherical_kmeans(KEY, blobs(), 33)
  with pytest.raises(ValueError, match=r"features must have shape \[b, d\]; got shape \(32,\)"):
    K.spherical_kmeans(KEY, blobs()[:, 0], 3)
  with pytest.raises(ValueError, match="iters must be an integer >= 0"):
    K.spherical_kmeans(KEY, blobs(), 3, iters=-1)


# ---------------------------------------------------------------------------------------------- assign_topk --

def test_assign_topk_hand_case():
  # x = (1, 0.2)/|.|: cosines 0.981 (e1), 0.196 (e2), 0.832 ((1,1)/sqrt 2) -> top 2 = [0, 2].
  c = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
  vals, idx = K.assign_topk(jnp.array([[1.0, 0.2]]), c, 2, chunk=2)
  n = np.hypot(1.0, 0.2)
  np.testing.assert_allclose(vals, [[1 / n, 1.2 / n / np.sqrt(2)]], rtol=1e-6)
  assert idx.tolist() == [[0, 2]] and idx.dtype == jnp.int32


@pytest.mark.parametrize("num_c,chunk,k", [(37, 8, 5), (37, 4, 10), (16, 100, 16)])
def test_assign_topk_matches_numpy(num_c, chunk, k):
  rng = np.random.RandomState(num_c + chunk)
  x, c = rng.randn(12, 6).astype(np.float32), rng.randn(num_c, 6).astype(np.float32)
  vals, idx = K.assign_topk(x, c, k, chunk=chunk)
  sims = unit(x) @ unit(c).T
  ref_idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  np.testing.assert_array_equal(idx, ref_idx)
  np.testing.assert_allclose(vals, np.take_along_axis(sims, ref_idx, axis=1), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(jax.jit(lambda a, b: K.assign_topk(a, b, k, chunk=chunk))(x, c)[1], idx)


def test_assign_topk_one_million_centroids():
  rng = np.random.RandomState(1)
  n, d, num_c, k, chunk = 16, 8, 1_000_000, 4, 65_536  # 10^6 is not a multiple of the chunk
  x, c = rng.randn(n, d).astype(np.float32), rng.randn(num_c, d).astype(np.float32)
  vals, idx = jax.jit(lambda a, b: K.assign_topk(a, b, k, chunk=chunk))(x, c)
  # NumPy reference in chunks: argpartition keeps each block's best k, then a final sort.
  u = unit(x)
  cand_v, cand_i = [], []
  for start in range(0, num_c, 100_000):
    s = u @ unit(c[start:start + 100_000]).T
    part = np.argpartition(-s, k, axis=1)[:, :k]
    cand_v.append(np.take_along_axis(s, part, axis=1))
    cand_i.append(part + start)
  cand_v, cand_i = np.concatenate(cand_v, axis=1), np.concatenate(cand_i, axis=1)
  order = np.argsort(-cand_v, axis=1)[:, :k]
  np.testing.assert_array_equal(idx, np.take_along_axis(cand_i, order, axis=1))
  np.testing.assert_allclose(vals, np.take_along_axis(cand_v, order, axis=1), rtol=1e-5)


def _all_shapes(jaxpr):
  """Shapes of every intermediate of a jaxpr, recursing into sub-jaxprs (scan bodies, pjit, ...)."""
  for eqn in jaxpr.eqns:
    for v in eqn.outvars:
      yield tuple(getattr(v.aval, "shape", ()))
    for p in eqn.params.values():
      for sub in (p if isinstance(p, (tuple, list)) else (p,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _all_shapes(inner)


def test_assign_topk_never_forms_the_n_by_c_matrix():
  n, d, num_c = 16, 8, 1_000_000
  jaxpr = jax.make_jaxpr(lambda a, b: K.assign_topk(a, b, 5, chunk=4096))(
      jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((num_c, d), jnp.float32))
  sizes = [int(np.prod(s)) for s in _all_shapes(jaxpr.jaxpr)]
  padded_c = -(-num_c // 4096) * 4096
  assert max(sizes) == padded_c * d < n * num_c  # the largest is the padded [C', d] centroid copy, O(C d)
  assert not any(len(s) == 2 and s[0] == n and s[1] >= num_c for s in _all_shapes(jaxpr.jaxpr))
  assert any(s == n * (5 + 4096) for s in sizes)  # the merge really runs on [n, k + chunk] blocks


def test_assign_topk_bad_inputs():
  x, c = jnp.ones((3, 4)), jnp.ones((5, 4))
  with pytest.raises(ValueError, match=r"k must be an integer in \[1, 5\]"):
    K.assign_topk(x, c, 6)
  with pytest.raises(ValueError, match="chunk must be a positive integer; got 0"):
    K.assign_topk(x, c, 2, chunk=0)
  with pytest.raises(ValueError, match=r"centroids must have shape \[C, 4\]"):
    K.assign_topk(x, jnp.ones((5, 3)), 2)
