"""DCL / DCLW (Yeh et al. 2022). `--config configs/dcl.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, smoke; `--config.dcl.weighted=True` gives DCLW."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/dcl.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "dcl"
  c.dcl = ml_collections.ConfigDict()
  # The paper's defaults (and those of the code it cites): tau = 0.1; DCLW's sigma = 0.5.
  c.dcl.temperature = 0.1
  c.dcl.weighted = False  # True: DCLW
  c.dcl.sigma = 0.5

  if variant in ("mnist1d", "smoke"):
    # The SimCLR mnist1d recipe (configs/simclr.py), with DCL's loss.
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
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
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # solo-learn has no DCL script (scripts/pretrain/cifar/ has none): this is its SimCLR CIFAR recipe
    # (scripts/pretrain/cifar/simclr.yaml, as in configs/simclr.py: LARS, lr 0.4 * batch/256, wd 1e-5, projector
    # 2048-2048-256, batch 256, 1000 epochs, the SimCLR colour recipe without blur) with DCL's temperature 0.1.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=256))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
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
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
