"""Unicom (An et al. 2023) with online DeepCluster-style pseudo-labels. `--config configs/unicom.py:VARIANT`,
VARIANT in mnist1d (default), digits, cifar10, cifar100, smoke.

`recipe(c, variant, section)` holds the network, data and optimizer settings shared with configs/mlcd.py."""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def recipe(c: ml_collections.ConfigDict, variant: str, section: ml_collections.ConfigDict) -> None:
  """Network, augmentations, optimizer and cluster counts of a cluster-discrimination method, in place.

  `section` is the method's own section (c.unicom or c.mlcd); this sets its `num_clusters` and clustering
  schedule. The number of clusters must be a multiple of the device count (the classes are sharded).
  """
  # Clustering schedule (our online adaptation; the papers cluster once, offline): re-cluster the bank once per
  # epoch (None: ceil(num_train_examples / batch_size) steps), 10 Lloyd iterations from the current prototypes,
  # bank rows overwritten by the newest first-view projection (momentum 0, as DeepCluster's fresh features).
  section.recluster_every = ml_collections.config_dict.placeholder(int)
  section.kmeans_iters = 10
  section.bank_momentum = 0.0
  if variant in ("mnist1d", "smoke"):
    # The SimCLR mnist1d recipe (configs/simclr.py); 128 clusters for 4000 training examples (~31 per cluster,
    # ~13 per class: the over-clustering of DeepCluster; Unicom has 10^6 clusters for 4 * 10^8 images).
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
    c.augment.views = ("mnist1d", "mnist1d")
    c.augment.overrides = ml_collections.ConfigDict(dataclasses.asdict(augment.MNIST1D))
    c.batch_size = 256
    c.total_steps = 5000
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
    section.num_clusters = 128
    # Tuned on mnist1d (2000 steps, linear probe): with the paper's scale 64 and a re-clustering every epoch
    # (16 steps) the probe stayed at the random encoder's 0.69; re-clustering every 100 steps (~6 epochs, so the
    # network fits the labels between clusterings) with scale 32 (the authors' default in their retrieval
    # fine-tuning, deepglint/unicom unicom/retrieval.py) reached 0.74.
    section.recluster_every = 100
    section.scale = 32.0
  elif variant == "digits":
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
    section.num_clusters = 64
  elif variant in ("cifar10", "cifar100"):
    # solo-learn has no Unicom or MLCD recipe. We use its recipe for the closest method, DeepClusterV2
    # (scripts/pretrain/cifar/deepclusterv2.yaml: k-means pseudo-labels re-computed every epoch, prototypes):
    # LARS (eta 0.02), lr 0.6 * batch/256, wd 1e-6, 11 warmup epochs, 1000 epochs, batch 256, projector
    # 2048-128, 3000 prototypes, symmetric augmentations (augmentations/symmetric.yaml, as SimCLR's without blur).
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(2048,), out_dim=128))
    c.augment.views = ("simclr", "simclr")
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 1000 * 50000 // 256
    c.optim.name = "lars"
    c.optim.lr = 0.6
    c.optim.scale_by_batch = True
    c.optim.weight_decay = 1e-6
    c.optim.warmup_steps = 11 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000
    section.num_clusters = 3000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(16,), out_dim=8))
    section.num_clusters = 16
    section.recluster_every = 2  # the smoke run re-clusters after steps 2 and 4
    section.kmeans_iters = 3


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/unicom.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "unicom"
  c.unicom = ml_collections.ConfigDict()
  # The paper's margin softmax: ArcFace margin 0.3, scale 64, Partial FC negative-class sampling 0.1.
  c.unicom.margin = 0.3
  c.unicom.scale = 64.0
  c.unicom.class_ratio = 0.1
  # Fraction of feature dimensions kept per step (the paper's random partial feature selection). 0.5 is our
  # choice; I could not read the paper's value here.
  c.unicom.feature_ratio = 0.5
  recipe(c, variant, c.unicom)
  return c
