"""NPID: non-parametric instance discrimination against a memory bank of per-example embeddings.

Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018,
https://arxiv.org/abs/1805.01978. Every training example is its own class; the "weights" of class i are the
bank row v_i, a running average of example i's L2-normalised 128-d embedding. The network is an encoder and a
projection to `projector_kwargs.out_dim` (a single Linear layer in the paper: `hidden_dims=()`); the loss is
`rl.losses.npid` of the embeddings against the bank: the full non-parametric softmax (eq. 2) when
`npid.num_negatives` is None, or its NCE approximation (eq. 5-7) with `num_negatives` uniform noise rows. After the
loss, `rl.losses.memory_bank_update` moves the bank rows of the batch towards the new embeddings (momentum 0.5,
the paper's proximal update, sec. 3.4).

`method_state` holds the BatchNorm statistics, 'memory_bank' [num_train_examples, d] (random unit vectors at
init, as the paper and its code start; rows are indexed by `batch["index"]`) and, for NCE only,
'nce_normalizer' (Z, -1 until estimated): like the authors' code (zhirongw/lemniscate.pytorch, NCEAverage), Z is
estimated once from the first batch's noise samples with `losses.npid_nce_normalizer` and then kept fixed.
All state updates gather the global batch, so they are identical on every device.

Differences from the paper: one augmented view per step from our on-device recipes (the paper's ImageNet
augmentation is random-resized crop, colour jitter, grey-scale and flip; the trainer's `augment.views` has one
recipe); NCE noise rows are drawn uniformly with replacement (the paper's P_n is uniform too); BatchNorm
statistics are synchronised across devices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The NPID `Method` for a config with `model`, `num_train_examples` and
  `npid.{temperature, momentum, num_negatives}`.

  Example:
    >>> from configs import npid as npid_config
    >>> config = npid_config.get_config("smoke")
    >>> config.num_train_examples = 64  # the trainer sets it from the data: one bank row per example
    >>> rl.methods.base.describe(make(config))
    {'params': ['encoder', 'projector'], 'state': ['batch_stats', 'memory_bank'], 'metrics': ['npid'], 'embedding':
     (8, 16)}
  """
  if config.num_train_examples is None:
    raise ValueError("config.num_train_examples is None: NPID sizes its memory bank with it (the trainer fills it "
                     "in rl.train.loop.build; set it yourself when calling npid.make directly).")
  num_examples = int(config.num_train_examples)
  temperature = float(config.npid.temperature)
  momentum = float(config.npid.momentum)
  num_negatives = config.npid.num_negatives
  num_negatives = None if num_negatives is None else int(num_negatives)
  if num_negatives is not None and num_negatives <= 0:
    raise ValueError(f"config.npid.num_negatives must be None (full softmax) or > 0 (NCE); got {num_negatives}.")

  def init_bank(key, shapes):
    bank = jax.random.normal(key, (num_examples, shapes.z[0].shape[-1]), jnp.float32)
    state = {"memory_bank": losses.l2_normalize(bank)}
    if num_negatives is not None:
      state["nce_normalizer"] = jnp.float32(-1.0)  # estimated from the first batch
    return state

  def loss_fn(out, state, batch, key, *, axis_name=None):
    (z,), idx, bank = out.z, batch["index"], state["memory_bank"]
    state = dict(state)
    if num_negatives is None:
      value = losses.npid(z, idx, bank, temperature=temperature, axis_name=axis_name)
    else:
      old_z = state["nce_normalizer"]
      estimate = losses.npid_nce_normalizer(z, idx, bank, temperature=temperature, num_negatives=num_negatives,
                                            key=key, axis_name=axis_name)
      nce_z = jnp.where(old_z > 0, old_z, estimate)  # fixed after the first step, as lemniscate's NCEAverage
      value = losses.npid(z, idx, bank, temperature=temperature, num_negatives=num_negatives, key=key,
                          nce_normalizer=nce_z, axis_name=axis_name)
      state["nce_normalizer"] = nce_z
    state["memory_bank"] = losses.memory_bank_update(bank, z, idx, momentum=momentum, axis_name=axis_name)
    return value, {"npid": value}, state

  return two_view.make_method(config, loss_fn, name="npid", num_views=1, init_state=init_bank)
