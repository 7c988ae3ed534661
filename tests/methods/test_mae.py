"""MAE as a `Method`: the loss is `rl.losses.mae` of the model's prediction with its mask (drawn from the method key),
the features are the encoder on the unmasked view, signals are [b, 1, l, 1] images, and 1 device == 8 devices."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import mae as mae_config
from rl import losses
from rl import models
from rl.methods import mae

B = 16


@functools.lru_cache(maxsize=None)
def _method_and_batch():
  config = mae_config.get_config("smoke")  # 1-D ViT, width 16, (1, 4) patches
  method = mae.make(config)
  v1 = np.random.RandomState(0).randn(B, 40).astype(np.float32)
  params, state = jax.jit(method.init)(jax.random.key(0), v1[:2])
  return config, method, params, state, v1


def test_init_params_are_the_mae_and_state_is_empty():
  config, method, params, state, _ = _method_and_batch()
  assert state == {} and method.num_views == 1
  assert set(params) == {"encoder", "decoder"}
  # A signal [b, 40] is the image [b, 1, 40, 1] with (1, 4) patches.
  assert params["encoder"]["patch_embed"]["kernel"].shape == (1, 4, 1, config.model.encoder_kwargs.width)
  assert mae.to_image(jnp.zeros((3, 40))).shape == (3, 1, 40, 1)
  assert mae.to_image(jnp.zeros((3, 40, 2))).shape == (3, 1, 40, 2)
  assert mae.to_image(jnp.zeros((3, 8, 8, 1))).shape == (3, 8, 8, 1)


def test_loss_is_mae_of_the_prediction_with_its_mask_and_features_are_the_unmasked_encoder():
  config, method, params, state, v1 = _method_and_batch()
  key = jax.random.key(1)
  value, (new_state, aux) = jax.jit(method.loss)(params, state, {"views": (v1,)}, key)
  model = mae.build_model(config)
  x = jnp.asarray(v1)[:, None, :, None]
  pred, mask = jax.jit(functools.partial(model.apply, train=True))({"params": params}, x, key=key)
  np.testing.assert_array_equal(mask.sum(axis=1), 10 - int(10 * (1 - config.mae.mask_ratio)))
  expected = losses.mae(pred, x, mask, patch_size=(1, 4), norm_pix=config.mae.norm_pix_loss)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["mae"], value)
  assert new_state == {}
  # The features are the encoder on every patch (no mask): the same as `embed`, independent of the key.
  features = jax.jit(functools.partial(model.apply, method=models.MAE.encode))({"params": params}, x)
  np.testing.assert_allclose(aux["features"], features, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jax.jit(method.embed)(params, state, v1), features, rtol=1e-5, atol=1e-6)
  assert aux["features"].shape == (B, config.model.encoder_kwargs.width)
  # The mask follows the method key.
  other, _ = jax.jit(method.loss)(params, state, {"views": (v1,)}, jax.random.key(2))
  assert abs(float(other) - float(value)) > 1e-6


def test_norm_pix_and_mask_ratio_come_from_the_config():
  config = mae_config.get_config("smoke")
  config.mae.mask_ratio = 0.6
  config.mae.norm_pix_loss = True
  model = mae.build_model(config)
  assert (model.mask_ratio, model.norm_pix_loss, model.patch_size) == (0.6, True, (1, 4))
  config.model.encoder_kwargs.mask_ratio = 0.5
  with pytest.raises(ValueError, match=r"sets \['mask_ratio'\]; set them in config.mae"):
    mae.make(config)


def test_only_the_features_carry_no_gradient():
  _, method, params, state, v1 = _method_and_batch()

  def f(p):
    return method.loss(p, state, {"views": (v1,)}, jax.random.key(1))[0]

  def g(p):
    return jnp.sum(method.loss(p, state, {"views": (v1,)}, jax.random.key(1))[1][1]["features"])

  grads, feature_grads = jax.jit(lambda p: (jax.grad(f)(p), jax.grad(g)(p)))(params)
  assert all(float(jnp.abs(x).max()) > 0 for x in jax.tree.leaves(grads["decoder"]))
  assert float(jnp.abs(grads["encoder"]["patch_embed"]["kernel"]).max()) > 0
  assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(feature_grads))


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1 = _method_and_batch()

  def value_and_grad(axis_name):
    def f(p, a):
      return method.loss(p, state, {"views": (a,)}, jax.random.key(1), axis_name=axis_name)
    return jax.value_and_grad(f, has_aux=True)

  (v_1, (s_1, aux_1)), g_1 = jax.jit(value_and_grad(None))(params, v1)
  fn = jax.shard_map(value_and_grad("data"), mesh=mesh8, in_specs=(P(), P("data")),
                     out_specs=((P(), (P(), {"metrics": P(), "features": P("data")})), P()))
  (v_8, (s_8, aux_8)), g_8 = jax.jit(fn)(params, jax.device_put(v1, NamedSharding(mesh8, P("data"))))
  np.testing.assert_allclose(v_8, v_1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_8, g_1)
  np.testing.assert_allclose(aux_8["features"], aux_1["features"], rtol=1e-5, atol=1e-6)
  assert s_8 == s_1 == {}


@pytest.mark.parametrize("variant,shape", [("digits", (2, 8, 8, 1)), ("cifar10", (2, 32, 32, 3))])
def test_image_variants_build(variant, shape):
  config = mae_config.get_config(variant)
  method = mae.make(config)
  x = jnp.zeros(shape)
  params, state = jax.eval_shape(method.init, jax.random.key(0), x)
  value, (_, aux) = jax.eval_shape(lambda p: method.loss(p, state, {"views": (x,)}, jax.random.key(1)), params)
  assert value.shape == () and aux["features"].shape == (2, config.model.encoder_kwargs.width)
