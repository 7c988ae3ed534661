"""`config.compute_dtype='bfloat16'`: bfloat16 convolutions and matmuls, float32 parameters, optimizer state and
BatchNorm statistics, a loss close to float32's, and a few training steps of the trainer's own step on 8 devices.

The network is a small SimCLR ResNet (CIFAR stem, width 4, two stages) on random 8 x 8 grey images (the `digits`
variant's shapes), so that nothing needs a data set.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import simclr as simclr_config
from rl import methods
from rl import models
from rl.data import augment
from rl.train import loop
from rl.train import mesh as mesh_lib

# The module-scoped runs are shared by its tests: all on one pytest-xdist worker (`--dist loadgroup`), trained once.
pytestmark = pytest.mark.xdist_group("mixed_precision")

STEPS = 8
SCHEDULE_STEPS = 50  # the optimizer's schedule: the learning rate stays near its peak for the STEPS steps
BATCH = 32


def _config(dtype: str):
  c = simclr_config.get_config("digits")
  c.compute_dtype = dtype
  c.model.encoder_kwargs.width = 4
  c.model.encoder_kwargs.stage_sizes = (1, 1)
  c.model.projector_kwargs.hidden_dims = (32,)
  c.model.projector_kwargs.out_dim = 16
  c.batch_size = BATCH
  c.total_steps = SCHEDULE_STEPS
  c.optim.warmup_steps = 0
  c.optim.lr = 3e-3
  return c


def _images():
  rng = np.random.default_rng(0)
  return {"x": rng.integers(0, 256, (BATCH, 8, 8, 1), dtype=np.uint8),
          "label": rng.integers(0, 10, BATCH).astype(np.int32)}


def _build(dtype: str, mesh):
  run = loop.build(_config(dtype), mesh=mesh, prepare_data=False)  # random images: no data set is read
  views = augment.make_views(jax.random.key(1), jnp.asarray(_images()["x"]), run.recipes, out_size=run.view_sizes)
  return run, run.init_state(), run.train_step(), {"views": views, "label": jnp.asarray(_images()["label"])}


@pytest.fixture(scope="module")
def runs(mesh8):
  return {dtype: _build(dtype, mesh8) for dtype in ("float32", "bfloat16")}


def _walk(jaxpr):
  """Every equation of a jaxpr and of the jaxprs nested in it (jit, custom_vjp, cond branches)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _walk(inner)


def _operand_dtypes(method, state, inputs, primitive: str) -> list[tuple[str, ...]]:
  loss = functools.partial(method.loss, axis_name=None)
  jaxpr = jax.make_jaxpr(loss)(state.params, state.method_state, inputs, jax.random.key(0))
  return [tuple(str(v.aval.dtype) for v in eqn.invars) for eqn in _walk(jaxpr.jaxpr) if eqn.primitive.name == primitive]


def _float_dtypes(tree) -> set[str]:
  return {str(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bad_compute_dtype_is_refused_before_any_data():
  config = _config("float16")
  with pytest.raises(ValueError, match=r"config.compute_dtype: expected one of 'float32', 'bfloat16'; got 'float16'"):
    loop.build(config)
  with pytest.raises(ValueError, match=r"config.compute_dtype: .* got 'bf16'"):
    methods.get_method(_config("bf16")).init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))


def test_the_methods_build_every_model_in_the_config_dtype():
  assert models.get_model("resnet18").dtype == jnp.float32
  assert models.get_model("resnet18", stem="cifar", dtype=jnp.bfloat16).dtype == jnp.bfloat16  # Flax's dtype=
  config = _config("bfloat16")
  assert methods.base.get_model(config, "resnet18", stem="cifar").dtype == jnp.bfloat16
  assert methods.base.get_model(config, "mlp_projector", out_dim=8).dtype == jnp.bfloat16
  net = methods.two_view.build_network(config, None)
  assert net.encoder.dtype == net.projector.dtype == jnp.bfloat16
  assert methods.base.get_model(_config("float32"), "mlp_projector", out_dim=8).dtype == jnp.float32


def test_params_and_optimizer_state_stay_float32(runs):
  _, state, _, _ = runs["bfloat16"]
  for name in ("params", "opt_state", "method_state", "probe_params", "probe_opt_state"):
    assert _float_dtypes(getattr(state, name)) == {"float32"}, name
  assert "batch_stats" in state.method_state  # BatchNorm running statistics, float32 above


def test_bfloat16_parameters_equal_float32_parameters(runs):
  chex.assert_trees_all_equal(runs["bfloat16"][1].params, runs["float32"][1].params)
  chex.assert_trees_all_equal(runs["bfloat16"][1].method_state, runs["float32"][1].method_state)


def test_convolutions_and_matmuls_compute_in_the_config_dtype(runs):
  run, state, _, inputs = runs["bfloat16"]
  method = run.method
  convs = _operand_dtypes(method, state, inputs, "conv_general_dilated")
  dots = _operand_dtypes(method, state, inputs, "dot_general")
  assert convs and all(d == ("bfloat16", "bfloat16") for d in convs), convs  # every convolution of the ResNet
  assert ("bfloat16", "bfloat16") in dots, dots  # the projector's Dense layers
  assert ("float32", "float32") in dots, dots  # NT-Xent's similarities: the loss upcasts
  method, state, inputs = runs["float32"][0].method, runs["float32"][1], runs["float32"][3]
  for primitive in ("conv_general_dilated", "dot_general"):
    assert all(set(d) == {"float32"} for d in _operand_dtypes(method, state, inputs, primitive)), primitive


def test_bfloat16_loss_is_close_to_float32_loss_at_init(runs):
  values = {}
  for dtype, (run, state, _, inputs) in runs.items():
    loss = jax.jit(functools.partial(run.method.loss, axis_name=None))
    value, (new_state, aux) = loss(state.params, state.method_state, inputs, jax.random.key(0))
    assert value.dtype == jnp.float32 and _float_dtypes(new_state) == {"float32"}
    assert aux["metrics"]["nt_xent"].dtype == jnp.float32
    values[dtype] = float(value)
  assert values["bfloat16"] != values["float32"]  # the switch changed the arithmetic ...
  np.testing.assert_allclose(values["bfloat16"], values["float32"], rtol=2e-2)  # ... not the result


def test_the_trainer_evaluates_float32_features(runs):
  run, state, _, _ = runs["bfloat16"]
  x = jnp.asarray(_images()["x"])
  # The method computes in bfloat16; the trainer's evaluation functions hand float32 features to rl.eval.
  half = run.method.embed(state.params, state.method_state, augment.eval_view(x, run.eval_recipe))
  assert half.dtype == jnp.bfloat16
  features = run.embed(state.params, state.method_state, x)
  assert features.dtype == jnp.float32 and features.shape == (BATCH, 8)  # width 4, two stages: 4 * 2 channels
  # ... and they are the bfloat16 network's features (not zeros, not a float32 recomputation): equal to the method's
  # own up to bfloat16 rounding, close to the float32 network's, and not equal to them.
  f32_run, f32_state, _, _ = runs["float32"]
  full = np.asarray(f32_run.embed(f32_state.params, f32_state.method_state, x))
  scale = float(np.abs(full).max())
  assert scale > 0
  np.testing.assert_allclose(features, np.asarray(half, np.float32), rtol=2e-2, atol=2e-2 * scale)
  np.testing.assert_allclose(features, full, rtol=5e-2, atol=5e-2 * scale)
  assert not np.array_equal(np.asarray(features), full)


def test_bfloat16_training_steps_lower_the_loss(runs, mesh8):
  _, state, step, _ = runs["bfloat16"]
  state = jax.tree.map(lambda x: x.copy(), state)  # the step donates its state; the fixture's stays usable
  batch = jax.device_put(_images(), mesh_lib.batch_sharding(mesh8))
  losses = []
  for _ in range(STEPS):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)), losses
  assert int(state.nonfinite_step) == -1
  assert np.mean(losses[-3:]) < losses[0] - 0.3, losses
  for name in ("params", "opt_state", "method_state"):
    assert _float_dtypes(getattr(state, name)) == {"float32"}, name
