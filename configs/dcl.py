"""DCL / DCLW (Yeh et al. 2022). `--config configs/dcl.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, imagenet, smoke: the datasets of configs/common.py (its table says what each sets), with the changes
below; `--config.dcl.weighted=True` gives DCLW. mnist1d and digits are the SimCLR recipes (configs/simclr.py) with
DCL's loss."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

OVERRIDES = {
    # solo-learn has no DCL script (scripts/pretrain/cifar/ has none): this is its SimCLR CIFAR recipe
    # (scripts/pretrain/cifar/simclr.yaml, as in configs/simclr.py: LARS, lr 0.4 * batch/256, wd 1e-5, projector
    # 2048-2048-256, batch 256, 1000 epochs, the SimCLR colour recipe without blur) with DCL's temperature 0.1.
    "cifar": {
        "model.projector_kwargs": dict(hidden_dims=(2048,), out_dim=256),
        "optim.lr": 0.4,
        "optim.weight_decay": 1e-5,
    },
    # solo-learn has no DCL script: the SimCLR ImageNet recipe of configs/simclr.py (solo-learn's ImageNet-100
    # scripts/pretrain/imagenet-100/simclr.yaml: LARS lr 0.3 * batch/256, wd 1e-4, projector 4096-512 without
    # BN, batch 256, the SimCLR views with blur) with DCL's temperature 0.1. The paper's ImageNet-1k runs are
    # SimCLR with the DCL loss at batch 256 (Yeh et al. 2022, Sec. 5, ResNet-50).
    "imagenet": {
        "model.projector_kwargs": dict(hidden_dims=(4096,), out_dim=512, use_bn=False),
        "optim.lr": 0.3,
        "optim.weight_decay": 1e-4,
    },
    "smoke": {"model.projector_kwargs": common.SMOKE_PROJECTOR},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("dcl")
  # The paper's defaults (and those of the code it cites): tau = 0.1; DCLW's sigma = 0.5.
  c.dcl.temperature = 0.1
  c.dcl.weighted = False  # True: DCLW
  c.dcl.sigma = 0.5
  return common.apply_variant(c, arg, OVERRIDES)
