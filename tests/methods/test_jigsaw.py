"""Jigsaw as a `Method`: cross-entropy of the permutation classifier on tiles in shuffled order, a constant
permutation set, features and BN statistics of the whole input, 1 device == 8 devices; and the 1-D task's tiles
against the permutation of its label."""
import itertools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from configs import jigsaw as jigsaw_config
from rl import losses
from rl.methods import pretext
from rl.methods import jigsaw
from tests.methods import devices

B = 16


def _method_and_batch(config=None, x=None):
  config = config or jigsaw_config.get_config("smoke")
  method = jigsaw.make(config)
  if x is None:
    x = np.random.RandomState(0).randn(B, 40).astype(np.float32)
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, x


def test_signal_permutations_are_the_image_set_over_range_tiles():
  perms = pretext.signal_permutations(24, tiles=4, key=jax.random.key(0))
  assert sorted(map(tuple, perms.tolist())) == list(itertools.permutations(range(4)))  # all 4! distinct
  np.testing.assert_array_equal(perms, losses.make_permutations(24, grid=2, key=jax.random.key(0)))
  with pytest.raises(ValueError, match="perfect square"):
    pretext.signal_permutations(10, tiles=5, key=jax.random.key(0))


def test_signal_task_tiles_follow_the_labels_permutation():
  # A ramp makes every tile's first sample its start: tile j must come from cell perms[label][j] (cells of 10).
  perms = jnp.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]])
  x = jnp.tile(jnp.arange(40.0), (64, 1))
  tiles, labels = pretext.signal_jigsaw_task(jax.random.key(0), x, permutations=perms, tiles=4, tile=8)
  assert tiles.shape == (64, 4, 8) and labels.dtype == jnp.int32
  assert set(np.asarray(labels).tolist()) == {0, 1, 2}
  np.testing.assert_array_equal(np.diff(tiles, axis=-1), 1.0)
  cells = np.asarray(tiles[..., 0]) // 10
  np.testing.assert_array_equal(cells, np.asarray(perms)[labels])
  offsets = np.asarray(tiles[..., 0]) % 10
  assert offsets.min() == 0 and offsets.max() == 2  # random offsets inside the cells, 0..10-8
  # Hand example: label 1 reverses the order of the tiles.
  tiles1, labels1 = pretext.signal_jigsaw_task(jax.random.key(0), x[:1], permutations=perms[1:2], tiles=4,
                                                       tile=10)
  np.testing.assert_array_equal(tiles1[0, :, 0], [30, 20, 10, 0])
  assert labels1.tolist() == [0]


def test_signal_task_is_the_same_on_8_devices(mesh8):
  x = np.random.RandomState(0).randn(32, 40).astype(np.float32)
  perms = jigsaw.permutation_set(jigsaw_config.get_config("smoke"))
  task = lambda a, axis_name=None: pretext.signal_jigsaw_task(
      jax.random.key(3), a, permutations=perms, tiles=4, tile=8, axis_name=axis_name)
  fn = jax.shard_map(lambda a: task(a, "data"), mesh=mesh8, in_specs=P("data"), out_specs=P("data"))
  for a, b in zip(jax.jit(fn)(x), task(x)):
    np.testing.assert_array_equal(a, b)


def test_normalize_tiles():
  t = jax.random.normal(jax.random.key(0), (2, 4, 5, 5, 3)) * 3 + 1
  n = jigsaw.normalize_tiles(t)
  np.testing.assert_allclose(n.mean(axis=(2, 3, 4)), 0.0, atol=1e-5)
  np.testing.assert_allclose(n.std(axis=(2, 3, 4)), 1.0, rtol=1e-4)


def _task_by_hand(config, perms, key, x):
  """The task from its parts, not `make_task`: the config's sizes into the signal or image jigsaw, and each tile
  standardised in float64 NumPy when `normalize_tiles`."""
  k, tile = int(config.jigsaw.tiles), int(config.jigsaw.tile)
  if x.ndim == 2:
    tiles, labels = pretext.signal_jigsaw_task(key, x, permutations=perms, tiles=k, tile=tile)
  else:
    tiles, labels = losses.jigsaw_task(key, x, permutations=perms, grid=math.isqrt(k), tile=tile)
  if config.jigsaw.normalize_tiles:
    t = np.asarray(tiles, np.float64)
    axes = tuple(range(2, t.ndim))
    tiles = ((t - t.mean(axis=axes, keepdims=True)) / np.sqrt(t.var(axis=axes, keepdims=True) + 1e-5))
  return np.asarray(tiles, np.float32), labels


def _expected(config, params, state, x, key, *, jit=False):
  perms = jigsaw.permutation_set(config)
  tiles, labels = _task_by_hand(config, perms, key, x)
  net = pretext.build_network(config, config.jigsaw.head_hidden_dims, len(perms), axis_name=None)

  def forward(tiles, x):
    (_, logits), _ = net.apply({"params": params, **state}, tiles, train=True, mutable=["batch_stats"])
    h, bn = net.apply({"params": params, **state}, x, train=True, mutable=["batch_stats"],
                      method=pretext.PretextNet.encode)
    return logits, h, bn

  # jit for a ResNet, whose forward op by op costs ~10 s of per-op compilation on CPU (compared with a jitted loss).
  logits, h, bn = (jax.jit(forward) if jit else forward)(tiles, x)
  return losses.pretext_cross_entropy(logits, labels), logits, labels, h, dict(bn)


def test_loss_is_pretext_cross_entropy_and_features_are_of_the_whole_input():
  config, method, params, state, x = _method_and_batch()
  value, (new_state, aux) = method.loss(params, state, {"views": (x,)}, jax.random.key(1))
  expected, logits, labels, h, bn = _expected(config, params, state, x, jax.random.key(1))
  assert logits.shape == (B, 24)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["pretext_cross_entropy"], value)
  np.testing.assert_allclose(aux["metrics"]["pretext_accuracy"], np.mean(np.argmax(logits, -1) == labels))
  np.testing.assert_allclose(aux["features"], h, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state, bn)  # running BN statistics of the whole inputs
  # The probe's features carry no gradient into the encoder.
  g = jax.jit(jax.grad(lambda p: jnp.sum(method.loss(p, state, {"views": (x,)}, jax.random.key(1))[1][1]["features"])))(
      params)
  assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(g))


def test_images_use_the_grid_task_with_normalised_tiles():
  config = jigsaw_config.get_config("digits")
  # One residual block: the task and the features are under test, not the depth (ResNet-18 compiled for ~25 s).
  config.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar", width=4, stage_sizes=(1,)))
  config.jigsaw.head_hidden_dims = (16,)
  assert config.jigsaw.normalize_tiles
  x = np.random.RandomState(1).rand(4, 8, 8, 1).astype(np.float32)
  config, method, params, state, x = _method_and_batch(config, x)
  value, (_, aux) = jax.jit(method.loss)(params, state, {"views": (x,)}, jax.random.key(1))
  expected, logits, _, h, _ = _expected(config, params, state, x, jax.random.key(1), jit=True)
  assert logits.shape == (4, 24)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  # Two separately compiled float32 ResNet forwards agree to a few 1e-5 (XLA fuses them differently); the features
  # of another input, or of the tiles, would differ by O(1).
  np.testing.assert_allclose(aux["features"], h, rtol=1e-4, atol=1e-5)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (x,)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)
