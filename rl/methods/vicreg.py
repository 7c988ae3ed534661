"""VICReg: an encoder and a wide BN expander trained with invariance, variance and covariance terms.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
ICLR 2022, https://arxiv.org/abs/2105.04906. As in the authors' `main_vicreg.py` (`self.projector(
self.backbone(x))` then the same for y), each view has its own forward pass (`forward='per_view'`), so BatchNorm
statistics are per view (over every device through `axis_name`). The variance and covariance of the loss are over
the global batch.
"""
from __future__ import annotations

import jax
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """VICReg of the projections with `config.vicreg.{sim_coeff, std_coeff, cov_coeff}`.

  Returns (loss, metrics): the loss as 'vicreg' and, for logging only, the unweighted terms
  ('vicreg_invariance', 'vicreg_variance', 'vicreg_covariance'), which show which one drives training.

  Example:
    >>> from configs import vicreg as vicreg_config
    >>> vicreg = objective(vicreg_config.get_config("smoke"))
    >>> z = jax.random.normal(jax.random.key(0), (64, 4))
    >>> value, metrics = vicreg(z, z)
    >>> float(metrics["vicreg_invariance"]), sorted(metrics)
    (0.0, ['vicreg', 'vicreg_covariance', 'vicreg_invariance', 'vicreg_variance'])
  """
  coeffs = {name: float(config.vicreg[name]) for name in ("sim_coeff", "std_coeff", "cov_coeff")}

  def vicreg(z1, z2, *, axis_name=None):
    value = losses.vicreg(z1, z2, axis_name=axis_name, **coeffs)
    terms = losses.vicreg_terms(jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2), axis_name=axis_name)
    return value, {"vicreg": value, **{f"vicreg_{name}": term for name, term in terms.items()}}

  return vicreg


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The VICReg `Method` for a config with `model` and `vicreg.{sim_coeff, std_coeff, cov_coeff}`.

  Example:
    >>> from configs import vicreg as vicreg_config
    >>> rl.methods.base.describe(make(vicreg_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['vicreg', 'vicreg_covariance',
     'vicreg_invariance', 'vicreg_variance'], 'embedding': (8, 16)}
  """
  return two_view.make(config, objective(config), name="vicreg", forward="per_view")
