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
from rl.methods import _target
from rl.methods import base
from rl.methods import simclr


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The MoCo v2 `Method` for a config with `model`, `total_steps` and `moco_v2.{temperature, queue_size,
  base_momentum, final_momentum}`.

  Example:
    >>> from configs import moco_v2 as moco_v2_config
    >>> config = moco_v2_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.moco_v2.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats', 'queue', 'queue_ptr', 'target'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['moco'], (8, 16))
  """
  cfg = config.moco_v2
  temperature = float(cfg.temperature)
  momentum = _target.cosine_schedule(config.total_steps, cfg.base_momentum, cfg.final_momentum)
  eval_net = simclr.build_network(config, axis_name=None)

  def init(key, x):
    net_key, queue_key = jax.random.split(key)
    variables = eval_net.init(net_key, x, train=False)
    params = variables.pop("params")
    state = {"batch_stats": variables.get("batch_stats", {})}
    state["target"] = _target.init_target(params, state)
    dim = int(config.model.projector_kwargs.out_dim)
    # Random unit keys until the queue fills, as in MoCo (randn, then normalised).
    state["queue"] = _normalize(jax.random.normal(queue_key, (2, int(cfg.queue_size), dim), jnp.float32))
    state["queue_ptr"] = jnp.zeros((), jnp.int32)
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # deterministic given the views
    v1, v2 = batch["views"]
    b = v1.shape[0]
    x = jnp.concatenate([v1, v2])
    net = simclr.build_network(config, axis_name)
    (h, q), new_bs = net.apply(_target.variables(params, state), x, train=True, mutable=["batch_stats"])
    k = _normalize(_target.target_projections(config, state["target"], x, axis_name=axis_name))
    k1, k2 = k[:b], k[b:]
    queue = jax.lax.stop_gradient(state["queue"])
    value = (losses.moco(q[:b], k2, queue[1], temperature=temperature, axis_name=axis_name)
             + losses.moco(q[b:], k1, queue[0], temperature=temperature, axis_name=axis_name)) / 2
    queue0, ptr = losses.queue_push(queue[0], state["queue_ptr"], k1, axis_name=axis_name)
    queue1, _ = losses.queue_push(queue[1], state["queue_ptr"], k2, axis_name=axis_name)
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {}), "queue": jnp.stack([queue0, queue1]),
                 "queue_ptr": ptr}
    aux = {"metrics": {"moco": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=simclr.EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=simclr.EncoderProjector.project)

  def update_after_step(params, state, step):
    return _target.update_target(params, state, momentum(step))

  return base.Method(name="moco_v2", num_views=2, init=init, loss=loss, embed=embed, project=project,
                     update_after_step=update_after_step)
