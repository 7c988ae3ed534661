"""W-MSE (Ermolov et al. 2021). `--config configs/wmse.py:VARIANT`, VARIANT in mnist1d (default), digits,
cifar10, cifar100, smoke. W-MSE 4: four recipes in `augment.views`."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/wmse.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "wmse"
  c.wmse = ml_collections.ConfigDict()
  # The authors' defaults (github.com/htdt/self-supervised cfg.py: --w_size 128, --w_iter 1, --w_eps 0). The
  # whitening size must exceed the projector's out_dim, and the global batch must be a multiple of it.
  c.wmse.whitening_size = 128
  c.wmse.whitening_iters = 1
  c.wmse.whitening_eps = 0.0

  if variant in ("mnist1d", "smoke"):
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    # The authors' head shape (Linear-BN-ReLU-Linear, 64-d embedding), narrower hidden layer (theirs: 1024).
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
    c.augment.views = ("mnist1d", "mnist1d")
    # Every field of the preset, so each can be overridden from the command line.
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
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=64))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's W-MSE CIFAR recipe (scripts/pretrain/cifar/wmse.yaml): projector 1024-64 with BN (as the
    # authors' `get_head`), whitening_size 128, whitening_iters 1, eps 0 (solo/methods/wmse.py defaults); Adam,
    # lr 2e-3, wd 1e-6, batch 256, 1000 epochs, warmup_cosine (10 warm-up epochs). Differs: solo-learn's
    # torch Adam adds wd as an L2 term, ours is AdamW's decoupled decay. Views: crop 0.2-1, jitter
    # (0.8, 0.8, 0.8, 0.2) p 0.8, grayscale 0.2, no blur, no solarisation, flip 0.5: the SimCLR recipe with
    # these fields replaced. (The authors' README: lr 3e-3, emb 64, w_size 128, batch 512 for W-MSE 2.)
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(1024,), out_dim=64))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.2, 1.0), blur_p=0.0,
                                                         mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-6
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
    c.wmse.whitening_size = 16
  return c
