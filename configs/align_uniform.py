"""Alignment + uniformity trained directly (Wang & Isola 2020). `--config configs/align_uniform.py:VARIANT`, VARIANT
in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/align_uniform.py", variant, VARIANTS)
  c = common.base()
  c.method = "align_uniform"
  c.align_uniform = ml_collections.ConfigDict()
  # The paper's defaults (their examples/stl10/main.py): L_align(alpha=2) + 1 * L_uniform(t=2).
  c.align_uniform.alpha = 2.0
  c.align_uniform.t = 2.0
  c.align_uniform.lam = 1.0  # weight of the uniformity term

  if variant in ("mnist1d", "smoke"):
    # The SimCLR mnist1d recipe (configs/simclr.py), with the alignment + uniformity loss.
    common.mnist1d(c)
  elif variant == "digits":
    common.digits(c)
  elif variant in ("cifar10", "cifar100"):
    # solo-learn has no alignment/uniformity script (scripts/pretrain/cifar/ has none). These are the authors'
    # settings (github.com/ssnl/align_uniform, examples/stl10/main.py): SGD momentum 0.9, lr 0.12 * batch/256,
    # wd 1e-4, batch 768, 200 epochs, 128-d output, RandomResizedCrop(0.08, 1) + flip + ColorJitter(0.4, 0.4,
    # 0.4, 0.4) (always applied) + grayscale 0.2, no blur. Differences: ResNet-18 with a 2048-128 MLP projector
    # instead of their AlexNet, and warm-up + cosine instead of their step decay at epochs 155/170/185.
    common.cifar(c, variant, epochs=200, batch_size=768)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=128))
    c.augment.overrides = ml_collections.ConfigDict(dict(
        jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4, blur_p=0.0,
        mean=common.CIFAR_MEAN, std=common.CIFAR_STD))
    c.optim.name = "sgd"
    c.optim.lr = 0.12
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 0
  elif variant == "imagenet":
    # solo-learn has no alignment/uniformity script and the paper no ImageNet-1k run (its ImageNet-100 runs build
    # on MoCo's queue, which this method does not have): the authors' only released training recipe, as for
    # CIFAR (examples/stl10/main.py): SGD momentum 0.9, lr 0.12 * batch/256, wd 1e-4, batch 768, 128-d output,
    # RandomResizedCrop(0.08, 1) + flip + ColorJitter(0.4, 0.4, 0.4, 0.4) always + grey 0.2, no blur; no
    # warm-up (their step decay becomes a cosine). ResNet-50 with a 2048-128 MLP projector.
    common.imagenet(c, batch_size=768)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=128))
    c.augment.overrides = ml_collections.ConfigDict(dict(
        jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4, blur_p=0.0))
    c.optim.name = "sgd"
    c.optim.lr = 0.12
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 0

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
  return c
