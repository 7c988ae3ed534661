"""MoCo v2 (Chen et al. 2020), symmetrised as solo-learn's MoCo V2+. `--config configs/moco_v2.py:VARIANT`,
VARIANT in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/moco_v2.py", variant, VARIANTS)
  c = common.base()
  c.method = "moco_v2"
  c.moco_v2 = ml_collections.ConfigDict()
  c.moco_v2.temperature = 0.2  # MoCo v2 (https://arxiv.org/abs/2003.04297), Sec. 3
  c.moco_v2.queue_size = 65536  # MoCo's K on ImageNet
  # Key-encoder momentum: cosine from base to final over total_steps; base == final is MoCo's constant 0.999.
  c.moco_v2.base_momentum = 0.999
  c.moco_v2.final_momentum = 0.999

  if variant in ("mnist1d", "smoke"):
    common.mnist1d(c)
    # MoCo v2's MLP head has no BatchNorm (Linear-ReLU-Linear).
    c.model.projector_kwargs.use_bn = False
    # mnist1d has 4000 training signals: a queue of half of them keeps the negatives fresh; solo-learn's CIFAR
    # momentum schedule suits a short run.
    c.moco_v2.queue_size = 2048
    c.moco_v2.base_momentum = 0.99
  elif variant == "digits":
    common.digits(c)
    c.model.projector_kwargs.use_bn = False
    c.moco_v2.queue_size = 1024  # about 1800 training images
    c.moco_v2.base_momentum = 0.99
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's MoCo V2+ CIFAR recipe (scripts/pretrain/cifar/mocov2plus.yaml, commit 9187ea3): ResNet-18,
    # projector 2048-256 without BN, queue 32768, temperature 0.2, momentum 0.99 -> 0.999 (cosine), SGD lr 0.3
    # (* batch/256), wd 1e-4, batch 256, 1000 epochs, warmup-cosine; symmetric views
    # (augmentations/symmetric_weak.yaml): jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, blur 0.5, flip 0.5.
    common.cifar(c, variant)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=256, use_bn=False))
    c.moco_v2.queue_size = 32768
    c.moco_v2.base_momentum = 0.99
    c.augment.overrides = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                                                         blur_p=0.5, mean=common.CIFAR_MEAN, std=common.CIFAR_STD))
    c.optim.name = "sgd"
    c.optim.lr = 0.3
    c.optim.weight_decay = 1e-4
  elif variant == "imagenet":
    # solo-learn's MoCo V2+ ImageNet recipe (scripts/pretrain/imagenet/mocov2plus.yaml, commit 9187ea3): ResNet-50,
    # projector 2048-256 without BN, queue 65536, temperature 0.2, momentum 0.99 -> 0.999 (cosine), SGD lr 0.3 *
    # batch/256, wd 3e-5, batch 64 x 2 devices = 128, warmup-cosine (10 epochs; it trains 400 epochs);
    # symmetric views (augmentations/symmetric_weak.yaml): jitter 0.4/0.4/0.4/0.1 p 0.8, grey 0.2, blur 0.5, flip.
    common.imagenet(c, batch_size=128)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=256, use_bn=False))
    c.moco_v2.base_momentum = 0.99
    c.augment.overrides = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1))
    c.optim.name = "sgd"
    c.optim.lr = 0.3
    c.optim.weight_decay = 3e-5

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8, use_bn=False))
    c.moco_v2.queue_size = 100  # not a multiple of the batch: pushes wrap around
  return c
