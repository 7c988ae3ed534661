"""Alignment + uniformity trained directly (Wang & Isola 2020). `--config configs/align_uniform.py:VARIANT`, VARIANT
in mnist1d (default), digits, cifar10, cifar100, smoke."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/align_uniform.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "align_uniform"
  c.align_uniform = ml_collections.ConfigDict()
  # The paper's defaults (their examples/stl10/main.py): L_align(alpha=2) + 1 * L_uniform(t=2).
  c.align_uniform.alpha = 2.0
  c.align_uniform.t = 2.0
  c.align_uniform.lam = 1.0  # weight of the uniformity term

  if variant in ("mnist1d", "smoke"):
    # The SimCLR mnist1d recipe (configs/simclr.py), with the alignment + uniformity loss.
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
    # solo-learn has no alignment/uniformity script (scripts/pretrain/cifar/ has none). These are the authors'
    # settings (github.com/ssnl/align_uniform, examples/stl10/main.py): SGD momentum 0.9, lr 0.12 * batch/256,
    # wd 1e-4, batch 768, 200 epochs, 128-d output, RandomResizedCrop(0.08, 1) + flip + ColorJitter(0.4, 0.4,
    # 0.4, 0.4) (always applied) + grayscale 0.2, no blur. Differences: ResNet-18 with a 2048-128 MLP projector
    # instead of their AlexNet, and warm-up + cosine instead of their step decay at epochs 155/170/185.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(
        jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4, blur_p=0.0,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 768
    c.total_steps = 200 * 50000 // 768
    c.optim.name = "sgd"
    c.optim.lr = 0.12
    c.optim.scale_by_batch = True
    c.optim.momentum = 0.9
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 0
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
