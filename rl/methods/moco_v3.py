"""MoCo v3: queries from an online encoder+projector+predictor against keys of a momentum encoder+projector.

Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021,
https://arxiv.org/abs/2104.02057. No queue: the negatives are the keys of the global batch (gathered from every
device by `losses.info_nce` through `axis_name`). The loss, as in Algorithm 1 of the paper and solo-learn's
`solo/losses/mocov3.py` (each term scaled by 2 tau, the two directions summed):

    L = 2 tau (info_nce(q1, sg(k2)) + info_nce(q2, sg(k1))).

The momentum network is the EMA of the online encoder and projector with m rising from `base_momentum` (0.99) to
`final_momentum` (1) along a cosine (the official code's `--moco-m-cos`). For ResNets the projector is a 2-layer
MLP ending in a BatchNorm without affine parameters and the predictor a 2-layer MLP without a last BN (solo-learn's
`_build_mlp`). Both views go through each network as one concatenated batch.
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import ema_target


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The MoCo v3 `Method` for a config with `model`, `total_steps` and `moco_v3.{temperature, predictor_kwargs,
  base_momentum, final_momentum}`.

  Example:
    >>> from configs import moco_v3 as moco_v3_config
    >>> method = make(moco_v3_config.get_config("smoke"))  # mnist1d signals, a tiny encoder
    >>> params, state = method.init(jax.random.key(0), np.zeros((8, 40), np.float32))
    >>> sorted(params), sorted(state["target"]["params"])  # the target: a moving average of encoder and projector
    (['encoder', 'predictor', 'projector'], ['encoder', 'projector'])
  """
  cfg = config.moco_v3
  tau = float(cfg.temperature)

  def objective(q, k, *, axis_name=None):
    return 2 * tau * (losses.info_nce(q[0], k[1], temperature=tau, axis_name=axis_name)
                      + losses.info_nce(q[1], k[0], temperature=tau, axis_name=axis_name))

  return ema_target.make(config, objective, name="moco_v3", predictor_kwargs=cfg.predictor_kwargs,
                         base_momentum=cfg.base_momentum, final_momentum=cfg.final_momentum)
