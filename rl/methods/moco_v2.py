"""MoCo v2: queries from the online encoder+projector against keys from a momentum encoder and a queue of keys.

Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive Learning", 2020,
https://arxiv.org/abs/2003.04297 (MoCo, He et al. 2020, https://arxiv.org/abs/1911.05722, plus an MLP head,
temperature 0.2 and stronger augmentation). Symmetrised as solo-learn's MoCo V2+ (`solo/methods/mocov2plus.py`,
commit 9187ea3): one queue per view, and

    L = (moco(q1, k2, queue[1]) + moco(q2, k1, queue[0])) / 2,

after which the normalised keys of view v are pushed into queue[v] (keys of every device, in global batch order,
through `losses.queue_push`). The key encoder is the EMA of the online encoder and projector; its momentum follows
a cosine from `base_momentum` to `final_momentum` (solo-learn's CIFAR setting 0.99 -> 0.999; `base == final` gives
the paper's constant 0.999). The original MoCo's shuffled BatchNorm is replaced by cross-device BatchNorm over the
global batch (solo-learn's `sync_batchnorm: True`); the query network sees both views as one batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import ema_target


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The MoCo v2 `Method` for a config with `model`, `total_steps` and `moco_v2.{temperature, queue_size,
  base_momentum, final_momentum}`.

  Example:
    >>> from configs import moco_v2 as moco_v2_config
    >>> rl.methods.base.describe(make(moco_v2_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'projector'], 'state': ['batch_stats', 'queue', 'queue_ptr', 'target'], 'metrics':
     ['moco'], 'embedding': (8, 16)}
  """
  cfg = config.moco_v2
  temperature = float(cfg.temperature)

  def init_queue(key, shapes):
    # Random unit keys until the queue fills, as in MoCo (randn, then normalised); one queue per view.
    queue = jax.random.normal(key, (2, int(cfg.queue_size), shapes.z[0].shape[-1]), jnp.float32)
    return {"queue": losses.l2_normalize(queue), "queue_ptr": jnp.zeros((), jnp.int32)}

  def loss_fn(out, state, batch, key, *, axis_name=None):
    del key  # deterministic given the views
    q1, q2 = out.z
    k1, k2 = (losses.l2_normalize(k.astype(jnp.float32)) for k in ema_target.target_projections(
        config, state["target"], batch["views"], axis_name=axis_name))
    queue = jax.lax.stop_gradient(state["queue"])
    value = (losses.moco(q1, k2, queue[1], temperature=temperature, axis_name=axis_name)
             + losses.moco(q2, k1, queue[0], temperature=temperature, axis_name=axis_name)) / 2
    return value, {"moco": value}, {**state, **push_keys(state, k1, k2, axis_name=axis_name)}

  return ema_target.make(config, name="moco_v2", loss_fn=loss_fn, init_state=init_queue,
                         base_momentum=cfg.base_momentum, final_momentum=cfg.final_momentum)


def push_keys(state, k1: jax.Array, k2: jax.Array, *, axis_name: str | None) -> dict[str, jax.Array]:
  """The queues after pushing each view's normalised keys into its own queue (global batch order).

  Returns {'queue': [2, K, d], 'queue_ptr': the shared pointer}.

  Example:
    >>> state = {"queue": jnp.zeros((2, 4, 2)), "queue_ptr": jnp.int32(0)}
    >>> new = push_keys(state, jnp.ones((2, 2)), -jnp.ones((2, 2)), axis_name=None)
    >>> new["queue"][:, :, 0].tolist(), int(new["queue_ptr"])  # rows 0-1 of each view's queue, pointer at 2
    ([[1.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]], 2)
  """
  queue0, ptr = losses.queue_push(state["queue"][0], state["queue_ptr"], k1, axis_name=axis_name)
  queue1, _ = losses.queue_push(state["queue"][1], state["queue_ptr"], k2, axis_name=axis_name)
  return {"queue": jnp.stack([queue0, queue1]), "queue_ptr": ptr}
