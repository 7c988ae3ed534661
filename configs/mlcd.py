"""MLCD (An et al. 2024) with online DeepCluster-style pseudo-labels. `--config configs/mlcd.py:VARIANT`, VARIANT
in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke. Network, data and optimizer as configs/unicom.py."""
from __future__ import annotations

import ml_collections

from configs import common
from configs import unicom as unicom_config

VARIANTS = unicom_config.VARIANTS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/mlcd.py", variant, VARIANTS)
  c = common.base()
  c.method = "mlcd"
  c.mlcd = ml_collections.ConfigDict()
  # The paper takes the k = 10 nearest of 10^6 centres as positives; k = 3 of a few hundred clusters here.
  c.mlcd.num_positives = 3
  # Unicom's margin and scale and Partial FC's 0.1 negative sampling, all feature dimensions (MLCD keeps them all).
  c.mlcd.margin = 0.3
  c.mlcd.scale = 64.0
  c.mlcd.negative_ratio = 0.1
  c.mlcd.feature_ratio = 1.0
  unicom_config.recipe(c, variant, c.mlcd)
  if variant == "smoke":
    c.mlcd.num_positives = 2
  return c
