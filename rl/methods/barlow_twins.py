"""Barlow Twins: an encoder and a wide BN projector trained to make the views' cross-correlation the identity.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021,
https://arxiv.org/abs/2103.03230. As in the authors' code (and solo-learn's), each view goes through the network
in its own forward pass, so BatchNorm statistics are per view (over every device through `axis_name`); the
running averages are updated once per view, in view order. The final `BatchNorm1d(affine=False)` of the authors'
projector is the standardisation inside `losses.barlow_twins` (over the global batch), so the projector here ends
with a plain Linear.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.simclr import EncoderProjector, build_network


def apply_per_view(net: EncoderProjector, params, state: dict[str, Any], views: Sequence[jax.Array]):
  """Runs `net` in training mode on each view separately, threading the BatchNorm statistics.

  Returns ([h_1, ..., h_n], [z_1, ..., z_n], new_state): per-view batch statistics (as the authors' separate
  `backbone(y1)`, `backbone(y2)` calls) and running averages updated once per view.

  Example:
    >>> from configs import barlow_twins as barlow_twins_config
    >>> net = rl.methods.simclr.build_network(barlow_twins_config.get_config("smoke"), axis_name=None)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> variables = net.init(jax.random.key(0), x, train=False)
    >>> state = {"batch_stats": variables["batch_stats"]}
    >>> hs, zs, state = apply_per_view(net, variables["params"], state, [x, x + 0.1])
    >>> [h.shape for h in hs], [z.shape for z in zs], sorted(state)
    ([(8, 16), (8, 16)], [(8, 8), (8, 8)], ['batch_stats'])
  """
  hs, zs = [], []
  for view in views:
    (h, z), state = net.apply({"params": params, **state}, view, train=True, mutable=list(state))
    state = dict(state)
    hs.append(h)
    zs.append(z)
  return hs, zs, state


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The Barlow Twins `Method` for a config with `model` and `barlow_twins.{lambda_, scale_loss}`.

  Example:
    >>> from configs import barlow_twins as barlow_twins_config
    >>> config = barlow_twins_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.barlow_twins.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['barlow_twins'], (8, 16))
  """
  lambda_ = float(config.barlow_twins.lambda_)
  scale_loss = float(config.barlow_twins.scale_loss)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # The objective is deterministic given the views.
    net = build_network(config, axis_name=axis_name)
    (h1, _), (z1, z2), new_state = apply_per_view(net, params, state, batch["views"])
    objective = losses.barlow_twins(z1, z2, lambda_=lambda_, axis_name=axis_name)
    # solo-learn's `scale_loss` multiplies the whole objective (it matters with LARS and weight decay).
    value = scale_loss * objective
    aux = {"metrics": {"barlow_twins": objective}, "features": jax.lax.stop_gradient(h1)}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.project)

  return base.Method(name="barlow_twins", num_views=2, init=init, loss=loss, embed=embed, project=project)
