"""Optimizers from `config.optim`: SGD with momentum, AdamW and LARS (optax), warm-up + cosine schedule, and
weight decay that skips biases and normalisation parameters (every parameter with fewer than two dimensions)."""
from __future__ import annotations

import functools

import jax
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adamw", "lars")


def decay_mask(params):
  """True for weights that get weight decay (kernels), False for biases and BatchNorm/LayerNorm scales.

  Example:
    >>> params = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}, "bn": {"scale": jnp.ones(3)}}
    >>> decay_mask(params)
    {'bn': {'scale': False}, 'dense': {'bias': False, 'kernel': True}}
  """
  return jax.tree.map(lambda p: p.ndim > 1, params)


def peak_lr(config: ml_collections.ConfigDict) -> float:
  """`config.optim.lr`, times batch_size / 256 with `config.optim.scale_by_batch` (the linear scaling rule).

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("cifar10")  # LARS at 0.4 * batch / 256, batch 256
    >>> config.optim.lr, config.batch_size, peak_lr(config)
    (0.4, 256, 0.4)
    >>> config.batch_size = 1024
    >>> peak_lr(config)
    1.6
  """
  return config.optim.lr * (config.batch_size / 256 if config.optim.scale_by_batch else 1.0)


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warm-up to `lr * batch_size / 256` (the linear scaling rule, if `scale_by_batch`), then cosine to 0.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("mnist1d")
    >>> config.optim.lr, config.optim.warmup_steps, config.batch_size, config.optim.scale_by_batch
    (0.004, 100, 128, False)
    >>> schedule = learning_rate_schedule(config, total_steps=1000)
    >>> [round(float(schedule(s)), 6) for s in (0, 50, 100, 550, 1000)]
    [0.0, 0.002, 0.004, 0.002, 0.0]
    >>> config.optim.scale_by_batch = True  # peak 0.004 * 128 / 256
    >>> round(float(learning_rate_schedule(config, total_steps=1000)(100)), 6)
    0.002

  Args:
    config: the run's config (`config.optim.lr`, `.warmup_steps`, `.scale_by_batch`, `config.batch_size`).
    total_steps: the length of the run; the warm-up is cut to `total_steps - 1` steps if it is longer.

  Returns:
    An optax schedule: step -> learning rate.
  """
  peak = peak_lr(config)
  warmup = min(config.optim.warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
      end_value=0.0)


def _optimizer(opt: ml_collections.ConfigDict, lr) -> optax.GradientTransformation:
  if opt.name == "sgd":
    return optax.chain(optax.add_decayed_weights(opt.weight_decay, mask=decay_mask),
                       optax.sgd(lr, momentum=opt.momentum, nesterov=False))
  if opt.name == "adamw":
    return optax.adamw(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay, mask=decay_mask)
  # LARS as in SimCLR/BYOL: neither weight decay nor the trust ratio touches biases and BN parameters.
  return optax.lars(lr, weight_decay=opt.weight_decay, weight_decay_mask=decay_mask, trust_ratio_mask=decay_mask,
                    momentum=opt.momentum)


def _lr_labels(params, *, constant: tuple[str, ...]):
  """'constant' for every leaf of the top-level parameter groups named in `constant`, else 'scheduled'."""
  unknown = sorted(set(constant) - set(params))
  if unknown:
    raise ValueError(f"config.optim.constant_lr_params: unknown parameter groups {unknown}; the model has "
                     f"{sorted(params)}.")
  return {k: jax.tree.map(lambda _, k=k: "constant" if k in constant else "scheduled", v) for k, v in params.items()}


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """The optimizer named by `config.optim.name`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> config.optim.name
    'adamw'
    >>> tx = make_optimizer(config, total_steps=10)
    >>> params = {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)}
    >>> updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    >>> jax.tree.map(lambda u: u.shape, updates)
    {'bias': (2,), 'kernel': (2, 2)}
    >>> config.optim.name = "adamm"
    >>> make_optimizer(config, total_steps=10)
    Traceback (most recent call last):
    ValueError: config.optim.name: unknown optimizer 'adamm'; known optimizers: sgd, adamw, lars.

  Args:
    config: the run's config (`config.optim`: name, weight decay, momentum or betas, `grad_clip_norm`, and
      `constant_lr_params`: top-level parameter groups, e.g. `("predictor",)`, that learn at the schedule's peak lr
      throughout instead of following the warm-up and cosine, as SimSiam's predictor).
    total_steps: the length of the run, for `learning_rate_schedule`.

  Returns:
    An optax transformation: weight decay masked by `decay_mask`, the schedule, and a global-norm clip first
    when `config.optim.grad_clip_norm` is set.

  Raises:
    ValueError: an unknown `config.optim.name`.
  """
  opt = config.optim
  if opt.name not in OPTIMIZERS:
    raise ValueError(f"config.optim.name: unknown optimizer {opt.name!r}; known optimizers: {', '.join(OPTIMIZERS)}.")
  schedule = learning_rate_schedule(config, total_steps)
  tx = _optimizer(opt, schedule)
  constant = tuple(opt.get("constant_lr_params", ()) or ())
  if constant:
    # SimSiam (Chen & He 2021, Sec. 4 and Table 1): the predictor learns at a fixed lr, the peak of the schedule.
    tx = optax.multi_transform({"scheduled": tx, "constant": _optimizer(opt, peak_lr(config))},
                               functools.partial(_lr_labels, constant=constant))
  if opt.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx
