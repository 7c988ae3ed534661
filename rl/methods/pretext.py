"""The pretext family (RotNet, relative location, jigsaw): a shared encoder on the parts of a task, a classifier.

A pretext method turns each input into the parts of a classification task (1 rotated input, 2 patches, k tiles)
with a label; every part goes through the shared encoder (one batch, so BatchNorm statistics cover all parts and,
through `axis_name`, every device) and an MLP head classifies the concatenation of the parts' features, in part
order, with `rl.losses.pretext_cross_entropy`. `make_method` is that shared part; a method module gives its task.

The image tasks are the papers' (`rl.losses.rotation_task`, `relative_location_task`, `jigsaw_task`). Signals
([b, l] or [b, l, c], MNIST-1D) use OUR 1-D analogues, defined here, not tasks from the papers (which are defined
on images only):

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
from typing import Callable

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rl import losses
from rl.methods import base

# task(key, x, axis_name) -> (parts [n, p, ...], labels [n]).
Task = Callable[[jax.Array, jax.Array, str | None], tuple[jax.Array, jax.Array]]


class PretextNet(nn.Module):
  """Shared encoder on every part of an example, then a head on the features concatenated in part order."""
  encoder: nn.Module
  head: nn.Module

  def __call__(self, parts, *, train: bool):
    """parts [n, p, ...] -> (features [n, p, f], logits [n, classes])."""
    n, p = parts.shape[:2]
    h = self.encoder(parts.reshape((n * p,) + parts.shape[2:]), train=train)
    h = h.reshape(n, p, h.shape[-1])
    return h, self.head(h.reshape(n, p * h.shape[-1]), train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def build_network(config: ml_collections.ConfigDict, head_hidden_dims, num_classes: int,
                  axis_name: str | None) -> PretextNet:
  """The encoder of `config.model` and an MLP head (Linear-BN-ReLU per hidden layer, then Linear to the classes).

  Example:
    >>> from configs import rotnet as rotnet_config
    >>> net = build_network(rotnet_config.get_config("smoke"), head_hidden_dims=(16,), num_classes=4, axis_name=None)
    >>> params = net.init(jax.random.key(0), jnp.zeros((8, 1, 40)), train=False)["params"]
    >>> jax.tree.map(jnp.shape, params["head"])
    {'bn0': {'bias': (16,), 'scale': (16,)}, 'dense0': {'kernel': (16, 16)}, 'out': {'bias': (4,), 'kernel': (16, 4)}}
  """
  encoder = base.get_model(config, config.model.encoder, axis_name=axis_name, **config.model.encoder_kwargs.to_dict())
  head = base.get_model(config, "mlp_projector", axis_name=axis_name, hidden_dims=tuple(head_hidden_dims),
                        out_dim=int(num_classes))
  return PretextNet(encoder=encoder, head=head)


def is_signal(x: jax.Array) -> bool:
  """Signals are [b, l] or [b, l, c]; images [b, h, w, c].

  Example:
    >>> is_signal(jnp.zeros((8, 40))), is_signal(jnp.zeros((8, 40, 2))), is_signal(jnp.zeros((8, 32, 32, 3)))
    (True, True, False)
  """
  if x.ndim in (2, 3):
    return True
  if x.ndim == 4:
    return False
  raise ValueError(f"the view must be signals [b, l] / [b, l, c] or images [b, h, w, c]; got shape "
                   f"{tuple(x.shape)}.")


def rotation_task(key: jax.Array, x: jax.Array, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
  """RotNet's task: images in their 4 rotations (`rl.losses.rotation_task`), signals under their 4 symmetries
  (`signal_symmetry_task`, our 1-D analogue); (inputs [4 b, 1, ...], labels [4 b]), example-major: row 4 i is
  input i untransformed.

  Example:
    >>> inputs, labels = rotation_task(jax.random.key(0), jnp.ones((2, 40)), None)  # signals: the 4 symmetries
    >>> inputs.shape, labels.tolist()
    ((8, 1, 40), [0, 1, 2, 3, 0, 1, 2, 3])
  """
  if is_signal(x):
    inputs, labels = signal_symmetry_task(x)
  else:
    inputs, labels = losses.rotation_task(key, x, axis_name=axis_name)
  return inputs[:, None], labels


def accuracy(logits: jax.Array, labels: jax.Array, axis_name: str | None) -> jax.Array:
  """Fraction of the global batch whose arg-max logit is the label.

  Example:
    >>> logits, labels = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), jnp.array([0, 1, 1])
    >>> round(float(accuracy(logits, labels, axis_name=None)), 3)
    0.667
  """
  correct = jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  n = jnp.float32(labels.shape[0])
  if axis_name is not None:
    correct, n = jax.lax.psum(correct, axis_name), jax.lax.psum(n, axis_name)
  return correct / n


def make_method(config: ml_collections.ConfigDict, task: Task, *, name: str, head_hidden_dims,
                num_classes: int | Callable[[jax.Array], int], probe_rows: slice | None = None) -> base.Method:
  """A one-view pretext `Method`: `task(key, x, axis_name) -> (parts [n, p, ...], labels [n])`, classified.

  `num_classes` is the number of task labels, or a function of the input (signals and images may differ).
  The features of the online probe and the BatchNorm statistics kept in `method_state` come from a second,
  stop-gradient pass of the encoder over the WHOLE inputs in training mode (`embed` sees whole inputs), unless
  `probe_rows` selects rows of the task pass whose first part is the whole input (RotNet: the unrotated copies,
  `slice(0, None, 4)`); the task pass then gives both.

  Example:
    >>> from configs import rotnet as rotnet_config
    >>> def task(key, x, axis_name):  # is the signal reversed?
    ...   flip = jax.random.bernoulli(key, 0.5, (x.shape[0],))
    ...   return jnp.where(flip[:, None], x[:, ::-1], x)[:, None], flip.astype(jnp.int32)
    >>> method = make_method(rotnet_config.get_config("smoke"), task, name="reversal", head_hidden_dims=(16,),
    ...                      num_classes=2)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> rl.methods.base.describe(method, {"views": (x,)})
    {'params': ['encoder', 'head'], 'state': ['batch_stats'], 'metrics': ['pretext_accuracy', 'pretext_cross_entropy'],
     'embedding': (8, 16)}
  """
  classes = num_classes if callable(num_classes) else (lambda x: num_classes)

  def network(x, axis_name):
    return build_network(config, head_hidden_dims, classes(x), axis_name)

  def init(key, x):
    parts, _ = task(key, x, None)
    variables = network(x, None).init(key, parts, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    (x,) = batch["views"]
    parts, labels = task(key, x, axis_name)
    net = network(x, axis_name)
    variables = {"params": params, **state}
    (h, logits), new_state = net.apply(variables, parts, train=True, mutable=list(state))
    value = losses.pretext_cross_entropy(logits, labels, axis_name=axis_name)
    if probe_rows is None:
      h, new_state = net.apply(variables, x, train=True, mutable=list(state), method=PretextNet.encode)
    else:
      h = h[probe_rows, 0]
    metrics = {"pretext_cross_entropy": value, "pretext_accuracy": accuracy(logits, labels, axis_name)}
    return value, (dict(new_state), {"metrics": metrics, "features": jax.lax.stop_gradient(h)})

  def embed(params, state, x):
    return network(x, None).apply({"params": params, **state}, x, method=PretextNet.encode)

  return base.Method(name=name, num_views=1, init=init, loss=loss, embed=embed)


# --- The 1-D analogues of the image tasks, for signals (see the module docstring) ---


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

  Example:
    >>> out, labels = signal_symmetry_task(jnp.array([[1.0, 2.0, 3.0]]))
    >>> out.tolist(), labels.tolist()
    ([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [-1.0, -2.0, -3.0], [-3.0, -2.0, -1.0]], [0, 1, 2, 3])
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

  Example:
    >>> signals = jnp.tile(jnp.arange(40.0), (4, 1))  # each sample's value is its position
    >>> centre, other, labels = signal_relative_location_task(jax.random.key(0), signals)
    >>> centre.shape, bool(((other[:, 0] < centre[:, 0]) == (labels < 2)).all())  # labels 0, 1: left of centre
    ((4, 6), True)
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

  Example:
    >>> perms = signal_permutations(6, tiles=4, key=jax.random.key(0))
    >>> perms.shape, len({tuple(p) for p in perms.tolist()})
    ((6, 4), 6)
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

  Example:
    >>> perms = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    >>> signals = jnp.tile(jnp.arange(40.0), (8, 1))  # each sample's value is its position
    >>> tiles, labels = signal_jigsaw_task(jax.random.key(0), signals, permutations=perms, tiles=4, tile=8)
    >>> tiles.shape, bool(((tiles[:, 0, 0] > tiles[:, 3, 0]) == (labels == 1)).all())  # label 1: reversed order
    ((8, 4, 8), True)
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


__all__ = ["PretextNet", "Task", "SYMMETRIES", "accuracy", "build_network", "is_signal", "make_method", "rotation_task",
           "signal_jigsaw_task", "signal_permutations", "signal_relative_location_task", "signal_symmetry_task"]
