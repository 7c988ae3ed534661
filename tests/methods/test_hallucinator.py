"""Hallucinator as a `Method`: with no hallucination (max_ratio 0, no smoother) it is the base method exactly; with
it, the mean of the base objective on the real and the hallucinated pairs; the smoother is trained, the base's state
and EMA update are kept, 1 device == 8 devices (the trainer runs are in test_training.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import hallucinator as hallucinator_config
from rl import losses
from rl import methods
from rl import models
from rl.methods import hallucinator
from rl.methods import two_view
from tests.methods import devices

BASES = ("simclr", "moco_v2", "simsiam")


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "hallucinator", hallucinator.make)


def _setup(base="simclr", b=32, **overrides):
  config = hallucinator_config.get_config(f"smoke,{base}")
  config.hallucinator.update(overrides)
  method = hallucinator.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  if base == "moco_v2":
    state["target"] = jax.tree.map(lambda t: t * 0.9 + 0.01, state["target"])
    state["queue_ptr"] = jnp.int32(90)
  return config, method, params, state, v1, v2


@pytest.mark.parametrize("base", BASES)
def test_without_hallucination_it_is_the_base_method(base):
  config, method, params, state, v1, v2 = _setup(base, max_ratio=0.0, smoother=False)
  batch = {"views": (v1, v2)}
  base_method = hallucinator.BASES[base].make(config)
  assert jax.tree.structure(params) == jax.tree.structure(base_method.init(jax.random.key(0), v1[:2])[0])
  (value, (new_state, aux)), grads = jax.value_and_grad(method.loss, has_aux=True)(params, state, batch,
                                                                                   jax.random.key(1))
  (want, (want_state, want_aux)), want_grads = jax.value_and_grad(base_method.loss, has_aux=True)(
      params, state, batch, jax.random.key(1))
  np.testing.assert_allclose(value, want, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, want_grads)
  jax.tree.map(np.testing.assert_array_equal, new_state, want_state)
  np.testing.assert_array_equal(aux["features"], want_aux["features"])
  np.testing.assert_allclose(aux["metrics"][f"{list(want_aux['metrics'])[0]}_hallucinated"], want, rtol=1e-6)
  np.testing.assert_array_equal(method.embed(params, state, v1), base_method.embed(params, state, v1))


def test_simclr_loss_by_hand_and_the_smoother_is_trained():
  config, method, params, state, v1, v2 = _setup("simclr")
  assert set(params) == {"encoder", "projector", "hallucinator"}
  key = jax.random.key(3)
  (value, (_, aux)), grads = jax.value_and_grad(method.loss, has_aux=True)(params, state, {"views": (v1, v2)}, key)
  net = two_view.build_network(config, None)
  base_params = {k: params[k] for k in ("encoder", "projector")}
  (_, z), _ = net.apply({"params": base_params, **state}, np.concatenate([v1, v2]), train=True,
                        mutable=["batch_stats"])
  z1, z2 = z[:32], z[32:]
  smoother = models.get_model("mlp_projector", hidden_dims=(16, 16), out_dim=8, use_bn=False)
  h = losses.hallucinate(key, z1, z2, max_ratio=0.1,
                         smoother=lambda x: smoother.apply({"params": params["hallucinator"]}, x, train=False))
  real = losses.nt_xent(z1, z2, temperature=config.simclr.temperature)
  fake = losses.nt_xent(h, z2, temperature=config.simclr.temperature)
  np.testing.assert_allclose(value, (real + fake) / 2, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["nt_xent"], real, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["nt_xent_hallucinated"], fake, rtol=1e-5)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads["hallucinator"]))
  # The ratios come from the key.
  other, _ = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(4))
  assert abs(float(other) - float(value)) > 1e-6


def test_moco_v2_keeps_the_base_state_and_ema():
  config, method, params, state, v1, v2 = _setup("moco_v2")
  base_method = hallucinator.BASES["moco_v2"].make(config)
  batch = {"views": (v1, v2)}
  _, (new_state, _) = method.loss(params, state, batch, jax.random.key(1))
  _, (want_state, _) = base_method.loss({k: params[k] for k in ("encoder", "projector")}, state, batch,
                                        jax.random.key(1))
  jax.tree.map(np.testing.assert_array_equal, new_state, want_state)  # the queue push and BN are the base's
  g_state = jax.grad(lambda s: method.loss(params, s, batch, jax.random.key(1))[0], allow_int=True)(state)
  for leaf in jax.tree.leaves((g_state["target"], g_state["queue"])):
    np.testing.assert_array_equal(leaf, 0.0)  # the momentum keys and the queue are constants
  online = jax.tree.map(lambda x: x + 1.0, params)
  got = method.update_after_step(online, state, jnp.int32(3))
  want = base_method.update_after_step({k: online[k] for k in ("encoder", "projector")}, state, jnp.int32(3))
  jax.tree.map(np.testing.assert_array_equal, got, want)


@pytest.mark.parametrize("base", BASES)
def test_8_devices_equal_1_device(mesh8, base):
  _, method, params, state, v1, v2 = _setup(base)

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  (v_1, s_1, g_1), (v_8, s_8, g_8) = one, eight
  np.testing.assert_allclose(v_8, v_1, rtol=1e-5)
  # float32 sums in another order: tolerances relative to each leaf's largest entry.
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))
  jax.tree.map(close, g_8, g_1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_8, s_1)


def test_config_errors():
  config = hallucinator_config.get_config("smoke")
  config.hallucinator.base = "byol"
  with pytest.raises(ValueError, match="unknown base 'byol'; known bases: moco_v2, simclr, simsiam"):
    hallucinator.make(config)
  config.hallucinator.base = "simsiam"
  with pytest.raises(ValueError, match="configs/hallucinator.py:VARIANT,simsiam"):
    hallucinator.make(config)
  with pytest.raises(ValueError, match="unknown base 'byol'"):
    hallucinator_config.get_config("mnist1d,byol")
