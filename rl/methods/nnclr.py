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
from rl.methods import base
from rl.methods import two_view


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The NNCLR `Method` for a config with `model` and `nnclr.{temperature, support_size, predictor_kwargs}`.

  Example:
    >>> from configs import nnclr as nnclr_config
    >>> rl.methods.base.describe(make(nnclr_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'predictor', 'projector'], 'state': ['batch_stats', 'ptr', 'support'], 'metrics':
     ['nnclr'], 'embedding': (8, 16)}
  """
  temperature = float(config.nnclr.temperature)
  support_size = int(config.nnclr.support_size)

  def init_support(key, shapes):
    z, p = shapes.z[0], shapes.p[0]
    if p.shape[-1] != z.shape[-1]:
      raise ValueError(f"config.nnclr.predictor_kwargs.out_dim must equal the projector's out_dim {z.shape[-1]}; "
                       f"got {p.shape[-1]}.")
    support = jax.random.normal(key, (support_size, z.shape[-1]), jnp.float32)
    return {"support": _normalize(support), "ptr": jnp.zeros((), jnp.int32)}

  def loss_fn(out, state, batch, key, *, axis_name=None):
    del batch, key  # deterministic given the views and the support set
    (z1, z2), (p1, p2) = out.z, out.p
    value = losses.nnclr(z1, z2, state["support"], p1=p1, p2=p2, temperature=temperature, axis_name=axis_name)
    support, ptr = losses.queue_push(state["support"], state["ptr"], _normalize(z1), axis_name=axis_name)
    return value, {"nnclr": value}, {**state, "support": support, "ptr": ptr}

  return two_view.make_method(config, loss_fn, name="nnclr", predictor_kwargs=config.nnclr.predictor_kwargs,
                              init_state=init_support)


def _normalize(z):
  return losses.l2_normalize(z.astype(jnp.float32))
