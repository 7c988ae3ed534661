"""SwAV: swapped prediction of Sinkhorn cluster codes between crops, with multi-crop and an optional queue.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020,
https://arxiv.org/abs/2006.09882. The network is encoder -> MLP projector -> L2 normalisation -> prototypes
(cosine scores against K unit prototypes). For each global crop a in `crops_for_assign`, the Sinkhorn-Knopp codes
of its scores (equal partition over the global batch, and over the queue once it is full) are predicted from
every other crop's scores by a softmax at temperature 0.1 (`rl.losses.swav`).

Multi-crop: the views are `config.augment.views` with sizes `config.augment.view_sizes`; the first
`num_global_crops` are the global crops (see `rl.methods.multicrop`). What the method keeps between steps, in
`method_state`: BatchNorm statistics, a step counter, and (with `queue_length > 0`) the queue of the assign crops'
past projections, replicated: every device holds the whole queue in global batch order and feeds its own
1/D slice to the Sinkhorn, so the codes equal the single-device ones.

Differences from the official code, on purpose: the prototypes are normalised in the forward pass
(`heads.Prototypes(normalize=True)`) rather than re-normalised in place after each step (the method cannot edit
the optimizer's parameters); the prototypes get no gradient for the first `freeze_prototypes_steps` steps, as
the official code's first epoch.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import multicrop


class SwAVHead(nn.Module):
  """Projector, L2 normalisation and prototypes; returns (normalised projections z, prototype scores)."""
  projector: nn.Module
  prototypes: nn.Module

  def __call__(self, h, *, train: bool):
    z = self.projector(h, train=train)
    z = losses.l2_normalize(z.astype(jnp.float32)).astype(z.dtype)
    return z, self.prototypes(z, train=train)


def build_head(config: ml_collections.ConfigDict, axis_name: str | None) -> SwAVHead:
  """The projector (`config.model.projector_kwargs`) and `config.swav.num_prototypes` prototypes.

  Example:
    >>> from configs import swav as swav_config
    >>> config = swav_config.get_config("smoke")
    >>> head = build_head(config, axis_name=None)
    >>> params = head.init(jax.random.key(0), np.zeros((8, 16), np.float32), train=False)["params"]
    >>> sorted(params), params["prototypes"]["kernel"].shape[-1] == config.swav.num_prototypes
    (['projector', 'prototypes'], True)
  """
  projector = base.get_model(config, "mlp_projector", axis_name=axis_name, **config.model.projector_kwargs.to_dict())
  prototypes = base.get_model(config, "prototypes", num_prototypes=int(config.swav.num_prototypes))
  return SwAVHead(projector=projector, prototypes=prototypes)


def _scores(z, prototype_params):
  """Cosine scores of (already normalised) projections against the prototypes, as `heads.Prototypes`."""
  return z.astype(jnp.float32) @ losses.l2_normalize(prototype_params["kernel"], axis=0)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SwAV `Method` for a config with `model`, `augment.views` and `swav.{num_prototypes, temperature,
  epsilon, sinkhorn_iters, crops_for_assign, num_global_crops, freeze_prototypes_steps, queue_length,
  queue_start_step}`.

  Example:
    >>> from configs import swav as swav_config
    >>> config = swav_config.get_config("smoke")  # 2 global crops of 40 samples, 4 local ones of 20
    >>> rl.methods.base.describe(make(config), view_sizes=config.augment.view_sizes)
    {'params': ['encoder', 'head'], 'state': ['batch_stats', 'queue', 'queue_count', 'queue_ptr', 'step'], 'metrics':
     ['queue_in_use', 'swav'], 'embedding': (8, 16)}
  """
  cfg = config.swav
  num_views = len(config.augment.views)
  num_global = int(cfg.num_global_crops)
  assign = tuple(int(c) for c in cfg.crops_for_assign)
  if any(not 0 <= a < num_global for a in assign):
    raise ValueError(f"config.swav.crops_for_assign must be global crop ids in [0, {num_global}); got {assign}.")
  queue_length = int(cfg.queue_length)
  kwargs = dict(num_crops=num_views, crops_for_assign=assign, temperature=float(cfg.temperature),
                epsilon=float(cfg.epsilon), sinkhorn_iters=int(cfg.sinkhorn_iters))

  def init_queue(params, state):
    del params, state
    if not queue_length:
      return {}
    out_dim = int(config.model.projector_kwargs.out_dim)
    return {"queue": jnp.zeros((len(assign), queue_length, out_dim), jnp.float32),
            "queue_ptr": jnp.zeros((), jnp.int32), "queue_count": jnp.zeros((), jnp.int32)}

  def loss_fn(net, params, state, out, batch, *, axis_name=None):
    del net
    _, (z, scores) = out
    if not queue_length:
      value = losses.swav(scores, axis_name=axis_name, **kwargs)
      return value, {"swav": value}, state
    b = batch["views"][0].shape[0]
    queue_scores = _local_queue_scores(state["queue"], params["head"]["prototypes"], axis_name)
    full = (state["queue_count"] >= queue_length) & (state["step"] >= int(cfg.queue_start_step))
    value = jax.lax.cond(full, lambda: losses.swav(scores, queue_scores=queue_scores, axis_name=axis_name, **kwargs),
                         lambda: losses.swav(scores, axis_name=axis_name, **kwargs))
    new_state = {**state, **_push(state, z, assign, b, axis_name, int(cfg.queue_start_step))}
    return value, {"queue_in_use": full.astype(jnp.float32), "swav": value}, new_state

  return multicrop.make_method(config, loss_fn, name="swav", head=build_head, num_global=num_global,
                               frozen_part="prototypes", freeze_steps=int(cfg.freeze_prototypes_steps),
                               init_state=init_queue)


def _local_queue_scores(queue, prototype_params, axis_name):
  """Scores of this device's 1/D slice of the replicated queue against the current prototypes (no gradient)."""
  if axis_name is not None:
    devices = jax.lax.psum(1, axis_name)
    length = queue.shape[1]
    if length % devices:
      raise ValueError(f"config.swav.queue_length={length} must be divisible by the device count {devices}.")
    n = length // devices
    queue = jax.lax.dynamic_slice_in_dim(queue, jax.lax.axis_index(axis_name) * n, n, axis=1)
  return jax.lax.stop_gradient(jax.vmap(lambda q: _scores(q, prototype_params))(queue))


def _push(state, z, assign, b, axis_name, start_step):
  """The queue after pushing the assign crops' projections (in global batch order), from `start_step` on."""
  z = jax.lax.stop_gradient(z).astype(jnp.float32)
  queues, ptr = [], state["queue_ptr"]
  for i, a in enumerate(assign):  # every assign crop's queue moves by the same global batch, so one pointer
    q, ptr = losses.queue_push(state["queue"][i], state["queue_ptr"], z[a * b:(a + 1) * b], axis_name=axis_name)
    queues.append(q)
  pushed = b * (jax.lax.psum(1, axis_name) if axis_name is not None else 1)
  on = state["step"] >= start_step
  return {"queue": jnp.where(on, jnp.stack(queues), state["queue"]),
          "queue_ptr": jnp.where(on, ptr, state["queue_ptr"]),
          "queue_count": jnp.where(on, jnp.minimum(state["queue_count"] + pushed, state["queue"].shape[1]),
                                   state["queue_count"])}
