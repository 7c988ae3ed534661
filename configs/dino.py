"""DINO (Caron et al. 2021). `--config configs/dino.py:VARIANT`, VARIANT in mnist1d (default), digits, cifar10,
cifar100, smoke. mnist1d uses multi-crop (2 global views of 40 samples, 4 local crops resampled to 20)."""
from __future__ import annotations

import ml_collections

from configs import common

VARIANTS = ("mnist1d", "digits", "cifar10", "cifar100", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "mnist1d"
  common.check_variant("configs/dino.py", variant, VARIANTS)
  c = common.base()
  c.method = "dino"
  c.dino = ml_collections.ConfigDict()
  # DINO's defaults (main_dino.py): head 2048-2048-256 bottleneck -> 65536, student tau 0.1, teacher tau 0.04 ->
  # 0.07 (warm-up over 30 epochs in the long runs), centre momentum 0.9, teacher momentum 0.996 -> 1 (cosine),
  # last layer frozen for the first epoch.
  c.dino.head_kwargs = ml_collections.ConfigDict(dict(out_dim=65536, hidden_dim=2048, bottleneck_dim=256,
                                                      num_layers=3, use_bn=False, norm_last_layer=True))
  c.dino.num_global_crops = 2
  c.dino.student_temp = 0.1
  c.dino.teacher_temp = 0.07
  c.dino.warmup_teacher_temp = 0.04
  c.dino.warmup_teacher_temp_steps = 0
  c.dino.center_momentum = 0.9
  c.dino.base_momentum = 0.996
  c.dino.final_momentum = 1.0
  c.dino.freeze_last_layer_steps = 0

  if variant in ("mnist1d", "smoke"):
    common.mnist1d(c)
    c.augment.views = ("mnist1d",) * 2 + ("mnist1d_local",) * 4
    c.augment.view_sizes = (None, None, 20, 20, 20, 20)
    c.dino.head_kwargs = ml_collections.ConfigDict(dict(out_dim=1024, hidden_dim=256, bottleneck_dim=64,
                                                        num_layers=3, use_bn=False, norm_last_layer=True))
    c.dino.base_momentum = 0.99  # a short run (solo-learn's CIFAR runs start at 0.99 to 0.9995)
    c.dino.warmup_teacher_temp_steps = 1000
    c.dino.freeze_last_layer_steps = 4000 // 256  # one epoch of the 4000 training signals
  elif variant == "digits":
    common.digits(c)
    c.dino.head_kwargs = ml_collections.ConfigDict(dict(out_dim=1024, hidden_dim=512, bottleneck_dim=128,
                                                        num_layers=3, use_bn=False, norm_last_layer=True))
    c.dino.base_momentum = 0.99
    c.dino.freeze_last_layer_steps = 1437 // 256
  elif variant in ("cifar10", "cifar100"):
    # solo-learn's DINO CIFAR recipe (scripts/pretrain/cifar/dino.yaml and solo/methods/dino.py defaults): head
    # 2048 hidden, 256 bottleneck, 4096 prototypes, no BN, last layer normalised and frozen for 1 epoch, student
    # tau 0.1, teacher tau 0.07 (warm-up from 0.04 over 0 epochs), momentum 0.9995 -> 1, LARS lr 0.3 * batch/256,
    # wd 1e-6, 2 crops of 32.
    common.cifar(c, variant)
    c.dino.head_kwargs = ml_collections.ConfigDict(dict(out_dim=4096, hidden_dim=2048, bottleneck_dim=256,
                                                        num_layers=3, use_bn=False, norm_last_layer=True))
    c.dino.base_momentum = 0.9995
    c.dino.freeze_last_layer_steps = 50000 // 256
    c.optim.lr = 0.3
    c.optim.weight_decay = 1e-6

  if variant == "smoke":
    common.shrink_for_smoke(c)
    c.dino.head_kwargs = ml_collections.ConfigDict(dict(out_dim=32, hidden_dim=16, bottleneck_dim=8,
                                                        num_layers=3, use_bn=False, norm_last_layer=True))
    c.dino.freeze_last_layer_steps = 1
    c.dino.warmup_teacher_temp_steps = 4
  return c
