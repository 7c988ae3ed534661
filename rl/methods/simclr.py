"""SimCLR: an encoder and an MLP projector trained with NT-Xent between two augmented views.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
https://arxiv.org/abs/2002.05709 (eq. 1). Both views go through the network as one concatenated batch, so BatchNorm
statistics cover both views (and, through `axis_name`, every device), as in the authors' TPU implementation.
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """NT-Xent of the two views' projections at `config.simclr.temperature`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> nt_xent = objective(simclr_config.get_config("smoke"))  # temperature 0.1
    >>> z = jnp.eye(4)
    >>> bool(nt_xent(z, z) < nt_xent(z, z[::-1]))  # matched views score lower than mismatched ones
    True
  """
  temperature = float(config.simclr.temperature)

  def nt_xent(z1, z2, *, axis_name=None):
    return losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)

  return nt_xent


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SimCLR `Method` for a config with `model` and `simclr.temperature`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> rl.methods.base.describe(make(simclr_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['nt_xent'], 'embedding': (8, 16)}
  """
  return two_view.make(config, objective(config), name="simclr", metric="nt_xent")
