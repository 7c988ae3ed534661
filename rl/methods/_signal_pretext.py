"""1-D analogues of the image pretext tasks of `rl.losses.pretext`, for signals [b, l] or [b, l, c] (MNIST-1D).

These are OUR analogues, not tasks from the papers (which are defined on images only):

- `signal_symmetry_task` (RotNet-1D): the image task predicts which element of the rotation group C4 was applied;
  a 1-D signal's analogous group is {identity, time reversal, negation, reversal + negation} (Klein four-group),
  and the label is the element applied.
- `signal_relative_location_task` (context prediction 1-D): the paper's 3 x 3 grid of patches becomes a row of
  `grid` (odd) segments with gaps and jitter; the label is the position of a random non-centre segment.
- `signal_jigsaw_task` (jigsaw 1-D): the signal is cut into a row of `tiles` segments that are shuffled by one of a
  set of permutations (`signal_permutations`, the paper's maximal-Hamming-distance set); the label is its index.

Randomness is per example, as in `rl.losses.pretext` and `rl.data.augment.signal`: example i of the global batch
draws from `fold_in(key, i)` (i = device index * b + row with `axis_name`), so a sharded batch gets exactly the
draws of one device over the global batch. The tasks only move samples (and negate them), so they keep the dtype.
"""
from __future__ import annotations

import math

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from rl import losses


def _as_3d(signals: jax.Array, name: str = "signals") -> jax.Array:
  if signals.ndim == 2:
    return signals[..., None]
  if signals.ndim == 3:
    return signals
  raise ValueError(f"{name} must have shape [b, l] or [b, l, c]; got shape {tuple(signals.shape)}.")


def _example_keys(key: jax.Array, b: int, axis_name: str | None) -> jax.Array:
  shard = lax.axis_index(axis_name) if axis_name is not None else 0
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(shard * b + jnp.arange(b))


def _restore(x: jax.Array, like: jax.Array) -> jax.Array:
  """Drops the channel axis added by `_as_3d` when the input had none."""
  return x[..., 0] if like.ndim == 2 else x


# The four symmetries, label -> (reverse time, negate).
SYMMETRIES = ((False, False), (True, False), (False, True), (True, True))


def signal_symmetry_task(signals: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Every signal under the 4 symmetries of a 1-D signal; the label is the symmetry (RotNet-1D, our analogue).

  Label 0: identity, 1: time reversal x[::-1], 2: negation -x, 3: both. Like `rotation_task` with
  `num_rotations_per_image=4` (the paper's setting: every input in all 4 transforms in the same batch), the output
  is example-major: row 4 i + k is signal i under symmetry k, and labels = tile([0, 1, 2, 3], b). No randomness.

  Args:
    signals: [b, l] or [b, l, c].

  Returns:
    (transformed [4 b, l(, c)] in the input dtype, labels int32 [4 b]).
  """
  x = _as_3d(signals)
  b = x.shape[0]
  out = jnp.stack([(-1 if neg else 1) * (x[:, ::-1] if rev else x) for rev, neg in SYMMETRIES], axis=1)
  out = out.reshape((4 * b,) + x.shape[1:]).astype(signals.dtype)
  return _restore(out, signals), jnp.tile(jnp.arange(4, dtype=jnp.int32), b)


def signal_relative_location_task(key: jax.Array, signals: jax.Array, *, grid: int = 5, segment: int = 6,
                                  gap: int = 1, jitter: int = 1, axis_name: str | None = None
                                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The centre segment of a row of `grid` segments and one other; the label is the other's position (our analogue).

  The 1-D form of `rl.losses.relative_location_task`: the row spans S = grid (segment + gap) - gap samples; its
  origin is uniform in [jitter, l - S - jitter]; cell r starts at origin + r (segment + gap); each of the two
  segments is shifted by its own jitter, uniform in [-jitter, jitter]. Labels 0..grid-2 number the non-centre
  cells from left to right (label l is cell l for l < grid // 2, else cell l + 1). With grid = 3 the task is
  left-or-right; the default grid = 5 gives 4 classes (position and distance).

  Args:
    key: PRNG key; example i of the global batch draws from `fold_in(key, i)`.
    signals: [b, l] or [b, l, c]; S + 2 jitter <= l.
    grid: number of cells in the row, odd and >= 3 (the centre must exist).
    segment: length of each segment in samples.
    gap: samples between neighbouring cells.
    jitter: maximum shift of each segment.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (global indices).

  Returns:
    (centre, other, labels): two [b, segment(, c)] arrays in the input dtype and int32 labels [b] in [0, grid - 1).
  """
  x = _as_3d(signals)
  if grid < 3 or grid % 2 == 0:
    raise ValueError(f"grid must be odd and >= 3 (a centre cell and neighbours); got {grid}.")
  if segment < 1 or gap < 0 or jitter < 0:
    raise ValueError(f"segment must be >= 1 and gap, jitter >= 0; got segment={segment}, gap={gap}, "
                     f"jitter={jitter}.")
  b, length, c = x.shape
  cell = segment + gap
  span = grid * cell - gap
  need = span + 2 * jitter
  if need > length:
    raise ValueError(f"the row does not fit the signals: grid*(segment+gap) - gap + 2*jitter = "
                     f"{grid}*({segment}+{gap}) - {gap} + 2*{jitter} = {need} > signal length {length}.")
  centre = grid // 2
  # One draw per example: origin, label, jitter of the centre segment, jitter of the other segment.
  low = jnp.array([jitter, 0, -jitter, -jitter])
  high = jnp.array([length - span - jitter + 1, grid - 1, jitter + 1, jitter + 1])

  def one(k, s):
    draw = jax.random.randint(k, (4,), low, high, dtype=jnp.int32)
    origin, label = draw[0], draw[1]
    other = jnp.where(label < centre, label, label + 1)
    crop = lambda at: lax.dynamic_slice(s, (at, 0), (segment, c))
    return crop(origin + centre * cell + draw[2]), crop(origin + other * cell + draw[3]), label

  mid, other, labels = jax.vmap(one)(_example_keys(key, b, axis_name), x)
  return _restore(mid, signals), _restore(other, signals), labels


def signal_permutations(n: int, *, tiles: int, key: jax.Array) -> np.ndarray:
  """The jigsaw permutation set for a row of `tiles` segments: `rl.losses.make_permutations` of range(tiles).

  The Hamming distance between permutations does not depend on how the tiles are laid out, so the image function
  (which permutes the grid * grid cells of a square grid) serves any perfect-square number of 1-D tiles (4, 9).

  Args:
    n: number of permutations (classes); at most tiles!.
    tiles: number of tiles, a perfect square.
    key: PRNG key of the greedy set's random start.

  Returns:
    NumPy int32 [n, tiles], distinct permutations chosen greedily far apart (the paper's Algorithm 1).
  """
  side = math.isqrt(tiles)
  if tiles < 2 or side * side != tiles:
    raise ValueError(f"tiles must be a perfect square >= 4 (the permutation set comes from "
                     f"rl.losses.make_permutations, which permutes grid*grid cells); got {tiles}.")
  return losses.make_permutations(n, grid=side, key=key)


def signal_jigsaw_task(key: jax.Array, signals: jax.Array, *, permutations, tiles: int = 4, tile: int = 8,
                       axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Cuts each signal into `tiles` cells, takes a `tile`-sample segment from each and shuffles them (our analogue).

  The 1-D form of `rl.losses.jigsaw_task`: cells of l // tiles samples, centred (leftover samples dropped),
  numbered left to right; from each a `tile`-sample segment at a random offset inside the cell (the random gaps
  stop edge continuation from giving the order away). Each example draws a label uniformly in
  [0, len(permutations)) and tiles[i, j] = the segment of cell permutations[labels[i]][j].

  Args:
    key: PRNG key; example i of the global batch draws from `fold_in(key, i)`.
    signals: [b, l] or [b, l, c]; tile <= l // tiles.
    permutations: int array [P, tiles] of permutations of range(tiles) (e.g. `signal_permutations`).
    tiles: number of cells.
    tile: length of each segment.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap` (global indices).

  Returns:
    (tiles [b, tiles, tile(, c)] in the input dtype, labels int32 [b] in [0, P)).
  """
  x = _as_3d(signals)
  permutations = jnp.asarray(permutations)
  if permutations.ndim != 2 or permutations.shape[1] != tiles or permutations.shape[0] < 1:
    raise ValueError(f"permutations must have shape [P, tiles] = [P, {tiles}] with P >= 1; "
                     f"got shape {tuple(permutations.shape)}.")
  if not jnp.issubdtype(permutations.dtype, jnp.integer):
    raise ValueError(f"permutations must be an integer array; got dtype {permutations.dtype}.")
  b, length, c = x.shape
  cell = length // tiles
  if tile < 1 or tile > cell:
    raise ValueError(f"tile={tile} does not fit the cells: signals of length {length} split into {tiles} cells "
                     f"of {cell} samples.")
  permutations = permutations.astype(jnp.int32)
  cell_start = jnp.arange(tiles) * cell + (length - tiles * cell) // 2
  # One draw per example: the label, then the offset of the segment inside each cell.
  high = jnp.array([permutations.shape[0]] + [cell - tile + 1] * tiles)

  def one(k, s):
    draw = jax.random.randint(k, (1 + tiles,), 0, high, dtype=jnp.int32)
    label = draw[0]
    parts = jax.vmap(lambda at: lax.dynamic_slice(s, (at, 0), (tile, c)))(cell_start + draw[1:])
    return parts[permutations[label]], label

  parts, labels = jax.vmap(one)(_example_keys(key, b, axis_name), x)
  return (parts[..., 0] if signals.ndim == 2 else parts), labels


__all__ = ["SYMMETRIES", "signal_symmetry_task", "signal_relative_location_task", "signal_permutations",
           "signal_jigsaw_task"]
