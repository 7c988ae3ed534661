"""Barlow Twins: an encoder and a wide BN projector trained to make the views' cross-correlation the identity.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021,
https://arxiv.org/abs/2103.03230. As in the authors' code (and solo-learn's), each view goes through the network
in its own forward pass (`forward='per_view'`), so BatchNorm statistics are per view (over every device through
`axis_name`); the running averages are updated once per view, in view order. The final
`BatchNorm1d(affine=False)` of the authors' projector is the standardisation inside `losses.barlow_twins` (over the
global batch), so the projector here ends with a plain Linear.
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """`scale_loss` * Barlow Twins of the projections with `config.barlow_twins.{lambda_, scale_loss}`.

  Returns (loss, {'barlow_twins': the unscaled objective}). solo-learn's `scale_loss` multiplies the whole
  objective (it matters with LARS and weight decay).

  Example:
    >>> from configs import barlow_twins as barlow_twins_config
    >>> barlow_twins = objective(barlow_twins_config.get_config("smoke"))
    >>> z = jax.random.normal(jax.random.key(0), (64, 4))
    >>> value, metrics = barlow_twins(z, z)  # identical views: a diagonal of 1, small off-diagonal correlations
    >>> bool(value < barlow_twins(z, jax.random.normal(jax.random.key(1), (64, 4)))[0]), sorted(metrics)
    (True, ['barlow_twins'])
  """
  lambda_ = float(config.barlow_twins.lambda_)
  scale_loss = float(config.barlow_twins.scale_loss)

  def barlow_twins(z1, z2, *, axis_name=None):
    value = losses.barlow_twins(z1, z2, lambda_=lambda_, axis_name=axis_name)
    return scale_loss * value, {"barlow_twins": value}

  return barlow_twins


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The Barlow Twins `Method` for a config with `model` and `barlow_twins.{lambda_, scale_loss}`.

  Example:
    >>> from configs import barlow_twins as barlow_twins_config
    >>> rl.methods.base.describe(make(barlow_twins_config.get_config("smoke")))
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['barlow_twins'], 'embedding': (8, 16)}
  """
  return two_view.make(config, objective(config), name="barlow_twins", forward="per_view")
