"""VICReg (Bardes, Ponce & LeCun 2022). `--config configs/vicreg.py:VARIANT`, VARIANT in mnist1d (default),
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
    raise ValueError(f"configs/vicreg.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "vicreg"
  c.vicreg = ml_collections.ConfigDict()
  # The paper's lambda, mu, nu (and solo-learn's sim/var/cov_loss_weight).
  c.vicreg.sim_coeff = 25.0
  c.vicreg.std_coeff = 25.0
  c.vicreg.cov_coeff = 1.0

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    # A small version of the wide BN expander (the paper: 8192-8192-8192).
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
    # solo-learn's VICReg CIFAR recipe (scripts/pretrain/cifar/vicreg.yaml): projector 2048-2048-2048, weights
    # 25/25/1; LARS, lr 0.3 * batch/256, wd 1e-4, batch 256, 1000 epochs, warmup_cosine (10 warm-up epochs). Not
    # expressible here: LARS eta 0.02 and clip_lr (optax.lars uses trust coefficient 1e-3). Symmetric views:
    # crop 0.2-1, jitter (0.4, 0.4, 0.2, 0.1) p 0.8 (torchvision, multiplicative brightness), grayscale 0.2, no
    # blur, solarisation 0.1, flip 0.5: our BYOL view-1 recipe with these fields replaced.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048, 2048), out_dim=2048))
    c.augment.views = ("byol_view1", "byol_view1")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(
        crop_scale=(0.2, 1.0), blur_p=0.0, solarize_p=0.1, brightness_mode="multiplicative",
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))
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
