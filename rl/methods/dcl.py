"""DCL / DCLW: SimCLR's encoder and projector trained with the decoupled contrastive loss.

Yeh et al., "Decoupled Contrastive Learning", ECCV 2022, https://arxiv.org/abs/2110.06848. DCL is SimCLR with the
positive pair removed from the InfoNCE denominator (the negative-positive coupling); DCLW (`dcl.weighted=True`)
also weights the positive term with the paper's von Mises-Fisher weighting (`rl.losses.dcl`). The network is
SimCLR's: both views go through the encoder and projector as one batch, so BatchNorm statistics cover both views
and every device.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.simclr import EncoderProjector, build_network


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The DCL (or DCLW) `Method` for a config with `model` and `dcl.{temperature, weighted, sigma}`.

  Example:
    >>> from configs import dcl as dcl_config
    >>> config = dcl_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.dcl.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['dcl'], (8, 16))
  """
  temperature = float(config.dcl.temperature)
  weighted = bool(config.dcl.weighted)
  sigma = float(config.dcl.sigma)
  metric = "dclw" if weighted else "dcl"
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # the objective is deterministic given the views
    v1, v2 = batch["views"]
    b = v1.shape[0]
    net = build_network(config, axis_name=axis_name)
    (h, z), new_state = net.apply({"params": params, **state}, jnp.concatenate([v1, v2]), train=True,
                                  mutable=list(state))
    value = losses.dcl(z[:b], z[b:], temperature=temperature, weighted=weighted, sigma=sigma, axis_name=axis_name)
    aux = {"metrics": {metric: value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (dict(new_state), aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.project)

  return base.Method(name="dcl", num_views=2, init=init, loss=loss, embed=embed, project=project)
