"""The supervised reference (cross-entropy with labels, same encoder and augmentation as the self-supervised
methods). `--config configs/supervised.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10, cifar100,
imagenet, smoke."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/supervised.py", variant, VARIANTS)
  c = common.base()
  c.method = "supervised"
  c.uses_labels = True
  c.supervised = ml_collections.ConfigDict()
  c.supervised.num_classes = 10
  c.supervised.label_smoothing = 0.0

  if variant in ("mnist1d", "smoke"):
    common.mnist1d(c)
  elif variant == "digits":
    common.digits(c)
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's supervised CIFAR baseline (scripts/pretrain/cifar/supervised? not published: we use SGD-like
    # LARS settings of its SimCLR recipe with lr 0.4 and wd 5e-4, the common ResNet-18 CIFAR schedule).
    common.cifar(c, variant, epochs=200)
    c.supervised.num_classes = 100 if variant == "cifar100" else 10
    c.optim.lr = 0.4
    c.optim.weight_decay = 5e-4
  elif variant == "imagenet":
    # The standard ResNet-50 ImageNet recipe (Goyal et al. 2017, "Accurate, Large Minibatch SGD", Sec. 5.1): SGD
    # momentum 0.9, lr 0.1 * batch/256, wd 1e-4, batch 256, 5 warm-up epochs (their 90 epochs with x0.1 steps
    # become 100 with a cosine); the self-supervised methods' first view (SimCLR's), as in the other variants.
    common.imagenet(c)
    c.supervised.num_classes = 1000
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 5 * common.IMAGENET_TRAIN_EXAMPLES // c.batch_size
  c.augment.views = c.augment.views[:1]

  if variant == "smoke":
    common.shrink_for_smoke(c)
  return c
