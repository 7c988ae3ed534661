"""MoCo v2 (Chen et al. 2020), symmetrised as solo-learn's MoCo V2+. `--config configs/moco_v2.py:VARIANT`,
VARIANT in mnist1d (default), digits, cifar10, cifar100, smoke."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/moco_v2.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "moco_v2"
  c.moco_v2 = ml_collections.ConfigDict()
  c.moco_v2.temperature = 0.2  # MoCo v2 (https://arxiv.org/abs/2003.04297), Sec. 3
  c.moco_v2.queue_size = 65536  # MoCo's K on ImageNet
  # Key-encoder momentum: cosine from base to final over total_steps; base == final is MoCo's constant 0.999.
  c.moco_v2.base_momentum = 0.999
  c.moco_v2.final_momentum = 0.999

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    # MoCo v2's MLP head has no BatchNorm (Linear-ReLU-Linear).
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64, use_bn=False))
    c.augment.views = ("mnist1d", "mnist1d")
    c.augment.overrides = ml_collections.ConfigDict(dataclasses.asdict(augment.MNIST1D))
    c.batch_size = 256
    c.total_steps = 5000
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    # mnist1d has 4000 training signals: a queue of half of them keeps the negatives fresh; solo-learn's CIFAR
    # momentum schedule suits a short run.
    c.moco_v2.queue_size = 2048
    c.moco_v2.base_momentum = 0.99
    c.moco_v2.final_momentum = 0.999
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
  elif variant == "digits":
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128, use_bn=False))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
    c.moco_v2.queue_size = 1024  # about 1800 training images
    c.moco_v2.base_momentum = 0.99
    c.moco_v2.final_momentum = 0.999
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's MoCo V2+ CIFAR recipe (scripts/pretrain/cifar/mocov2plus.yaml, commit 9187ea3): ResNet-18,
    # projector 2048-256 without BN, queue 32768, temperature 0.2, momentum 0.99 -> 0.999 (cosine), SGD lr 0.3
    # (* batch/256), wd 1e-4, batch 256, 1000 epochs, warmup-cosine; symmetric views
    # (augmentations/symmetric_weak.yaml): jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, blur 0.5, flip 0.5.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=256, use_bn=False))
    c.moco_v2.temperature = 0.2
    c.moco_v2.queue_size = 32768
    c.moco_v2.base_momentum = 0.99
    c.moco_v2.final_momentum = 0.999
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                                                         blur_p=0.5, mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "sgd"
    c.optim.lr = 0.3
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8, use_bn=False))
    c.moco_v2.queue_size = 100  # not a multiple of the batch: pushes wrap around
  return c
