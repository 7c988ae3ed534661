"""RotNet as a `Method`: 4-way cross-entropy of the symmetry (signals) or rotation (images) classifier, features of
the untransformed copy, 1 device == 8 devices; and the 1-D symmetry task on a hand example."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import rotnet as rotnet_config
from rl import losses
from rl.methods import pretext
from rl.methods import rotnet
from tests.methods import devices

B = 16


def _method_and_batch(config=None, x=None):
  config = config or rotnet_config.get_config("smoke")
  method = rotnet.make(config)
  if x is None:
    x = np.random.RandomState(0).randn(B, 40).astype(np.float32)
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, x


def _image_config():
  config = rotnet_config.get_config("smoke")
  config.model.encoder = "resnet18"
  # One residual block: the task and the features are under test, not the depth.
  config.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar", width=4, stage_sizes=(1,)))
  return config


def test_symmetry_task_hand_example():
  x = jnp.array([[1.0, 2.0, 3.0], [0.0, 5.0, -1.0]])
  out, labels = pretext.signal_symmetry_task(x)
  np.testing.assert_array_equal(labels, [0, 1, 2, 3, 0, 1, 2, 3])
  np.testing.assert_array_equal(out[:4], [[1, 2, 3], [3, 2, 1], [-1, -2, -3], [-3, -2, -1]])
  np.testing.assert_array_equal(out[4:], [[0, 5, -1], [-1, 5, 0], [0, -5, 1], [1, -5, 0]])
  # Channels ([b, l, c]) follow the time axis: the shape is kept and every channel gets the same transform.
  out3, _ = pretext.signal_symmetry_task(jnp.stack([x, 2 * x], axis=-1))
  assert out3.shape == (8, 3, 2)
  np.testing.assert_array_equal(out3[..., 1], 2 * out)


def test_loss_is_pretext_cross_entropy_of_the_symmetry_classifier():
  config, method, params, state, x = _method_and_batch()
  value, (new_state, aux) = method.loss(params, state, {"views": (x,)}, jax.random.key(1))
  inputs, labels = pretext.signal_symmetry_task(x)
  net = pretext.build_network(config, config.rotnet.head_hidden_dims, 4, axis_name=None)
  (h, logits), bn = net.apply({"params": params, **state}, inputs[:, None], train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(value, losses.pretext_cross_entropy(logits, labels), rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["pretext_cross_entropy"], value)
  np.testing.assert_allclose(aux["metrics"]["pretext_accuracy"], np.mean(np.argmax(logits, -1) == labels))
  # Features of the identity rows (label 0): the untransformed signals, shape [b, f] for the probe.
  assert aux["features"].shape == (B, method.embed(params, state, x).shape[1])
  np.testing.assert_allclose(aux["features"], h[0::4, 0], rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state, dict(bn))
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))  # BN statistics moved
  assert abs(float(value) - np.log(4)) < 0.5  # an untrained classifier is near chance


def test_images_use_the_rotation_task():
  x = np.random.RandomState(1).rand(4, 8, 8, 1).astype(np.float32)
  config, method, params, state, x = _method_and_batch(_image_config(), x)
  value, (_, aux) = method.loss(params, state, {"views": (x,)}, jax.random.key(1))
  inputs, labels = losses.rotation_task(jax.random.key(1), x)
  net = pretext.build_network(config, config.rotnet.head_hidden_dims, 4, axis_name=None)
  (h, logits), _ = net.apply({"params": params, **state}, inputs[:, None], train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(value, losses.pretext_cross_entropy(logits, labels), rtol=1e-5)
  np.testing.assert_allclose(aux["features"], h[0::4, 0], rtol=1e-5, atol=1e-6)
  assert method.embed(params, state, x).shape == (4, 4)  # width 4, one stage


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (x,)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)
