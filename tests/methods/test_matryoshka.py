"""Matryoshka as a `Method`: the base objective summed over nested prefixes of the projection (checked by hand for every
base), one size == the base method itself, 1 device == 8 devices and config errors (the trainer run is in
test_training.py)."""
import importlib

import jax
import numpy as np
import pytest

from configs import matryoshka as matryoshka_config
from rl import losses
from rl import methods
from rl.methods import matryoshka
from rl.methods import two_view
from tests.methods import devices

BASES = ("simclr", "barlow_twins", "vicreg", "dcl", "align_uniform")


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "matryoshka", matryoshka.make)


def _setup(base="simclr", b=32):
  config = matryoshka_config.get_config(f"smoke,{base}")
  method = matryoshka.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


def _unit(z):
  return z / np.linalg.norm(z, axis=-1, keepdims=True)


def _by_hand(base, config, z1, z2):
  """The base objective of `base` on (z1, z2), written out with rl.losses."""
  if base == "simclr":
    return losses.nt_xent(z1, z2, temperature=config.simclr.temperature)
  if base == "dcl":
    return losses.dcl(z1, z2, temperature=config.dcl.temperature, weighted=config.dcl.weighted, sigma=config.dcl.sigma)
  if base == "barlow_twins":
    return config.barlow_twins.scale_loss * losses.barlow_twins(z1, z2, lambda_=config.barlow_twins.lambda_)
  if base == "vicreg":
    return losses.vicreg(z1, z2, sim_coeff=config.vicreg.sim_coeff, std_coeff=config.vicreg.std_coeff,
                         cov_coeff=config.vicreg.cov_coeff)
  u1, u2 = _unit(np.asarray(z1)), _unit(np.asarray(z2))
  cfg = config.align_uniform
  return (losses.alignment(u1, u2, alpha=cfg.alpha)
          + cfg.lam * (losses.uniformity(u1, t=cfg.t) + losses.uniformity(u2, t=cfg.t)) / 2)


@pytest.mark.parametrize("base", BASES)
def test_loss_is_the_sum_over_prefixes(base):
  config, method, params, state, v1, v2 = _setup(base)
  config.matryoshka.weights = (1.0, 0.5, 2.0)
  method = matryoshka.make(config)
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  net = two_view.build_network(config, None)
  if base in ("barlow_twins", "vicreg"):  # one forward pass per view, as the base method
    (h1, z1), _ = net.apply({"params": params, **state}, v1, train=True, mutable=["batch_stats"])
    (_, z2), _ = net.apply({"params": params, **state}, v2, train=True, mutable=["batch_stats"])
  else:
    (h, z), _ = net.apply({"params": params, **state}, np.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
    h1, z1, z2 = h[:32], z[:32], z[32:]
  terms = [_by_hand(base, config, z1[:, :m], z2[:, :m]) for m in (2, 4, 8)]
  np.testing.assert_allclose(value, terms[0] + 0.5 * terms[1] + 2.0 * terms[2], rtol=1e-5)
  metric = {"simclr": "nt_xent"}.get(base, base)
  for m, term in zip((2, 4, 8), terms):
    np.testing.assert_allclose(aux["metrics"][f"{metric}_d{m}"], term, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["matryoshka"], value)
  np.testing.assert_allclose(aux["features"], h1, rtol=1e-5, atol=1e-6)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)


@pytest.mark.parametrize("base", BASES)
def test_a_single_size_is_the_base_method(base):
  config, _, params, state, v1, v2 = _setup(base)
  config.matryoshka.dims = (8,)
  value, (new_state, _) = matryoshka.make(config).loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  base_method = importlib.import_module(f"rl.methods.{base}").make(config)
  want, (want_state, _) = base_method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  np.testing.assert_allclose(value, want, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state, want_state)


@pytest.mark.parametrize("base", ("simclr", "vicreg"))
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
  config = matryoshka_config.get_config("smoke")
  config.matryoshka.base = "byol"
  with pytest.raises(ValueError, match="unknown base 'byol'; known bases: align_uniform, barlow_twins, dcl, simclr, "
                                       "vicreg"):
    matryoshka.make(config)
  config.matryoshka.base = "vicreg"  # a simclr-built config has no c.vicreg
  with pytest.raises(ValueError, match="configs/matryoshka.py:VARIANT,vicreg"):
    matryoshka.make(config)
  config.matryoshka.base = "simclr"
  config.matryoshka.dims = (2, 4)
  with pytest.raises(ValueError, match="largest nesting size must be the projector's out_dim"):
    matryoshka.make(config)
  with pytest.raises(ValueError, match="unknown base 'byol'"):
    matryoshka_config.get_config("smoke,byol")
  assert matryoshka_config.get_config().matryoshka.dims == (8, 16, 32, 64)
