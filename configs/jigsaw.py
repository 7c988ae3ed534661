"""Jigsaw puzzles (Noroozi & Favaro 2016). `--config configs/jigsaw.py:VARIANT`, VARIANT in mnist1d (default),
digits, cifar10, cifar100, smoke.

The method is not in solo-learn (no scripts/pretrain/cifar/*.yaml for it). The paper cuts 225 x 225 crops into
3 x 3 cells of 75 pixels and takes a 64-pixel tile at a random place in each, normalises each tile, and classifies
among 1000 permutations of maximal average Hamming distance (its best setting; Table 3). The image variants keep
those proportions as far as 8 x 8 and 32 x 32 inputs allow, and borrow the optimiser of configs/rotnet.py (the
paper's Caffe schedule for ImageNet does not transfer to 32 x 32 images).
"""
from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from rl.data import augment

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  if variant not in VARIANTS:
    raise ValueError(f"configs/jigsaw.py: unknown variant {variant!r}; known variants: {', '.join(VARIANTS)}.")
  c = common.base()
  c.method = "jigsaw"
  c.jigsaw = ml_collections.ConfigDict()
  # Number of tiles: images use a sqrt(tiles) x sqrt(tiles) grid; signals a row. A perfect square either way (the
  # permutation set comes from rl.losses.make_permutations over grid*grid cells).
  c.jigsaw.tiles = 9
  c.jigsaw.tile = 64  # tile side (images) or length (signals); smaller than the cell, for random gaps
  c.jigsaw.num_permutations = 1000  # classes; at most tiles!
  c.jigsaw.normalize_tiles = True  # each tile to zero mean, unit variance (the paper)
  # The classifier on the tile features concatenated in tile order: Linear-BN-ReLU per hidden layer, Linear.
  c.jigsaw.head_hidden_dims = (1024,)

  if variant in ("mnist1d", "smoke"):
    # Our 1-D analogue: 4 cells of 10 samples, 8-sample tiles (the paper's 64/75), all 4! = 24 permutations;
    # no per-tile normalisation (8 samples give a poor variance estimate).
    c.dataset = "mnist1d"
    c.model.encoder = "conv1d"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
    c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
    c.jigsaw.tiles = 4
    c.jigsaw.tile = 8
    c.jigsaw.num_permutations = 24
    c.jigsaw.normalize_tiles = False
    c.jigsaw.head_hidden_dims = (256,)
    c.augment.views = ("mnist1d",)
    c.augment.overrides = ml_collections.ConfigDict(dataclasses.asdict(augment.MNIST1D))
    c.batch_size = 256
    c.total_steps = 5000
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    c.eval.every_steps = 500
    c.checkpoint.every_steps = 500
  elif variant == "digits":
    # 8 x 8: a 2 x 2 grid of 4-pixel cells, 3-pixel tiles, all 4! = 24 permutations.
    c.dataset = "digits"
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.jigsaw.tiles = 4
    c.jigsaw.tile = 3
    c.jigsaw.num_permutations = 24
    c.jigsaw.head_hidden_dims = (512,)
    c.augment.views = ("none",)
    c.augment.out_size = 8
    c.augment.overrides = ml_collections.ConfigDict(dict(mean=(0.5,), std=(0.25,)))
    c.batch_size = 256
    c.total_steps = 1000
  elif variant in ("cifar10", "cifar100"):
    # 32 x 32: 3 x 3 cells of 10 pixels, 9-pixel tiles (64/75 of a cell, rounded), 1000 permutations.
    c.dataset = variant
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
    c.jigsaw.tile = 9
    c.augment.views = ("none",)
    c.augment.out_size = 32
    c.augment.overrides = ml_collections.ConfigDict(dict(flip_p=0.5, mean=(0.4914, 0.4822, 0.4465),
                                                         std=(0.2470, 0.2435, 0.2616)))
    c.batch_size = 256
    c.total_steps = 200 * 50000 // 256
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4
    c.optim.warmup_steps = 10 * 50000 // 256
    c.eval.every_steps = 5000
    c.checkpoint.every_steps = 2000

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.jigsaw.head_hidden_dims = (16,)
  return c
