"""Tests of rl.models.mae: shapes, visible-only encoder, unshuffling, training, sharding."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from rl import losses
from rl.models.mae import MAE
from rl.models.vit import ViT

_TINY = dict(width=32, depth=2, num_heads=2, patch_size=4, decoder_width=16, decoder_depth=1,
             decoder_heads=2)


def _num_params(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _images(shape, seed=1):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _init_fn(model):
  return lambda k, x: model.init(k, x, key=jax.random.key(1), train=False)


def _jit_apply(model):
  """`model.apply` under jit: a ViT's forward op by op spends seconds compiling each op on CPU."""
  return jax.jit(model.apply, static_argnames=('train', 'method'))


def _random_variables(model, x, seed=3):
  """Variables of the right shapes with N(0, 0.3^2) entries (LayerNorm scales around 1), drawn
  by NumPy on eval_shape'd shapes: a real init compiles for seconds on CPU."""
  shapes = jax.eval_shape(_init_fn(model), jax.random.key(0), x)
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map_with_path(
      lambda path, a: jnp.asarray(rng.normal(scale=0.3, size=a.shape) + (path[-1].key == 'scale'),
                                  jnp.float32), shapes)


def test_param_count_matches_official_mae_vit_base():
  """mae_vit_base_patch16: 111,907,840 parameters, of which the frozen sin-cos position
  embeddings (197 x 768 + 197 x 512) are constants here."""
  shapes = jax.eval_shape(_init_fn(MAE()), jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
  assert _num_params(shapes['params']) == 111_907_840 - 197 * (768 + 512)
  assert MAE().feature_dim == 768


@pytest.mark.parametrize('shape', [(3, 8, 16, 3)])
def test_shapes_and_mask(shape):
  model = MAE(**_TINY)
  x = _images(shape)
  v = _random_variables(model, x)
  apply = _jit_apply(model)
  pred, mask = apply(v, x, key=jax.random.key(2), train=True)
  num_patches = shape[1] // 4 * shape[2] // 4
  chex.assert_shape(pred, (shape[0], num_patches, 16 * shape[3]))
  chex.assert_shape(mask, (shape[0], num_patches))
  chex.assert_tree_all_finite(pred)
  np.testing.assert_array_equal(mask.sum(axis=1), num_patches - int(num_patches * 0.25))
  # Masks are per example and follow the key.
  _, mask2 = apply(v, x, key=jax.random.key(3), train=True)
  assert not np.array_equal(mask, mask2)
  # Same shapes as the loss expects.
  assert np.isfinite(float(losses.mae(pred, x, mask, patch_size=model.patch_size)))


@pytest.mark.parametrize('shape,patch', [((3, 1, 40, 1), (1, 4)), ((2, 8, 12, 3), (2, 4))])
def test_rectangular_patches_shapes_loss_and_encode(shape, patch):
  """(1, p) patches on signals given as [b, 1, l, 1] images, and (ph, pw) patches on images."""
  model = MAE(**_TINY | {'patch_size': patch, 'mask_ratio': 0.5})
  x = _images(shape)
  v = _random_variables(model, x)
  assert v['params']['encoder']['patch_embed']['kernel'].shape == (*patch, shape[3], 32)
  apply = _jit_apply(model)
  pred, mask = apply(v, x, key=jax.random.key(2), train=True)
  num_patches = shape[1] // patch[0] * shape[2] // patch[1]
  chex.assert_shape(pred, (shape[0], num_patches, patch[0] * patch[1] * shape[3]))
  chex.assert_shape(mask, (shape[0], num_patches))
  np.testing.assert_array_equal(mask.sum(axis=1), num_patches - int(num_patches * 0.5))
  assert np.isfinite(float(losses.mae(pred, x, mask, patch_size=patch)))
  chex.assert_shape(apply(v, x, method='encode'), (shape[0], 32))
  # Masked samples do not reach the prediction; the unpatchified layout matches the input's.
  patches = losses.patchify(x, patch_size=patch)
  noise = _images(patches.shape, seed=5)
  hidden = losses.unpatchify(patches + noise * mask[..., None], patch_size=patch,
                             image_size=shape[1:3])
  np.testing.assert_allclose(apply(v, hidden, key=jax.random.key(2), train=True)[0], pred,
                             rtol=1e-5, atol=1e-5)


def test_encoder_sees_only_visible_tokens():
  model = MAE(**_TINY)
  x = _images((2, 16, 16, 3))
  v = _random_variables(model, x)
  key = jax.random.key(4)
  (pred, mask), state = model.apply(
      v, x, key=key, train=False, capture_intermediates=lambda mdl, _: mdl.name == 'block0',
      mutable=['intermediates'])
  # Encoder blocks run on the class token + int(16 * 0.25) = 4 visible tokens; the decoder on all.
  inter = state['intermediates']
  chex.assert_shape(inter['encoder']['transformer']['block0']['__call__'][0], (2, 5, 32))
  chex.assert_shape(inter['decoder']['transformer']['block0']['__call__'][0], (2, 17, 16))
  # Changing the pixels of masked patches changes nothing; changing a visible patch does.
  patches = losses.patchify(x, patch_size=4)
  noise = _images(patches.shape, seed=5)
  hidden = losses.unpatchify(patches + noise * mask[..., None], patch_size=4, image_size=16)
  np.testing.assert_allclose(model.apply(v, hidden, key=key, train=False)[0], pred,
                             rtol=1e-5, atol=1e-5)
  shown = losses.unpatchify(patches + noise * (1 - mask[..., None]), patch_size=4, image_size=16)
  assert not np.allclose(model.apply(v, shown, key=key, train=False)[0], pred, atol=1e-3)


def test_unshuffle_restores_positions():
  """With nothing masked, the prediction is the same for every shuffle: tokens go back home."""
  model = MAE(**_TINY, mask_ratio=0.0)
  x = _images((2, 8, 8, 3))
  v = _random_variables(model, x)
  pred1, mask1 = model.apply(v, x, key=jax.random.key(6), train=False)
  pred2, _ = model.apply(v, x, key=jax.random.key(7), train=False)
  np.testing.assert_array_equal(mask1, 0.0)
  np.testing.assert_allclose(pred1, pred2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('readout', ['cls', 'mean'])
def test_encode_is_the_unmasked_vit(readout):
  model = MAE(**_TINY, readout=readout, shortcut_decay=0.5)
  x = _images((2, 8, 12, 3))
  v = _random_variables(model, jnp.zeros((2, 16, 16, 3)))  # sin-cos: any size works later
  features = model.apply(v, x, method='encode')
  chex.assert_shape(features, (2, 32))
  vit = ViT(width=32, depth=2, num_heads=2, patch_size=4, readout=readout, posemb='sincos2d',
            class_token=True, shortcut_decay=0.5)
  np.testing.assert_allclose(features, vit.apply({'params': v['params']['encoder']}, x,
                                                 train=False), rtol=1e-5, atol=1e-5)
  tokens = vit.apply({'params': v['params']['encoder']}, x, train=False, method='encode_tokens')
  expected = tokens[:, 0] if readout == 'cls' else tokens[:, 1:].mean(axis=1)
  np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_reconstruction_loss_decreases():
  model = MAE(**_TINY | {'depth': 1, 'decoder_width': 32})
  x = _images((4, 16, 16, 3))
  variables = jax.jit(_init_fn(model))(jax.random.key(0), x)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
  opt = optax.adam(3e-3)

  @jax.jit
  def step(params, opt_state, key):
    def loss_fn(params):
      pred, mask = model.apply({'params': params}, x, key=key, train=True)
      return losses.mae(pred, x, mask, patch_size=model.patch_size, norm_pix=model.norm_pix_loss)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  params, opt_state = variables['params'], opt.init(variables['params'])
  history = []
  for i in range(25):
    params, opt_state, loss = step(params, opt_state, jax.random.key(i % 2))
    history.append(float(loss))
  assert np.all(np.isfinite(history))
  assert history[-1] < 0.7 * history[0], history


def test_masks_do_not_depend_on_sharding(mesh8):
  model = MAE(width=16, depth=1, num_heads=2, patch_size=4, decoder_width=16, decoder_depth=1,
              decoder_heads=2)
  x = _images((8, 8, 8, 1))
  v = _random_variables(model, x)
  key = jax.random.key(8)
  pred, mask = _jit_apply(model)(v, x, key=key, train=True)

  @jax.jit
  @functools.partial(jax.shard_map, mesh=mesh8, in_specs=(P(), P('data')),
                     out_specs=(P('data'), P('data')))
  def sharded(v, x):
    return model.apply(v, x, key=key, train=True, axis_name='data')

  pred8, mask8 = sharded(v, x)
  np.testing.assert_array_equal(mask8, mask)
  np.testing.assert_allclose(pred8, pred, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('shape,match', [
    ((2, 16, 14, 3), r'multiples of patch_size=4, got x of shape \(2, 16, 14, 3\)'),
    ((16, 16, 3), r'images must have shape \[b, h, w, c\].*\(16, 16, 3\)'),
])
def test_errors(shape, match):
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(_init_fn(MAE(**_TINY)), jax.random.key(0), jnp.zeros(shape))
