"""Tests of rl.models.vit: timm parameter counts, block reference, sin-cos embedding, shortcuts."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.models import vit as vit_lib
from rl.models.resnet import decayed_shortcut_weights
from rl.models.vit import EncoderBlock
from rl.models.vit import ViT
from rl.models.vit import ViTBase
from rl.models.vit import ViTSmall
from rl.models.vit import ViTTiny
from rl.models.vit import sincos_2d_posemb

_TINY = dict(width=32, depth=2, num_heads=2, patch_size=4)


def _num_params(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _images(shape, seed=1):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _random_variables(model, x, seed=3, **kwargs):
  """Variables of the right shapes with N(0, 0.3^2) entries (LayerNorm scales around 1)."""
  shapes = jax.eval_shape(functools.partial(model.init, **kwargs), jax.random.key(0), x)
  rng = np.random.default_rng(seed)
  def draw(path, leaf):
    value = rng.normal(scale=0.3, size=leaf.shape) + (path[-1].key == 'scale')
    return jnp.asarray(value, jnp.float32)
  return jax.tree_util.tree_map_with_path(draw, shapes)


# timm vit_{tiny,small,base}_patch16_224 (5,717,416 / 22,050,664 / 86,567,656 parameters) minus the
# 1000-way head and minus the class token's position vector (one row of width).
@pytest.mark.parametrize('cls,width,expected', [
    (ViTTiny, 192, 5_717_416 - 193 * 1000 - 192),
    (ViTSmall, 384, 22_050_664 - 385 * 1000 - 384),
    (ViTBase, 768, 86_567_656 - 769 * 1000 - 768),
])
def test_param_counts_match_timm(cls, width, expected):
  model = cls()
  assert (model.width, model.depth, model.patch_size, model.feature_dim) == (width, 12, 16, width)
  init = functools.partial(model.init, train=False)
  variables = jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
  assert set(variables) == {'params'}
  assert _num_params(variables['params']) == expected


def test_named_sizes_take_overrides():
  """What `get_model('vit_small', patch_size=4, readout='mean')` builds."""
  model = ViTSmall(patch_size=4, readout='mean')
  assert (model.width, model.num_heads, model.patch_size, model.readout) == (384, 6, 4, 'mean')
  assert (ViTTiny().num_heads, ViTBase().num_heads) == (3, 12)


@pytest.mark.parametrize('readout,posemb,shape', [
    ('cls', 'learn', (2, 8, 8, 3)),
    ('mean', 'learn', (2, 16, 8, 1)),
    ('cls', 'sincos2d', (2, 8, 16, 3)),
    ('mean', 'sincos2d', (2, 8, 8, 3)),
])
def test_shapes_jit_and_train_eval(readout, posemb, shape):
  model = ViT(**_TINY, readout=readout, posemb=posemb)
  x = _images(shape)
  # Random variables from eval_shape: a real init compiles for seconds on CPU; see test_init.
  variables = _random_variables(model, x, train=False)
  assert set(variables) == {'params'}
  assert ('cls' in variables['params']) == (readout == 'cls')
  assert ('pos_embedding' in variables['params']) == (posemb == 'learn')
  y = jax.jit(functools.partial(model.apply, train=True))(variables, x)
  chex.assert_shape(y, (2, model.feature_dim))
  chex.assert_tree_all_finite(y)
  assert model.feature_dim == 32
  # No dropout or BatchNorm: train only keeps the signature uniform.
  np.testing.assert_allclose(model.apply(variables, x, train=False), y, rtol=1e-5, atol=1e-5)
  num_patches = shape[1] // 4 * shape[2] // 4
  tokens = model.apply(variables, x, train=False, method='encode_tokens')
  chex.assert_shape(tokens, (2, model.num_prefix_tokens + num_patches, 32))
  expected = tokens[:, 0] if readout == 'cls' else tokens.mean(axis=1)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_init_follows_official_mae():
  """Xavier-uniform Linear layers (patch embedding on flattened patches), zero biases, unit LN
  scales, N(0, 0.02) class token and learned position embedding."""
  model = ViT(width=64, depth=1, num_heads=2, patch_size=4)
  x = jnp.zeros((1, 32, 32, 3))
  p = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x)['params']
  def check_uniform(kernel, fan_in, fan_out):
    bound = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
  check_uniform(p['patch_embed']['kernel'], 4 * 4 * 3, 64)
  block = p['transformer']['block0']
  check_uniform(block['attn']['query']['kernel'], 64, 64)
  check_uniform(block['mlp']['fc1']['kernel'], 64, 256)
  for path, leaf in jax.tree_util.tree_leaves_with_path(p):
    if path[-1].key == 'bias':
      np.testing.assert_array_equal(leaf, 0.0)
    elif path[-1].key == 'scale':
      np.testing.assert_array_equal(leaf, 1.0)
  assert 0.015 < float(jnp.std(p['pos_embedding']['embedding'])) < 0.025
  assert 0.0 < float(jnp.std(p['cls'])) < 0.05


def _layer_norm(x, p):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + 1e-6) * p['scale'] + p['bias']


@functools.partial(jax.jit, static_argnums=2)
def _block_ref(x, p, weight):
  """timm Block: x = a x + proj(attn(LN(x))); x = a x + fc2(gelu(fc1(LN(x)))), a = weight."""
  hi = jax.lax.Precision.HIGHEST
  a = p['attn']
  y = _layer_norm(x, p['norm1'])
  q, k, v = (jnp.einsum('bnd,dhk->bnhk', y, a[n]['kernel'], precision=hi) + a[n]['bias']
             for n in ('query', 'key', 'value'))
  logits = jnp.einsum('bnhk,bmhk->bhnm', q, k, precision=hi) / np.sqrt(q.shape[-1])
  o = jnp.einsum('bhnm,bmhk->bnhk', jax.nn.softmax(logits, axis=-1), v, precision=hi)
  y = jnp.einsum('bnhk,hkd->bnd', o, a['out']['kernel'], precision=hi) + a['out']['bias']
  x = weight * x + y
  m = p['mlp']
  y = _layer_norm(x, p['norm2'])
  y = jax.nn.gelu(jnp.dot(y, m['fc1']['kernel'], precision=hi) + m['fc1']['bias'],
                  approximate=False)
  y = jnp.dot(y, m['fc2']['kernel'], precision=hi) + m['fc2']['bias']
  return weight * x + y


@pytest.mark.parametrize('weight', [1.0, 0.7])
def test_block_matches_reference(weight):
  block = EncoderBlock(num_heads=2, mlp_dim=24, shortcut_weight=weight)
  x = _images((2, 5, 8))
  v = _random_variables(block, x)
  np.testing.assert_allclose(block.apply(v, x), _block_ref(x, v['params'], weight),
                             rtol=1e-4, atol=1e-4)


def test_vit_matches_reference_with_decayed_shortcuts():
  """Patch embedding as a Linear on patchified pixels, sin-cos posemb, cls, blocks, norm."""
  model = ViT(width=16, depth=3, num_heads=2, mlp_dim=8, patch_size=4, posemb='sincos2d',
              shortcut_decay=0.4)
  x = _images((2, 8, 12, 3))
  v = _random_variables(model, x, train=False)
  p = v['params']
  patches = x.reshape(2, 2, 4, 3, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 6, 48)
  h = patches @ p['patch_embed']['kernel'].reshape(48, 16) + p['patch_embed']['bias']
  h = h + sincos_2d_posemb(2, 3, 16)
  h = jnp.concatenate([jnp.broadcast_to(p['cls'], (2, 1, 16)), h], axis=1)
  for i, weight in enumerate((1.0, 0.7, 0.4)):
    h = _block_ref(h, p['transformer'][f'block{i}'], weight)
  h = _layer_norm(h, p['transformer']['norm'])
  np.testing.assert_allclose(model.apply(v, x, train=False), h[:, 0], rtol=1e-4, atol=1e-4)


def test_shortcut_decay_weights_and_default():
  x = _images((2, 8, 8, 3))
  base = ViT(**_TINY | {'depth': 4})
  variables = _random_variables(base, x, train=False)
  decayed = ViT(**_TINY | {'depth': 4}, shortcut_decay=0.25)
  # No new parameters; decay 1.0 is the standard network, bit for bit.
  chex.assert_trees_all_equal_shapes(variables,
                                     _random_variables(decayed, x, train=False))
  y = base.apply(variables, x, train=False)
  np.testing.assert_array_equal(ViT(**_TINY | {'depth': 4}, shortcut_decay=1.0).apply(
      variables, x, train=False), y)
  assert not np.allclose(decayed.apply(variables, x, train=False), y, atol=1e-3)
  weights = vit_lib.Transformer(4, 2, 8, shortcut_decay=0.25).shortcut_weights
  assert weights == decayed_shortcut_weights(4, 0.25) == (1.0, 0.75, 0.5, 0.25)
  assert vit_lib.Transformer(4, 2, 8).shortcut_weights == (1.0,) * 4


def _official_sincos(embed_dim, grid_size):
  """NumPy port of facebookresearch/mae util/pos_embed.get_2d_sincos_pos_embed (no cls row)."""
  grid_h = np.arange(grid_size, dtype=np.float32)
  grid_w = np.arange(grid_size, dtype=np.float32)
  grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])

  def one_d(dim, pos):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum('m,d->md', pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


def test_sincos_matches_official_and_non_square_grid():
  np.testing.assert_allclose(sincos_2d_posemb(4, 4, 32), _official_sincos(32, 4), atol=1e-6)
  emb = np.asarray(sincos_2d_posemb(2, 3, 8)).reshape(2, 3, 8)
  # First half: the column; second half: the row; sin(0) = 0, cos(0) = 1 at the origin.
  np.testing.assert_allclose(emb[0, :, :4], emb[1, :, :4])
  np.testing.assert_allclose(emb[:, 0, 4:], emb[:, 2, 4:])
  np.testing.assert_allclose(emb[0, 0], [0, 0, 1, 1, 0, 0, 1, 1], atol=1e-7)
  np.testing.assert_allclose(emb[1, 2, :4], [np.sin(2), np.sin(2e-2), np.cos(2), np.cos(2e-2)],
                             rtol=1e-6)


def test_sincos_on_a_1_by_n_grid_is_the_1d_embedding_plus_a_constant():
  """Signals as [b, 1, l, 1] images: the column half is the 1-D sin-cos of width / 2, distinct for
  every token; the row half is the same constant (sin 0, cos 0) for all tokens."""
  n, width = 10, 64
  emb = np.asarray(sincos_2d_posemb(1, n, width))
  omega = 1.0 / 10000 ** (np.arange(width // 4) / (width / 4))
  angles = np.outer(np.arange(n), omega)
  np.testing.assert_allclose(emb[:, :width // 2], np.concatenate([np.sin(angles), np.cos(angles)], 1),
                             atol=1e-6)
  np.testing.assert_allclose(emb[:, width // 2:],
                             np.tile(np.repeat([0.0, 1.0], width // 4), (n, 1)), atol=1e-7)
  np.testing.assert_allclose(emb, np.asarray(sincos_2d_posemb(n, 1, width))[:, np.r_[32:64, 0:32]],
                             atol=1e-7)  # the transposed grid swaps the halves
  distances = np.linalg.norm(emb[:, None] - emb[None], axis=-1) + np.eye(n) * 1e9
  assert distances.min() > 0.5  # every position is told apart
  # Nearby positions are closer than far ones (the embedding is smooth in the position).
  assert np.all(np.diff(np.linalg.norm(emb - emb[0], axis=-1)[:4]) > 0)


@pytest.mark.parametrize('posemb', ['learn', 'sincos2d'])
def test_rectangular_patches(posemb):
  """(1, p) patches on [b, 1, l, 1] signals and (ph, pw) patches on images; an int p is (p, p)."""
  signals = _images((3, 40))
  x = signals[:, None, :, None]
  model = ViT(**_TINY | {'patch_size': (1, 4), 'posemb': posemb, 'readout': 'mean'})
  variables = _random_variables(model, x, train=False)
  assert variables['params']['patch_embed']['kernel'].shape == (1, 4, 1, 32)
  tokens = model.apply(variables, x, method='embed')
  chex.assert_shape(tokens, (3, 10, 32))
  # Token l is a linear map of samples 4 l .. 4 l + 3 plus its position embedding.
  kernel = variables['params']['patch_embed']['kernel'].reshape(4, 32)
  bias = variables['params']['patch_embed']['bias']
  pos = (variables['params']['pos_embedding']['embedding'][0] if posemb == 'learn'
         else sincos_2d_posemb(1, 10, 32))
  np.testing.assert_allclose(tokens, signals.reshape(3, 10, 4) @ kernel + bias + pos, rtol=1e-5,
                             atol=1e-5)
  y = jax.jit(functools.partial(model.apply, train=False))(variables, x)
  chex.assert_shape(y, (3, 32))
  chex.assert_tree_all_finite(y)
  # 2-D rectangular patches: a (h / 2) x (w / 4) grid.
  model2 = ViT(**_TINY | {'patch_size': (2, 4), 'posemb': posemb})
  images = _images((2, 8, 12, 3))
  v2 = _random_variables(model2, images, train=False)
  chex.assert_shape(model2.apply(v2, images, train=False, method='encode_tokens'), (2, 1 + 4 * 3, 32))
  # An int is the square pair, with the same parameters and outputs.
  square = _random_variables(ViT(**_TINY), images[:, :, :8], train=False)
  np.testing.assert_array_equal(ViT(**_TINY | {'patch_size': (4, 4)}).apply(square, images[:, :, :8], train=False),
                                ViT(**_TINY).apply(square, images[:, :, :8], train=False))


def test_bfloat16_compute_keeps_float32_params():
  x = _images((2, 8, 8, 3))
  model = ViT(**_TINY, dtype=jnp.bfloat16)
  variables = _random_variables(model, x, train=False)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
  y = model.apply(variables, x, train=False)
  assert y.dtype == jnp.bfloat16
  y32 = ViT(**_TINY).apply(variables, x, train=False)
  np.testing.assert_allclose(y.astype(jnp.float32), y32, rtol=0.1, atol=0.1)


@pytest.mark.parametrize('kwargs,shape,match', [
    ({}, (2, 8, 10, 3), r'multiples of patch_size=4, got x of shape \(2, 8, 10, 3\)'),
    ({'patch_size': (1, 3)}, (2, 1, 40, 1),
     r'multiples of patch_size=\(1, 3\), got x of shape \(2, 1, 40, 1\)'),
    ({'patch_size': (1, 0)}, (2, 1, 40, 1), r'patch_size must be positive, got \(1, 0\)'),
    ({'patch_size': (1, 2, 3)}, (2, 1, 40, 1), r'\(height, width\) pair'),
    ({}, (8, 8, 3), r'x must have shape \[b, h, w, c\].*\(8, 8, 3\)'),
    ({'readout': 'max'}, (1, 8, 8, 3), r"readout must be one of \('cls', 'mean'\), got 'max'"),
    ({'posemb': 'rope'}, (1, 8, 8, 3), 'posemb must be one of'),
    ({'num_heads': 3}, (1, 8, 8, 3), 'num_heads must divide width, got width=32, num_heads=3'),
    ({'class_token': False}, (1, 8, 8, 3), "readout='cls' needs a class token"),
    ({'width': 34, 'posemb': 'sincos2d'}, (1, 8, 8, 3), 'multiple of 4'),
    ({'shortcut_decay': 1.5}, (1, 8, 8, 3), r'shortcut_decay \(alpha_min\) must be in \[0, 1\]'),
])
def test_errors(kwargs, shape, match):
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(functools.partial(ViT(**_TINY | kwargs).init, train=False),
                   jax.random.key(0), jnp.zeros(shape))


def test_learned_posemb_is_tied_to_init_grid():
  model = ViT(**_TINY)
  variables = _random_variables(model, jnp.zeros((1, 8, 8, 3)), train=False)
  with pytest.raises(ValueError, match=r'4 positions, but x has a 4 x 2 grid of 8 patches'):
    model.apply(variables, jnp.zeros((1, 16, 8, 3)), train=False)
  # The fixed embedding works at any size with the same parameters.
  sincos = ViT(**_TINY, posemb='sincos2d')
  variables = _random_variables(sincos, jnp.zeros((1, 8, 8, 3)), train=False)
  chex.assert_shape(sincos.apply(variables, jnp.zeros((1, 16, 8, 3)), train=False), (1, 32))
