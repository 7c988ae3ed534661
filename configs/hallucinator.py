"""Hallucinator (Wu, Hobbs & Hovakimyan 2023) on top of SimCLR, MoCo v2 or SimSiam.

`--config configs/hallucinator.py:VARIANT[,BASE]`, VARIANT in mnist1d (default), digits, cifar10, cifar100,
imagenet, smoke; BASE in simclr (default), moco_v2, simsiam. The config is the base method's own config of that
variant (`configs/<BASE>.py:get_config(VARIANT)`: model, augmentation, optimiser and the base's section) plus
`c.hallucinator`, whose defaults are the authors' (github.com/jingwu6/Hallucination-improves-the-performance-of-
unsupervised-visual-representation-learning: ratio ~ U(0, 0.1), generator 2d -> 2d -> 2d -> d). solo-learn has no
Hallucinator recipe; the base's recipe is kept as is.
"""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = common.VARIANTS
BASES = ("simclr", "moco_v2", "simsiam")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  # c.hallucinator.base: networks, state and objective; hyper-parameters in c.<base>.
  c, _ = common.on_base("hallucinator", arg, BASES)
  c.hallucinator.max_ratio = 0.1  # lam ~ U(0, max_ratio): the authors' random.uniform(0, 0.1)
  c.hallucinator.smoother = True  # the learned non-linear smoother (the authors' Generator MLP)
  # Hidden widths of the smoother; None: (2d, 2d) with d the hallucinated feature size, as the authors.
  c.hallucinator.smoother_hidden_dims = ml_collections.config_dict.placeholder(tuple)
  return c
