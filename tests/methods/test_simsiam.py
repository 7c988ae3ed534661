"""SimSiam as a `Method`: the averaged symmetric `losses.negative_cosine` with a stop-gradient on the projections,
no target network, 1 device == 8 devices (its trainer run is in test_training.py)."""
import jax
import numpy as np
import pytest

from configs import simsiam as simsiam_config
from rl import losses
from rl import methods
from rl.methods import two_view
from rl.methods import simsiam
from tests.methods import devices


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "simsiam", simsiam.make)


def _setup(b=32):
  config = simsiam_config.get_config("smoke")
  method = simsiam.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  # The smoke predictor has 4 hidden ReLU units: at init a few examples turn all of them off, and with the output
  # bias at 0 their prediction is exactly p = 0, where the cosine's gradient is 1 / eps ~ 1e12 (the bias gradient
  # was then ~1e10 and compared across devices by rounding luck). A small bias keeps every p away from 0.
  params["predictor"]["out"]["bias"] = params["predictor"]["out"]["bias"] + 0.1
  return config, method, params, state, v1, v2


def _outputs(config, params, state, x):
  net = two_view.build_network(config, None, predictor_kwargs=config.simsiam.predictor_kwargs)
  (h, z, p), _ = net.apply({"params": params, "batch_stats": state["batch_stats"]}, x, train=True,
                           mutable=["batch_stats"])
  return h, z, p


def test_loss_is_averaged_symmetric_negative_cosine():
  config, method, params, state, v1, v2 = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  h, z, p = _outputs(config, params, state, np.concatenate([v1, v2]))
  want = (losses.negative_cosine(p[:32], z[32:]) + losses.negative_cosine(p[32:], z[:32])) / 2
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["negative_cosine"], value)
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-5, atol=1e-6)
  assert set(params) == {"encoder", "projector", "predictor"} and set(new_state) == {"batch_stats"}
  assert method.update_after_step is None  # no target network
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state["batch_stats"], state["batch_stats"]))


def test_stop_gradient_on_the_projections():
  # With sg, d loss / d z flows only through p = predictor(z): the gradient equals that of the same loss where
  # the z of the other view is a constant; without sg it would differ.
  config, method, params, state, v1, v2 = _setup()
  x = np.concatenate([v1, v2])
  _, z_const, _ = _outputs(config, params, state, x)

  def reference(p_):
    _, _, p = _outputs(config, p_, state, x)
    return (losses.negative_cosine(p[:32], z_const[32:]) + losses.negative_cosine(p[32:], z_const[:32])) / 2

  def no_stop_gradient(p_):
    _, z, p = _outputs(config, p_, state, x)
    return (losses.negative_cosine(p[:32], z[32:]) + losses.negative_cosine(p[32:], z[:32])) / 2

  g = jax.grad(lambda p_: method.loss(p_, state, {"views": (v1, v2)}, jax.random.key(1))[0])(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g, jax.grad(reference)(params))
  g_no = jax.grad(no_stop_gradient)(params)
  assert not np.allclose(g["encoder"]["conv0"]["kernel"], g_no["encoder"]["conv0"]["kernel"])


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  # Own assertions: the value's atol=1e-6 has no keyword in devices.assert_1_and_8_devices_equal.
  (v_1, s_1, g_1), (v_8, s_8, g_8) = one, eight
  np.testing.assert_allclose(v_8, v_1, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_8, g_1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_8, s_1)
