"""BYOL: an online encoder+projector+predictor regresses the projections of an EMA target network.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020,
https://arxiv.org/abs/2006.07733. The loss is symmetric and SUMMED over the two directions (eq. 2 and
L_total = L + L~ in Sec. 3.1; solo-learn's `solo/methods/byol.py` also sums `byol_loss_func` over the view pairs):

    L = byol(p1, sg(z2')) + byol(p2, sg(z1'))

with p the online predictions and z' the target projections. The target (encoder and projector params and
BatchNorm statistics) lives in `method_state["target"]` and moves after each optimizer step with the cosine
momentum schedule m = 1 - (1 - m0) (cos(pi k / K) + 1) / 2 (Sec. 3.2). Both views go through each network as one
concatenated batch, so BatchNorm statistics cover both views and, through `axis_name`, every device.
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import ema_target


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The BYOL `Method` for a config with `model`, `total_steps` and `byol.{predictor_kwargs, base_momentum,
  final_momentum}`.

  Example:
    >>> from configs import byol as byol_config
    >>> rl.methods.base.describe(make(byol_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'predictor', 'projector'], 'state': ['batch_stats', 'target'], 'metrics': ['byol'],
     'embedding': (8, 16)}
  """
  cfg = config.byol

  def objective(p, t, *, axis_name=None):
    return losses.byol(p[0], t[1], axis_name=axis_name) + losses.byol(p[1], t[0], axis_name=axis_name)

  return ema_target.make(config, objective, name="byol", predictor_kwargs=cfg.predictor_kwargs,
                         base_momentum=cfg.base_momentum, final_momentum=cfg.final_momentum)
