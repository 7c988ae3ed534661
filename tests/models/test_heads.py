"""Tests of the BYOL/SimSiam predictor, SwAV prototypes and the DINO head in rl.models.heads."""

import functools
import zlib

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from scipy.special import erf

from rl.models.heads import DINOHead
from rl.models.heads import MLPProjector
from rl.models.heads import Predictor
from rl.models.heads import Prototypes
from rl.models.heads import normalize_prototypes


def _init(model, x):
  return model.init(jax.random.key(0), x, train=False)


def _f64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


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


def _unit_columns(w):
  return w / np.linalg.norm(w, axis=0, keepdims=True)


def _unit_rows(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)





# --------------------------------------------------------------------------- Predictor


def test_predictor_defaults_are_byol():
  model = Predictor()
  assert isinstance(model, MLPProjector)
  assert (tuple(model.hidden_dims), model.out_dim, model.use_bn, model.last_bn) == (
      (4096,), 256, True, False)
  shapes = jax.tree.map(jnp.shape, jax.eval_shape(functools.partial(_init, model),
                                                  jnp.zeros((2, 256))))
  assert shapes['params'] == {'dense0': {'kernel': (256, 4096)},
                              'bn0': {'scale': (4096,), 'bias': (4096,)},
                              'out': {'kernel': (4096, 256), 'bias': (256,)}}
  assert shapes['batch_stats'] == {'bn0': {'mean': (4096,), 'var': (4096,)}}


def test_predictor_simsiam_bottleneck_matches_numpy_and_projector():
  model = Predictor(hidden_dims=(4,), out_dim=12)  # SimSiam's 2048 -> 512 -> 2048, scaled down.
  x = jax.random.normal(jax.random.key(1), (8, 12))
  variables = _randomize_bn(_init(model, x), jax.random.key(2))
  z = jax.jit(functools.partial(model.apply, train=True, mutable=['batch_stats']))(variables, x)[0]
  chex.assert_shape(z, (8, 12))
  p = _f64(variables['params'])
  h = np.asarray(x, np.float64) @ p['dense0']['kernel']
  h = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5) * p['bn0']['scale'] + p['bn0']['bias']
  expected = np.maximum(h, 0) @ p['out']['kernel'] + p['out']['bias']  # No BN on the output.
  np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)
  same = MLPProjector(hidden_dims=(4,), out_dim=12).apply(variables, x, train=True,
                                                          mutable=['batch_stats'])[0]
  np.testing.assert_allclose(z, same, rtol=1e-5, atol=1e-6)  # Same network (jit vs eager).


def test_predictor_train_vs_eval_batch_norm():
  model = Predictor(hidden_dims=(8,), out_dim=4)
  x = jax.random.normal(jax.random.key(3), (6, 5))
  variables = _randomize_bn(_init(model, x), jax.random.key(4))
  y_train, upd_train = model.apply(variables, x, train=True, mutable=['batch_stats'])
  y_eval, upd_eval = model.apply(variables, x, train=False, mutable=['batch_stats'])
  chex.assert_trees_all_equal(upd_eval['batch_stats'], variables['batch_stats'])
  assert not np.allclose(upd_train['batch_stats']['bn0']['mean'],
                         variables['batch_stats']['bn0']['mean'])
  assert not np.allclose(y_train, y_eval, atol=1e-3)
  np.testing.assert_allclose(model.apply(variables, x[:2], train=False), y_eval[:2], rtol=1e-5,
                             atol=1e-6)


# --------------------------------------------------------------------------- Prototypes


def test_prototypes_equal_cosine_similarity():
  model = Prototypes(num_prototypes=7)
  x = 3.0 * jax.random.normal(jax.random.key(5), (5, 6))
  variables = _init(model, x)
  assert jax.tree.map(jnp.shape, variables) == {'params': {'kernel': (6, 7)}}
  # Columns far from unit norm, so that the test needs the normalisation.
  w = variables['params']['kernel'] * jnp.arange(1.0, 8.0)
  scores = jax.jit(functools.partial(model.apply, train=True))({'params': {'kernel': w}}, x)
  chex.assert_shape(scores, (5, 7))
  expected = _unit_rows(np.asarray(x, np.float64)) @ _unit_columns(np.asarray(w, np.float64))
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_prototypes_without_normalisation():
  x = jax.random.normal(jax.random.key(6), (4, 6))
  variables = _init(Prototypes(num_prototypes=3), x)
  w = np.asarray(variables['params']['kernel'], np.float64)
  xs = np.asarray(x, np.float64)
  y = Prototypes(3, normalize=False).apply(variables, x, train=False)
  np.testing.assert_allclose(y, _unit_rows(xs) @ w, rtol=1e-5, atol=1e-6)
  y = Prototypes(3, normalize=False, normalize_input=False).apply(variables, x, train=False)
  np.testing.assert_allclose(y, xs @ w, rtol=1e-5, atol=1e-6)
  y = Prototypes(3, normalize_input=False).apply(variables, x, train=False)
  np.testing.assert_allclose(y, xs @ _unit_columns(w), rtol=1e-5, atol=1e-6)


def test_normalize_prototypes_matches_forward_normalisation():
  x = jax.random.normal(jax.random.key(7), (4, 6))
  variables = _init(Prototypes(num_prototypes=5), x)
  params = {'kernel': variables['params']['kernel'] * 4.0}
  normed = jax.jit(normalize_prototypes)(params)
  np.testing.assert_allclose(np.linalg.norm(normed['kernel'], axis=0), 1.0, rtol=1e-6)
  np.testing.assert_allclose(normed['kernel'],
                             _unit_columns(np.asarray(params['kernel'], np.float64)), rtol=1e-6)
  # SwAV's recipe (normalise after the step, plain layer) == normalising in the forward pass.
  np.testing.assert_allclose(
      Prototypes(5, normalize=False).apply({'params': normed}, x, train=False),
      Prototypes(5).apply({'params': params}, x, train=False), rtol=1e-5, atol=1e-6)
  # Idempotent; arrays, FrozenDicts and extra keys are kept as they are.
  chex.assert_trees_all_close(normalize_prototypes(normed), normed, rtol=1e-6)
  np.testing.assert_allclose(normalize_prototypes(params['kernel']), normed['kernel'], rtol=1e-6)
  frozen = normalize_prototypes(flax.core.freeze({'kernel': params['kernel'], 'other': 1}))
  assert isinstance(frozen, flax.core.FrozenDict) and frozen['other'] == 1
  bf16 = normalize_prototypes(params['kernel'].astype(jnp.bfloat16))
  assert bf16.dtype == jnp.bfloat16


def test_prototypes_zero_input_and_gradients_are_finite():
  model = Prototypes(num_prototypes=4)
  x = jnp.zeros((3, 5)).at[1].set(1.0)
  variables = _init(model, x)
  scores = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(scores[0], 0.0)
  grads = jax.grad(lambda p, x: jnp.sum(model.apply({'params': p}, x, train=True) ** 2),
                   argnums=(0, 1))(variables['params'], x)
  chex.assert_tree_all_finite(grads)
  # With forward normalisation the kernel gradient is orthogonal to each column (scale-invariant).
  g, w = np.asarray(grads[0]['kernel']), np.asarray(variables['params']['kernel'])
  np.testing.assert_allclose(np.sum(g * w, axis=0), 0.0, atol=1e-6)


def test_prototypes_bad_inputs():
  with pytest.raises(ValueError, match=r'x must have shape \[b, d\].*\(2, 3, 4\)'):
    _init(Prototypes(3), jnp.zeros((2, 3, 4)))
  with pytest.raises(ValueError, match=r'Prototypes.num_prototypes must be a positive integer, '
                                       r'got 0'):
    _init(Prototypes(0), jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match=r'params must be the prototype kernel .*got \(3,\)'):
    normalize_prototypes(jnp.zeros(3))
  with pytest.raises(ValueError, match=r"params\['kernel'\] must be .*got \(2, 3, 4\)"):
    normalize_prototypes({'kernel': jnp.zeros((2, 3, 4))})
  with pytest.raises(ValueError, match=r"mapping with a 'kernel'.*keys \['w'\]"):
    normalize_prototypes({'w': jnp.zeros((2, 3))})


# --------------------------------------------------------------------------- DINOHead


def _dino_reference(params, x, num_layers):
  """DINOHead without BN in float64: GELU(erf) MLP, L2-normalise, weight-normalised Linear."""
  p = _f64(params)
  h = np.asarray(x, np.float64)
  for i in range(num_layers - 1):
    h = h @ p[f'dense{i}']['kernel'] + p[f'dense{i}']['bias']
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
  h = _unit_rows(h @ p['bottleneck']['kernel'] + p['bottleneck']['bias'])
  w = _unit_columns(p['last_layer']['kernel']) * p['last_layer'].get('scale', 1.0)
  return h @ w


@pytest.mark.parametrize('num_layers,norm_last_layer', [(1, True), (2, False), (3, True)])
def test_dino_head_shapes_and_numpy_reference(num_layers, norm_last_layer):
  model = DINOHead(out_dim=11, hidden_dim=9, bottleneck_dim=5, num_layers=num_layers,
                   norm_last_layer=norm_last_layer)
  x = jax.random.normal(jax.random.key(8), (4, 6))
  variables = _init(model, x)
  expected = {f'dense{i}': {'kernel': (6 if i == 0 else 9, 9), 'bias': (9,)}
              for i in range(num_layers - 1)}
  expected['bottleneck'] = {'kernel': (6 if num_layers == 1 else 9, 5), 'bias': (5,)}
  expected['last_layer'] = {'kernel': (5, 11)}
  if not norm_last_layer:
    expected['last_layer']['scale'] = (11,)
  assert jax.tree.map(jnp.shape, variables) == {'params': expected}
  params = variables['params']
  if not norm_last_layer:  # Non-trivial gains, so that the test checks where they apply.
    params = {**params, 'last_layer': {**params['last_layer'],
                                       'scale': jnp.linspace(0.5, 2.0, 11)}}
  y = jax.jit(functools.partial(model.apply, train=True))({'params': params}, x)
  chex.assert_shape(y, (4, 11))
  np.testing.assert_allclose(y, _dino_reference(params, x, num_layers), rtol=1e-5, atol=1e-6)
  if norm_last_layer:
    assert bool(jnp.all(jnp.abs(y) <= 1 + 1e-6))  # Cosine similarities.


def test_dino_head_weight_norm_invariance():
  model = DINOHead(out_dim=8, hidden_dim=6, bottleneck_dim=4, num_layers=2)
  x = jax.random.normal(jax.random.key(9), (3, 5))
  params = _init(model, x)['params']
  y = model.apply({'params': params}, x, train=False)
  c = jnp.array([0.01, 0.5, 1.0, 2.0, 3.0, 10.0, 100.0, 7.0])  # Per-unit positive scales of v.
  scaled = {**params, 'last_layer': {'kernel': params['last_layer']['kernel'] * c}}
  np.testing.assert_allclose(model.apply({'params': scaled}, x, train=False), y, rtol=1e-5,
                             atol=1e-6)
  # The gradient of v is orthogonal to v (what makes the direction scale-free).
  g = jax.grad(lambda p: jnp.sum(jnp.sin(model.apply({'params': p}, x, train=True))))(params)
  np.testing.assert_allclose(
      jnp.sum(g['last_layer']['kernel'] * params['last_layer']['kernel'], axis=0), 0.0, atol=1e-6)
  # With learnt gains, scaling g scales the logits.
  free = DINOHead(out_dim=8, hidden_dim=6, bottleneck_dim=4, num_layers=2, norm_last_layer=False)
  free_params = {**params, 'last_layer': {**params['last_layer'], 'scale': c}}
  np.testing.assert_allclose(free.apply({'params': free_params}, x, train=False), y * c, rtol=1e-5,
                             atol=1e-6)


def test_dino_head_init():
  model = DINOHead(out_dim=300, hidden_dim=256, bottleneck_dim=40, norm_last_layer=False)
  params = _init(model, jnp.zeros((2, 64)))['params']
  for name in ('dense0', 'dense1', 'bottleneck'):  # N(0, 0.02^2) kernels, zero biases.
    kernel = np.asarray(params[name]['kernel'])
    np.testing.assert_allclose(kernel.std(), 0.02, rtol=0.05)
    np.testing.assert_allclose(kernel.mean(), 0.0, atol=2e-3)
    np.testing.assert_array_equal(params[name]['bias'], 0.0)
  v = np.asarray(params['last_layer']['kernel'])  # PyTorch nn.Linear default: U(+-1/sqrt(40)).
  assert np.abs(v).max() <= 1 / np.sqrt(40) and np.abs(v).max() > 0.9 / np.sqrt(40)
  np.testing.assert_array_equal(params['last_layer']['scale'], 1.0)


def test_dino_head_batch_norm_train_vs_eval():
  model = DINOHead(out_dim=7, hidden_dim=8, bottleneck_dim=4, use_bn=True)
  x = jax.random.normal(jax.random.key(10), (6, 5))
  variables = _randomize_bn(_init(model, x), jax.random.key(11))
  assert 'bias' not in variables['params']['dense0']  # Cancelled by the BN that follows.
  assert set(variables['batch_stats']) == {'bn0', 'bn1'}
  y_train, upd_train = model.apply(variables, x, train=True, mutable=['batch_stats'])
  y_eval, upd_eval = model.apply(variables, x, train=False, mutable=['batch_stats'])
  chex.assert_trees_all_equal(upd_eval['batch_stats'], variables['batch_stats'])
  for old, new in zip(jax.tree.leaves(variables['batch_stats']),
                      jax.tree.leaves(upd_train['batch_stats'])):
    assert not np.allclose(old, new)
  assert not np.allclose(y_train, y_eval, atol=1e-3)
  np.testing.assert_allclose(model.apply(variables, x[:2], train=False), y_eval[:2], rtol=1e-5,
                             atol=1e-6)


def test_dino_head_sync_batch_norm_matches_global_batch(mesh8):
  make = lambda ax: DINOHead(out_dim=7, hidden_dim=8, bottleneck_dim=4, num_layers=2, use_bn=True,
                             axis_name=ax)
  x = jax.random.normal(jax.random.key(12), (16, 5)) + jnp.arange(16.0)[:, None] / 4
  variables = _randomize_bn(_init(make(None), x), jax.random.key(13))
  y_ref, upd_ref = make(None).apply(variables, x, train=True, mutable=['batch_stats'])
  step = lambda v, x: make('data').apply(v, x, train=True, mutable=['batch_stats'])
  fn = jax.jit(jax.shard_map(step, mesh=mesh8, in_specs=(P(), P('data')),
                             out_specs=(P('data'), P())))
  y, upd = fn(jax.device_put(variables, NamedSharding(mesh8, P())),
              jax.device_put(x, NamedSharding(mesh8, P('data'))))
  chex.assert_trees_all_close(y, y_ref, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(upd['batch_stats'], upd_ref['batch_stats'], atol=1e-5, rtol=1e-5)


def test_dino_head_bfloat16_is_close_to_float32():
  x = jax.random.normal(jax.random.key(14), (4, 6))
  variables = _init(DINOHead(out_dim=10, hidden_dim=8, bottleneck_dim=4), x)
  y32 = DINOHead(out_dim=10, hidden_dim=8, bottleneck_dim=4).apply(variables, x, train=False)
  y16 = DINOHead(out_dim=10, hidden_dim=8, bottleneck_dim=4, dtype=jnp.bfloat16).apply(
      variables, x, train=False)
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, atol=3e-2)


@pytest.mark.parametrize('kwargs,shape,match', [
    ({}, (2, 3, 4), r'x must have shape \[b, d\].*\(2, 3, 4\)'),
    ({'num_layers': 0}, (2, 3), r'DINOHead.num_layers must be a positive integer, got 0'),
    ({'out_dim': 0}, (2, 3), r'DINOHead.out_dim must be a positive integer, got 0'),
    ({'bottleneck_dim': -1}, (2, 3), r'DINOHead.bottleneck_dim must be a positive integer'),
])
def test_dino_head_bad_inputs(kwargs, shape, match):
  model = DINOHead(**{'out_dim': 4, 'hidden_dim': 4, 'bottleneck_dim': 2, **kwargs})
  with pytest.raises(ValueError, match=match):
    _init(model, jnp.zeros(shape))
