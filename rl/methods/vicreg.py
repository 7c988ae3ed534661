"""VICReg: an encoder and a wide BN expander trained with invariance, variance and covariance terms.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
ICLR 2022, https://arxiv.org/abs/2105.04906. As in the authors' `main_vicreg.py` (`self.projector(
self.backbone(x))` then the same for y), each view has its own forward pass, so BatchNorm statistics are per view
(over every device through `axis_name`). The variance and covariance of the loss are over the global batch.
"""
from __future__ import annotations

import jax
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.barlow_twins import apply_per_view
from rl.methods.simclr import EncoderProjector, build_network


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The VICReg `Method` for a config with `model` and `vicreg.{sim_coeff, std_coeff, cov_coeff}`.

  Example:
    >>> from configs import vicreg as vicreg_config
    >>> config = vicreg_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.vicreg.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['vicreg', 'vicreg_covariance', 'vicreg_invariance', 'vicreg_variance'], (8, 16))
  """
  coeffs = {name: float(config.vicreg[name]) for name in ("sim_coeff", "std_coeff", "cov_coeff")}
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # The objective is deterministic given the views.
    net = build_network(config, axis_name=axis_name)
    (h1, _), (z1, z2), new_state = apply_per_view(net, params, state, batch["views"])
    value = losses.vicreg(z1, z2, axis_name=axis_name, **coeffs)
    # The unweighted terms, for logging only: they show which one drives training.
    terms = losses.vicreg_terms(jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2), axis_name=axis_name)
    metrics = {"vicreg": value, **{f"vicreg_{name}": term for name, term in terms.items()}}
    aux = {"metrics": metrics, "features": jax.lax.stop_gradient(h1)}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.project)

  return base.Method(name="vicreg", num_views=2, init=init, loss=loss, embed=embed, project=project)
