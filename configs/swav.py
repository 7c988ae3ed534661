"""SwAV (Caron et al. 2020). `--config configs/swav.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, imagenet, smoke. mnist1d uses multi-crop (2 global views of 40 samples, 4 local crops resampled to 20),
imagenet the paper's (2 global crops of 224, 6 local crops of 96)."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

CIFAR_EPOCH = common.CIFAR_TRAIN_EXAMPLES // 256  # steps per epoch at batch 256
IMAGENET_EPOCH = common.IMAGENET_TRAIN_EXAMPLES // 256

OVERRIDES = {
    "mnist1d": {
        "augment.views": ("mnist1d",) * 2 + ("mnist1d_local",) * 4,
        "augment.view_sizes": (None, None, 20, 20, 20, 20),
        "swav.num_prototypes": 50,
        "swav.freeze_prototypes_steps": 4000 // 128,  # one epoch of the 4000 training signals (batch 128)
    },
    "digits": {"swav.num_prototypes": 50, "swav.freeze_prototypes_steps": 1437 // 256},
    # solo-learn's SwAV CIFAR recipe (scripts/pretrain/cifar/swav.yaml): projector 2048-128, 3000 prototypes,
    # tau 0.1, queue 3840 from epoch 50, prototypes frozen for 2 epochs, LARS lr 0.6 * batch/256, wd 1e-6,
    # 2 crops of 32 (no multi-crop on CIFAR).
    "cifar": {
        "model.projector_kwargs": dict(hidden_dims=(2048,), out_dim=128),
        "optim.lr": 0.6,
        "optim.weight_decay": 1e-6,
        "swav.freeze_prototypes_steps": 2 * CIFAR_EPOCH,
        "swav.queue_length": 3840,
        "swav.queue_start_step": 50 * CIFAR_EPOCH,
    },
    # solo-learn's SwAV scripts have no multi-crop (scripts/pretrain/imagenet-100/swav.yaml: 2 crops; no ImageNet-1k
    # one), so this is the authors' multi-crop ResNet-50 recipe at batch 256 (facebookresearch/swav
    # scripts/swav_200ep_bs256_pretrain.sh; main_swav.py defaults: hidden_mlp 2048): 2 x 224 crops of 14-100% of
    # the image and 6 x 96 crops of 5-14% ('simclr_global', 'simclr_local': SimCLR's colour distortion and blur
    # on every crop), codes from the two 224 crops, projector 2048-128, 3000 prototypes, tau 0.1, epsilon 0.05,
    # 3 Sinkhorn iterations, a queue of 3840 from epoch 15, prototypes frozen for 5005 iterations (one epoch),
    # LARS lr 0.6 * batch/256 (trust coefficient 1e-3, as optax.lars), wd 1e-6, no warm-up, cosine to 0 (theirs:
    # to 0.0006), 200 epochs there. solo-learn's ImageNet-100 script has the same lr, wd, queue and prototypes.
    # (The authors' 100-epoch run, scripts/swav_100ep_pretrain.sh, takes batch 4096: lr 0.3 * batch/256, no
    # queue, 10 warm-up epochs, prototypes frozen for 313 iterations.)
    "imagenet": {
        "augment.views": ("simclr_global",) * 2 + ("simclr_local",) * 6,
        "augment.view_sizes": (224,) * 2 + (96,) * 6,
        "model.projector_kwargs": dict(hidden_dims=(2048,), out_dim=128),
        "optim.lr": 0.6,
        "optim.weight_decay": 1e-6,
        "warmup_epochs": 0,
        "swav.freeze_prototypes_steps": 5005,
        "swav.queue_length": 3840,
        "swav.queue_start_step": 15 * IMAGENET_EPOCH,
    },
    "smoke": {
        "model.projector_kwargs": common.SMOKE_PROJECTOR,
        "swav.num_prototypes": 10,
        "swav.freeze_prototypes_steps": 1,
        "swav.queue_length": 128,  # the queue is exercised by the smoke run: pushed from step 1, used once full
        "swav.queue_start_step": 1,
    },
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("swav")
  # SwAV's defaults (Sec. 4 and the official main_swav.py): tau 0.1, Sinkhorn epsilon 0.05 with 3 iterations,
  # codes from the two global crops, prototypes frozen for the first epoch, queue off until it is switched on.
  c.swav.num_prototypes = 3000
  c.swav.temperature = 0.1
  c.swav.epsilon = 0.05
  c.swav.sinkhorn_iters = 3
  c.swav.num_global_crops = 2
  c.swav.crops_for_assign = (0, 1)
  c.swav.freeze_prototypes_steps = 0
  c.swav.queue_length = 0
  c.swav.queue_start_step = 0
  return common.apply_variant(c, arg, OVERRIDES)
