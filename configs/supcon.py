"""SupCon (Khosla et al. 2020), SUPERVISED: it trains on the class labels, so its rows are a supervised reference for
the self-supervised methods, not a self-supervised result. `--config configs/supcon.py:VARIANT`, VARIANT in mnist1d
(default), digits, cifar10, cifar100, imagenet, smoke. mnist1d and digits are the SimCLR recipes (configs/simclr.py),
with SupCon's loss and projector (no BN)."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

OVERRIDES = {
    "mnist1d": {"model.projector_kwargs.use_bn": False},
    "digits": {"model.projector_kwargs.use_bn": False},
    # solo-learn's SupCon CIFAR recipe (scripts/pretrain/cifar/supcon.yaml): SGD (momentum 0.9), lr 0.4 * batch/256,
    # wd 1e-5, temperature 0.2, projector Linear(2048)-ReLU-Linear(256) without BN, batch 256, 1000 epochs,
    # warmup-cosine, symmetric SimCLR augmentations (here without blur, as configs/simclr.py).
    "cifar": {
        "model.projector_kwargs": dict(hidden_dims=(2048,), out_dim=256, use_bn=False),
        "supcon.temperature": 0.2,
        "optim.name": "sgd",
        "optim.lr": 0.4,
        "optim.weight_decay": 1e-5,
    },
    # solo-learn has no ImageNet-1k SupCon script; its ImageNet-100 one (scripts/pretrain/imagenet-100/supcon.yaml,
    # commit 9187ea3, with augmentations/symmetric.yaml): SGD (momentum 0.9) lr 0.5 * batch/256, wd 1e-5,
    # temperature 0.2, projector Linear(2048)-ReLU-Linear(512) without BN, batch 2 x 128, warmup-cosine (10
    # epochs); the SimCLR views with blur 0.5. (The paper's ImageNet ResNet-50 runs use batches up to 6144, tau 0.1.)
    "imagenet": {
        "model.projector_kwargs": dict(hidden_dims=(2048,), out_dim=512, use_bn=False),
        "supcon.temperature": 0.2,
        "optim.name": "sgd",
        "optim.lr": 0.5,
        "optim.weight_decay": 1e-5,
    },
    "smoke": {"model.projector_kwargs": dict(common.SMOKE_PROJECTOR, use_bn=False)},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("supcon")
  c.uses_labels = True  # SUPERVISED (uses batch["label"]): a reference row, not self-supervised
  c.supcon.temperature = 0.1  # the paper's tau
  c.supcon.base_temperature = ml_collections.config_dict.placeholder(float)  # None: no tau/tau_b scaling
  return common.apply_variant(c, arg, OVERRIDES)
