"""RotNet (Gidaris et al. 2018). `--config configs/rotnet.py:VARIANT`, VARIANT in mnist1d (default), digits,
cifar10, cifar100, smoke.

RotNet is not in solo-learn (no scripts/pretrain/cifar/rotnet.yaml): the CIFAR hyper-parameters are the authors'
(github.com/gidariss/FeatureLearningRotNet, config/CIFAR10_RotNet_NIN4blocks.py and dataloader.py).
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
    raise ValueError(f"configs/rotnet.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "rotnet"
  c.rotnet = ml_collections.ConfigDict()
  # The 4-way classifier on the pooled encoder features: Linear-BN-ReLU per hidden layer, then Linear.
  c.rotnet.head_hidden_dims = (256,)

  if variant in ("mnist1d", "smoke"):
    # The 1-D analogue (identity / time reversal / negation / both); one mildly augmented view, every example in
    # all 4 symmetries (the batch of 256 signals is 1024 network inputs). Optimiser as configs/simclr.py:mnist1d.
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
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
    # 8 x 8 digits rotate like any image; a light crop only (no flip: a flipped digit is another rotation's look).
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.rotnet.head_hidden_dims = (512,)
    c.augment.views = ("none",)
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.7, 1.0), mean=(0.5,), std=(0.25,)))
    c.batch_size = 128
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # The authors' CIFAR-10 recipe: batch 128 images (x 4 rotations), SGD momentum 0.9 (Nesterov there; optax
    # plain momentum here), lr 0.1, weight decay 5e-4, 200 epochs with the lr x 0.2 at epochs 60, 120, 160 (a
    # cosine schedule here); training images get RandomCrop(32, padding=4) + horizontal flip (approximated by a
    # mild random resized crop + flip). Their NIN network is replaced by the library's CIFAR ResNet-18.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.rotnet.head_hidden_dims = (512,)
    c.augment.views = ("none",)
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.64, 1.0), crop_ratio=(0.8, 1.25), flip_p=0.5,
                                                         mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 128
    c.total_steps = 200 * 50000 // 128
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4
    c.optim.warmup_steps = 0
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.rotnet.head_hidden_dims = (16,)
  return c
