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

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import _target
from rl.methods import base


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The BYOL `Method` for a config with `model`, `total_steps` and `byol.{predictor_kwargs, base_momentum,
  final_momentum}`.

  Example:
    >>> from configs import byol as byol_config
    >>> config = byol_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.byol.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'predictor', 'projector'], ['batch_stats', 'target'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['byol'], (8, 16))
  """
  cfg = config.byol
  momentum = _target.cosine_schedule(config.total_steps, cfg.base_momentum, cfg.final_momentum)
  eval_net = _target.build_online(config, None, cfg.predictor_kwargs)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    state = {"batch_stats": variables.get("batch_stats", {})}
    state["target"] = _target.init_target(params, state)
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # BYOL's objective is deterministic given the views.
    v1, v2 = batch["views"]
    b = v1.shape[0]
    x = jnp.concatenate([v1, v2])
    net = _target.build_online(config, axis_name, cfg.predictor_kwargs)
    (h, _, p), new_bs = net.apply(_target.variables(params, state), x, train=True, mutable=["batch_stats"])
    zt = _target.target_projections(config, state["target"], x, axis_name=axis_name)
    value = (losses.byol(p[:b], jax.lax.stop_gradient(zt[b:]), axis_name=axis_name)
             + losses.byol(p[b:], jax.lax.stop_gradient(zt[:b]), axis_name=axis_name))
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {})}
    aux = {"metrics": {"byol": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=_target.EncoderProjectorPredictor.encode)

  def project(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=_target.EncoderProjectorPredictor.project)

  def update_after_step(params, state, step):
    return _target.update_target(params, state, momentum(step))

  return base.Method(name="byol", num_views=2, init=init, loss=loss, embed=embed, project=project,
                     update_after_step=update_after_step)
