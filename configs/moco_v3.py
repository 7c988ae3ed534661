"""MoCo v3 (Chen, Xie & He 2021) with a ResNet. `--config configs/moco_v3.py:VARIANT`, VARIANT in mnist1d (default),
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
    raise ValueError(f"configs/moco_v3.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "moco_v3"
  c.moco_v3 = ml_collections.ConfigDict()
  # tau: the official code's default (main_moco.py --moco-t) is 1.0 for ResNet-50 and 0.2 for ViTs; solo-learn
  # uses 0.2 with ResNets on CIFAR and ImageNet-100, which we follow.
  c.moco_v3.temperature = 0.2
  c.moco_v3.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
  # Momentum: cosine from 0.99 to 1 (official main_moco.py: --moco-m 0.99 --moco-m-cos).
  c.moco_v3.base_momentum = 0.99
  c.moco_v3.final_momentum = 1.0

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64, last_bn=True))
    c.moco_v3.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
    c.augment.views = ("mnist1d", "mnist1d")
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
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128, last_bn=True))
    c.moco_v3.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's MoCo V3 CIFAR recipe (scripts/pretrain/cifar/mocov3.yaml, commit 9187ea3): ResNet-18, projector
    # 4096-256 ending in a BN without affine, predictor 4096-256, temperature 0.2, momentum 0.99 -> 1.0 (cosine),
    # LARS lr 0.3 (* batch/256; eta 0.02, clip_lr, bias and norm excluded), wd 1e-6, batch 256, 1000 epochs,
    # warmup-cosine; asymmetric views (augmentations/asymmetric.yaml): jitter 0.4/0.4/0.2/0.1 p 0.8, grayscale
    # 0.2, no blur, solarisation 0.2 on the second view only; brightness multiplicative (torchvision).
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256, last_bn=True))
    c.moco_v3.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
    c.moco_v3.temperature = 0.2
    c.moco_v3.base_momentum = 0.99
    c.moco_v3.final_momentum = 1.0
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, brightness_mode="multiplicative",
                                                         mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-6
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8, last_bn=True))
    c.moco_v3.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
