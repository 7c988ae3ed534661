"""Jigsaw puzzles: classify which permutation of a fixed set shuffled an input's tiles.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016,
https://arxiv.org/abs/1603.09246. For images, each example is cut into grid x grid tiles (random offsets inside
the cells, so gaps hide edge continuation) and shuffled by one of N permutations (`rl.losses.jigsaw_task`); the
set is the paper's maximal-Hamming-distance set (Algorithm 1, `rl.losses.make_permutations`), computed once at
`make` time from a fixed key and kept as a constant. As in the paper's context-free network, every tile goes
through the shared encoder (one batch), the features are concatenated in tile order and an MLP head classifies
the permutation index (`rl.losses.pretext_cross_entropy`). Each tile is normalised to zero mean and unit variance
(the paper's per-tile normalisation against low-level shortcuts) when `jigsaw.normalize_tiles`.

Signals ([b, l] or [b, l, c], MNIST-1D) use OUR 1-D analogue, not the paper's task: a row of `tiles` segments
(`rl.methods.pretext.signal_jigsaw_task`), with the same permutation set over range(tiles). The method
dispatches on the input rank.

Differences from the paper: an MLP head on pooled encoder features stands for fc6 (per tile) + fc7 + fc8; the
paper's colour jittering and 30% greyscale tiles are not applied; tile sizes are scaled to the input (config).
`aux['features']` and `embed` are encoder features of the WHOLE input, from a second, stop-gradient pass in
training mode; the BatchNorm running statistics in `method_state` are those of this whole-input pass, because
`embed` sees whole inputs (the tile pass normalises with its own batch statistics, as training always does).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rl import losses
from rl.methods import base
from rl.methods import pretext

# The permutation set is a constant of the method: the same for every run and every config with the same sizes.
PERMUTATION_KEY = 0


def permutation_set(config: ml_collections.ConfigDict) -> np.ndarray:
  """[N, tiles] int32: `jigsaw.num_permutations` permutations of range(`jigsaw.tiles`), far apart (Algorithm 1).

  Example:
    >>> from configs import jigsaw as jigsaw_config
    >>> config = jigsaw_config.get_config("smoke")
    >>> perms = permutation_set(config)
    >>> perms.shape, perms.dtype, sorted(perms[0].tolist()) == list(range(config.jigsaw.tiles))
    ((24, 4), dtype('int32'), True)
  """
  return pretext.signal_permutations(int(config.jigsaw.num_permutations), tiles=int(config.jigsaw.tiles),
                                             key=jax.random.key(PERMUTATION_KEY))


def normalize_tiles(tiles: jax.Array, *, epsilon: float = 1e-5) -> jax.Array:
  """Each tile of [b, k, ...] minus its mean, over its standard deviation (all its samples and channels).

  Example:
    >>> tiles = normalize_tiles(jnp.arange(8.0).reshape(1, 2, 4))  # one example, two tiles of 4 samples
    >>> np.asarray(tiles).round(2)
    array([[[-1.34, -0.45,  0.45,  1.34],
            [-1.34, -0.45,  0.45,  1.34]]], dtype=float32)
  """
  axes = tuple(range(2, tiles.ndim))
  x = tiles.astype(jnp.float32)
  mean = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.var(x, axis=axes, keepdims=True)
  return ((x - mean) * jax.lax.rsqrt(var + epsilon)).astype(tiles.dtype)


def make_task(config: ml_collections.ConfigDict, permutations: np.ndarray):
  """`task(key, x, axis_name) -> (tiles [b, k, ...], labels [b])` for images or signals.

  Example:
    >>> from configs import jigsaw as jigsaw_config
    >>> config = jigsaw_config.get_config("smoke")
    >>> task = make_task(config, permutation_set(config))
    >>> tiles, labels = task(jax.random.key(0), jnp.ones((8, 40)), None)
    >>> tiles.shape, labels.shape, labels.dtype
    ((8, 4, 8), (8,), dtype('int32'))
  """
  k = int(config.jigsaw.tiles)
  tile = int(config.jigsaw.tile)
  normalize = bool(config.jigsaw.normalize_tiles)

  def task(key, x, axis_name):
    if pretext.is_signal(x):
      tiles, labels = pretext.signal_jigsaw_task(key, x, permutations=permutations, tiles=k, tile=tile,
                                                          axis_name=axis_name)
    else:
      tiles, labels = losses.jigsaw_task(key, x, permutations=permutations, grid=math.isqrt(k), tile=tile,
                                         axis_name=axis_name)
    return (normalize_tiles(tiles) if normalize else tiles), labels

  return task


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The jigsaw `Method` for a config with `model` and
  `jigsaw.{tiles, tile, num_permutations, normalize_tiles, head_hidden_dims}`.

  Example:
    >>> from configs import jigsaw as jigsaw_config
    >>> rl.methods.base.describe(make(jigsaw_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'head'], 'state': ['batch_stats'], 'metrics': ['pretext_accuracy',
     'pretext_cross_entropy'], 'embedding': (8, 16)}
  """
  permutations = permutation_set(config)
  return pretext.make_method(config, make_task(config, permutations), name="jigsaw",
                             head_hidden_dims=tuple(config.jigsaw.head_hidden_dims), num_classes=len(permutations))
