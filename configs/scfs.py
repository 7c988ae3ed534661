"""SCFS (Song et al. 2023): DINO plus semantics-consistent feature search at intermediate encoder layers.
`--config configs/scfs.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke.

Built on DINO: the config is `configs/dino.py:VARIANT` (its section `dino`: head, temperatures, teacher momentum,
centre) with the section `scfs`. SCFS needs local crops (the queries of its feature search), so every variant has
them: mnist1d and smoke DINO's smoke views (2 global signals, 4 local crops of 25-60% resampled to 20 samples);
digits 2 global views and 4 local crops of 6 x 6; cifar 2 x 32 and 4 x 16; imagenet DINO's 2 x 224 and 6 x 96.

`scfs` holds the authors' defaults where their code gives them (github.com/skyoux/scfs: layer-head temperatures
0.1 / 0.04, centre momentum 0.9, 256 outputs per layer head) and ours otherwise: the layers (conv1d: `bn1`, `bn2`,
the maps after its 2nd and 3rd convolutions; ResNets: the first block of every stage after the first, as the
authors' layers 2-4 of ResNet-50), the layer heads' hidden width, `layer_weight` 1.0.
"""
from __future__ import annotations

import ml_collections

from configs import common
from configs import dino

VARIANTS = common.VARIANTS

OVERRIDES = {
    "mnist1d": dino.MNIST1D_MULTICROP,
    "smoke": {**dino.MNIST1D_MULTICROP, "scfs.layers": ("bn0", "bn1"), "scfs.head_hidden_dim": 8, "scfs.head_out_dim": 16},
    "digits": {"augment.views": ("simclr",) * 2 + ("simclr_local",) * 4, "augment.view_sizes": (None, None, 6, 6, 6, 6),
               "scfs.layers": ("stage2_block1", "stage3_block1")},
    "cifar": {"augment.views": ("simclr_global",) * 2 + ("simclr_local",) * 4,
              "augment.view_sizes": (32, 32, 16, 16, 16, 16),
              "scfs.layers": ("stage2_block1", "stage3_block1", "stage4_block1")},
    "imagenet": {"scfs.layers": ("stage2_block1", "stage3_block1", "stage4_block1")},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c, variant = common.on_base("scfs", arg, ("dino",))
  c.scfs.layers = ("bn1", "bn2")
  c.scfs.head_hidden_dim = 256
  c.scfs.head_out_dim = 256
  c.scfs.student_temp = 0.1
  c.scfs.teacher_temp = 0.04
  c.scfs.center_momentum = 0.9
  c.scfs.layer_weight = 1.0
  return common.apply_overrides(c, variant, OVERRIDES)
