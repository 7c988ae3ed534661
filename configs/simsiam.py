"""SimSiam (Chen & He 2021). `--config configs/simsiam.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
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
    raise ValueError(f"configs/simsiam.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "simsiam"
  c.simsiam = ml_collections.ConfigDict()
  # The predictor: a bottleneck MLP (BN in the hidden layer, none on the output) whose output width equals the
  # projector's (paper Sec. 4: 2048 -> 512 -> 2048).
  c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=2048))

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    # SimSiam's projector ends with a BN without affine parameters.
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=128, last_bn=True))
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(64,), out_dim=128))
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
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(64,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's SimSiam CIFAR recipe (scripts/pretrain/cifar/simsiam.yaml, commit 9187ea3): ResNet-18, projector
    # 2048-2048-2048 with a last BN (Linear-BN-ReLU x2, Linear, BN without affine), predictor 512-2048, SGD lr 0.5
    # (* batch/256), wd 1e-5, batch 256, 1000 epochs, warmup-cosine; symmetric views
    # (augmentations/symmetric_weak.yaml): jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, blur 0.5, flip 0.5.
    # (The paper's own CIFAR setting is SGD lr 0.03 * batch/256, wd 5e-4, 800 epochs, a 2-layer projector.)
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048, 2048), out_dim=2048,
                                                              last_bn=True))
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=2048))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                                                         blur_p=0.5, mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "sgd"
    c.optim.lr = 0.5
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-5
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8, last_bn=True))
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4,), out_dim=8))
  return c
