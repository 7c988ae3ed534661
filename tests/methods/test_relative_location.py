"""Relative location as a `Method`: cross-entropy of the pair classifier on (centre, other) patches, features and BN
statistics of the whole input, 1 device == 8 devices; and the 1-D task's labels against the segments it cuts."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import relative_location as rl_config
from rl import losses
from rl.methods import pretext
from rl.methods import relative_location

B = 16


def _method_and_batch(config=None, x=None):
  config = config or rl_config.get_config("smoke")
  method = relative_location.make(config)
  if x is None:
    x = np.random.RandomState(0).randn(B, 40).astype(np.float32)
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, x


def test_signal_task_labels_are_the_other_segments_position():
  # A ramp makes every crop's first sample its start: the centre cell (2 of 5) starts at origin + 2 * (6 + 1).
  b, grid, segment, gap, jitter = 256, 5, 6, 1, 1
  x = jnp.tile(jnp.arange(40.0), (b, 1))
  centre, other, labels = pretext.signal_relative_location_task(
      jax.random.key(0), x, grid=grid, segment=segment, gap=gap, jitter=jitter)
  assert centre.shape == other.shape == (b, segment) and labels.dtype == jnp.int32
  np.testing.assert_array_equal(np.diff(centre, axis=1), 1.0)  # contiguous segments
  cell = segment + gap
  origin_plus = np.asarray(centre[:, 0]) - 2 * cell  # origin + centre jitter
  other_cell = np.where(labels < 2, labels, labels + 1)
  offset = np.asarray(other[:, 0]) - origin_plus - other_cell * cell  # other jitter - centre jitter
  assert np.all(np.abs(offset) <= 2 * jitter)
  assert set(np.asarray(labels).tolist()) == {0, 1, 2, 3}  # every class occurs
  # The label is recoverable from the two start positions (the gap is wider than the jitter allows to confuse).
  np.testing.assert_array_equal(np.round((other[:, 0] - centre[:, 0]) / cell), other_cell - 2)


def test_signal_task_is_the_same_on_8_devices(mesh8):
  x = np.random.RandomState(0).randn(32, 40, 2).astype(np.float32)
  task = lambda a, axis_name=None: pretext.signal_relative_location_task(
      jax.random.key(3), a, axis_name=axis_name)
  fn = jax.shard_map(lambda a: task(a, "data"), mesh=mesh8, in_specs=P("data"), out_specs=P("data"))
  for a, b in zip(jax.jit(fn)(x), task(x)):
    np.testing.assert_array_equal(a, b)


def test_signal_task_checks_its_geometry():
  x = jnp.zeros((2, 40))
  with pytest.raises(ValueError, match="odd"):
    pretext.signal_relative_location_task(jax.random.key(0), x, grid=4)
  with pytest.raises(ValueError, match="does not fit"):
    pretext.signal_relative_location_task(jax.random.key(0), x, grid=5, segment=8, gap=1, jitter=1)


def _task_by_hand(config, key, x):
  """The task from its parts, not `make_task`: the config's geometry into the signal or the image task."""
  c = config.relative_location
  geometry = dict(grid=int(c.grid), gap=int(c.gap), jitter=int(c.jitter))
  if x.ndim == 2:
    centre, other, labels = pretext.signal_relative_location_task(key, x, segment=int(c.patch), **geometry)
  else:
    centre, other, labels = losses.relative_location_task(key, x, patch=int(c.patch), **geometry)
  return jnp.stack([centre, other], axis=1), labels


def _expected(config, params, state, x, key):
  pairs, labels = _task_by_hand(config, key, x)
  net = pretext.build_network(config, config.relative_location.head_hidden_dims,
                                     relative_location.num_classes(config, x.ndim != 4), axis_name=None)
  (_, logits), _ = net.apply({"params": params, **state}, pairs, train=True, mutable=["batch_stats"])
  h, bn = net.apply({"params": params, **state}, x, train=True, mutable=["batch_stats"],
                    method=pretext.PretextNet.encode)
  return losses.pretext_cross_entropy(logits, labels), logits, labels, h, dict(bn)


def test_loss_is_pretext_cross_entropy_and_features_are_of_the_whole_input():
  config, method, params, state, x = _method_and_batch()
  value, (new_state, aux) = method.loss(params, state, {"views": (x,)}, jax.random.key(1))
  expected, logits, labels, h, bn = _expected(config, params, state, x, jax.random.key(1))
  assert logits.shape == (B, 4)  # grid 5: 4 other segments
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["pretext_cross_entropy"], value)
  np.testing.assert_allclose(aux["metrics"]["pretext_accuracy"], np.mean(np.argmax(logits, -1) == labels))
  np.testing.assert_allclose(aux["features"], h, rtol=1e-6)
  # The probe's features carry no gradient into the encoder.
  g = jax.jit(jax.grad(lambda p: jnp.sum(method.loss(p, state, {"views": (x,)}, jax.random.key(1))[1][1]["features"])))(
      params)
  assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(g))
  # The running BN statistics come from the whole-input pass (embed sees whole inputs).
  jax.tree.map(np.testing.assert_array_equal, new_state, bn)
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state["batch_stats"]["encoder"],
                                       state["batch_stats"]["encoder"]))


def test_images_use_the_3x3_grid_task():
  config = rl_config.get_config("digits")
  # One residual block: the task and the features are under test, not the depth.
  config.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar", width=4, stage_sizes=(1,)))
  config.relative_location.head_hidden_dims = (16,)
  x = np.random.RandomState(1).rand(4, 8, 8, 1).astype(np.float32)
  config, method, params, state, x = _method_and_batch(config, x)
  # Both under jit: a ResNet's forward op by op costs ~10 s of per-op compilation on CPU.
  value, (new_state, aux) = jax.jit(method.loss)(params, state, {"views": (x,)}, jax.random.key(1))
  expected, logits, _, h, bn = jax.jit(functools.partial(_expected, config))(params, state, x, jax.random.key(1))
  assert logits.shape == (4, 8)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  # Two separately compiled float32 ResNet forwards agree to a few 1e-5 (XLA fuses them differently); the features
  # of another input, or of the patches, would differ by O(1).
  np.testing.assert_allclose(aux["features"], h, rtol=1e-4, atol=1e-5)
  assert method.embed(params, state, x).shape == (4, 4)  # width 4, one stage


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x = _method_and_batch()

  def value_and_grad(axis_name):
    def f(p, a):
      return method.loss(p, state, {"views": (a,)}, jax.random.key(1), axis_name=axis_name)
    return jax.value_and_grad(f, has_aux=True)

  (v_1, (s_1, a_1)), g_1 = jax.jit(value_and_grad(None))(params, x)
  fn = jax.shard_map(value_and_grad("data"), mesh=mesh8, in_specs=(P(), P("data")),
                     out_specs=((P(), (P(), {"metrics": P(), "features": P("data")})), P()))
  (v_8, (s_8, a_8)), g_8 = jax.jit(fn)(params, jax.device_put(x, NamedSharding(mesh8, P("data"))))
  np.testing.assert_allclose(v_8, v_1, rtol=1e-5)
  np.testing.assert_allclose(a_8["metrics"]["pretext_accuracy"], a_1["metrics"]["pretext_accuracy"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_8, g_1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_8, s_1)
