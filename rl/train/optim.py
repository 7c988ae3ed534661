"""Optimizers from `config.optim`: SGD with momentum, AdamW and LARS (optax), warm-up + cosine schedule, and
weight decay that skips biases and normalisation parameters (every parameter with fewer than two dimensions)."""
from __future__ import annotations

import jax
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adamw", "lars")


def decay_mask(params):
  """True for weights that get weight decay (kernels), False for biases and BatchNorm/LayerNorm scales."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warm-up to `lr * batch_size / 256` (the linear scaling rule, if `scale_by_batch`), then cosine to 0."""
  peak = config.optim.lr * (config.batch_size / 256 if config.optim.scale_by_batch else 1.0)
  warmup = min(config.optim.warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
      end_value=0.0)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """The optimizer named by `config.optim.name`."""
  opt = config.optim
  schedule = learning_rate_schedule(config, total_steps)
  if opt.name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(opt.weight_decay, mask=decay_mask),
                     optax.sgd(schedule, momentum=opt.momentum, nesterov=False))
  elif opt.name == "adamw":
    tx = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay, mask=decay_mask)
  elif opt.name == "lars":
    # As in SimCLR/BYOL: neither weight decay nor the trust ratio touches biases and BN parameters.
    tx = optax.lars(schedule, weight_decay=opt.weight_decay, weight_decay_mask=decay_mask,
                    trust_ratio_mask=decay_mask, momentum=opt.momentum)
  else:
    raise ValueError(f"config.optim.name: unknown optimizer {opt.name!r}; known optimizers: {', '.join(OPTIMIZERS)}.")
  if opt.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx
