"""NNCLR (Dwibedi et al. 2021). `--config configs/nnclr.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
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
    raise ValueError(f"configs/nnclr.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "nnclr"
  c.nnclr = ml_collections.ConfigDict()
  # The paper's ImageNet defaults: tau = 0.1 and a support set of 98304 (must be >= the global batch).
  c.nnclr.temperature = 0.1
  c.nnclr.support_size = 98304
  # The predictor (an MLPProjector: Linear-BN-ReLU-Linear, no last BN); out_dim = the projector's out_dim.
  c.nnclr.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))

  if variant in ("mnist1d", "smoke"):
    # The SimCLR mnist1d recipe (configs/simclr.py) with NNCLR's heads; mnist1d has 4000 training examples,
    # so the support set is a quarter of them (the paper's 98304 is 7.7% of ImageNet).
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256, 256), out_dim=64, last_bn=True))
    c.nnclr.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=64))
    c.nnclr.support_size = 1024
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
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512, 512), out_dim=128, last_bn=True))
    c.nnclr.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(1024,), out_dim=128))
    c.nnclr.support_size = 512
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's NNCLR CIFAR recipe (scripts/pretrain/cifar/nnclr.yaml): LARS (eta 0.02), lr 0.4 * batch/256,
    # wd 1e-5, temperature 0.2, projector 2048-2048-256 with BN on every layer, predictor 4096-256, queue 65536,
    # batch 256, 1000 epochs, warmup-cosine; asymmetric augmentations (augmentations/asymmetric.yaml: BYOL-style
    # jitter 0.4/0.4/0.2/0.1 with torchvision's multiplicative brightness, no blur, solarisation 0.2 on view 2).
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048, 2048), out_dim=256, last_bn=True))
    c.nnclr.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(4096,), out_dim=256))
    c.nnclr.temperature = 0.2
    c.nnclr.support_size = 65536
    c.augment.views = ("byol_view1", "byol_view2")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, brightness_mode="multiplicative",
                                                         mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "lars"
    c.optim.lr = 0.4
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-5
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16, 16), out_dim=8, last_bn=True))
    c.nnclr.predictor_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
    c.nnclr.support_size = 128
  return c
