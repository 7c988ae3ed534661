"""SCFS (Song et al. 2023): DINO plus semantics-consistent feature search at intermediate encoder layers.
`--config configs/scfs.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10, cifar100, imagenet, smoke.

Built on DINO: the config is `configs/dino.py:VARIANT` (its section `dino`: head, temperatures, teacher momentum,
centre) with the section `scfs`. SCFS needs local crops (the queries of its feature search), so every variant has
them: smoke DINO's smoke views (2 global signals, 4 local crops of 25-60% resampled to 20 samples); mnist1d 2 global
signals and 2 local crops of 50-90% resampled to 20 samples (the checks below); digits 2 global views and 4 local crops of 6 x 6; cifar 2 x 32 and 4 x 16; imagenet DINO's 2 x 224 and 6 x 96.

`scfs` holds the authors' defaults where their code gives them (github.com/skyoux/scfs: layer-head temperatures
0.1 / 0.04, centre momentum 0.9, 256 outputs per layer head) and ours otherwise: the layers (conv1d: `bn1`, `bn2`,
the maps after its 2nd and 3rd convolutions; ResNets: the first block of every stage after the first, as the
authors' layers 2-4 of ResNet-50), the layer heads' hidden width, `layer_weight` 1.0.

First check on mnist1d's validation split (the last 10% of train; 2000 steps, 1 seed; other jobs shared the CPU):

  python experiments/sweep.py --config configs/scfs.py:mnist1d --workdir runs/sweeps/scfs \
      --grid scfs.layer_weight=0.0,1.0 --set total_steps=2000 --seeds 1

  layer_weight 0 (DINO with these multi-crop views; the layer heads train but do not reach the encoder): val.
  linear probe 84.0 (kNN-20 83.3); 1.0 (SCFS): 77.5 (75.5).

The layer terms cost 6.5 points here, where DINO itself has barely started (its loss 6.69 of log 1024 = 6.93 at
step 2000, and DINO on mnist1d prefers 2 views to multi-crop: configs/dino.py).

Second check, at 2500 steps (1 seed), on the local crops: DINO on mnist1d found that a crop of 25-60% of a signal
whose digit is shifted circularly often holds too little of the digit; SCFS's searches start from those crops.

  python experiments/sweep.py --config configs/scfs.py:mnist1d --workdir runs/sweeps/scfs_budget \
      --set total_steps=2500 --seeds 1 \
      --cell 'local crops 25-60%: augment.overrides.crop_fraction_range=(0.25,0.6)' \
      --cell 'local crops 50-90%: augment.overrides.crop_fraction_range=(0.5,0.9)' \
      --cell 'layer_weight 0: augment.overrides.crop_fraction_range=(0.5,0.9); scfs.layer_weight=0.0'

  local crops 25-60%: val. linear probe 82.2 (kNN-20 77.2); 50-90%: 87.5 (78.8); 50-90% with layer_weight 0 (DINO
  with these views): 89.2 (86.0).

So mnist1d's local crops are 50-90% of the signal (+5.2 points). The layer terms still cost 1.7 points against
DINO with the same views at this budget (one seed: within about one seed's spread of 1-2 points); layer_weight
stays 1.0, SCFS as published. Not tuned: the layers, the layer heads' temperatures (the authors' 0.1 / 0.04 are
for 256 normalised outputs on ImageNet).

Third check, at the 5-minute budget (2 seeds each; the table's first SCFS rows, 4 local crops at 3500 steps, gave
88.7 +/- 1.6 on the test split, below the distillation bar of 90): where do the points go?

  python experiments/sweep.py --config configs/scfs.py:mnist1d --workdir runs/sweeps/scfs_budget --seeds 2 \
      --cell 'SCFS as configured (3500 steps):' --cell 'layer_weight 0: scfs.layer_weight=0.0'
  python experiments/sweep.py --config configs/dino.py:mnist1d --workdir runs/sweeps/dino_3500 --seeds 2 \
      --cell 'DINO (2 views), 3500 steps: total_steps=3500'
  python experiments/sweep.py --config configs/scfs.py:mnist1d --workdir runs/sweeps/scfs_two_local --seeds 2 \
      --cell "2 local crops, 4500 steps: augment.views=('mnist1d','mnist1d','mnist1d_local','mnist1d_local'); \
augment.view_sizes=(None,None,20,20); total_steps=4500"

  | cell | val. linear probe % | val. kNN-20 % | wall s |
  | --- | --- | --- | --- |
  | SCFS, 4 local crops, 3500 steps (before) | 91.2 +/- 1.1 | 89.0 +/- 0.4 | 500 |
  | the same views, layer_weight 0 (DINO multi-crop) | 91.2 +/- 0.4 | 88.9 +/- 0.5 | 519 |
  | DINO as configured (2 views), 3500 steps | 91.9 +/- 1.6 | 90.2 +/- 1.4 | 187 |
  | **SCFS, 2 local crops, 4500 steps (chosen)** | **92.5 +/- 0.0** | **91.1 +/- 0.5** | 514 |

At equal steps SCFS equals DINO with the same views, and DINO with 2 views: its layer terms cost nothing and its
gap to DINO's row (8000 steps) is the number of steps its costlier step buys in the budget. With 2 local crops a
step costs 3.46 SimCLR steps instead of 4.99 (step_cost.py, BENCHMARKS.md; 5137 steps fit), and 4500 steps in the
same wall time give +1.3 points (+2.1 kNN). The table trains 4500 steps.
"""
from __future__ import annotations

import ml_collections

from configs import common
from configs import dino

VARIANTS = common.VARIANTS

OVERRIDES = {
    # The local crops are 50-90% of the signal (the second check above); set in `augment.overrides`, which reaches
    # every view, but only the local crops crop.
    # mnist1d: 2 local crops, not DINO's 4, and 4500 steps: the 5-minute training budget on 2 CPU cores (issue 19)
    # fits 5137 steps, as a step costs 3.46 SimCLR steps (experiments/benchmarks/step_cost.py, BENCHMARKS.md); 4500
    # is the validated count (the third check above). With 4 local crops a step cost 4.99 (3566 steps fit).
    "mnist1d": {"augment.views": ("mnist1d",) * 2 + ("mnist1d_local",) * 2, "augment.view_sizes": (None, None, 20, 20),
                "augment.overrides.crop_fraction_range": (0.5, 0.9), "total_steps": 4500},
    "smoke": {**dino.MNIST1D_MULTICROP, "scfs.layers": ("bn0", "bn1"), "scfs.head_hidden_dim": 8,
              "scfs.head_out_dim": 16},
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
