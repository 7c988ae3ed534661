"""The shortcut lens as a `Method`: RotNet's task on lensed inputs, each player's gradient reaching only its own
parameters, the lens the identity at initialisation, bad settings named, 1 device == 8 devices, and the lens
learning to hide a planted shortcut."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import shortcut_lens as shortcut_lens_config
from rl import losses
from rl.methods import pretext
from rl.methods import shortcut_lens
from tests.methods import devices

B = 16


def _setup(config=None, x=None, seed=0):
  config = config or shortcut_lens_config.get_config("smoke")
  method = shortcut_lens.make(config)
  if x is None:
    x = np.random.RandomState(seed).randn(B, 40).astype(np.float32)
  params, state = method.init(jax.random.key(seed), x[:2])
  return config, method, params, state, x


def _net(config):
  return pretext.build_network(config, config.shortcut_lens.head_hidden_dims, 4, axis_name=None)


def _perturbed_lens(params, scale=0.1, seed=3):
  """The lens moved away from its zero-initialised last layer, so that it is not the identity."""
  leaves, tree = jax.tree.flatten(params["lens"])
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  moved = [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
  return {**params, "lens": jax.tree.unflatten(tree, moved)}


def test_at_initialisation_the_lens_is_the_identity_and_the_task_is_rotnets():
  config, method, params, state, x = _setup()
  value, (_, aux) = method.loss(params, state, {"views": (x,)}, jax.random.key(1))
  inputs, labels = pretext.signal_symmetry_task(x)
  f_params = {k: v for k, v in params.items() if k != "lens"}
  (_, logits), _ = _net(config).apply({"params": f_params, **state}, inputs[:, None], train=True,
                                      mutable=["batch_stats"])
  ce = losses.pretext_cross_entropy(logits, labels)
  np.testing.assert_allclose(aux["metrics"]["pretext_cross_entropy"], ce, rtol=1e-6)
  assert float(aux["metrics"]["lens_reconstruction"]) == 0.0
  # Least-likely adversarial term: -log p of each input's least likely class, on the same logits.
  logp = jax.nn.log_softmax(logits)
  np.testing.assert_allclose(aux["metrics"]["lens_adversarial"], -jnp.mean(jnp.min(logp, axis=1)), rtol=1e-5)
  np.testing.assert_allclose(value, ce + aux["metrics"]["lens_adversarial"], rtol=1e-6)


def test_each_player_gets_only_the_gradient_of_its_own_objective():
  config, method, params, state, x = _setup()
  params = _perturbed_lens(params)
  key = jax.random.key(1)
  grads = jax.grad(lambda p: method.loss(p, state, {"views": (x,)}, key)[0])(params)
  net, lens = _net(config), shortcut_lens.Lens(widths=config.shortcut_lens.lens_widths,
                                               kernel_size=config.shortcut_lens.lens_kernel_size)
  inputs, labels = pretext.signal_symmetry_task(x)
  f_params = {k: v for k, v in params.items() if k != "lens"}

  def logits_of(f, lensed):
    return net.apply({"params": f, **state}, lensed[:, None], train=True, mutable=["batch_stats"])[0][1]

  def task(f):  # F's objective on the (fixed) lensed inputs
    return losses.pretext_cross_entropy(logits_of(f, lens.apply({"params": params["lens"]}, inputs)), labels)

  def adversary(lp):  # the lens's objective against the (fixed) F
    lensed = lens.apply({"params": lp}, inputs)
    return losses.lens_loss(logits_of(f_params, lensed), inputs, lensed,
                            reconstruction_weight=config.shortcut_lens.reconstruction_weight)

  want_f, want_lens = jax.grad(task)(f_params), jax.grad(adversary)(params["lens"])
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  jax.tree.map(close, {k: v for k, v in grads.items() if k != "lens"}, want_f)
  jax.tree.map(close, grads["lens"], want_lens)
  # Without the routing, F would also get the adversary's gradient (which pushes against the task's).
  both = jax.grad(lambda f: task(f) + losses.lens_loss(
      logits_of(f, lens.apply({"params": params["lens"]}, inputs)), inputs, inputs, reconstruction_weight=0.0))(
          f_params)
  assert not np.allclose(both["head"]["out"]["kernel"], grads["head"]["out"]["kernel"], atol=1e-6)


def test_embed_reads_the_raw_inputs_with_the_encoder():
  config, method, params, state, x = _setup()
  params = _perturbed_lens(params)
  f_params = {k: v for k, v in params.items() if k != "lens"}
  want = _net(config).apply({"params": f_params, **state}, x, method=pretext.PretextNet.encode)
  np.testing.assert_allclose(method.embed(params, state, x), want, rtol=1e-6)


def test_bad_settings_are_named():
  config = shortcut_lens_config.get_config("smoke")
  config.shortcut_lens.adversarial = "most_likely"
  with pytest.raises(ValueError, match="config.shortcut_lens.adversarial: expected one of least_likely, full; got "
                                       "'most_likely'"):
    shortcut_lens.make(config)
  config = shortcut_lens_config.get_config("smoke")
  config.shortcut_lens.reconstruction_weight = -1.0
  with pytest.raises(ValueError, match="reconstruction_weight must be >= 0; got -1.0"):
    shortcut_lens.make(config)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x = _setup()
  one, eight = devices.loss_on_1_and_8_devices(method, _perturbed_lens(params), state, {"views": (x,)}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)


def test_the_lens_learns_to_hide_a_planted_shortcut():
  """Signals whose first sample is a bright marker (+3) give time reversal away (the marker moves to the end) and
  negation too (its sign). Trained on them for 150 steps, the lens shrinks the marker (to 0.4-1.9 over init seeds in
  our runs) and leaves the samples away from it nearly as they were (mean change <= 0.16 against a noise of 0.08)."""
  rng = np.random.RandomState(0)
  x = (0.1 * rng.randn(64, 40)).astype(np.float32)
  x[:, 0] = 3.0
  config = shortcut_lens_config.get_config("smoke")
  config.shortcut_lens.reconstruction_weight = 0.1
  config, method, params, state, x = _setup(config, x)
  tx = optax.adam(1e-2)
  opt = tx.init(params)

  @jax.jit
  def step(params, state, opt, key):
    grads, (state, _) = jax.grad(lambda p: method.loss(p, state, {"views": (x,)}, key), has_aux=True)(params)
    updates, opt = tx.update(grads, opt)
    return optax.apply_updates(params, updates), state, opt

  for i in range(150):
    params, state, opt = step(params, state, opt, jax.random.key(i))
  lens = shortcut_lens.Lens(widths=config.shortcut_lens.lens_widths, kernel_size=config.shortcut_lens.lens_kernel_size)
  out = np.asarray(lens.apply({"params": params["lens"]}, jnp.asarray(x)))
  assert out[:, 0].mean() < 2.2  # the marker (3.0) shrinks
  assert np.abs(out[:, 4:-2] - x[:, 4:-2]).mean() < 0.25  # away from the marker and its mirror, little changes
