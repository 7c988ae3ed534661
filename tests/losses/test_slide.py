"""COBRA's views in feature space (rl.losses.slide): against a float64 NumPy transcription of the released
`pad_or_sample` / `__getitem__` (compared in distribution, the draws being random), gradients, bad inputs."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import slide as S


# ------------------------------------------------------------------------------------------------------------
# Reference written from the released code (KatherLab/COBRA cobra/ssl/data.py), NumPy.
# ------------------------------------------------------------------------------------------------------------

def pad_or_sample_reference(rng, x, n, k):
  """FeatDataset.pad_or_sample with np.random permutations in place of torch.randperm."""
  x = np.asarray(x, np.float64)
  length = x.shape[0]
  x = x[rng.permutation(len(x))][:n]
  if length < n:
    repeats = (n - length) // length
    tmp = x
    for _ in range(repeats):
      x = np.concatenate([x, tmp[rng.permutation(length)]])
    resample_size = (n - length) % length
    if resample_size > 0:
      x = np.concatenate([x, x[rng.permutation(len(x))][:resample_size]])
  if k - x.shape[1] > 0:
    x = np.concatenate([x, np.zeros((n, k - x.shape[1]))], axis=1)
  return x


def _coded(n_max, k=2):
  """Tile i holds i + 1 in every column (0 marks padding)."""
  return (np.arange(n_max, dtype=np.float32)[:, None] + 1.0) * np.ones((1, k), np.float32)


def _ours(num_tiles, n, n_max=12, k=2, feat_len=5, samples=3000, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), samples)
  f = jax.vmap(lambda key: S.cobra_pad_or_sample(key, _coded(n_max, k), num_tiles, num_feats=n, feat_len=feat_len))
  return np.asarray(jax.jit(f)(keys))


def _theirs(num_tiles, n, k=2, feat_len=5, samples=3000, seed=0):
  rng = np.random.RandomState(seed)
  return np.stack([pad_or_sample_reference(rng, _coded(num_tiles, k), n, feat_len) for _ in range(samples)])


def _patterns(views):
  """Distribution of sorted per-tile count patterns, and the per-slot tile distribution."""
  ids = views[:, :, 0].astype(int)
  pats = collections.Counter(tuple(sorted(collections.Counter(r).values())) for r in ids)
  return {p: c / len(ids) for p, c in pats.items()}


@pytest.mark.parametrize("num_tiles,n", [(9, 6), (3, 8), (4, 11), (5, 5), (1, 4)])
def test_pad_or_sample_matches_reference_in_distribution(num_tiles, n):
  ours, theirs = _ours(num_tiles, n), _theirs(num_tiles, n)
  assert ours.shape == theirs.shape == (3000, n, 5)
  assert np.all(ours[:, :, 2:] == 0)  # zero-padded from width 2 to 5
  assert np.all((ours[:, :, 0] >= 1) & (ours[:, :, 0] <= num_tiles))  # valid tiles only, never padding rows
  po, pt = _patterns(ours), _patterns(theirs)
  for p in set(po) | set(pt):
    assert abs(po.get(p, 0.0) - pt.get(p, 0.0)) < 0.04, (p, po, pt)
  slot_o = np.stack([(ours[:, :, 0] == t + 1).mean(0) for t in range(num_tiles)])  # P(slot j holds tile t)
  slot_t = np.stack([(theirs[:, :, 0] == t + 1).mean(0) for t in range(num_tiles)])
  np.testing.assert_allclose(slot_o, slot_t, atol=0.05)


def test_blocks_are_permutations_and_traced_num_tiles_work():
  n, n_max = 11, 12
  counts = jnp.array([4, 12, 1, 7])
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  views = jax.jit(jax.vmap(lambda key, c: S.cobra_pad_or_sample(key, _coded(n_max), c, num_feats=n,
                                                                feat_len=2)))(keys, counts)
  for v, L in zip(np.asarray(views)[:, :, 0].astype(int), np.asarray(counts)):
    if L >= n:
      assert len(set(v)) == n
    else:
      full = n - (n - L) % L
      for start in range(0, full, L):  # every whole block is a permutation of the L tiles
        assert sorted(v[start:start + L]) == list(range(1, L + 1))


def test_gradient_counts_each_drawn_tile():
  f = np.random.RandomState(4).randn(5, 3).astype(np.float32)
  key = jax.random.PRNGKey(5)
  w = np.random.RandomState(6).randn(13, 4).astype(np.float32)
  g = jax.grad(lambda x: jnp.sum(S.cobra_pad_or_sample(key, x, 4, num_feats=13, feat_len=4) * w))(jnp.asarray(f))
  view = np.asarray(S.cobra_pad_or_sample(key, jnp.asarray(f), 4, num_feats=13, feat_len=4))
  expected = np.zeros_like(f)
  for j in range(13):  # find which tile slot j holds, add its weight (the tiles are distinct)
    t = int(np.argmin(np.abs(f - view[j, :3]).sum(1)))
    expected[t] += w[j, :3]
  np.testing.assert_allclose(g, expected, rtol=1e-6)
  assert np.all(g[4] == 0)  # the padding row is never drawn


def test_views_pick_two_sets_independently_and_uniformly():
  sets = np.stack([np.full((6, 2), s + 1.0, np.float32) for s in range(4)])
  num_tiles = np.array([6, 3, 5, 2], np.int32)
  keys = jax.random.split(jax.random.PRNGKey(7), 4000)
  v1, v2, idx = jax.jit(jax.vmap(lambda k: S.cobra_views(k, sets, num_tiles, num_sets=3, num_feats=4,
                                                         feat_len=3)))(keys)
  idx = np.asarray(idx)
  assert idx.min() == 0 and idx.max() == 2  # only the first num_sets sets
  joint = np.histogram2d(idx[:, 0], idx[:, 1], bins=[np.arange(4)] * 2)[0] / 4000
  np.testing.assert_allclose(joint, np.full((3, 3), 1 / 9), atol=0.025)  # independent, uniform: 1/9 each
  np.testing.assert_array_equal(np.asarray(v1)[:, 0, 0], idx[:, 0] + 1.0)  # each view comes from its set
  np.testing.assert_array_equal(np.asarray(v2)[:, 0, 0], idx[:, 1] + 1.0)
  assert np.all(np.asarray(v1)[:, :, 2] == 0)


def test_slide_bad_inputs():
  key = jax.random.PRNGKey(0)
  f = np.zeros((6, 4), np.float32)
  with pytest.raises(ValueError, match=r"feat_len must be >= the feature width k.*feat_len = 3.*\(6, 4\)"):
    S.cobra_pad_or_sample(key, f, 6, feat_len=3)
  with pytest.raises(ValueError, match=r"num_tiles must be in \[1, 6\].*got 0"):
    S.cobra_pad_or_sample(key, f, 0)
  with pytest.raises(ValueError, match=r"features must have shape \[n_max, k\]; got shape \(6,\)"):
    S.cobra_pad_or_sample(key, f[:, 0], 6)
  with pytest.raises(ValueError, match=r"num_feats must be a positive int"):
    S.cobra_pad_or_sample(key, f, 6, num_feats=0)
  with pytest.raises(ValueError, match=r"num_tiles must be an integer scalar"):
    S.cobra_pad_or_sample(key, f, jnp.array([6]))
  sets = np.zeros((3, 6, 4), np.float32)
  with pytest.raises(ValueError, match=r"num_tiles must have shape \[3\].*got \(2,\)"):
    S.cobra_views(key, sets, np.array([6, 6], np.int32))
  with pytest.raises(ValueError, match=r"num_tiles must be an integer array; got dtype float32"):
    S.cobra_views(key, sets, np.ones(3, np.float32))
  with pytest.raises(ValueError, match=r"num_sets must be in \[1, 3\].*got 4"):
    S.cobra_views(key, sets, np.ones(3, np.int32), num_sets=4)
