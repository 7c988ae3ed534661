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
from rl.methods.simclr import EncoderProjector, build_network

BANK_KEYS = ("memory_bank", "nce_normalizer")


def _normalize(z: jax.Array) -> jax.Array:
  z = z.astype(jnp.float32)
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def _split(state):
  """(network collections, memory-bank state) of a method_state."""
  return ({k: v for k, v in state.items() if k not in BANK_KEYS},
          {k: v for k, v in state.items() if k in BANK_KEYS})


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The NPID `Method` for a config with `model`, `num_train_examples` and
  `npid.{temperature, momentum, num_negatives}`.

  Example:
    >>> from configs import npid as npid_config
    >>> config = npid_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> config.num_train_examples = 64  # the trainer sets it from the data; its banks have one row each
    >>> method = rl.methods.npid.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats', 'memory_bank'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x,), "index": np.arange(8)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['npid'], (8, 16))
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
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    net_key, bank_key = jax.random.split(key)
    variables = eval_net.init(net_key, x, train=False)
    params = variables.pop("params")
    _, z = jax.eval_shape(lambda v: eval_net.apply({"params": params, **v}, x, train=False), variables)
    bank = _normalize(jax.random.normal(bank_key, (num_examples, z.shape[-1]), jnp.float32))
    state = {**variables, "memory_bank": bank}
    if num_negatives is not None:
      state["nce_normalizer"] = jnp.float32(-1.0)  # estimated from the first batch
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    net_state, bank_state = _split(state)
    (v,) = batch["views"]
    idx = batch["index"]
    net = build_network(config, axis_name=axis_name)
    (h, z), new_net_state = net.apply({"params": params, **net_state}, v, train=True, mutable=list(net_state))
    bank = bank_state["memory_bank"]
    new_state = dict(new_net_state)
    if num_negatives is None:
      value = losses.npid(z, idx, bank, temperature=temperature, axis_name=axis_name)
    else:
      old_z = bank_state["nce_normalizer"]
      estimate = losses.npid_nce_normalizer(z, idx, bank, temperature=temperature, num_negatives=num_negatives,
                                            key=key, axis_name=axis_name)
      nce_z = jnp.where(old_z > 0, old_z, estimate)  # fixed after the first step, as lemniscate's NCEAverage
      value = losses.npid(z, idx, bank, temperature=temperature, num_negatives=num_negatives, key=key,
                          nce_normalizer=nce_z, axis_name=axis_name)
      new_state["nce_normalizer"] = nce_z
    new_state["memory_bank"] = losses.memory_bank_update(bank, z, idx, momentum=momentum, axis_name=axis_name)
    aux = {"metrics": {"npid": value}, "features": jax.lax.stop_gradient(h)}
    return value, (new_state, aux)

  def embed(params, state, x):
    net_state, _ = _split(state)
    return eval_net.apply({"params": params, **net_state}, x, method=EncoderProjector.encode)

  return base.Method(name="npid", num_views=1, init=init, loss=loss, embed=embed)
