"""BYOL (Grill et al. 2020). `--config configs/byol.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/byol.py", variant, VARIANTS)
  c = common.base()
  c.method = "byol"
  c.byol = ml_collections.ConfigDict()
  # The predictor: an MLP with BatchNorm in its hidden layer; its output width must equal the projector's.
  c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
  # Target momentum m: cosine from base_momentum to final_momentum over total_steps (BYOL Sec. 3.2: 0.996 -> 1).
  c.byol.base_momentum = 0.996
  c.byol.final_momentum = 1.0

  if variant in ("mnist1d", "smoke"):
    common.mnist1d(c)
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
    # A short run: start the target at solo-learn's CIFAR value (0.99) rather than ImageNet's 0.996.
    c.byol.base_momentum = 0.99
  elif variant == "digits":
    common.digits(c)
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
    c.byol.base_momentum = 0.99
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's BYOL CIFAR recipe (scripts/pretrain/cifar/byol.yaml, commit 9187ea3): ResNet-18, projector
    # 4096-256 (Linear-BN-ReLU-Linear), predictor 4096-256, momentum 0.99 -> 1.0 (cosine), LARS lr 1.0 * batch/256
    # (eta 0.02, clip_lr, bias and norm excluded), wd 1e-5, batch 256, 1000 epochs, warmup-cosine; asymmetric
    # views (augmentations/asymmetric.yaml): jitter 0.4/0.4/0.2/0.1 p 0.8, grayscale 0.2, no blur, solarisation
    # 0.2 on the second view only. Brightness is multiplicative there (torchvision).
    common.cifar(c, variant)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
    c.byol.base_momentum = 0.99
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.overrides.brightness_mode = "multiplicative"
    c.optim.lr = 1.0
    c.optim.weight_decay = 1e-5
  elif variant == "imagenet":
    # solo-learn's BYOL ImageNet recipe (scripts/pretrain/imagenet/byol.yaml, commit 9187ea3): ResNet-50, projector
    # 4096-256, predictor 4096-256, momentum 0.99 -> 1.0 (cosine), LARS lr 0.45 * batch/256 (eta 0.001, no clip_lr,
    # bias and norm excluded), wd 1e-6, batch 64 x 2 devices x 16 accumulated = 2048 (solo-learn multiplies the lr
    # by the accumulation too: solo/args/pretrain.py, solo/methods/base.py), warmup-cosine (10 epochs); asymmetric
    # views (augmentations/asymmetric.yaml): jitter 0.4/0.4/0.2/0.1 p 0.8 with torchvision's multiplicative
    # brightness, grey 0.2, blur 1.0 / 0.1, solarisation 0.0 / 0.2, flip 0.5.
    common.imagenet(c, batch_size=2048)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
    c.byol.base_momentum = 0.99
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.overrides.brightness_mode = "multiplicative"
    c.optim.lr = 0.45
    c.optim.weight_decay = 1e-6

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
    c.byol.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
