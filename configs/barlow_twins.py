"""Barlow Twins (Zbontar et al. 2021). `--config configs/barlow_twins.py:VARIANT`, VARIANT in mnist1d (default),
digits, cifar10, cifar100, smoke."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/barlow_twins.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "barlow_twins"
  c.barlow_twins = ml_collections.ConfigDict()
  c.barlow_twins.lambda_ = 0.0051  # the authors' script (the paper says 5e-3)
  c.barlow_twins.scale_loss = 1.0  # a factor on the whole loss (solo-learn's `scale_loss`); 1 in the paper

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    # A small version of the wide BN projector (the paper: 8192-8192-8192).
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=256))
    c.augment.views = ("mnist1d", "mnist1d")
    # Every field of the preset, so each can be overridden from the command line.
    c.augment.overrides = ml_collections.ConfigDict(dataclasses.asdict(augment.MNIST1D))
    c.batch_size = 256
    c.total_steps = 5000
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
  elif variant == "digits":
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=512))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's Barlow Twins CIFAR recipe (scripts/pretrain/cifar/barlow.yaml, with augmentations/asymmetric.yaml):
    # projector 2048-2048-2048, scale_loss 0.1, lamb 0.0051 (solo/methods/barlow_twins.py default); LARS, lr 0.3 *
    # batch/256, wd 1e-4, batch 256, 1000 epochs, warmup_cosine (10 warm-up epochs). Not expressible here: LARS
    # eta 0.02 and clip_lr (optax.lars uses trust coefficient 1e-3). Asymmetric views: crop 0.08-1, jitter
    # (0.4, 0.4, 0.2, 0.1) p 0.8 (torchvision, multiplicative brightness), grayscale 0.2, no blur, solarisation
    # 0.0 / 0.2, flip 0.5: our BYOL view recipes with blur off and multiplicative brightness.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048, 2048), out_dim=2048))
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(
        blur_p=0.0, brightness_mode="multiplicative", mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))
    c.barlow_twins.scale_loss = 0.1
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
