"""SemAIM as a `Method` and its two-stream ViT: a patch's prediction never reads that patch or any later one in the
order (the property autoregression rests on), the loss is the pixel loss of the model's predictions in the order of
its own class-token similarity, and 1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import semaim as semaim_config
from rl import losses
from rl import methods
from rl.models.aim import AimViT
from rl.methods import semaim
from tests.methods import devices

B = 8


def _setup():
  config = semaim_config.get_config("smoke")  # a 1-block ViT of width 16 on 10 patches of 4 samples
  method = methods.get_method(config)
  x = np.random.RandomState(0).randn(B, 40).astype(np.float32)
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, x


def test_a_prediction_reads_only_the_patches_before_it_in_the_order():
  config = semaim_config.get_config("smoke")
  config.model.encoder_kwargs.depth = 2  # two blocks: a leak through the content stream of a lower block shows
  model = semaim.build_model(config)
  x = np.random.RandomState(1).randn(1, 40).astype(np.float32)
  params = model.init(jax.random.key(0), x, method=AimViT.init_all)
  order = jnp.array([[3.0, 1.0, 4.0, 0.0, 9.0, 2.0, 6.0, 8.0, 5.0, 7.0]])  # patch 3 first, patch 4 last
  content, query = losses.semaim_attention_masks(order)
  predict = lambda signal: np.asarray(model.apply(params, signal, content, query, method=AimViT.autoregress))[0]
  base_pred = predict(x)
  for k in range(10):  # change patch k's 4 samples
    changed = x.copy()
    changed[0, 4 * k:4 * k + 4] += 1.0
    moved = np.abs(predict(changed) - base_pred).max(axis=1) > 1e-6
    at_or_before = np.asarray(order[0] <= order[0, k])
    assert not moved[at_or_before].any(), (k, np.nonzero(moved & at_or_before))
    if at_or_before.all():  # the last patch: nothing comes after it
      assert not moved.any()
    else:
      assert moved[~at_or_before].all(), (k, moved)  # every later patch can read it


def test_the_loss_is_the_pixel_loss_in_the_order_of_the_models_own_similarity():
  config, method, params, state, x = _setup()
  key = jax.random.key(3)
  value, (_, aux) = method.loss(params, state, {"views": (x,)}, key)
  model = semaim.build_model(config)
  image = x[:, None, :, None]
  tokens = model.apply({"params": params}, image, method=AimViT.tokens)
  order = losses.semaim_order(key, losses.semaim_similarity(tokens), grid_shape=(1, 10), jitter=1e-3)
  first = np.argmin(np.asarray(order), axis=1)
  cos = np.einsum("bd,bld->bl", *(t / np.linalg.norm(t, axis=-1, keepdims=True)
                                  for t in (np.asarray(tokens[:, 0]), np.asarray(tokens[:, 1:]))))
  np.testing.assert_array_equal(first, cos.argmax(axis=1))  # the order starts at the most class-like patch
  pred = model.apply({"params": params}, image, *losses.semaim_attention_masks(order), method=AimViT.autoregress)
  want = np.mean((np.asarray(pred, np.float64) - x.reshape(B, 10, 4)) ** 2)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(aux["features"], np.asarray(tokens[:, 1:]).mean(axis=1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(method.embed(params, state, x), aux["features"], rtol=1e-5, atol=1e-6)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x = _setup()
  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (x,)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)
