"""Pretext tasks (rotation, relative location, jigsaw), the jigsaw permutation set and their cross-entropy."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rl.losses import pretext as L
from jax.test_util import check_grads

from tests import multidevice

KEY = jax.random.PRNGKey(0)


def coordinate_images(b, h, w):
  """Image i holds the value i*h*w + y*w + x at pixel (y, x) in channel 0 and its negation in channel 1."""
  v = np.arange(b * h * w, dtype=np.float32).reshape(b, h, w)
  return np.stack([v, -v], axis=-1)


def crop_origin(crop, b, h, w):
  """(example, y, x) of the top-left pixel of a crop of `coordinate_images`; asserts the crop is contiguous."""
  i, rest = divmod(int(crop[0, 0, 0]), h * w)
  y, x = divmod(rest, w)
  ph, pw = crop.shape[:2]
  expected = i * h * w + (y + np.arange(ph))[:, None] * w + (x + np.arange(pw))[None, :]
  np.testing.assert_array_equal(crop[..., 0], expected)
  np.testing.assert_array_equal(crop[..., 1], -expected)
  return i, y, x


# ---------------------------------------------------------------------------------------------------------------
# rotation_task
# ---------------------------------------------------------------------------------------------------------------

def test_rotation_hand_case_counter_clockwise_example_major():
  # [[0, 1], [2, 3]] turned counter-clockwise: the right column (1, 3) becomes the top row.
  x = jnp.array([[0, 1], [2, 3]], jnp.uint8)[None, :, :, None]
  x = jnp.concatenate([x, x + 10], axis=0)  # two examples
  rotated, labels = L.rotation_task(KEY, x)
  assert rotated.shape == (8, 2, 2, 1) and rotated.dtype == jnp.uint8 and labels.dtype == jnp.int32
  np.testing.assert_array_equal(labels, [0, 1, 2, 3, 0, 1, 2, 3])
  expected = [[[0, 1], [2, 3]], [[1, 3], [0, 2]], [[3, 2], [1, 0]], [[2, 0], [3, 1]]]
  np.testing.assert_array_equal(rotated[:4, :, :, 0], expected)
  np.testing.assert_array_equal(rotated[4:, :, :, 0], np.array(expected) + 10)


def test_rotation_matches_index_formula_reference():
  # k counter-clockwise quarter turns: out[y, x] = in[x, n-1-y] applied k times, written with plain indices.
  x = np.random.RandomState(0).rand(3, 5, 5, 2).astype(np.float32)
  rotated, labels = map(np.asarray, L.rotation_task(KEY, jnp.asarray(x)))
  n = 5
  for i in range(3):
    img = x[i]
    for k in range(4):
      np.testing.assert_array_equal(rotated[4 * i + k], img)
      assert labels[4 * i + k] == k
      nxt = np.empty_like(img)
      for yy in range(n):
        for xx in range(n):
          nxt[yy, xx] = img[xx, n - 1 - yy]
      img = nxt


def test_rotation_one_per_image_and_jit():
  x = jnp.asarray(np.random.RandomState(1).rand(64, 4, 4, 1).astype(np.float32))
  rotated, labels = map(np.asarray, L.rotation_task(KEY, x, num_rotations_per_image=1))
  assert rotated.shape == x.shape and set(labels.tolist()) == {0, 1, 2, 3}
  for i in range(64):
    np.testing.assert_array_equal(rotated[i], np.rot90(np.asarray(x[i]), int(labels[i])))
  jitted = jax.jit(lambda k, a: L.rotation_task(k, a, num_rotations_per_image=1))(KEY, x)
  np.testing.assert_array_equal(jitted[0], rotated)
  np.testing.assert_array_equal(jitted[1], labels)


def test_rotation_1_equals_8_devices(mesh8):
  x = np.random.RandomState(2).rand(16, 4, 4, 1).astype(np.float32)
  for r in (1, 4):
    fn = lambda images, key, axis_name: L.rotation_task(key, images, num_rotations_per_image=r, axis_name=axis_name)
    single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (x,), (KEY,), out_specs=(P("data"), P("data")))
    for out in (sm, pm):
      np.testing.assert_array_equal(out[0], single[0])
      np.testing.assert_array_equal(out[1], single[1])


def test_rotation_rejects_non_square():
  with pytest.raises(ValueError, match=r"square.*\(2, 4, 5, 3\)"):
    L.rotation_task(KEY, jnp.zeros((2, 4, 5, 3)))
  with pytest.raises(ValueError, match=r"images must have shape \[b, h, w, c\]"):
    L.rotation_task(KEY, jnp.zeros((4, 4, 3)))


# ---------------------------------------------------------------------------------------------------------------
# relative_location_task
# ---------------------------------------------------------------------------------------------------------------

def test_relative_location_hand_case_exact_fit():
  # patch 2, gap 1, jitter 0: the grid spans 3*3 - 1 = 8 pixels, so on an 8 x 8 image the origin is 0, the
  # centre patch starts at (3, 3) and neighbour label l at 3 * (row, col) of cell l in reading order.
  b, h = 32, 8
  x = coordinate_images(b, h, h)
  c, n, y = map(np.asarray, jax.jit(lambda k, a: L.relative_location_task(k, a, patch=2, gap=1, jitter=0))(
      KEY, jnp.asarray(x)))
  cells = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]
  for i in range(b):
    assert crop_origin(c[i], b, h, h) == (i, 3, 3)
    r, col = cells[y[i]]
    assert crop_origin(n[i], b, h, h) == (i, 3 * r, 3 * col)


def test_relative_location_geometry_with_jitter_and_random_origin():
  b, h, w, patch, gap, jitter = 256, 20, 22, 3, 2, 2
  x = coordinate_images(b, h, w)
  c, n, y = jax.jit(lambda k, a: L.relative_location_task(k, a, patch=patch, gap=gap, jitter=jitter))(
      KEY, jnp.asarray(x))
  assert y.dtype == jnp.int32
  c, n, y = np.asarray(c), np.asarray(n), np.asarray(y)
  assert c.shape == n.shape == (b, patch, patch, 2)
  cell, span = patch + gap, 3 * patch + 2 * gap
  offsets, shifts = [], []
  for i in range(b):
    _, cy, cx = crop_origin(c[i], b, h, w)
    _, ny, nx = crop_origin(n[i], b, h, w)
    r, col = divmod(int(y[i]) + (int(y[i]) >= 4), 3)  # skip the centre cell 4
    dy, dx = ny - cy - (r - 1) * cell, nx - cx - (col - 1) * cell
    assert abs(dy) <= 2 * jitter and abs(dx) <= 2 * jitter
    shifts += [dy, dx]
    offsets += [cy - cell, cx - cell]  # grid origin plus the centre's jitter
    # origin in [jitter, size - S - jitter], shifted by at most jitter: the grid stays inside the image.
    assert 0 <= cy - cell <= h - span and 0 <= cx - cell <= w - span
  # Every label, and the extreme relative shifts (+-2 jitter) occur in a batch of 256.
  assert set(y.tolist()) == set(range(8))
  assert min(shifts) == -2 * jitter and max(shifts) == 2 * jitter
  assert min(offsets) == 0 and max(offsets) == max(h, w) - span


def test_relative_location_1_equals_8_devices(mesh8):
  x = coordinate_images(16, 16, 16)
  fn = lambda images, key, axis_name: L.relative_location_task(key, images, patch=3, gap=1, jitter=1,
                                                               axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (x,), (KEY,), out_specs=(P("data"),) * 3)
  for out in (sm, pm):
    for a, b in zip(out, single):
      np.testing.assert_array_equal(a, b)
  # The examples differ from each other (keys are per example, not per device).
  assert len(set(np.asarray(single[2]).tolist())) > 1


def test_relative_location_rejects_bad_geometry():
  with pytest.raises(ValueError, match=r"3\*\(4\+2\) - 2 \+ 2\*1 = 18 > image size \(h, w\) = \(16, 20\)"):
    L.relative_location_task(KEY, jnp.zeros((2, 16, 20, 3)), patch=4, gap=2, jitter=1)
  with pytest.raises(ValueError, match="only grid=3"):
    L.relative_location_task(KEY, jnp.zeros((2, 64, 64, 3)), grid=5, patch=4, gap=2, jitter=1)


# ---------------------------------------------------------------------------------------------------------------
# make_permutations
# ---------------------------------------------------------------------------------------------------------------

def greedy_reference(n, k, start, criterion):
  """Algorithm 1 of Noroozi & Favaro with plain loops over itertools' lexicographic permutations."""
  cands = list(itertools.permutations(range(k)))
  chosen = [cands.index(tuple(start))]
  while len(chosen) < n:
    best, best_score = None, -1
    for j, p in enumerate(cands):
      if j in chosen:
        continue
      d = [sum(a != b for a, b in zip(p, cands[q])) for q in chosen]
      score = sum(d) if criterion == "sum" else min(d)
      if score > best_score:  # strict: the first of tied candidates wins
        best, best_score = j, score
    chosen.append(best)
  return np.array([cands[j] for j in chosen])


def min_pairwise_hamming(p):
  d = (p[:, None, :] != p[None, :, :]).sum(-1)
  return d[np.triu_indices(len(p), 1)].min()


@pytest.mark.parametrize("criterion", ["sum", "min"])
def test_make_permutations_matches_brute_force_greedy(criterion):
  got = L.make_permutations(10, grid=2, key=jax.random.PRNGKey(3), criterion=criterion)
  ref = greedy_reference(10, 4, got[0], criterion)
  np.testing.assert_array_equal(got, ref)
  assert min_pairwise_hamming(got) == min_pairwise_hamming(ref)


def test_make_permutations_grid3_properties_and_determinism():
  p = L.make_permutations(100, key=jax.random.PRNGKey(0))
  assert p.shape == (100, 9) and p.dtype == np.int32
  assert (np.sort(p, axis=1) == np.arange(9)).all()
  assert len({tuple(r) for r in p}) == 100
  # The paper's Table 3 reports average Hamming distance 8.08 and minimum 2 for its 100-permutation set.
  d = (p[:, None, :] != p[None, :, :]).sum(-1)[np.triu_indices(100, 1)]
  assert d.min() >= 2 and abs(d.mean() - 8.08) < 0.01
  np.testing.assert_array_equal(L.make_permutations(100, key=jax.random.PRNGKey(0)), p)
  assert not np.array_equal(L.make_permutations(100, key=jax.random.PRNGKey(1))[0], p[0])
  # Max-min greedy keeps every pair far apart.
  assert min_pairwise_hamming(L.make_permutations(100, key=jax.random.PRNGKey(0), criterion="min")) >= 5


def test_make_permutations_candidate_pool_for_large_grids():
  p = L.make_permutations(20, grid=4, key=jax.random.PRNGKey(0), candidates=500)
  assert p.shape == (20, 16) and (np.sort(p, axis=1) == np.arange(16)).all() and len({tuple(r) for r in p}) == 20
  with pytest.raises(ValueError, match="too many to enumerate"):
    L.make_permutations(20, grid=4, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="only 24 candidates"):
    L.make_permutations(25, grid=2, key=jax.random.PRNGKey(0))


# ---------------------------------------------------------------------------------------------------------------
# jigsaw_task
# ---------------------------------------------------------------------------------------------------------------

def test_jigsaw_hand_case_tiles_equal_cells():
  # tile == cell: no random offset, so tiles[i, j] must be exactly cell permutations[label][j].
  x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 1)
  perms = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]], np.int32)
  tiles, labels = map(np.asarray, jax.jit(lambda k, a, p: L.jigsaw_task(k, a, permutations=p, grid=2, tile=2))(
      KEY, jnp.asarray(x), perms))
  cells = [x[:, r:r + 2, c:c + 2] for r in (0, 2) for c in (0, 2)]  # reading order
  for i in range(2):
    for j in range(4):
      np.testing.assert_array_equal(tiles[i, j], cells[perms[labels[i], j]][i])
  # Image 0, permutation [3, 2, 1, 0] would put the bottom-right cell [[10, 11], [14, 15]] first.
  t, _ = jax.jit(lambda k, a, p: L.jigsaw_task(k, a, permutations=p, grid=2, tile=2))(KEY, jnp.asarray(x), perms[1:2])
  np.testing.assert_array_equal(t[0, 0, :, :, 0], [[10, 11], [14, 15]])


def test_jigsaw_random_offsets_stay_in_their_cell():
  b, h, grid, tile = 64, 13, 3, 3  # cells of 4 pixels, 1 leftover pixel split as 0 before, 1 after
  x = coordinate_images(b, h, h)
  perms = L.make_permutations(10, key=jax.random.PRNGKey(5))
  tiles, labels = jax.jit(lambda k, a: L.jigsaw_task(k, a, permutations=perms, grid=grid, tile=tile))(
      KEY, jnp.asarray(x))
  assert tiles.shape == (b, 9, tile, tile, 2) and labels.dtype == jnp.int32
  tiles, labels = np.asarray(tiles), np.asarray(labels)
  seen_offsets = set()
  for i in range(b):
    for j in range(9):
      _, y, xx = crop_origin(tiles[i, j], b, h, h)
      r, c = divmod(int(perms[labels[i], j]), grid)
      dy, dx = y - 4 * r, xx - 4 * c
      assert 0 <= dy <= 4 - tile and 0 <= dx <= 4 - tile
      seen_offsets.add((dy, dx))
  assert seen_offsets == {(0, 0), (0, 1), (1, 0), (1, 1)}
  assert set(labels.tolist()) == set(range(10))


def test_jigsaw_1_equals_8_devices(mesh8):
  x = coordinate_images(16, 9, 9)
  perms = L.make_permutations(6, key=jax.random.PRNGKey(1))
  fn = lambda images, key, p, axis_name: L.jigsaw_task(key, images, permutations=p, tile=2, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (x,), (KEY, perms), out_specs=(P("data"), P("data")))
  for out in (sm, pm):
    np.testing.assert_array_equal(out[0], single[0])
    np.testing.assert_array_equal(out[1], single[1])


def test_jigsaw_rejects_bad_inputs():
  perms = np.array([[0, 1, 2, 3]], np.int32)
  with pytest.raises(ValueError, match=r"tile=5 does not fit.*2x2 cells of 4x4"):
    L.jigsaw_task(KEY, jnp.zeros((1, 8, 8, 1)), permutations=perms, grid=2, tile=5)
  with pytest.raises(ValueError, match=r"permutations must have shape \[P, grid\*grid\] = \[P, 9\]"):
    L.jigsaw_task(KEY, jnp.zeros((1, 9, 9, 1)), permutations=perms, grid=3, tile=2)


# ---------------------------------------------------------------------------------------------------------------
# pretext_cross_entropy
# ---------------------------------------------------------------------------------------------------------------

def cross_entropy_reference(logits, labels):
  logits = np.asarray(logits, np.float64)
  total = 0.0
  for s, y in zip(logits, labels):
    m = s.max()
    total += -(s[y] - m - np.log(np.exp(s - m).sum()))
  return total / len(logits)


def _logits(b=32, k=8, seed=0):
  rng = np.random.RandomState(seed)
  return (3 * rng.randn(b, k)).astype(np.float32), rng.randint(0, k, size=b).astype(np.int32)


def test_cross_entropy_hand_case():
  # Row 0: logits (log 3, 0) and label 0: -log(3 / 4). Row 1: uniform over 2 classes: log 2. Mean of the two.
  logits = jnp.array([[np.log(3.0), 0.0], [0.0, 0.0]])
  expected = (-np.log(0.75) + np.log(2.0)) / 2
  np.testing.assert_allclose(L.pretext_cross_entropy(logits, jnp.array([0, 1])), expected, rtol=1e-6)


def test_cross_entropy_matches_reference_jit_and_bfloat16():
  logits, labels = _logits()
  ref = cross_entropy_reference(logits, labels)
  np.testing.assert_allclose(L.pretext_cross_entropy(logits, labels), ref, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.pretext_cross_entropy)(logits, labels), ref, rtol=1e-5)
  got = L.pretext_cross_entropy(jnp.asarray(logits, jnp.bfloat16), labels)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, ref, rtol=2e-2)


def test_cross_entropy_gradients():
  logits, labels = _logits(b=4, k=5, seed=1)
  with jax.enable_x64(True):
    check_grads(lambda s: L.pretext_cross_entropy(s, jnp.asarray(labels)),
                              (jnp.asarray(logits, jnp.float64),), order=1, modes=["rev"])
    # Analytic gradient: (softmax - onehot) / b.
    g = jax.grad(lambda s: L.pretext_cross_entropy(s, jnp.asarray(labels)))(jnp.asarray(logits, jnp.float64))
    s = logits.astype(np.float64)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(g, (p - np.eye(5)[labels]) / 4, rtol=1e-10)


def test_cross_entropy_1_equals_8_devices(mesh8):
  logits, labels = _logits(b=16)
  fn = lambda s, y, axis_name: L.pretext_cross_entropy(s, y, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(logits, labels))
  np.testing.assert_allclose(value, cross_entropy_reference(logits, labels), rtol=1e-5)


def test_cross_entropy_rejects_bad_inputs():
  with pytest.raises(ValueError, match=r"labels must have shape \[4\]"):
    L.pretext_cross_entropy(jnp.zeros((4, 3)), jnp.zeros((5,), jnp.int32))
  with pytest.raises(ValueError, match=r"logits must have shape \[b, K\]"):
    L.pretext_cross_entropy(jnp.zeros((4,)), jnp.zeros((4,), jnp.int32))
  with pytest.raises(ValueError, match="labels must be an integer array"):
    L.pretext_cross_entropy(jnp.zeros((4, 3)), jnp.zeros((4,)))
