"""Jigsaw puzzles (Noroozi & Favaro 2016). `--config configs/jigsaw.py:VARIANT`, VARIANT in mnist1d (default),
digits, cifar10, cifar100, imagenet, smoke.

The method is not in solo-learn (no scripts/pretrain/cifar/*.yaml for it). The paper cuts 225 x 225 crops into
3 x 3 cells of 75 pixels and takes a 64-pixel tile at a random place in each, normalises each tile, and classifies
among 1000 permutations of maximal average Hamming distance (its best setting; Table 3). The imagenet variant
keeps that on 224 x 224 views (cells of 74 pixels) with the authors' optimiser; the other image variants keep the
proportions as far as 8 x 8 and 32 x 32 inputs allow, and borrow the optimiser of configs/rotnet.py (the paper's
Caffe schedule for ImageNet does not transfer to 32 x 32 images).
"""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "imagenet", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/jigsaw.py", variant, VARIANTS)
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
    common.mnist1d(c)
    c.jigsaw.tiles = 4
    c.jigsaw.tile = 8
    c.jigsaw.num_permutations = 24
    c.jigsaw.normalize_tiles = False
    c.jigsaw.head_hidden_dims = (256,)
  elif variant == "digits":
    # 8 x 8: a 2 x 2 grid of 4-pixel cells, 3-pixel tiles, all 4! = 24 permutations.
    common.digits(c)
    c.jigsaw.tiles = 4
    c.jigsaw.tile = 3
    c.jigsaw.num_permutations = 24
    c.jigsaw.head_hidden_dims = (512,)
    c.augment.views = ("none",)
    c.augment.overrides = ml_collections.ConfigDict(dict(mean=(0.5,), std=(0.25,)))
  elif variant in ("cifar10", "cifar100"):
    # 32 x 32: 3 x 3 cells of 10 pixels, 9-pixel tiles (64/75 of a cell, rounded), 1000 permutations.
    common.cifar(c, variant, epochs=200)
    c.jigsaw.tile = 9
    c.augment.views = ("none",)
    c.augment.overrides = ml_collections.ConfigDict(dict(flip_p=0.5, mean=common.CIFAR_MEAN, std=common.CIFAR_STD))
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.scale_by_batch = False
    c.optim.weight_decay = 5e-4
  elif variant == "imagenet":
    # The paper's puzzle on 224 x 224 views: 3 x 3 cells of 74 pixels (the paper's 75 on 225-pixel crops),
    # 64-pixel tiles, 1000 permutations, per-tile normalisation; the head is the paper's fc7 (4096) on the
    # concatenated tile features, before the 1000-way output. The authors' optimiser
    # (github.com/MehdiNoroozi/JigsawPuzzleSolver solver_cfn_jps.prototxt and train_val_cfn_jps.prototxt):
    # SGD lr 0.01, momentum 0.9, wd 5e-4, batch 256, no warm-up (350K iterations, ~70 epochs, with x0.1 steps
    # every 100K become 100 epochs with a cosine). Flip only, as the CIFAR variants (the paper's per-tile colour
    # jitter is not applied).
    common.imagenet(c)
    c.jigsaw.head_hidden_dims = (4096,)
    c.augment.views = ("none",)
    c.augment.overrides = ml_collections.ConfigDict(dict(flip_p=0.5))
    c.optim.name = "sgd"
    c.optim.lr = 0.01
    c.optim.scale_by_batch = False
    c.optim.weight_decay = 5e-4
    c.optim.warmup_steps = 0

  # One view, cut into tiles by the method; no projector (its head is c.jigsaw.head_hidden_dims).
  c.augment.views = c.augment.views[:1]
  c.model.projector_kwargs = ml_collections.ConfigDict()

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.jigsaw.head_hidden_dims = (16,)
  return c
