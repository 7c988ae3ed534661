"""DCL / DCLW: SimCLR's encoder and projector trained with the decoupled contrastive loss.

Yeh et al., "Decoupled Contrastive Learning", ECCV 2022, https://arxiv.org/abs/2110.06848. DCL is SimCLR with the
positive pair removed from the InfoNCE denominator (the negative-positive coupling); DCLW (`dcl.weighted=True`)
also weights the positive term with the paper's von Mises-Fisher weighting (`rl.losses.dcl`). Both views go
through the encoder and projector as one batch, as SimCLR's.
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def metric_name(config: ml_collections.ConfigDict) -> str:
  """'dclw' with the von Mises-Fisher weighting, else 'dcl'.

  Example:
    >>> from configs import dcl as dcl_config
    >>> config = dcl_config.get_config("smoke")
    >>> metric_name(config), config.dcl.weighted
    ('dcl', False)
  """
  return "dclw" if bool(config.dcl.weighted) else "dcl"


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """The decoupled contrastive loss of the two views' projections with `config.dcl.{temperature, weighted, sigma}`.

  Example:
    >>> from configs import dcl as dcl_config
    >>> dcl = objective(dcl_config.get_config("smoke"))
    >>> z = jnp.eye(4)
    >>> bool(dcl(z, z) < dcl(z, z[::-1]))  # no positive in the denominator: matched views still score lower
    True
  """
  kwargs = dict(temperature=float(config.dcl.temperature), weighted=bool(config.dcl.weighted),
                sigma=float(config.dcl.sigma))

  def dcl(z1, z2, *, axis_name=None):
    return losses.dcl(z1, z2, axis_name=axis_name, **kwargs)

  return dcl


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The DCL (or DCLW) `Method` for a config with `model` and `dcl.{temperature, weighted, sigma}`.

  Example:
    >>> from configs import dcl as dcl_config
    >>> config = dcl_config.get_config("smoke")
    >>> config.dcl.weighted = True  # DCLW: the positive term weighted by the von Mises-Fisher kernel
    >>> rl.methods.base.describe(make(config))["metrics"]
    ['dclw']
  """
  return two_view.make(config, objective(config), name="dcl", metric=metric_name(config))
