"""NPID (Wu et al. 2018). `--config configs/npid.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10, cifar100,
imagenet, smoke.

solo-learn has no NPID recipe. The ImageNet defaults below are the paper's and the authors' code's
(zhirongw/lemniscate.pytorch README: `--nce-k 4096 --nce-t 0.07 --lr 0.03 --nce-m 0.5 --low-dim 128 -b 256`);
the CIFAR variants follow the authors' lemniscate.pytorch/cifar.py.

mnist1d was checked on the validation split (the last 10% of train; 2 seeds, 2000 steps, before the shared budget
became 8000 steps) and kept as it is: a validation linear probe of 92.6 +/- 1.2 (kNN-20 91.0 +/- 0.4).

  python experiments/sweep.py --config configs/npid.py:mnist1d --workdir runs/sweeps/npid \
      --seeds 2 --cell 'as configured:'
"""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

OVERRIDES = {
    # NPID uses one augmented view per example; the paper's head is one Linear layer to 128 dims.
    "all": {"num_views": 1, "model.projector_kwargs": dict(hidden_dims=(), out_dim=128)},
    # mnist1d has 4000 training examples: the full softmax over the bank is cheap (the paper's NCE is there to
    # avoid the 1.28M-way softmax of ImageNet). tau 0.1 as in the authors' CIFAR script.
    "mnist1d": {"npid.temperature": 0.1, "npid.num_negatives": None},
    "digits": {"npid.temperature": 0.1, "npid.num_negatives": None},  # 1797 digits: the full softmax
    # zhirongw/lemniscate.pytorch/cifar.py: ResNet-18, low-dim 128, NCE with nce-k 4096, nce-t 0.1, nce-m 0.5;
    # SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128, 200 epochs (its step decay is commented out: constant lr;
    # here warm-up + cosine, the trainer's only schedule); augmentation RandomResizedCrop(32, scale (0.2, 1)),
    # grey-scale 0.2, ColorJitter(0.4, 0.4, 0.4, 0.4) always, no flip; its normalisation (CIFAR-10's statistics,
    # used for CIFAR-100 too).
    "cifar": {
        "epochs": 200,
        "batch_size": 128,
        "npid.temperature": 0.1,
        "augment.overrides": dict(crop_scale=(0.2, 1.0), flip_p=0.0, jitter_p=1.0, brightness=0.4, contrast=0.4,
                                  saturation=0.4, hue=0.4, grayscale_p=0.2, blur_p=0.0, mean=common.CIFAR_MEAN,
                                  std=(0.2023, 0.1994, 0.2010)),
        "optim.name": "sgd",
        "optim.lr": 0.1,
        "optim.scale_by_batch": False,
        "optim.weight_decay": 5e-4,
        "warmup_epochs": 0,
    },
    # zhirongw/lemniscate.pytorch main.py with the README's ImageNet command: ResNet-50 with a 128-d linear head,
    # NCE with nce-k 4096, nce-t 0.07, nce-m 0.5; SGD lr 0.03 (batch 256), momentum 0.9, wd 1e-4, no warm-up
    # (its 200 epochs with steps at 120 and 160 become a cosine); RandomResizedCrop(224, scale (0.2, 1)), grey
    # 0.2, ColorJitter(0.4, 0.4, 0.4, 0.4) always, flip. The memory bank holds 1,281,167 x 128 float32
    # (656 MB, replicated on every device), as the paper's.
    "imagenet": {
        "augment.overrides": dict(crop_scale=(0.2, 1.0), jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4,
                                  hue=0.4, grayscale_p=0.2, blur_p=0.0),
        "optim.name": "sgd",
        "optim.lr": 0.03,
        "optim.weight_decay": 1e-4,
        "warmup_epochs": 0,
    },
    "smoke": {"model.projector_kwargs": dict(hidden_dims=(), out_dim=8)},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("npid")
  # The paper's ImageNet defaults: tau 0.07, bank momentum (proximal update) 0.5, NCE with m = 4096 noise rows.
  c.npid.temperature = 0.07
  c.npid.momentum = 0.5
  # None: the full non-parametric softmax over the whole bank (eq. 2); an int m: NCE with m noise rows (eq. 5-7).
  c.npid.num_negatives = ml_collections.config_dict.placeholder(int)
  c.npid.num_negatives = 4096
  return common.apply_variant(c, arg, OVERRIDES)
