"""Relative patch location / context prediction (Doersch et al. 2015). `--config
configs/relative_location.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10, cifar100, smoke.

The method is not in solo-learn (no scripts/pretrain/cifar/*.yaml for it). The paper trains on ImageNet images
resized to 150K-450K pixels with 96-pixel patches, 48-pixel gaps (half a patch) and up to 7 pixels of jitter per
patch; the image variants keep those proportions as far as 8 x 8 and 32 x 32 inputs allow, and borrow the
optimiser of configs/rotnet.py (the paper's Caffe schedule for ImageNet does not transfer to 32 x 32 images).
"""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/relative_location.py: unknown variant {variant!r}; known variants: "
                     f"{', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "relative_location"
  c.relative_location = ml_collections.ConfigDict()
  # Images: a 3 x 3 grid (the only layout of rl.losses.relative_location_task), 8 classes. Signals: a row of
  # `grid` (odd) segments, grid - 1 classes. `patch` is the patch side (images) or segment length (signals).
  c.relative_location.grid = 3
  c.relative_location.patch = 96
  c.relative_location.gap = 48
  c.relative_location.jitter = 7
  # The pair classifier on the concatenated features (centre, other): Linear-BN-ReLU per hidden layer, Linear.
  c.relative_location.head_hidden_dims = (512,)

  if variant in ("mnist1d", "smoke"):
    # Our 1-D analogue: 5 segments of 6 samples, 1-sample gaps and jitter (34 + 2 of the 40 samples), 4 classes.
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.relative_location.grid = 5
    c.relative_location.patch = 6
    c.relative_location.gap = 1
    c.relative_location.jitter = 1
    c.relative_location.head_hidden_dims = (256,)
    c.augment.views = ("mnist1d",)
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
    # 8 x 8: 2-pixel patches without gap, 1 pixel of jitter (6 + 2 = 8).
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.relative_location.patch = 2
    c.relative_location.gap = 0
    c.relative_location.jitter = 1
    c.augment.views = ("none",)
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # 32 x 32: 7-pixel patches, 3-pixel gaps (~ half a patch), 1 pixel of jitter: the grid spans 27 pixels and
    # its origin moves over 4 positions per axis. Batch 256 pairs; SGD as configs/rotnet.py.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.relative_location.patch = 7
    c.relative_location.gap = 3
    c.relative_location.jitter = 1
    c.relative_location.head_hidden_dims = (1024,)
    c.augment.views = ("none",)
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(flip_p=0.5, mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 200 * 50000 // 256
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.relative_location.head_hidden_dims = (16,)
  return c
