"""Optimizers: weight decay skips biases and normalisation parameters; the schedule warms up then decays."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import simclr as simclr_config
from rl.train import optim


def _params():
  return {"conv": {"kernel": jnp.ones((3, 2, 4))}, "bn": {"scale": jnp.ones((4,)), "bias": jnp.ones((4,))},
          "dense": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones((2,))}}


def test_decay_mask_skips_biases_and_norm_scales():
  mask = optim.decay_mask(_params())
  assert mask == {"conv": {"kernel": True}, "bn": {"scale": False, "bias": False},
                  "dense": {"kernel": True, "bias": False}}


@pytest.mark.parametrize("name", ["sgd", "adamw", "lars"])
def test_zero_gradient_step_decays_only_kernels(name):
  c = simclr_config.get_config("smoke")
  c.optim.name, c.optim.weight_decay, c.optim.warmup_steps, c.optim.lr = name, 0.1, 0, 1.0
  tx = optim.make_optimizer(c, total_steps=10)
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  moved = jax.tree.map(lambda u: bool(jnp.any(u != 0)), updates)
  assert moved == optim.decay_mask(params)


def test_schedule_warms_up_linearly_then_cosine_to_zero():
  c = simclr_config.get_config("smoke")
  c.optim.lr, c.optim.warmup_steps, c.batch_size, c.optim.scale_by_batch = 0.4, 10, 512, True
  sched = optim.learning_rate_schedule(c, total_steps=110)
  peak = 0.4 * 512 / 256
  np.testing.assert_allclose([sched(0), sched(5), sched(10)], [0.0, peak / 2, peak], rtol=1e-6)
  np.testing.assert_allclose(sched(60), peak / 2, rtol=1e-5)  # half-way through the cosine
  np.testing.assert_allclose(sched(110), 0.0, atol=1e-7)


def test_unknown_optimizer_lists_known_ones():
  c = simclr_config.get_config("smoke")
  c.optim.name = "adamm"
  with pytest.raises(ValueError, match="unknown optimizer 'adamm'; known optimizers: sgd, adamw, lars"):
    optim.make_optimizer(c, total_steps=10)


def test_constant_lr_params_learn_at_the_peak_while_the_rest_follow_the_schedule():
  # SGD without momentum or decay: each update is -lr(step) * gradient, so the updates read off the lr.
  c = simclr_config.get_config("smoke")
  c.optim.name, c.optim.momentum, c.optim.weight_decay, c.optim.lr, c.optim.warmup_steps = "sgd", 0.0, 0.0, 0.5, 2
  c.optim.constant_lr_params = ("predictor",)
  tx = optim.make_optimizer(c, total_steps=10)
  params = {"encoder": {"kernel": jnp.ones((2, 2))}, "predictor": {"kernel": jnp.ones((2, 2))}}
  state, schedule = tx.init(params), optim.learning_rate_schedule(c, total_steps=10)
  for step in range(10):
    updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    np.testing.assert_allclose(updates["encoder"]["kernel"], -schedule(step), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(updates["predictor"]["kernel"], -0.5, rtol=1e-6)
  c.optim.constant_lr_params = ("predictr",)
  with pytest.raises(ValueError, match=r"unknown parameter groups \['predictr'\]; the model has \['encoder', "):
    optim.make_optimizer(c, total_steps=10).init(params)
