"""DINO as a `Method`: the loss is `rl.losses.dino` of the student on every crop and the EMA teacher on the global
crops; the centre, teacher temperature, frozen last layer and teacher EMA follow their schedules; 1 device == 8
devices (value, gradients, centre)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dino as dino_config
from rl import losses
from rl import methods
from rl.methods import dino
from rl.methods import multicrop
from tests.methods import devices
from tests.methods import schedules

B = 32


def _setup():
  config = dino_config.get_config("smoke")  # 2 global views of 40, 4 local of 20; 32 logits
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  x = rng.randn(B, 40).astype(np.float32)
  views = (x, x + 0.3 * rng.randn(B, 40).astype(np.float32)) + tuple(
      rng.randn(B, 20).astype(np.float32) for _ in range(4))
  params, state = method.init(jax.random.key(0), x[:2])
  # A teacher that differs from the student, and a non-zero centre, so that both matter.
  state = {**state, "teacher": jax.tree.map(lambda t: t * 0.9 + 0.01, state["teacher"]),
           "center": jnp.linspace(-0.1, 0.1, 32), "step": jnp.int32(2)}
  return config, method, params, state, views


def test_teacher_starts_as_the_student():
  _, method, params, state, views = _setup()
  _, fresh = method.init(jax.random.key(0), views[0][:2])
  jax.tree.map(np.testing.assert_array_equal, fresh["teacher"]["params"], params)
  np.testing.assert_array_equal(fresh["center"], np.zeros(32))


def test_loss_is_dino_of_student_and_teacher_and_the_centre_moves():
  config, method, params, state, views = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": views}, jax.random.key(1))
  net = multicrop.Network(config, dino.build_head).module(None)
  (h, student), _ = net.apply({"params": params, "batch_stats": state["batch_stats"]}, views, train=True,
                              mutable=["batch_stats"])
  (_, teacher), _ = net.apply(state["teacher"], views[:2], train=True, mutable=["batch_stats"])
  assert student.shape == (6 * B, 32) and teacher.shape == (2 * B, 32)
  tau = 0.04 + (0.07 - 0.04) * 2 / 4  # linear warm-up over 4 steps, at step 2
  expected = losses.dino(student, teacher, state["center"], student_temp=0.1, teacher_temp=tau)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["teacher_temp"], tau, rtol=1e-6)
  np.testing.assert_allclose(new_state["center"], 0.9 * state["center"] + 0.1 * np.asarray(teacher).mean(0),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux["features"], h[:B], rtol=1e-6)


def test_teacher_gets_no_gradient_and_the_last_layer_is_frozen_at_first():
  _, method, params, state, views = _setup()

  def grads(step):
    def f(p, teacher):
      return method.loss(p, {**state, "teacher": teacher, "step": jnp.int32(step)}, {"views": views},
                         jax.random.key(1))[0]
    return jax.grad(f, argnums=(0, 1))(params, state["teacher"])

  (frozen, g_teacher), (free, _) = grads(0), grads(1)  # freeze_last_layer_steps = 1
  jax.tree.map(lambda g: np.testing.assert_array_equal(g, 0.0), g_teacher)
  jax.tree.map(lambda g: np.testing.assert_array_equal(g, 0.0), frozen["head"]["last_layer"])
  assert float(jnp.abs(free["head"]["last_layer"]["kernel"]).max()) > 0
  assert float(jnp.abs(frozen["encoder"]["conv0"]["kernel"]).max()) > 0


def test_update_after_step_moves_the_teacher_by_the_cosine_momentum():
  config, _, params, state, _ = _setup()
  config.dino.base_momentum, config.dino.final_momentum = schedules.BASE, schedules.FINAL
  method = methods.get_method(config)
  for step in schedules.steps(config.total_steps):
    new = method.update_after_step(params, state, jnp.int32(step))
    m = schedules.cosine_momentum(step, config.total_steps)
    expected = jax.tree.map(lambda t, s: m * t + (1 - m) * s, state["teacher"]["params"], params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new["teacher"]["params"],
                 expected)
    assert int(new["step"]) == step + 1


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, views = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": views}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5, check_state=False)
  (_, s_1, _), (_, s_8, _) = one, eight
  np.testing.assert_allclose(s_8["center"], s_1["center"], rtol=1e-5, atol=1e-6)


def test_bad_views():
  _, method, params, state, views = _setup()
  with pytest.raises(ValueError, match="at least 2 views"):
    method.loss(params, state, {"views": views[:1]}, jax.random.key(1))
