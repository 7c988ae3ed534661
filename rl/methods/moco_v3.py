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

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import _target
from rl.methods import base


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The MoCo v3 `Method` for a config with `model`, `total_steps` and `moco_v3.{temperature, predictor_kwargs,
  base_momentum, final_momentum}`.

  Example:
    >>> from configs import moco_v3 as moco_v3_config
    >>> config = moco_v3_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.moco_v3.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'predictor', 'projector'], ['batch_stats', 'target'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['moco_v3'], (8, 16))
  """
  cfg = config.moco_v3
  tau = float(cfg.temperature)
  momentum = _target.cosine_schedule(config.total_steps, cfg.base_momentum, cfg.final_momentum)
  eval_net = _target.build_online(config, None, cfg.predictor_kwargs)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    state = {"batch_stats": variables.get("batch_stats", {})}
    state["target"] = _target.init_target(params, state)
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # deterministic given the views
    v1, v2 = batch["views"]
    b = v1.shape[0]
    x = jnp.concatenate([v1, v2])
    net = _target.build_online(config, axis_name, cfg.predictor_kwargs)
    (h, _, q), new_bs = net.apply(_target.variables(params, state), x, train=True, mutable=["batch_stats"])
    k = jax.lax.stop_gradient(_target.target_projections(config, state["target"], x, axis_name=axis_name))
    value = 2 * tau * (losses.info_nce(q[:b], k[b:], temperature=tau, axis_name=axis_name)
                       + losses.info_nce(q[b:], k[:b], temperature=tau, axis_name=axis_name))
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {})}
    aux = {"metrics": {"moco_v3": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=_target.EncoderProjectorPredictor.encode)

  def project(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=_target.EncoderProjectorPredictor.project)

  def update_after_step(params, state, step):
    return _target.update_target(params, state, momentum(step))

  return base.Method(name="moco_v3", num_views=2, init=init, loss=loss, embed=embed, project=project,
                     update_after_step=update_after_step)
