"""NNCLR: InfoNCE where the positive of a view is the nearest neighbour of the other view in a support set.

Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of Visual
Representations", ICCV 2021, https://arxiv.org/abs/2104.14548 (eq. 2, Algorithm 1). The network is an encoder, a
projector (3 layers with BatchNorm on every layer in the paper) and a predictor (2 layers, BN on the hidden layer);
both views go through it as one batch. For each view, the nearest neighbour of its L2-normalised projection in the
support set (a FIFO queue of earlier first-view projections) is the positive of the OTHER view's prediction; the
neighbours are constants. After the loss, the normalised projections of the first view enter the queue.

`method_state` holds the BatchNorm statistics ('batch_stats') and the support set: 'support' [K, d] (initialised
with random unit vectors from the init key, as solo-learn does) and 'ptr' (int32, the oldest row). The queue push
gathers the first-view projections of every device, so the new support set is the same on every device and the
same as a single-device run on the global batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import _target
from rl.methods import base

SUPPORT_KEYS = ("support", "ptr")


def build_nnclr_network(config: ml_collections.ConfigDict,
                        axis_name: str | None) -> _target.EncoderProjectorPredictor:
  """SimCLR's encoder and projector plus an `MLPProjector` predictor from `config.nnclr.predictor_kwargs` (the
  online network of BYOL, `rl.methods._target`).

  Example:
    >>> from configs import nnclr as nnclr_config
    >>> net = build_nnclr_network(nnclr_config.get_config("smoke"), axis_name=None)
    >>> x = np.zeros((8, 40), np.float32)
    >>> params = net.init(jax.random.key(0), x, train=False)["params"]
    >>> sorted(params)
    ['encoder', 'predictor', 'projector']
  """
  return _target.build_online(config, axis_name, config.nnclr.predictor_kwargs)


def _normalize(z: jax.Array) -> jax.Array:
  z = z.astype(jnp.float32)
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def _split(state):
  """(network collections, support-set state) of a method_state."""
  net_state = {k: v for k, v in state.items() if k not in SUPPORT_KEYS}
  return net_state, {k: state[k] for k in SUPPORT_KEYS}


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The NNCLR `Method` for a config with `model` and `nnclr.{temperature, support_size, predictor_kwargs}`.

  Example:
    >>> from configs import nnclr as nnclr_config
    >>> config = nnclr_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.nnclr.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'predictor', 'projector'], ['batch_stats', 'ptr', 'support'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['nnclr'], (8, 16))
  """
  temperature = float(config.nnclr.temperature)
  support_size = int(config.nnclr.support_size)
  eval_net = build_nnclr_network(config, axis_name=None)

  def init(key, x):
    net_key, support_key = jax.random.split(key)
    variables = eval_net.init(net_key, x, train=False)
    params = variables.pop("params")
    _, z, p = jax.eval_shape(lambda v: eval_net.apply({"params": params, **v}, x, train=False), variables)
    if p.shape[-1] != z.shape[-1]:
      raise ValueError(f"config.nnclr.predictor_kwargs.out_dim must equal the projector's out_dim {z.shape[-1]}; "
                       f"got {p.shape[-1]}.")
    support = _normalize(jax.random.normal(support_key, (support_size, z.shape[-1]), jnp.float32))
    return params, {**variables, "support": support, "ptr": jnp.zeros((), jnp.int32)}

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # the objective is deterministic given the views and the support set
    net_state, support = _split(state)
    v1, v2 = batch["views"]
    b = v1.shape[0]
    net = build_nnclr_network(config, axis_name=axis_name)
    (h, z, p), new_net_state = net.apply({"params": params, **net_state}, jnp.concatenate([v1, v2]), train=True,
                                         mutable=list(net_state))
    value = losses.nnclr(z[:b], z[b:], support["support"], p1=p[:b], p2=p[b:], temperature=temperature,
                         axis_name=axis_name)
    new_support, new_ptr = losses.queue_push(support["support"], support["ptr"], _normalize(z[:b]),
                                             axis_name=axis_name)
    new_state = {**new_net_state, "support": new_support, "ptr": new_ptr}
    aux = {"metrics": {"nnclr": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (new_state, aux)

  def embed(params, state, x):
    net_state, _ = _split(state)
    return eval_net.apply({"params": params, **net_state}, x, method=_target.EncoderProjectorPredictor.encode)

  def project(params, state, x):
    net_state, _ = _split(state)
    return eval_net.apply({"params": params, **net_state}, x, method=_target.EncoderProjectorPredictor.project)

  return base.Method(name="nnclr", num_views=2, init=init, loss=loss, embed=embed, project=project)
