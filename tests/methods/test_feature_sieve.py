"""The feature sieve as a `Method`: the main cross-entropy, the auxiliary head's loss and the forgetting step each
reach only their own parameters; the forgetting step runs every `forget_every` steps; bad settings are named;
1 device == 8 devices."""
import jax
import numpy as np
import optax
import pytest

from configs import feature_sieve as feature_sieve_config
from rl import losses
from rl.methods import base
from rl.methods import feature_sieve
from tests.methods import devices

B = 16


def _setup(config=None):
  config = config or feature_sieve_config.get_config("smoke")
  method = feature_sieve.make(config)
  x = np.random.RandomState(0).randn(B, 40).astype(np.float32)
  labels = np.arange(B) % 10
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, {"views": (x,), "label": labels}


def _grads(method, params, state, batch, step):
  state = {**state, "step": np.int32(step)}
  return jax.grad(lambda p: method.loss(p, state, batch, jax.random.key(1))[0])(params)


def test_the_loss_is_the_sum_of_its_terms_and_the_forgetting_step_is_periodic():
  config, method, params, state, batch = _setup()
  (x,), labels = batch["views"], batch["label"]
  net = _net(config)
  stats = {"batch_stats": state["batch_stats"]}
  (_, logits), _ = net.apply({"params": params, **stats}, x, train=True, mutable=["batch_stats"])
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  values = []
  for step in range(6):
    value, (new_state, aux) = method.loss(params, {**state, "step": np.int32(step)}, batch, jax.random.key(1))
    m = aux["metrics"]
    np.testing.assert_allclose(m["cross_entropy"], ce, rtol=1e-5)
    assert int(new_state["step"]) == step + 1
    on = step % config.feature_sieve.forget_every == 0
    np.testing.assert_allclose(value, ce + m["sieve_aux"] + on * config.feature_sieve.forget_weight * m["forget"],
                               rtol=1e-5)
    values.append(float(value))
  assert values[0] == pytest.approx(values[5]) and values[0] > values[1] == pytest.approx(values[4])
  # An untrained auxiliary head is near uniform: its forgetting loss is near log K.
  assert abs(float(m["forget"]) - np.log(10)) < 0.2 and abs(float(m["sieve_aux"]) - np.log(10)) < 0.5


def _net(config):
  return feature_sieve.SieveNet(
      encoder=base.get_model(config, config.model.encoder, axis_name=None, **config.model.encoder_kwargs.to_dict()),
      classifier=base.get_model(config, "linear", num_classes=10),
      aux_head=feature_sieve.AuxHead(widths=config.feature_sieve.aux_widths, num_classes=10))


def test_each_term_reaches_only_its_own_parameters():
  config, method, params, state, batch = _setup()
  (x,), labels = batch["views"], batch["label"]
  net = _net(config)
  stats = {"batch_stats": state["batch_stats"]}
  plain = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
      net.apply({"params": p, **stats}, x, train=True, mutable=["batch_stats"])[0][1], labels).mean())(params)
  off, on = _grads(method, params, state, batch, step=1), _grads(method, params, state, batch, step=0)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  # Not a forgetting step: the encoder and the classifier get exactly the main cross-entropy's gradient.
  jax.tree.map(close, off["encoder"], plain["encoder"])
  jax.tree.map(close, off["classifier"], plain["classifier"])
  # The auxiliary head gets only its own loss's gradient, on the early features of the same pass.
  early = _early(net, params, stats, x)
  want_aux = jax.grad(lambda a: losses.sieve_aux_loss(
      net.apply({"params": {**params, "aux_head": a}}, early, method=feature_sieve.SieveNet.aux), labels))(
          params["aux_head"])
  jax.tree.map(close, off["aux_head"], want_aux)
  jax.tree.map(close, on["aux_head"], want_aux)  # the forgetting term does not move the auxiliary head
  # A forgetting step changes only the layers before the auxiliary position (conv0 and bn0 of the encoder).
  changed = {k for k in on["encoder"] if not np.allclose(on["encoder"][k]["kernel" if "conv" in k else "scale"],
                                                          off["encoder"][k]["kernel" if "conv" in k else "scale"],
                                                          rtol=1e-5, atol=1e-8)}
  assert changed == {"conv0", "bn0"}, changed
  jax.tree.map(close, on["classifier"], off["classifier"])


def _early(net, params, stats, x):
  capture = lambda module, name: name == "__call__" and module.name == "bn0"
  _, updates = net.apply({"params": params, **stats}, x, train=True, mutable=["batch_stats", "intermediates"],
                         capture_intermediates=capture)
  return updates["intermediates"]["encoder"]["bn0"]["__call__"][0]


def test_bad_settings_are_named():
  config = feature_sieve_config.get_config("smoke")
  config.feature_sieve.aux_layer = "bn9"
  method = feature_sieve.make(config)
  with pytest.raises(ValueError, match="config.feature_sieve.aux_layer: the encoder 'conv1d' has no submodule named "
                                       "'bn9'"):
    method.init(jax.random.key(0), np.zeros((2, 40), np.float32))
  config = feature_sieve_config.get_config("smoke")
  config.feature_sieve.forget_every = 0
  with pytest.raises(ValueError, match="forget_every must be an int >= 1; got 0"):
    feature_sieve.make(config)
  _, method, params, state, batch = _setup()
  with pytest.raises(ValueError, match="feature_sieve needs 'label'"):
    method.loss(params, state, {"views": batch["views"]}, jax.random.key(1))


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, batch = _setup()
  for step in (0, 1):
    one, eight = devices.loss_on_1_and_8_devices(method, params, {**state, "step": np.int32(step)}, batch, mesh8)
    devices.assert_1_and_8_devices_equal(one, eight)
