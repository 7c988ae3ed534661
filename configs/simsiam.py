"""SimSiam (Chen & He 2021). `--config configs/simsiam.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, imagenet, smoke. Every variant's projector ends in a BatchNorm without affine parameters; cifar10/cifar100 and
imagenet follow solo-learn's SimSiam scripts.

mnist1d trains the predictor at a constant lr (the schedule's peak), as the paper does (Chen & He 2021, Sec. 4 and
Table 1: "lr with cosine decay for the predictor" is worse than a fixed one), chosen on the validation split (the
last 10% of train; 2000 steps, 2 seeds, mean +/- std of the validation linear probe, then kNN-20):

  python experiments/sweep.py --config configs/simsiam.py:mnist1d --workdir runs/sweeps/simsiam --seeds 2 \
      --cell 'constant predictor lr: optim.constant_lr_params=("predictor",)' \
      --cell 'constant predictor lr, lr 8e-3: optim.constant_lr_params=("predictor",); optim.lr=8e-3' \
      --cell 'constant predictor lr, lr 2e-3: optim.constant_lr_params=("predictor",); optim.lr=2e-3'

  every parameter on the cosine (the previous recipe): 92.8 +/- 2.8 (kNN 89.1); constant predictor lr: 93.0 +/- 0.7
  (kNN 90.6); with lr 8e-3: 92.9 +/- 1.6; with lr 2e-3: 90.9 +/- 0.2.
"""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS

# solo-learn's SimSiam projector (scripts/pretrain/cifar/simsiam.yaml, imagenet-100/simsiam.yaml): 2048-2048-2048
# with a last BN (Linear-BN-ReLU x2, Linear, BN without affine); SGD lr 0.5 * batch/256, wd 1e-5.
SOLO_LEARN = {
    "model.projector_kwargs": dict(hidden_dims=(2048, 2048), out_dim=2048, last_bn=True),
    "optim.name": "sgd",
    "optim.lr": 0.5,
    "optim.weight_decay": 1e-5,
}

OVERRIDES = {
    "mnist1d": {
        # SimSiam's projector ends with a BN without affine parameters.
        "model.projector_kwargs": dict(hidden_dims=(256,), out_dim=128, last_bn=True),
        "simsiam.predictor_kwargs": dict(hidden_dims=(64,), out_dim=128),
        "optim.constant_lr_params": ("predictor",),
    },
    "digits": {
        "model.projector_kwargs": dict(hidden_dims=(512,), out_dim=128, last_bn=True),
        "simsiam.predictor_kwargs": dict(hidden_dims=(64,), out_dim=128),
    },
    # solo-learn's SimSiam CIFAR recipe (scripts/pretrain/cifar/simsiam.yaml, commit 9187ea3): ResNet-18, projector
    # 2048-2048-2048 with a last BN (Linear-BN-ReLU x2, Linear, BN without affine), predictor 512-2048, SGD lr 0.5
    # (* batch/256), wd 1e-5, batch 256, 1000 epochs, warmup-cosine; symmetric views
    # (augmentations/symmetric_weak.yaml): jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, blur 0.5, flip 0.5.
    # (The paper's own CIFAR setting is SGD lr 0.03 * batch/256, wd 5e-4, 800 epochs, a 2-layer projector.)
    "cifar": {
        **SOLO_LEARN,
        "augment.overrides": dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, blur_p=0.5,
                                  mean=common.CIFAR_MEAN, std=common.CIFAR_STD),
    },
    # solo-learn has no ImageNet-1k SimSiam script; its ImageNet-100 one (scripts/pretrain/imagenet-100/simsiam.yaml,
    # commit 9187ea3, with augmentations/asymmetric.yaml): projector 2048-2048-2048 with a last BN, predictor
    # 512-2048, SGD lr 0.5 * batch/256, wd 1e-5, batch 2 x 128, warmup-cosine (10 epochs); asymmetric views:
    # jitter 0.4/0.4/0.2/0.1 p 0.8 (torchvision: multiplicative brightness), grey 0.2, blur 1.0 / 0.1,
    # solarisation 0.0 / 0.2, flip 0.5. (The paper's ImageNet setting, Sec. 4: SGD lr 0.05 * batch/256, wd 1e-4,
    # batch 512, 100 epochs without warm-up, a 3-layer projector of 2048.)
    "imagenet": {**SOLO_LEARN, **common.ASYMMETRIC_VIEWS},
    # The smoke run keeps the schedule it was recorded with (tests/methods/smoke_losses.json): every parameter on
    # the cosine.
    "smoke": {
        "model.projector_kwargs": dict(common.SMOKE_PROJECTOR, last_bn=True),
        "simsiam.predictor_kwargs": dict(hidden_dims=(4,), out_dim=8),
        "optim.constant_lr_params": (),
    },
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("simsiam")
  # The predictor: a bottleneck MLP (BN in the hidden layer, none on the output) whose output width equals the
  # projector's (paper Sec. 4: 2048 -> 512 -> 2048).
  c.simsiam.predictor_kwargs = dict(hidden_dims=(512,), out_dim=2048)
  return common.apply_variant(c, arg, OVERRIDES)
