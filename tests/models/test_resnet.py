"""Tests of rl.models.resnet: torchvision parameter counts, stems, block wiring, dtype."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.models import ResNet
from rl.models import ResNet18
from rl.models import ResNet50
from rl.models.resnet import BasicBlock
from rl.models.resnet import Bottleneck
from rl.models.resnet import decayed_shortcut_weights


def _num_params(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _abstract_variables(model, shape):
  init = functools.partial(model.init, train=False)
  return jax.eval_shape(init, jax.random.key(0), jnp.zeros(shape))


# torchvision.models.resnet18/50 parameter counts (11,689,512 / 25,557,032) minus the 1000-way
# fc (512*1000+1000 / 2048*1000+1000). The CIFAR stem swaps the 7x7x3x64 conv for a 3x3x3x64 one.
_TORCHVISION = {'resnet18': 11_176_512, 'resnet50': 23_508_032}
_CIFAR_STEM_DELTA = 3 * 3 * 3 * 64 - 7 * 7 * 3 * 64


@pytest.mark.parametrize('cls,name', [(ResNet18, 'resnet18'), (ResNet50, 'resnet50')])
@pytest.mark.parametrize('stem', ['imagenet', 'cifar'])
def test_param_counts_match_torchvision(cls, name, stem):
  variables = _abstract_variables(cls(stem=stem), (1, 32, 32, 3))
  expected = _TORCHVISION[name] + (_CIFAR_STEM_DELTA if stem == 'cifar' else 0)
  assert _num_params(variables['params']) == expected
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables['params']))
  # One running mean and variance per BN scale; no other state.
  bn_scales = [a for p, a in jax.tree_util.tree_leaves_with_path(variables['params'])
               if p[-1].key == 'scale']
  assert _num_params(variables['batch_stats']) == 2 * _num_params(bn_scales)


@pytest.mark.parametrize('stem,size,spatial', [
    ('cifar', 32, (32, 16, 8, 4)),
    ('imagenet', 64, (16, 8, 4, 2)),
])
def test_resnet18_shapes_per_stem(stem, size, spatial):
  model = ResNet18(stem=stem)
  # Shapes are fixed at trace time, so eval_shape checks them without the cost of a forward
  # pass; the numerics are checked on narrow networks below and by the ResNet-50 forward.
  init = functools.partial(model.init_with_output, train=False, capture_intermediates=True)
  y, state = jax.eval_shape(init, jax.random.key(0), jnp.zeros((2, size, size, 3)))
  chex.assert_shape(y, (2, 512))
  assert y.dtype == jnp.float32
  assert model.feature_dim == 512
  inter = state['intermediates']
  for stage, (s, blocks) in enumerate(zip(spatial, (2, 2, 2, 2)), start=1):
    out = inter[f'stage{stage}_block{blocks}']['__call__'][0]
    chex.assert_shape(out, (2, s, s, 64 * 2 ** (stage - 1)))


def test_resnet50_forward_shape():
  model = ResNet50(stem='imagenet')
  x = jax.random.normal(jax.random.key(2), (2, 64, 64, 3))
  # Shapes only (abstract evaluation): ResNet-50's forward pass costs ~15 s to compile on the test machine; the
  # values of its bottleneck blocks and of the stem are checked against references below.
  y, _ = jax.eval_shape(lambda key, x: model.init_with_output(key, x, train=False), jax.random.key(0), x)
  chex.assert_shape(y, (2, 2048))
  assert y.dtype == jnp.float32 and model.feature_dim == 2048


def _conv(x, kernel, stride, pad):
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=jax.lax.Precision.HIGHEST)


def _bn(x, p, s):
  return (x - s['mean']) / jnp.sqrt(s['var'] + 1e-5) * p['scale'] + p['bias']


def _random_variables(variables, key):
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.uniform(k, a.shape, minval=0.5, maxval=1.5) *
                                      (0.2 if a.ndim == 4 else 1.0)
                                      for k, a in zip(keys, leaves)])


def _basic_block_ref(x, p, s, stride):
  y = jax.nn.relu(_bn(_conv(x, p['conv1']['kernel'], stride, 1), p['bn1'], s['bn1']))
  y = _bn(_conv(y, p['conv2']['kernel'], 1, 1), p['bn2'], s['bn2'])
  if 'downsample_conv' in p:
    x = _bn(_conv(x, p['downsample_conv']['kernel'], stride, 0), p['downsample_bn'],
            s['downsample_bn'])
  return jax.nn.relu(y + x)


@pytest.mark.parametrize('stride,cin', [(1, 8), (2, 4)])
def test_basic_block_matches_reference(stride, cin):
  """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus identity or 1x1(stride)-BN shortcut, then ReLU."""
  block = BasicBlock(features=8, stride=stride)
  x = jax.random.normal(jax.random.key(3), (2, 6, 6, cin))
  v = _random_variables(block.init(jax.random.key(0), x, train=False), jax.random.key(4))
  # The projection shortcut exists exactly when the shape changes.
  assert ('downsample_conv' in v['params']) == (stride != 1 or cin != 8)
  expected = _basic_block_ref(x, v['params'], v['batch_stats'], stride)
  chex.assert_shape(expected, (2, 6 // stride, 6 // stride, 8))
  np.testing.assert_allclose(block.apply(v, x, train=False), expected, rtol=1e-4, atol=1e-4)


def test_bottleneck_matches_reference():
  """torchvision v1.5: the stride is on the 3x3 conv; output channels are 4 * features."""
  block = Bottleneck(features=4, stride=2)
  x = jax.random.normal(jax.random.key(5), (2, 6, 6, 8))
  v = _random_variables(block.init(jax.random.key(0), x, train=False), jax.random.key(6))
  p, s = v['params'], v['batch_stats']
  y = jax.nn.relu(_bn(_conv(x, p['conv1']['kernel'], 1, 0), p['bn1'], s['bn1']))
  y = jax.nn.relu(_bn(_conv(y, p['conv2']['kernel'], 2, 1), p['bn2'], s['bn2']))
  y = _bn(_conv(y, p['conv3']['kernel'], 1, 0), p['bn3'], s['bn3'])
  shortcut = _bn(_conv(x, p['downsample_conv']['kernel'], 2, 0), p['downsample_bn'],
                 s['downsample_bn'])
  expected = jax.nn.relu(y + shortcut)
  chex.assert_shape(expected, (2, 3, 3, 16))
  np.testing.assert_allclose(block.apply(v, x, train=False), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('stem', ['imagenet', 'cifar'])
def test_resnet_matches_reference(stem):
  """Stem (torchvision paddings; -inf padding in the max-pool), two stages, global mean pool."""
  model = ResNet(stage_sizes=(1, 1), width=4, stem=stem)
  # 12x12: "SAME" padding would pad the stride-2 conv (2, 3) and the max-pool (0, 1), not
  # (3, 3) and (1, 1) as torchvision, so this size detects a padding mismatch.
  x = jax.random.normal(jax.random.key(7), (2, 12, 12, 3))
  v = _random_variables(model.init(jax.random.key(0), x, train=False), jax.random.key(8))
  p, s = v['params'], v['batch_stats']
  if stem == 'imagenet':
    h = jax.nn.relu(_bn(_conv(x, p['stem_conv']['kernel'], 2, 3), p['stem_bn'], s['stem_bn']))
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                              ((0, 0), (1, 1), (1, 1), (0, 0)))
    chex.assert_shape(h, (2, 3, 3, 4))
  else:
    h = jax.nn.relu(_bn(_conv(x, p['stem_conv']['kernel'], 1, 1), p['stem_bn'], s['stem_bn']))
  h = _basic_block_ref(h, p['stage1_block1'], s['stage1_block1'], 1)
  h = _basic_block_ref(h, p['stage2_block1'], s['stage2_block1'], 2)
  expected = h.mean(axis=(1, 2))
  y = model.apply(v, x, train=False)
  assert model.feature_dim == 8
  chex.assert_shape(y, (2, 8))
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('cls', [BasicBlock, Bottleneck])
def test_zero_init_residual_makes_blocks_identity(cls):
  block = cls(features=4, zero_init_residual=True)
  cin = 4 * cls.expansion
  x = jax.nn.relu(jax.random.normal(jax.random.key(8), (2, 5, 5, cin)))
  variables = block.init(jax.random.key(0), x, train=False)
  last = 'bn2' if cls is BasicBlock else 'bn3'
  assert not np.any(variables['params'][last]['scale'])
  # Residual branch is zero, the shortcut is the identity and x >= 0: relu(0 + x) == x.
  np.testing.assert_allclose(block.apply(variables, x, train=False), x, atol=1e-6)
  default = cls(features=4).init(jax.random.key(0), x, train=False)
  np.testing.assert_array_equal(default['params'][last]['scale'], 1.0)


def test_bfloat16_compute_keeps_float32_params():
  model = ResNet(stage_sizes=(1, 1), width=4, stem='cifar', dtype=jnp.bfloat16)
  x = jax.random.normal(jax.random.key(9), (2, 8, 8, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
  y, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert y.dtype == jnp.bfloat16
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(updates))
  y32 = ResNet(stage_sizes=(1, 1), width=4, stem='cifar').apply(variables, x, train=False)
  np.testing.assert_allclose(model.apply(variables, x, train=False).astype(jnp.float32), y32,
                             rtol=0.05, atol=0.05)


@pytest.mark.parametrize('kwargs,shape,match', [
    ({'stem': 'tiny'}, (1, 8, 8, 3), r"stem must be one of \('cifar', 'imagenet'\), got 'tiny'"),
    ({'block': 'wide'}, (1, 8, 8, 3), 'block must be one of'),
    ({}, (8, 8, 3), r'x must have shape \[b, h, w, c\].*\(8, 8, 3\)'),
])
def test_resnet_errors(kwargs, shape, match):
  with pytest.raises(ValueError, match=match):
    ResNet(stage_sizes=(1,), width=4, **kwargs).init(jax.random.key(0), jnp.zeros(shape),
                                                     train=False)


# --------------------------------------------------------------------------- decayed shortcuts


@pytest.mark.parametrize('num_blocks,alpha_min,expected', [
    (5, 0.5, (1.0, 0.875, 0.75, 0.625, 0.5)),
    (3, 0.0, (1.0, 0.5, 0.0)),
    (4, 1.0, (1.0, 1.0, 1.0, 1.0)),
    (1, 0.3, (1.0,)),
])
def test_decayed_shortcut_weights(num_blocks, alpha_min, expected):
  weights = decayed_shortcut_weights(num_blocks, alpha_min)
  np.testing.assert_allclose(weights, expected, atol=1e-12)
  assert weights[0] == 1.0 and (num_blocks == 1 or weights[-1] == alpha_min)
  assert all(a >= b for a, b in zip(weights, weights[1:]))
  # Linear in depth: equal steps.
  np.testing.assert_allclose(np.diff(weights), -(1.0 - alpha_min) / max(num_blocks - 1, 1))


def test_decayed_shortcut_weights_strictly_decrease_for_resnet50():
  weights = decayed_shortcut_weights(16, 0.6)
  assert weights[0] == 1.0 and weights[-1] == 0.6
  assert all(a > b for a, b in zip(weights, weights[1:]))


@pytest.mark.parametrize('args,match', [
    ((4, 1.5), r'shortcut_decay \(alpha_min\) must be in \[0, 1\], got 1.5'),
    ((4, -0.1), r'must be in \[0, 1\]'),
    ((0, 0.5), 'num_blocks must be a positive int, got 0'),
])
def test_decayed_shortcut_weights_errors(args, match):
  with pytest.raises(ValueError, match=match):
    decayed_shortcut_weights(*args)


def _np_random_variables(model, x, seed):
  """As _random_variables, drawn by NumPy on eval_shape'd shapes: no init compilation."""
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape) *
                                            (0.2 if a.ndim == 4 else 1.0), jnp.float32), shapes)


def _basic_block_weighted_ref(x, p, s, stride, weight):
  y = jax.nn.relu(_bn(_conv(x, p['conv1']['kernel'], stride, 1), p['bn1'], s['bn1']))
  y = _bn(_conv(y, p['conv2']['kernel'], 1, 1), p['bn2'], s['bn2'])
  if 'downsample_conv' in p:
    x = _bn(_conv(x, p['downsample_conv']['kernel'], stride, 0), p['downsample_bn'],
            s['downsample_bn'])
  return jax.nn.relu(y + weight * x)


def test_resnet_decayed_shortcuts_match_reference():
  """relu(F(x) + alpha_l * shortcut(x)), alpha_l over all blocks of all stages."""
  model = ResNet(stage_sizes=(2, 1), width=4, stem='cifar', shortcut_decay=0.2)
  x = jax.random.normal(jax.random.key(10), (2, 8, 8, 3))
  v = _np_random_variables(model, x, 11)
  p, s = v['params'], v['batch_stats']
  h = jax.nn.relu(_bn(_conv(x, p['stem_conv']['kernel'], 1, 1), p['stem_bn'], s['stem_bn']))
  for name, stride, weight in [('stage1_block1', 1, 1.0), ('stage1_block2', 1, 0.6),
                               ('stage2_block1', 2, 0.2)]:
    h = _basic_block_weighted_ref(h, p[name], s[name], stride, weight)
  np.testing.assert_allclose(model.apply(v, x, train=False), h.mean(axis=(1, 2)),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('block', ['basic', 'bottleneck'])
def test_resnet_default_and_unit_decay_are_the_standard_network(block):
  """Same variables (no new parameters) and bit-identical outputs and BN updates."""
  x = jax.random.normal(jax.random.key(12), (2, 8, 8, 3))
  standard = ResNet(stage_sizes=(1, 1), block=block, width=4, stem='cifar')
  v = _np_random_variables(standard, x, 13)
  y, stats = standard.apply(v, x, train=True, mutable=['batch_stats'])
  # The reference implementation of the unmodified network (for the basic block).
  if block == 'basic':
    p, s = v['params'], v['batch_stats']
    h = jax.nn.relu(_bn(_conv(x, p['stem_conv']['kernel'], 1, 1), p['stem_bn'], s['stem_bn']))
    h = _basic_block_ref(h, p['stage1_block1'], s['stage1_block1'], 1)
    h = _basic_block_ref(h, p['stage2_block1'], s['stage2_block1'], 2)
    np.testing.assert_allclose(standard.apply(v, x, train=False), h.mean(axis=(1, 2)),
                               rtol=1e-4, atol=1e-4)
  unit = ResNet(stage_sizes=(1, 1), block=block, width=4, stem='cifar', shortcut_decay=1.0)
  chex.assert_trees_all_equal_shapes(v, _abstract_variables(unit, x.shape))
  y1, stats1 = unit.apply(v, x, train=True, mutable=['batch_stats'])
  chex.assert_trees_all_equal((y, stats), (y1, stats1))
  decayed = ResNet(stage_sizes=(1, 1), block=block, width=4, stem='cifar', shortcut_decay=0.3)
  assert not np.allclose(decayed.apply(v, x, train=False), standard.apply(v, x, train=False))


def test_bottleneck_shortcut_weight():
  block = Bottleneck(features=2, shortcut_weight=0.5)
  x = jax.nn.relu(jax.random.normal(jax.random.key(14), (2, 4, 4, 8)))
  v = _np_random_variables(block, x, 15)
  v = {'params': jax.tree.map(jnp.zeros_like, v['params']), 'batch_stats': v['batch_stats']}
  # Residual branch zero (BN scale and bias zero), identity shortcut: relu(0.5 x) = 0.5 x.
  np.testing.assert_allclose(block.apply(v, x, train=False), 0.5 * x, atol=1e-6)
