"""The supervised reference (cross-entropy with labels, same encoder and augmentation as the self-supervised methods).
`--config configs/supervised.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke. One
view: the first of the self-supervised methods' two (SimCLR's), in every variant."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

OVERRIDES = {
    "all": {"num_views": 1},
    # solo-learn's supervised CIFAR baseline (scripts/pretrain/cifar/supervised? not published: we use SGD-like
    # LARS settings of its SimCLR recipe with lr 0.4 and wd 5e-4, the common ResNet-18 CIFAR schedule).
    "cifar": {"epochs": 200, "optim.lr": 0.4, "optim.weight_decay": 5e-4},
    "cifar100": {"supervised.num_classes": 100},
    # The standard ResNet-50 ImageNet recipe (Goyal et al. 2017, "Accurate, Large Minibatch SGD", Sec. 5.1): SGD
    # momentum 0.9, lr 0.1 * batch/256, wd 1e-4, batch 256, 5 warm-up epochs (their 90 epochs with x0.1 steps
    # become 100 with a cosine); the self-supervised methods' first view (SimCLR's), as in the other variants.
    "imagenet": {
        "supervised.num_classes": 1000,
        "optim.name": "sgd",
        "optim.lr": 0.1,
        "optim.weight_decay": 1e-4,
        "warmup_epochs": 5,
    },
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("supervised")
  c.uses_labels = True
  c.supervised.num_classes = 10
  c.supervised.label_smoothing = 0.0
  return common.apply_variant(c, arg, OVERRIDES)
