"""RotNet (Gidaris et al. 2018). `--config configs/rotnet.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, imagenet, smoke.

RotNet is not in solo-learn (no scripts/pretrain/cifar/rotnet.yaml): the CIFAR and ImageNet hyper-parameters are
the authors' (github.com/gidariss/FeatureLearningRotNet, config/CIFAR10_RotNet_NIN4blocks.py,
config/ImageNet_RotNet_AlexNet.py and dataloader.py).

mnist1d is the 1-D analogue (identity / time reversal / negation / both); one mildly augmented view, every example
in all 4 symmetries (the batch of 128 signals is 512 network inputs). Optimiser as configs/simclr.py:mnist1d.

mnist1d was checked on the validation split (the last 10% of train; 2 seeds, 2000 steps, before the shared budget
became 8000 steps) and kept as it is: a validation linear probe of 91.6 +/- 0.9 (kNN-20 91.2 +/- 0.0).

  python experiments/sweep.py --config configs/rotnet.py:mnist1d --workdir runs/sweeps/rotnet \
      --seeds 2 --cell 'as configured:'
"""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

# The authors' optimiser, CIFAR and ImageNet alike: SGD momentum 0.9 (Nesterov there; optax plain momentum here), lr
# 0.1 (not scaled with the batch), weight decay 5e-4. configs/jigsaw.py and configs/relative_location.py borrow it.
SGD = {"optim.name": "sgd", "optim.lr": 0.1, "optim.scale_by_batch": False, "optim.weight_decay": 5e-4}

# The rotation task's views and optimiser per variant, shared with configs/shortcut_lens.py (RotNet's task with a
# lens); the head's size is each method's own (OVERRIDES).
VIEWS = {
    # RotNet classifies one view; it has no projector.
    "all": {"num_views": 1, "model.projector_kwargs": {}},
    # 8 x 8 digits rotate like any image; a light crop only (no flip: a flipped digit is another rotation's look).
    "digits": {
        "batch_size": 128,
        "augment.views": ("none",),
        "augment.overrides": dict(crop_scale=(0.7, 1.0), mean=(0.5,), std=(0.25,)),
    },
    # The authors' CIFAR-10 recipe: batch 128 images (x 4 rotations), SGD momentum 0.9 (Nesterov there; optax
    # plain momentum here), lr 0.1, weight decay 5e-4, 200 epochs with the lr x 0.2 at epochs 60, 120, 160 (a
    # cosine schedule here); training images get RandomCrop(32, padding=4) + horizontal flip (approximated by a
    # mild random resized crop + flip). Their NIN network is replaced by the library's CIFAR ResNet-18.
    "cifar": {
        "epochs": 200,
        "batch_size": 128,
        "augment.views": ("none",),
        "augment.overrides": dict(crop_scale=(0.64, 1.0), crop_ratio=(0.8, 1.25), flip_p=0.5, mean=common.CIFAR_MEAN,
                                  std=common.CIFAR_STD),
        **SGD,
        "warmup_epochs": 0,
    },
    # The authors' ImageNet recipe (config/ImageNet_RotNet_AlexNet.py, dataloader.py): batch 192 images (x 4
    # rotations = 768 network inputs), SGD momentum 0.9 (Nesterov there), lr 0.1 (not scaled with the batch),
    # wd 5e-4, no warm-up (its 50 epochs with x0.1 steps at 15, 30, 45 become 100 with a cosine);
    # RandomSizedCrop(224) (area 0.08-1, aspect 3/4-4/3) + horizontal flip, nothing else. Their AlexNet is
    # replaced by ResNet-50.
    "imagenet": {
        "batch_size": 192,
        "augment.views": ("none",),
        "augment.overrides": dict(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5),
        **SGD,
        "warmup_epochs": 0,
    },
}

OVERRIDES = {
    "digits": {"rotnet.head_hidden_dims": (512,)},
    "cifar": {"rotnet.head_hidden_dims": (512,)},
    "imagenet": {"rotnet.head_hidden_dims": (512,)},
    "smoke": {"rotnet.head_hidden_dims": (16,)},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("rotnet")
  # The 4-way classifier on the pooled encoder features: Linear-BN-ReLU per hidden layer, then Linear.
  c.rotnet.head_hidden_dims = (256,)
  return common.apply_variant(c, arg, VIEWS, OVERRIDES)
