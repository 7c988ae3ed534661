"""Pretext tasks: rotation, relative patch location and jigsaw puzzles, and their cross-entropy loss.

Each task turns a batch of unlabelled images [b, h, w, c] (float or uint8, NHWC) into network inputs and integer
labels; the network is then trained with `pretext_cross_entropy` on its logits. The tasks only move pixels
(crops, rotations, permutations), so their outputs keep the input dtype and carry no gradient of interest.

Randomness is per example: example i of the global batch draws from `jax.random.fold_in(key, i)`, where
i = device index * b + row with `axis_name`, so a batch sharded over devices gets exactly the crops, labels and
rotations it would get on one device.
"""
from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rl.losses import _checks
from rl.losses import _collectives


def _example_keys(key: jax.Array, b: int, axis_name: str | None) -> jax.Array:
  """One key per local example, `fold_in(key, global index)`, so the draws do not depend on the sharding."""
  index = _collectives.axis_index(axis_name) * b + jnp.arange(b)
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(index)


def _check_images(images) -> None:
  _checks.check_array("images", images, ndim=4, floating=False, shape_doc="[b, h, w, c]")


# ---------------------------------------------------------------------------------------------------------------
# Rotation prediction
# ---------------------------------------------------------------------------------------------------------------

def rotation_task(key: jax.Array, images: jax.Array, *, num_rotations_per_image: int = 4,
                  axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Rotates each image by 0, 90, 180 and 270 degrees; the label is the rotation (RotNet).

  Label k means `jnp.rot90(image, k)` on the spatial axes: k quarter turns counter-clockwise as the image is
  displayed (row 0 at the top). With `num_rotations_per_image=4` (the paper's setting: every image in all four
  rotations in the same batch) the output is example-major: row 4 i + k is image i rotated by k quarter turns,
  so `labels = tile([0, 1, 2, 3], b)` and `key` is unused. With `num_rotations_per_image=1`, each image gets one
  rotation drawn uniformly from `fold_in(key, global index)`, and row i is image i.

  Args:
    key: PRNG key (used only when `num_rotations_per_image=1`).
    images: [b, h, w, c] square images (h == w), any dtype.
    num_rotations_per_image: 4 (all rotations, the paper) or 1 (one random rotation per image).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where `images` is
      this device's shard and example indices are global.

  Returns:
    (rotated, labels): rotated [4 b, h, w, c] (or [b, h, w, c]) in the input dtype, labels int32 [4 b] (or [b]).
    Feed a classifier with 4 outputs and train it with `pretext_cross_entropy`.

  Example:
    >>> x = jnp.arange(4.0).reshape(1, 2, 2, 1)  # [[0, 1], [2, 3]]
    >>> rotated, labels = rotation_task(jax.random.key(0), x)
    >>> rotated[1, :, :, 0].tolist(), labels.tolist()  # a quarter turn counter-clockwise
    ([[1.0, 3.0], [0.0, 2.0]], [0, 1, 2, 3])

  Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018,
  https://arxiv.org/abs/1803.07728.
  """
  _check_images(images)
  b, h, w, _ = images.shape
  if h != w:
    raise ValueError(f"rotation_task needs square images (h == w) so that rotations keep the shape; "
                     f"got images of shape {tuple(images.shape)}.")
  if num_rotations_per_image not in (1, 4):
    raise ValueError(f"num_rotations_per_image must be 1 or 4; got {num_rotations_per_image}.")
  all4 = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(4)], axis=1)  # [b, 4, h, w, c]
  if num_rotations_per_image == 4:
    return all4.reshape((4 * b,) + images.shape[1:]), jnp.tile(jnp.arange(4, dtype=jnp.int32), b)
  keys = _example_keys(key, b, axis_name)
  labels = jax.vmap(lambda k: jax.random.randint(k, (), 0, 4, dtype=jnp.int32))(keys)
  rotated = jnp.take_along_axis(all4, labels[:, None, None, None, None], axis=1)[:, 0]
  return rotated, labels


# ---------------------------------------------------------------------------------------------------------------
# Relative patch location (context prediction)
# ---------------------------------------------------------------------------------------------------------------

# The 8 neighbours of the centre of a 3 x 3 grid in reading order: label l is cell _NEIGHBOURS[l] = (row, col).
_NEIGHBOURS = np.array([(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)], dtype=np.int32)


def relative_location_task(key: jax.Array, images: jax.Array, *, grid: int = 3, patch: int = 96, gap: int = 48,
                           jitter: int = 7, axis_name: str | None = None
                           ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Crops the centre patch of a 3 x 3 grid and one of its 8 neighbours; the label is the neighbour's position.

  Geometry (per axis): the grid is 3 cells of size `patch + gap` with the last gap dropped, so it spans
  S = 3 patch + 2 gap pixels; cell r starts at o + r (patch + gap), where the grid origin o is drawn uniformly
  from [jitter, h - S - jitter] (the paper samples the first patch anywhere in the image). Each of the two patches
  is then shifted by its own jitter, uniform in [-jitter, jitter] independently per axis. The gap and the jitter
  stop the network from solving the task by continuing edges or textures across the patch border. Labels are
  0..7 in reading order, skipping the centre:

  .. code-block:: text

      0 1 2
      3 . 4
      5 6 7

  Args:
    key: PRNG key; example i of the global batch draws from `fold_in(key, i)`.
    images: [b, h, w, c] images, any dtype; S + 2 jitter <= h and <= w.
    grid: cells per side; only 3 (the paper's layout) is supported.
    patch: side of the square patches (96 in the paper, on images of 150K-450K pixels).
    gap: pixels between neighbouring cells (48 in the paper).
    jitter: maximum shift of each patch per axis (7 in the paper).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (global indices).

  Returns:
    (center_patches, neighbor_patches, labels): two [b, patch, patch, c] arrays in the input dtype and int32
    labels [b] in 0..7. The paper feeds both patches to a shared tower and classifies the pair into 8 classes
    with `pretext_cross_entropy`. (Its colour pre-processing against chromatic aberration is the caller's.)

  Example:
    >>> x = jnp.zeros((2, 32, 32, 3))
    >>> c, n, y = relative_location_task(jax.random.key(0), x, patch=8, gap=2, jitter=1)
    >>> c.shape, n.shape, y.shape
    ((2, 8, 8, 3), (2, 8, 8, 3), (2,))

  Doersch et al., "Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015,
  https://arxiv.org/abs/1505.05192.
  """
  _check_images(images)
  if grid != 3:
    raise ValueError(f"relative_location_task supports only grid=3 (the centre and its 8 neighbours); got {grid}.")
  _checks.check_positive("patch", patch)
  if gap < 0 or jitter < 0:
    raise ValueError(f"gap and jitter must be >= 0; got gap={gap}, jitter={jitter}.")
  b, h, w, c = images.shape
  span = grid * (patch + gap) - gap
  need = span + 2 * jitter
  if need > h or need > w:
    raise ValueError(f"the grid does not fit the images: grid*(patch+gap) - gap + 2*jitter = "
                     f"{grid}*({patch}+{gap}) - {gap} + 2*{jitter} = {need} > image size (h, w) = ({h}, {w}).")
  cell = patch + gap
  neighbours = jnp.asarray(_NEIGHBOURS)

  # One draw per example (a single threefry call compiles much faster than several): grid origin (y, x),
  # label, then the (dy, dx) jitter of the centre patch and of the neighbour patch.
  low = jnp.array([jitter, jitter, 0] + [-jitter] * 4)
  high = jnp.array([h - span - jitter + 1, w - span - jitter + 1, 8] + [jitter + 1] * 4)

  def one(k, image):
    draw = jax.random.randint(k, (7,), low, high, dtype=jnp.int32)
    origin, label = draw[:2], draw[2]
    centre_at = origin + cell + draw[3:5]
    neighbour_at = origin + neighbours[label] * cell + draw[5:7]
    crop = lambda at: jax.lax.dynamic_slice(image, (at[0], at[1], 0), (patch, patch, c))
    return crop(centre_at), crop(neighbour_at), label

  return jax.vmap(one)(_example_keys(key, b, axis_name), images)


# ---------------------------------------------------------------------------------------------------------------
# Jigsaw puzzles
# ---------------------------------------------------------------------------------------------------------------

_MAX_ENUMERATED = 9  # 9! = 362880 candidates fit in 3.3 MB; 10! would be ten times more


@functools.lru_cache(maxsize=4)
def _all_permutations_by_column(k: int) -> tuple[np.ndarray, ...]:
  """All k! permutations of range(k) in lexicographic order, stored column by column (int8)."""
  table = np.array(list(itertools.permutations(range(k))), dtype=np.int8)
  return tuple(np.ascontiguousarray(table[:, j]) for j in range(k))


def make_permutations(n: int, *, grid: int = 3, key: jax.Array, candidates: int | None = None,
                      criterion: str = "sum") -> np.ndarray:
  """The jigsaw permutation set: n permutations of the grid*grid tiles chosen greedily far apart in Hamming distance.

  Algorithm 1 of the paper: start from a permutation drawn with `key`; then repeatedly add the candidate whose
  distance to the permutations chosen so far is largest, where the distance of a candidate p to the set P is
  `criterion="sum"`: sum_{q in P} Hamming(p, q) (the paper's D-bar = 1^T D; its sets of 100 and 1000
  permutations then have the average / minimum pairwise distances 8.08 / 2 and 8.00 / 2 of the paper's
  Table 3), or `criterion="min"`: min_{q in P} Hamming(p, q) (max-min greedy; e.g. minimum pairwise distance 6 for
  n = 100, 5 for n = 1000). Ties go to the first candidate in lexicographic order, so the set is a
  deterministic function of `key`. A running sum (or min) over all candidates is updated with one column-wise
  comparison per step: O(n k!) work, about 1-2 s for n = 1000 and k = 9 on one CPU core.

  For grid*grid <= 9 all k! permutations are candidates (unless `candidates` is given); for larger grids pass
  `candidates=m`: m distinct random permutations drawn with `key` form the pool (the start is its first one).

  Args:
    n: number of permutations (the classes of the jigsaw task; 1000 in the paper's best setting, 100 also used).
    grid: tiles per side; permutations are of range(grid * grid).
    key: PRNG key for the start (and for the candidate pool).
    candidates: None for all permutations (grid <= 3), or the size of a random candidate pool.
    criterion: "sum" (the paper) or "min" (max-min distance).

  Returns:
    A NumPy int32 array [n, grid*grid] of distinct permutations; row 0 is the random start.

  Example:
    >>> p = make_permutations(4, grid=2, key=jax.random.key(0), criterion="min")
    >>> p.shape, sorted(p[0].tolist())
    ((4, 4), [0, 1, 2, 3])

  Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016,
  https://arxiv.org/abs/1603.09246 (Algorithm 1).
  """
  _checks.check_positive("n", n)
  _checks.check_positive("grid", grid)
  if criterion not in ("sum", "min"):
    raise ValueError(f"criterion must be 'sum' or 'min'; got {criterion!r}.")
  k = grid * grid
  if candidates is None:
    if k > _MAX_ENUMERATED:
      raise ValueError(f"grid={grid} has ({k})! permutations, too many to enumerate; pass candidates=<pool size>.")
    columns = _all_permutations_by_column(k)
  else:
    _checks.check_positive("candidates", candidates)
    keys = jax.random.split(key, candidates)
    pool = np.asarray(jax.vmap(lambda kk: jax.random.permutation(kk, k))(keys), dtype=np.int16)
    _, first = np.unique(pool, axis=0, return_index=True)
    pool = pool[np.sort(first)]  # distinct, in draw order
    columns = tuple(np.ascontiguousarray(pool[:, j]) for j in range(k))
  total = len(columns[0])
  if n > total:
    raise ValueError(f"n={n} permutations requested but only {total} candidates exist (grid={grid}, "
                     f"candidates={candidates}).")

  current = int(jax.random.randint(key, (), 0, total)) if candidates is None else 0
  score = np.zeros(total, np.int32) if criterion == "sum" else np.full(total, k + 1, np.int32)
  taken = np.zeros(total, bool)
  chosen = []
  for _ in range(n):
    chosen.append(current)
    taken[current] = True
    dist = np.zeros(total, np.int32)
    for j in range(k):  # one column at a time: 20x faster than comparing [total, k] rows
      dist += columns[j] != columns[j][current]
    score = score + dist if criterion == "sum" else np.minimum(score, dist)
    current = int(np.argmax(np.where(taken, -1, score)))
  return np.stack([np.array([col[i] for col in columns]) for i in chosen]).astype(np.int32)


def jigsaw_task(key: jax.Array, images: jax.Array, *, permutations, grid: int = 3, tile: int = 64,
                axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Cuts each image into grid x grid tiles and shuffles them with a permutation from the set; the label is its index.

  The image is split into grid x grid cells of size (h // grid, w // grid), centred (leftover border pixels are
  dropped), numbered in reading order. From each cell a `tile` x `tile` square is cut at a random offset inside
  the cell, uniform and independent per tile and axis (the paper's 64-pixel tiles in 75-pixel cells: the random
  gap between tiles stops edge continuation from giving the answer away). Each example draws a label uniformly
  in [0, len(permutations)) and its tiles are reordered so that

      tiles[i, j] = the tile of cell permutations[labels[i]][j],

  i.e. position j holds tile permutations[label][j]. The paper's context-free network embeds the 9 tiles with a
  shared trunk, concatenates them in this order and classifies the permutation index with
  `pretext_cross_entropy`. (Per-tile normalisation and colour jitter, used in the paper against low-level
  shortcuts, are the caller's.)

  Args:
    key: PRNG key; example i of the global batch draws from `fold_in(key, i)`.
    images: [b, h, w, c] images, any dtype; tile <= h // grid and tile <= w // grid.
    permutations: int array [P, grid*grid] of permutations of range(grid*grid), e.g. from `make_permutations`.
    grid: cells per side (3 in the paper).
    tile: side of each square tile (64 in the paper, for 225 x 225 crops).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (global indices).

  Returns:
    (tiles, labels): tiles [b, grid*grid, tile, tile, c] in the input dtype, labels int32 [b] in [0, P).

  Example:
    >>> perms = jnp.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    >>> tiles, labels = jigsaw_task(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), permutations=perms, grid=2, tile=3)
    >>> tiles.shape, labels.shape
    ((2, 4, 3, 3, 3), (2,))

  Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016,
  https://arxiv.org/abs/1603.09246.
  """
  _check_images(images)
  _checks.check_positive("grid", grid)
  _checks.check_positive("tile", tile)
  k = grid * grid
  _checks.check_array("permutations", permutations, ndim=2, floating=False, shape_doc=f"[P, {k}]")
  if permutations.shape[1] != k or permutations.shape[0] < 1:
    raise ValueError(f"permutations must have shape [P, grid*grid] = [P, {k}] with P >= 1; "
                     f"got shape {tuple(permutations.shape)}.")
  if not jnp.issubdtype(permutations.dtype, jnp.integer):
    raise ValueError(f"permutations must be an integer array; got dtype {permutations.dtype}.")
  b, h, w, c = images.shape
  cell_h, cell_w = h // grid, w // grid
  if tile > cell_h or tile > cell_w:
    raise ValueError(f"tile={tile} does not fit the cells: images of shape {tuple(images.shape)} split into "
                     f"{grid}x{grid} cells of {cell_h}x{cell_w} pixels.")
  permutations = jnp.asarray(permutations, jnp.int32)
  cells = np.array([(r, col) for r in range(grid) for col in range(grid)], dtype=np.int32)
  cell_origin = jnp.asarray(cells * np.array([cell_h, cell_w]) + np.array([(h - grid * cell_h) // 2,
                                                                          (w - grid * cell_w) // 2]))  # [k, 2]
  # One draw per example: the label, then the (dy, dx) offset of the tile inside each of the k cells.
  high = jnp.array([permutations.shape[0]] + [cell_h - tile + 1, cell_w - tile + 1] * k)

  def one(kk, image):
    draw = jax.random.randint(kk, (1 + 2 * k,), 0, high, dtype=jnp.int32)
    label = draw[0]
    at = cell_origin + draw[1:].reshape(k, 2)  # [k, 2], tile of cell j in reading order
    tiles = jax.vmap(lambda a: jax.lax.dynamic_slice(image, (a[0], a[1], 0), (tile, tile, c)))(at)
    return tiles[permutations[label]], label

  return jax.vmap(one)(_example_keys(key, b, axis_name), images)


# ---------------------------------------------------------------------------------------------------------------
# The loss of all three tasks
# ---------------------------------------------------------------------------------------------------------------

def pretext_cross_entropy(logits: jax.Array, labels: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""Softmax cross-entropy of a pretext classifier, averaged over the global batch.

  .. math::
      L = -\frac{1}{B} \sum_{i=1}^{B} \log \frac{\exp(s_{i, y_i})}{\sum_k \exp(s_{i k})} .

  The loss of `rotation_task` (4 classes), `relative_location_task` (8) and `jigsaw_task` (len(permutations)).
  The log-softmax runs in float32 even for bfloat16 logits.

  Args:
    logits: [b, K] classifier outputs.
    labels: int [b] in [0, K) (the labels returned by the task).
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where the mean runs
      over all devices' examples (see `_collectives` for the gradient convention).

  Returns:
    The scalar mean loss over the global batch (float32), the same on every device.

  Example:
    >>> float(pretext_cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3])))  # uniform over 4 classes: log 4
    1.3862943649291992

  Used by Gidaris et al. 2018 (https://arxiv.org/abs/1803.07728), Doersch et al. 2015
  (https://arxiv.org/abs/1505.05192) and Noroozi & Favaro 2016 (https://arxiv.org/abs/1603.09246).
  """
  _checks.check_array("logits", logits, ndim=2, shape_doc="[b, K]")
  _checks.check_labels("labels", labels, logits.shape[0])
  logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
  nll = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
  return _collectives.global_mean(jnp.sum(nll), logits.shape[0], axis_name)


__all__ = ["rotation_task", "relative_location_task", "make_permutations", "jigsaw_task",
           "pretext_cross_entropy"]
