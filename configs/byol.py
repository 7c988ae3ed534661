"""BYOL (Grill et al. 2020). `--config configs/byol.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, smoke."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/byol.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "byol"
  c.byol = ml_collections.ConfigDict()
  # The predictor: an MLP with BatchNorm in its hidden layer; its output width must equal the projector's.
  c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
  # Target momentum m: cosine from base_momentum to final_momentum over total_steps (BYOL Sec. 3.2: 0.996 -> 1).
  c.byol.base_momentum = 0.996
  c.byol.final_momentum = 1.0

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
    c.augment.views = ("mnist1d", "mnist1d")
    c.augment.overrides = ml_collections.ConfigDict(dataclasses.asdict(augment.MNIST1D))
    c.batch_size = 256
    c.total_steps = 5000
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    # A short run: start the target at solo-learn's CIFAR value (0.99) rather than ImageNet's 0.996.
    c.byol.base_momentum = 0.99
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
  elif variant == "digits":
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
    c.byol.base_momentum = 0.99
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's BYOL CIFAR recipe (scripts/pretrain/cifar/byol.yaml, commit 9187ea3): ResNet-18, projector
    # 4096-256 (Linear-BN-ReLU-Linear), predictor 4096-256, momentum 0.99 -> 1.0 (cosine), LARS lr 1.0 * batch/256
    # (eta 0.02, clip_lr, bias and norm excluded), wd 1e-5, batch 256, 1000 epochs, warmup-cosine; asymmetric
    # views (augmentations/asymmetric.yaml): jitter 0.4/0.4/0.2/0.1 p 0.8, grayscale 0.2, no blur, solarisation
    # 0.2 on the second view only. Brightness is multiplicative there (torchvision).
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
    c.byol.base_momentum = 0.99
    c.byol.final_momentum = 1.0
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, brightness_mode="multiplicative",
                                                         mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "lars"
    c.optim.lr = 1.0
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-5
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
