"""SimCLR (Chen et al. 2020). `--config configs/simclr.py:VARIANT`, VARIANT in mnist1d (default), digits,
cifar10, cifar100, imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/simclr.py", variant, VARIANTS)
  c = common.base()
  c.method = "simclr"
  c.simclr = ml_collections.ConfigDict()
  c.simclr.temperature = 0.1

  if variant in ("mnist1d", "smoke"):
    common.mnist1d(c)
  elif variant == "digits":
    common.digits(c)
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's SimCLR CIFAR recipe (scripts/pretrain/cifar/simclr.yaml): LARS, lr 0.4 * batch/256, wd 1e-5,
    # temperature 0.2, projector 2048-2048-256, batch 256, 1000 epochs; the SimCLR colour recipe without blur.
    common.cifar(c, variant)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=256))
    c.simclr.temperature = 0.2
    c.optim.lr = 0.4
    c.optim.weight_decay = 1e-5
  elif variant == "imagenet":
    # solo-learn has no ImageNet-1k SimCLR script; its ImageNet-100 one (scripts/pretrain/imagenet-100/simclr.yaml,
    # commit 9187ea3, with augmentations/symmetric.yaml): LARS lr 0.3 * batch/256, wd 1e-4, temperature 0.2,
    # projector Linear(4096)-ReLU-Linear(512) without BN (solo/methods/simclr.py), batch 2 x 128, warmup-cosine
    # (10 epochs); views: the SimCLR recipe (jitter 0.8/0.8/0.8/0.2 p 0.8, grey 0.2, blur 0.5, flip). Not
    # expressible: its LARS eta 0.02 with clip_lr (optax.lars: trust coefficient 1e-3, no clipping). (The
    # paper's ImageNet default, Sec. 2.3 "Default setting": batch 4096, LARS lr 0.3 * batch/256, wd 1e-6, a
    # 128-d projection.)
    common.imagenet(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=512, use_bn=False))
    c.simclr.temperature = 0.2
    c.optim.lr = 0.3
    c.optim.weight_decay = 1e-4

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
