"""An independent transcription of the momentum schedule of the EMA-target methods, for their tests.

BYOL (Grill et al. 2020, Sec. 3.2) raises the target momentum along a half cosine, m = 1 - (1 - m0) (cos(pi k / K)
+ 1) / 2; solo-learn's MomentumUpdater generalises the end point to any final value (MoCo v2+ on CIFAR: 0.99 ->
0.999). The tests compare the methods' target updates with this float64 formula, at a base and a final momentum
that are not the configs' defaults and at steps where a schedule that ignores `final`, or is linear, differs.
"""
from __future__ import annotations

import math

# Not the defaults of any config, so that a method reading the wrong key, or ignoring one, is caught.
BASE, FINAL = 0.9, 0.99


def cosine_momentum(step: int, total_steps: int, base: float = BASE, final: float = FINAL) -> float:
  """final - (final - base) (cos(pi min(step, K) / K) + 1) / 2, K = total_steps, in float64."""
  k = min(step, total_steps)
  return final - (final - base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


def steps(total_steps: int) -> tuple[int, int, int]:
  """Step 0 (m = base), a quarter (cosine and linear schedules differ there) and the end (m = final, not 1)."""
  return 0, total_steps // 4, total_steps
