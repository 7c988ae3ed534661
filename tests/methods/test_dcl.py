"""DCL / DCLW as a `Method`: the loss is `rl.losses.dcl` of the projections, and 1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcl as dcl_config
from rl import losses
from rl import methods
from rl.methods.two_view import build_network
from tests.methods import devices


def _method_and_batch(weighted=False, b=32):
  config = dcl_config.get_config("smoke")
  config.dcl.weighted = weighted
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(b, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(b, 40)).astype(np.float32)
  params, state = method.init(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_is_dcl_of_the_projections(weighted):
  config, method, params, state, v1, v2 = _method_and_batch(weighted)
  value, (new_state, aux) = method.loss(params, state, {"views": (v1, v2)}, jax.random.key(1))
  (h, z), expected_state = build_network(config, None).apply(
      {"params": params, **state}, jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
  expected = losses.dcl(z[:32], z[32:], temperature=config.dcl.temperature, weighted=weighted,
                        sigma=config.dcl.sigma)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["dclw" if weighted else "dcl"], value)
  np.testing.assert_allclose(aux["features"], h[:32], rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state, dict(expected_state))
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))  # BN statistics moved


def test_dclw_differs_from_dcl_and_matched_views_score_lower():
  _, dcl_method, params, state, v1, v2 = _method_and_batch(False)
  _, dclw_method, _, _, _, _ = _method_and_batch(True)
  batch = {"views": (v1, v2)}
  dcl_value, _ = dcl_method.loss(params, state, batch, jax.random.key(1))
  dclw_value, _ = dclw_method.loss(params, state, batch, jax.random.key(1))
  assert not np.isclose(dcl_value, dclw_value)
  same, _ = dcl_method.loss(params, state, {"views": (v1, v1)}, jax.random.key(1))
  assert same < dcl_value


@pytest.mark.parametrize("weighted", [False, True])
def test_8_devices_equal_1_device(mesh8, weighted):
  _, method, params, state, v1, v2 = _method_and_batch(weighted)

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  # The weighted loss's gradient sums 2N terms of size ~1 into entries as small as 3e-3: under the suite's XLA flags
  # (LLVM opt level 0) one such entry differs by 2.1e-6 between 1 and 8 devices, float32 rounding (16 ulps at 1.5);
  # a missing all-gather or psum changes the gradients by their own size.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=5e-6 if weighted else 1e-6)



def test_unknown_variant_lists_known_ones():
  with pytest.raises(ValueError, match="unknown variant 'mnist'; known variants: mnist1d, digits"):
    dcl_config.get_config("mnist")
