"""MLCD (An et al. 2024) with online DeepCluster-style pseudo-labels. `--config configs/mlcd.py:VARIANT`, VARIANT
in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke. Network, data and optimizer as configs/unicom.py
(its `recipe`, on the datasets of configs/common.py)."""
from __future__ import annotations

import ml_collections

from configs import common
from configs import unicom

VARIANTS = common.VARIANTS

OVERRIDES = {"smoke": {"mlcd.num_positives": 2}}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base("mlcd")
  # The paper takes the k = 10 nearest of 10^6 centres as positives; k = 3 of a few hundred clusters here.
  c.mlcd.num_positives = 3
  # Unicom's margin and scale and Partial FC's 0.1 negative sampling, all feature dimensions (MLCD keeps them all).
  unicom.shared(c.mlcd)
  c.mlcd.negative_ratio = 0.1
  c.mlcd.feature_ratio = 1.0
  return common.apply_variant(c, arg, unicom.recipe("mlcd"), OVERRIDES)
