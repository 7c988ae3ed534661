"""Tests of rl.models: the conv1d encoder, heads, registry and cross-device BatchNorm."""

import functools
import zlib

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from rl import models
from rl.models import Conv1DEncoder
from rl.models import LinearClassifier
from rl.models import MLPProjector
from rl.models import ResNet


def _init(model, x):
  return model.init(jax.random.key(0), x, train=False)


def _num_params(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _randomize_bn(variables, key):
  """Random BN scales/biases and running stats, so that tests do not pass by symmetry."""
  def perturb(path, leaf):
    name = path[-1].key
    k = jax.random.fold_in(key, zlib.crc32(jax.tree_util.keystr(path).encode()))
    if name in ('scale', 'var'):
      return jax.random.uniform(k, leaf.shape, minval=0.5, maxval=1.5)
    if name in ('bias', 'mean'):
      return 0.3 * jax.random.normal(k, leaf.shape)
    return leaf
  return jax.tree_util.tree_map_with_path(perturb, variables)


# --------------------------------------------------------------------------- Conv1DEncoder


@pytest.mark.parametrize('shape,kwargs,feature_dim', [
    ((3, 40), {}, 128),
    ((3, 41, 2), {}, 128),
    ((3, 40), {'widths': (8, 16), 'out_dim': 24}, 24),
    ((3, 40), {'widths': (8, 16, 32), 'strides': (1, 2, 2)}, 32),
])
def test_conv1d_shapes(shape, kwargs, feature_dim):
  model = Conv1DEncoder(**kwargs)
  x = jax.random.normal(jax.random.key(1), shape)
  variables = _init(model, x)
  y = model.apply(variables, x, train=False)
  assert model.feature_dim == feature_dim
  chex.assert_shape(y, (shape[0], feature_dim))
  chex.assert_tree_all_finite(y)
  # Global average pool of ReLU outputs (or a final ReLU): features are non-negative.
  assert bool(jnp.all(y >= 0))


def test_conv1d_param_count():
  widths, k = (32, 64, 128), 5
  cins = (1,) + widths[:-1]
  # Bias-free convs plus BN scale and bias per channel.
  expected = sum(k * cin * cout + 2 * cout for cin, cout in zip(cins, widths))
  variables = jax.eval_shape(functools.partial(_init, Conv1DEncoder()), jnp.zeros((1, 40)))
  assert _num_params(variables['params']) == expected == 51808
  assert _num_params(variables['batch_stats']) == 2 * sum(widths)


def test_conv1d_2d_input_equals_single_channel():
  model = Conv1DEncoder(widths=(8, 16))
  x = jax.random.normal(jax.random.key(2), (4, 40))
  variables = _init(model, x)
  chex.assert_trees_all_close(model.apply(variables, x, train=False),
                              model.apply(variables, x[..., None], train=False))


@pytest.mark.parametrize('length,stride', [(40, 2), (8, 2), (5, 2), (3, 1), (7, 3)])
def test_conv1d_layer_equals_flax_conv(length, stride):
  # Conv1D computes short outputs (fewer samples than the kernel) as an im2col matmul: it must keep nn.Conv's
  # parameters, initial values, 'SAME' padding, outputs and gradients.
  x = jax.random.normal(jax.random.key(3), (6, length, 4))
  ours = models.conv1d.Conv1D(7, 5, stride)
  flax_conv = nn.Conv(7, (5,), strides=(stride,), padding='SAME', use_bias=False)
  params = ours.init(jax.random.key(1), x)
  chex.assert_trees_all_close(params, flax_conv.init(jax.random.key(1), x))
  chex.assert_trees_all_close(ours.apply(params, x), flax_conv.apply(params, x), rtol=1e-5, atol=1e-5)
  def grads(model):
    return jax.grad(lambda p, x: jnp.sum(jnp.sin(model.apply(p, x))), argnums=(0, 1))(params, x)
  chex.assert_trees_all_close(grads(ours), grads(flax_conv), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kwargs,x_shape,match', [
    ({}, (2, 3, 4, 5), 'x must have shape'),
    ({'widths': (8, 16), 'strides': (2, 2, 2)}, (2, 40), 'strides'),
])
def test_conv1d_errors(kwargs, x_shape, match):
  with pytest.raises(ValueError, match=match):
    _init(Conv1DEncoder(**kwargs), jnp.zeros(x_shape))


# --------------------------------------------------------------------------- heads


def test_projector_shapes_and_param_count():
  model = MLPProjector(hidden_dims=(64, 32), out_dim=16)
  x = jax.random.normal(jax.random.key(3), (5, 20))
  variables = _init(model, x)
  chex.assert_shape(model.apply(variables, x, train=False), (5, 16))
  # Hidden Linear layers without bias (BN follows), BN scale+bias, output Linear with bias.
  expected = 20 * 64 + 2 * 64 + 64 * 32 + 2 * 32 + 32 * 16 + 16
  assert _num_params(variables['params']) == expected


def test_projector_without_hidden_layers_is_affine():
  model = MLPProjector(hidden_dims=(), out_dim=7)
  x = jax.random.normal(jax.random.key(4), (5, 11))
  variables = _init(model, x)
  p = variables['params']['out']
  expected = np.asarray(x, np.float64) @ np.asarray(p['kernel'], np.float64) + np.asarray(p['bias'])
  np.testing.assert_allclose(model.apply(variables, x, train=False), expected, rtol=1e-5, atol=1e-5)


def test_projector_train_matches_numpy_reference():
  """Linear-BN-ReLU-Linear with batch statistics and the running-average update."""
  model = MLPProjector(hidden_dims=(6,), out_dim=3)
  x = jax.random.normal(jax.random.key(5), (8, 4))
  variables = _randomize_bn(_init(model, x), jax.random.key(6))
  z, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])

  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables['params'])
  stats = jax.tree.map(lambda a: np.asarray(a, np.float64), variables['batch_stats'])
  h = np.asarray(x, np.float64) @ p['dense0']['kernel']
  mean, var = h.mean(0), h.var(0)  # Biased variance, as in flax.
  h = (h - mean) / np.sqrt(var + 1e-5) * p['bn0']['scale'] + p['bn0']['bias']
  expected = np.maximum(h, 0) @ p['out']['kernel'] + p['out']['bias']
  np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)
  new = updates['batch_stats']['bn0']
  np.testing.assert_allclose(new['mean'], 0.9 * stats['bn0']['mean'] + 0.1 * mean, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(new['var'], 0.9 * stats['bn0']['var'] + 0.1 * var, rtol=1e-5,
                             atol=1e-6)


def test_projector_last_bn_standardizes_outputs():
  model = MLPProjector(hidden_dims=(32,), out_dim=8, last_bn=True)
  x = jax.random.normal(jax.random.key(7), (64, 16))
  variables = _init(model, x)
  assert 'out_bn' not in variables['params']  # No affine parameters.
  assert 'bias' not in variables['params']['out']  # Cancelled by the BN.
  assert set(variables['batch_stats']['out_bn']) == {'mean', 'var'}
  z, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(z.var(0), 1.0, atol=1e-3)  # var / (var + eps).


def test_linear_classifier_matches_matmul():
  model = LinearClassifier(num_classes=10)
  x = jax.random.normal(jax.random.key(8), (4, 12))
  variables = _init(model, x)
  p = variables['params']['fc']
  y = model.apply(variables, x, train=True)
  chex.assert_shape(y, (4, 10))
  np.testing.assert_allclose(y, x @ p['kernel'] + p['bias'], rtol=1e-5, atol=1e-6)
  assert 'batch_stats' not in variables


def test_heads_reject_wrong_rank():
  with pytest.raises(ValueError, match=r'x must have shape \[b, d\].*\(2, 3, 4\)'):
    _init(MLPProjector(hidden_dims=(4,)), jnp.zeros((2, 3, 4)))
  with pytest.raises(ValueError, match=r'x must have shape \[b, d\]'):
    _init(LinearClassifier(num_classes=3), jnp.zeros((2, 3, 4)))


# --------------------------------------------------------------------------- train / eval modes


@pytest.mark.parametrize('model,shape', [
    (Conv1DEncoder(widths=(8, 16), out_dim=12), (6, 40)),
    (MLPProjector(hidden_dims=(16,), out_dim=8, last_bn=True), (6, 10)),
    (ResNet(stage_sizes=(1, 1), width=4, stem='cifar'), (6, 8, 8, 3)),
])
def test_train_updates_batch_stats_eval_does_not(model, shape):
  x = jax.random.normal(jax.random.key(9), shape)
  variables = _init(model, x)
  train_fn = functools.partial(model.apply, train=True, mutable=['batch_stats'])
  eval_fn = functools.partial(model.apply, train=False, mutable=['batch_stats'])
  y_train, train_updates = train_fn(variables, x)
  y_eval, eval_updates = eval_fn(variables, x)
  chex.assert_trees_all_equal(eval_updates['batch_stats'], variables['batch_stats'])
  for old, new in zip(jax.tree.leaves(variables['batch_stats']),
                      jax.tree.leaves(train_updates['batch_stats'])):
    assert not np.allclose(old, new), 'train=True must update every running statistic'
  # Eval mode is per-example: a sub-batch gives the same rows; train mode is not.
  np.testing.assert_allclose(eval_fn(variables, x[:2])[0], y_eval[:2], rtol=1e-5, atol=1e-5)
  assert not np.allclose(train_fn(variables, x[:2])[0], y_train[:2], atol=1e-4)


def test_conv1d_and_projector_gradients_finite_and_nonzero():
  encoder = Conv1DEncoder(widths=(8, 16), out_dim=12)
  head = MLPProjector(hidden_dims=(16,), out_dim=8)
  x = jax.random.normal(jax.random.key(10), (8, 40))
  target = jax.random.normal(jax.random.key(11), (8, 8))
  enc_vars = _init(encoder, x)
  head_vars = _init(head, jnp.zeros((8, encoder.feature_dim)))

  def loss(params):
    h, _ = encoder.apply({'params': params['enc'], 'batch_stats': enc_vars['batch_stats']}, x,
                         train=True, mutable=['batch_stats'])
    z, _ = head.apply({'params': params['head'], 'batch_stats': head_vars['batch_stats']}, h,
                      train=True, mutable=['batch_stats'])
    return jnp.sum((z - target) ** 2)

  grads = jax.jit(jax.grad(loss))({'enc': enc_vars['params'], 'head': head_vars['params']})
  chex.assert_tree_all_finite(grads)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert float(jnp.linalg.norm(g)) > 0, f'zero gradient for {jax.tree_util.keystr(path)}'


# --------------------------------------------------------------------------- cross-device BN


def _sharded_apply(model, variables, x, mesh):
  """Applies `model` in train mode under shard_map with the batch sharded over 'data'.

  Returns the outputs and, with cross-device BN, the updated batch_stats (identical on every
  device); without it the per-device statistics differ, so only the outputs are returned.
  """
  def step(variables, x):
    y, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
    return (y, updates) if model.axis_name else y
  out_specs = (P('data'), P()) if model.axis_name else P('data')
  fn = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P('data')), out_specs=out_specs))
  variables = jax.device_put(variables, NamedSharding(mesh, P()))
  return fn(variables, jax.device_put(x, NamedSharding(mesh, P('data'))))


@pytest.mark.parametrize('make,shape', [
    (lambda ax: Conv1DEncoder(widths=(8, 16), out_dim=12, axis_name=ax), (16, 40)),
    (lambda ax: MLPProjector(hidden_dims=(16,), out_dim=8, last_bn=True, axis_name=ax), (16, 10)),
    (lambda ax: ResNet(stage_sizes=(1, 1), width=4, stem='cifar', axis_name=ax), (16, 8, 8, 3)),
])
def test_sync_batch_norm_matches_global_batch(make, shape):
  assert jax.device_count() == 8, 'run with XLA_FLAGS=--xla_force_host_platform_device_count=8'
  mesh = jax.make_mesh((8,), ('data',))
  # Shards with different statistics, so that per-device BN differs from global BN.
  x = jax.random.normal(jax.random.key(12), shape)
  x = x + jnp.arange(shape[0], dtype=x.dtype).reshape((-1,) + (1,) * (len(shape) - 1)) / 4
  variables = _randomize_bn(_init(make(None), x), jax.random.key(13))

  y_ref, updates_ref = make(None).apply(variables, x, train=True, mutable=['batch_stats'])
  y_sync, updates_sync = _sharded_apply(make('data'), variables, x, mesh)
  chex.assert_trees_all_close(y_sync, y_ref, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(updates_sync['batch_stats'], updates_ref['batch_stats'], atol=1e-5,
                              rtol=1e-5)

  y_local = _sharded_apply(make(None), variables, x, mesh)
  assert not np.allclose(y_local, y_ref, atol=1e-3), 'per-device BN must differ from global BN'


# --------------------------------------------------------------------------- registry


KNOWN_MODELS = ['aim_vit', 'conv1d', 'dino_head', 'linear', 'mae', 'mlp_projector', 'predictor', 'prototypes', 'resnet', 'resnet18',
                'resnet50', 'vit', 'vit_base', 'vit_small', 'vit_tiny']


def test_registry_builds_models_with_kwargs():
  assert sorted(models.MODELS) == KNOWN_MODELS
  model = models.get_model('resnet50', stem='cifar', axis_name='data')
  assert isinstance(model, models.ResNet50)
  assert (model.stem, model.axis_name, model.feature_dim) == ('cifar', 'data', 2048)
  assert models.get_model('resnet18').feature_dim == 512
  assert models.get_model('conv1d', out_dim=32).feature_dim == 32
  assert models.get_model('linear', num_classes=10).num_classes == 10
  assert models.get_model('mlp_projector').hidden_dims == (2048,)


def test_registry_unknown_name_lists_known_names():
  with pytest.raises(ValueError) as err:
    models.get_model('resnet19')
  msg = str(err.value)
  assert "'resnet19'" in msg
  assert str(KNOWN_MODELS) in msg


def test_registry_unknown_and_missing_kwargs():
  with pytest.raises(ValueError, match=r"Unknown arguments \['depth'\].*'resnet18'.*'stem'"):
    models.get_model('resnet18', depth=18)
  with pytest.raises(ValueError, match=r"Missing required arguments \['num_classes'\]"):
    models.get_model('linear')
