"""SimSiam (Chen & He 2021). `--config configs/simsiam.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/simsiam.py", variant, VARIANTS)
  c = common.base()
  c.method = "simsiam"
  c.simsiam = ml_collections.ConfigDict()
  # The predictor: a bottleneck MLP (BN in the hidden layer, none on the output) whose output width equals the
  # projector's (paper Sec. 4: 2048 -> 512 -> 2048).
  c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=2048))

  if variant in ("mnist1d", "smoke"):
    common.mnist1d(c)
    # SimSiam's projector ends with a BN without affine parameters.
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=128, last_bn=True))
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(64,), out_dim=128))
  elif variant == "digits":
    common.digits(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128, last_bn=True))
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(64,), out_dim=128))
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's SimSiam CIFAR recipe (scripts/pretrain/cifar/simsiam.yaml, commit 9187ea3): ResNet-18, projector
    # 2048-2048-2048 with a last BN (Linear-BN-ReLU x2, Linear, BN without affine), predictor 512-2048, SGD lr 0.5
    # (* batch/256), wd 1e-5, batch 256, 1000 epochs, warmup-cosine; symmetric views
    # (augmentations/symmetric_weak.yaml): jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, blur 0.5, flip 0.5.
    # (The paper's own CIFAR setting is SGD lr 0.03 * batch/256, wd 5e-4, 800 epochs, a 2-layer projector.)
    common.cifar(c, variant)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048, 2048), out_dim=2048,
                                                              last_bn=True))
    c.augment.overrides = ml_collections.ConfigDict(dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                                                         blur_p=0.5, mean=common.CIFAR_MEAN, std=common.CIFAR_STD))
    c.optim.name = "sgd"
    c.optim.lr = 0.5
    c.optim.weight_decay = 1e-5
  elif variant == "imagenet":
    # solo-learn has no ImageNet-1k SimSiam script; its ImageNet-100 one (scripts/pretrain/imagenet-100/simsiam.yaml,
    # commit 9187ea3, with augmentations/asymmetric.yaml): projector 2048-2048-2048 with a last BN, predictor
    # 512-2048, SGD lr 0.5 * batch/256, wd 1e-5, batch 2 x 128, warmup-cosine (10 epochs); asymmetric views:
    # jitter 0.4/0.4/0.2/0.1 p 0.8 (torchvision: multiplicative brightness), grey 0.2, blur 1.0 / 0.1,
    # solarisation 0.0 / 0.2, flip 0.5. (The paper's ImageNet setting, Sec. 4: SGD lr 0.05 * batch/256, wd 1e-4,
    # batch 512, 100 epochs without warm-up, a 3-layer projector of 2048.)
    common.imagenet(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048, 2048), out_dim=2048,
                                                              last_bn=True))
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.overrides.brightness_mode = "multiplicative"
    c.optim.name = "sgd"
    c.optim.lr = 0.5
    c.optim.weight_decay = 1e-5

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8, last_bn=True))
    c.simsiam.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4,), out_dim=8))
  return c
