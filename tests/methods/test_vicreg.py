"""VICReg as a `Method`: the loss of per-view forward passes, its logged terms, and 1 device == 8 devices."""
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import vicreg as vicreg_config
from rl import losses
from rl.methods import vicreg
from rl.methods.two_view import build_network


def _method_and_batch(b=32, **overrides):
  config = vicreg_config.get_config("smoke")
  config.vicreg.update(overrides)
  method = vicreg.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


def test_loss_is_vicreg_of_per_view_projections_and_logs_the_terms():
  coeffs = dict(sim_coeff=10.0, std_coeff=20.0, cov_coeff=2.0)
  config, method, params, state, v1, v2 = _method_and_batch(**coeffs)
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  net = build_network(config, axis_name=None)
  (h1, z1), s1 = net.apply({"params": params, **state}, v1, train=True, mutable=["batch_stats"])
  (_, z2), s2 = net.apply({"params": params, **s1}, v2, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(value, losses.vicreg(z1, z2, **coeffs), rtol=1e-6)
  terms = losses.vicreg_terms(z1, z2)
  metrics = aux["metrics"]
  for name, term in terms.items():
    np.testing.assert_allclose(metrics[f"vicreg_{name}"], term, rtol=1e-6)
  weighted = (10.0 * metrics["vicreg_invariance"] + 20.0 * metrics["vicreg_variance"]
              + 2.0 * metrics["vicreg_covariance"])
  np.testing.assert_allclose(weighted, value, rtol=1e-5)
  np.testing.assert_allclose(metrics["vicreg"], value)
  np.testing.assert_allclose(aux["features"], h1, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new_state, dict(s2))
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))


def test_identical_views_have_no_invariance_term():
  _, method, params, state, v1, _ = _method_and_batch()
  _, (_, aux) = method.loss(params, state, {"views": (v1, v1)}, jax.random.key(1))
  assert aux["metrics"]["vicreg_invariance"] == 0.0
  assert aux["metrics"]["vicreg_variance"] > 0.0 and aux["metrics"]["vicreg_covariance"] > 0.0


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2 = _method_and_batch()

  def value_and_grad(axis_name):
    def f(p, a, b):
      return method.loss(p, state, {"views": (a, b)}, jax.random.key(1), axis_name=axis_name)
    return jax.value_and_grad(f, has_aux=True)

  (v_1, (s_1, aux_1)), g_1 = jax.jit(value_and_grad(None))(params, v1, v2)
  fn = jax.shard_map(value_and_grad("data"), mesh=mesh8, in_specs=(P(), P("data"), P("data")),
                     out_specs=((P(), (P(), {"metrics": P(), "features": P("data")})), P()))
  put = lambda x: jax.device_put(x, NamedSharding(mesh8, P("data")))
  (v_8, (s_8, aux_8)), g_8 = jax.jit(fn)(params, put(v1), put(v2))
  np.testing.assert_allclose(v_8, v_1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), aux_8["metrics"],
               aux_1["metrics"])
  # The loss is ~10 (weights 25): float32 sums in another order differ by ~1e-6 on gradients of ~1.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_8, g_1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_8, s_1)


def test_every_variant_builds():
  for variant in vicreg_config.VARIANTS:
    config = vicreg_config.get_config(variant)
    assert len(config.augment.views) == vicreg.make(config).num_views == 2
