"""Matryoshka (Kusupati et al. 2022) on top of a two-view base objective.

`--config configs/matryoshka.py:VARIANT[,BASE]`, VARIANT in mnist1d (default), digits, cifar10, cifar100,
imagenet, smoke; BASE in simclr (default), barlow_twins, vicreg, dcl, align_uniform. The config is the base
method's own config of that variant (`configs/<BASE>.py:get_config(VARIANT)`: model, augmentation, optimiser and
the base's section with its hyper-parameters) plus `c.matryoshka`. MRL adds no hyper-parameter of its own besides
the nesting sizes, so the base's published recipe is kept as is (no solo-learn recipe exists for MRL).
"""
from __future__ import annotations

import ml_collections

from configs import common
from rl.methods import matryoshka

VARIANTS = common.VARIANTS
BASES = tuple(matryoshka.BASES)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  # c.matryoshka.base: the objective; its hyper-parameters are read from c.<base>.
  c, variant = common.on_base("matryoshka", arg, BASES)
  # MRL's sizes: 8, 16, ..., out_dim (the paper: 8 ... 2048 for a ResNet-50); the largest must be out_dim.
  c.matryoshka.dims = matryoshka.default_dims(int(c.model.projector_kwargs.out_dim))
  c.matryoshka.weights = ml_collections.config_dict.placeholder(tuple)  # None: all 1, as in the paper
  if variant == "smoke":
    c.matryoshka.dims = (2, 4, 8)  # the smoke projector's out_dim is 8
  return c
