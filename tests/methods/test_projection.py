"""`Method.project`, the projection head's output that the report evaluates beside the encoder features (pre- vs
post-projection): it is the projector applied to the encoder's eval-mode features, for a plain and an EMA method."""
import jax
import numpy as np
import pytest

from configs import byol as byol_config
from configs import simclr as simclr_config
from configs import swav as swav_config
from rl import methods


@pytest.mark.parametrize("config_module", [simclr_config, byol_config])
def test_project_is_the_projector_on_the_encoder_features(config_module):
  config = config_module.get_config("smoke")
  method = methods.get_method(config)
  x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
  params, state = method.init(jax.random.key(0), x)
  h = method.embed(params, state, x)
  z = method.project(params, state, x)
  assert z.shape == (8, config.model.projector_kwargs.out_dim) and h.shape[0] == 8
  projector = methods.two_view.build_network(config, None).projector
  expected = projector.apply({"params": params["projector"], "batch_stats": state["batch_stats"]["projector"]},
                             h, train=False)
  np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)


def test_methods_without_a_plain_projector_have_none():
  assert methods.get_method(swav_config.get_config("smoke")).project is None
