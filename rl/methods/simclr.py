"""SimCLR: an encoder and an MLP projector trained with NT-Xent between two augmented views.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
https://arxiv.org/abs/2002.05709. Both views go through the network as one concatenated batch, so BatchNorm
statistics cover both views (and, through `axis_name`, every device), as in the authors' TPU implementation.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl import models
from rl.methods import base


class EncoderProjector(nn.Module):
  """The encoder followed by the projector; returns (features h, projections z)."""
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x, *, train: bool):
    h = self.encoder(x, train=train)
    return h, self.projector(h, train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)

  def project(self, x, *, train: bool = False):
    return self.projector(self.encoder(x, train=train), train=train)


def build_network(config: ml_collections.ConfigDict, axis_name: str | None) -> EncoderProjector:
  """Encoder and projector from `config.model` (`encoder`, `encoder_kwargs`, `projector_kwargs`).

  Example:
    >>> from configs import simclr as simclr_config
    >>> net = build_network(simclr_config.get_config("smoke"), axis_name=None)
    >>> x = np.zeros((8, 40), np.float32)
    >>> h, z = net.apply(net.init(jax.random.key(0), x, train=False), x, train=False)
    >>> h.shape, z.shape
    ((8, 16), (8, 8))
  """
  model = config.model
  encoder = models.get_model(model.encoder, axis_name=axis_name, **model.encoder_kwargs.to_dict())
  projector = models.get_model("mlp_projector", axis_name=axis_name, **model.projector_kwargs.to_dict())
  return EncoderProjector(encoder=encoder, projector=projector)


def _variables(params, state) -> dict[str, Any]:
  return {"params": params, **state}


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SimCLR `Method` for a config with `model` and `simclr.temperature`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.simclr.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['nt_xent'], (8, 16))
  """
  temperature = float(config.simclr.temperature)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # SimCLR's objective is deterministic given the views.
    v1, v2 = batch["views"]
    b = v1.shape[0]
    net = build_network(config, axis_name=axis_name)
    (h, z), new_state = net.apply(_variables(params, state), jnp.concatenate([v1, v2]), train=True,
                                  mutable=list(state))
    value = losses.nt_xent(z[:b], z[b:], temperature=temperature, axis_name=axis_name)
    aux = {"metrics": {"nt_xent": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (dict(new_state), aux)

  def embed(params, state, x):
    return eval_net.apply(_variables(params, state), x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply(_variables(params, state), x, method=EncoderProjector.project)

  return base.Method(name="simclr", num_views=2, init=init, loss=loss, embed=embed, project=project)
