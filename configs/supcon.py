"""SupCon (Khosla et al. 2020), SUPERVISED: it trains on the class labels, so its rows are a supervised reference
for the self-supervised methods, not a self-supervised result. `--config configs/supcon.py:VARIANT`, VARIANT in
mnist1d (default), digits, cifar10, cifar100, imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/supcon.py", variant, VARIANTS)
  c = common.base()
  c.method = "supcon"
  c.uses_labels = True  # SUPERVISED (uses batch["label"]): a reference row, not self-supervised
  c.supcon = ml_collections.ConfigDict()
  c.supcon.temperature = 0.1  # the paper's tau
  c.supcon.base_temperature = ml_collections.config_dict.placeholder(float)  # None: no tau/tau_b scaling

  if variant in ("mnist1d", "smoke"):
    # The SimCLR mnist1d recipe (configs/simclr.py), with SupCon's loss and projector (no BN).
    common.mnist1d(c)
    c.model.projector_kwargs.use_bn = False
  elif variant == "digits":
    common.digits(c)
    c.model.projector_kwargs.use_bn = False
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's SupCon CIFAR recipe (scripts/pretrain/cifar/supcon.yaml): SGD (momentum 0.9), lr 0.4 * batch/256,
    # wd 1e-5, temperature 0.2, projector Linear(2048)-ReLU-Linear(256) without BN, batch 256, 1000 epochs,
    # warmup-cosine, symmetric SimCLR augmentations (here without blur, as configs/simclr.py).
    common.cifar(c, variant)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=256, use_bn=False))
    c.supcon.temperature = 0.2
    c.optim.name = "sgd"
    c.optim.lr = 0.4
    c.optim.weight_decay = 1e-5
  elif variant == "imagenet":
    # solo-learn has no ImageNet-1k SupCon script; its ImageNet-100 one (scripts/pretrain/imagenet-100/supcon.yaml,
    # commit 9187ea3, with augmentations/symmetric.yaml): SGD (momentum 0.9) lr 0.5 * batch/256, wd 1e-5,
    # temperature 0.2, projector Linear(2048)-ReLU-Linear(512) without BN, batch 2 x 128, warmup-cosine (10
    # epochs); the SimCLR views with blur 0.5. (The paper's ImageNet ResNet-50 runs use batches up to 6144, tau 0.1.)
    common.imagenet(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=512, use_bn=False))
    c.supcon.temperature = 0.2
    c.optim.name = "sgd"
    c.optim.lr = 0.5
    c.optim.weight_decay = 1e-5

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8, use_bn=False))
  return c
