"""Shared pieces of the methods with a predictor and/or an EMA ("momentum", "target") network.

The online network is `EncoderProjectorPredictor` (parameters `encoder`, `projector`, `predictor`); the target is
an `EncoderProjector` of `rl.methods.simclr` whose variables are the EMA of the online `encoder` and `projector`
variables. The target lives in `method_state["target"]` (`{"params": ..., "batch_stats": ...}`), never in the
params the optimizer sees, so it receives no gradient by construction; `update_target` moves it after each
optimizer step. Used by BYOL, SimSiam (predictor only), MoCo v2 and MoCo v3.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import models
from rl.methods import simclr
from rl.models import ema

PyTree = Any
TARGET_PARTS = ("encoder", "projector")


class EncoderProjectorPredictor(nn.Module):
  """Encoder, projector and predictor; returns (features h, projections z, predictions p)."""
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module

  def __call__(self, x, *, train: bool):
    h = self.encoder(x, train=train)
    z = self.projector(h, train=train)
    return h, z, self.predictor(z, train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)

  def project(self, x, *, train: bool = False):
    return self.projector(self.encoder(x, train=train), train=train)


def build_online(config: ml_collections.ConfigDict, axis_name: str | None,
                 predictor_kwargs: ml_collections.ConfigDict) -> EncoderProjectorPredictor:
  """Encoder and projector as in SimCLR plus an MLP predictor (BN in the hidden layers, no BN on the output)."""
  net = simclr.build_network(config, axis_name)
  predictor = models.get_model("mlp_projector", axis_name=axis_name, last_bn=False, **predictor_kwargs.to_dict())
  return EncoderProjectorPredictor(encoder=net.encoder, projector=net.projector, predictor=predictor)


def variables(params, state) -> dict[str, Any]:
  """Flax variables of the online network: its params and its BatchNorm statistics (never the target)."""
  return {"params": params, "batch_stats": state["batch_stats"]}


def _parts(tree: PyTree) -> dict[str, Any]:
  return {k: v for k, v in tree.items() if k in TARGET_PARTS}


def online_encoder_projector(params, state) -> dict[str, Any]:
  """The online variables the target tracks: encoder and projector params and BatchNorm statistics."""
  return {"params": _parts(params), "batch_stats": _parts(state["batch_stats"])}


def init_target(params, state) -> dict[str, Any]:
  """The target at step 0: a copy of the online encoder and projector (BYOL, MoCo: same initialisation)."""
  return jax.tree.map(jnp.array, online_encoder_projector(params, state))


def target_projections(config: ml_collections.ConfigDict, target, x, *, axis_name: str | None) -> jax.Array:
  """Stop-gradient projections of the target network for `x` (BatchNorm on batch statistics, as in training).

  The target runs in training mode, as BYOL's and MoCo's momentum networks do (their BatchNorm normalises with
  the statistics of the current, cross-device batch); its running statistics are not updated here but are the EMA
  of the online ones (`update_target`). They are only used if someone evaluates the target network.
  """
  net = simclr.build_network(config, axis_name)
  target = jax.lax.stop_gradient(target)
  (_, z), _ = net.apply(target, x, train=True, mutable=["batch_stats"])
  return jax.lax.stop_gradient(z)


def update_target(params, state, momentum) -> dict[str, Any]:
  """`state` with target <- m * target + (1 - m) * online (params and BatchNorm statistics)."""
  new = dict(state)
  new["target"] = ema.ema_update(state["target"], online_encoder_projector(params, state), momentum)
  return new


def cosine_schedule(total_steps: int, base: float, final: float) -> Callable[[jax.Array], jax.Array]:
  """m(step) rising from `base` to `final` along a half cosine (BYOL, Sec. 3.2; solo-learn's MomentumUpdater).

  `base == final` gives MoCo v1/v2's constant momentum.
  """
  return lambda step: ema.cosine_momentum(step, int(total_steps), base=float(base), final=float(final))
