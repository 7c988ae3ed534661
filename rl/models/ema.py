"""Exponential moving averages of parameters, for target (teacher / momentum) networks.

The target of BYOL, MoCo, DINO and their kin is an EMA of the online network: after each optimizer step,
target <- m * target + (1 - m) * online. `momentum` schedules give m at a step.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def ema_update(target: PyTree, online: PyTree, momentum) -> PyTree:
  """target <- momentum * target + (1 - momentum) * online, leaf by leaf (structures must match).

  Args:
    target: the EMA pytree (e.g. target params and BatchNorm statistics).
    online: the online pytree with the same structure.
    momentum: m in [0, 1], a float or a traced scalar (from a schedule).

  Returns:
    The new target, each leaf in the target's dtype.

  Example:
    >>> [round(v, 6) for v in ema_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.9)["w"].tolist()]
    [0.1, 0.1]
  """
  if jax.tree.structure(target) != jax.tree.structure(online):
    raise ValueError(f"target and online must have the same tree structure; got {jax.tree.structure(target)} "
                     f"and {jax.tree.structure(online)}.")
  if isinstance(momentum, (int, float)) and not 0.0 <= momentum <= 1.0:
    raise ValueError(f"momentum must be in [0, 1]; got {momentum}.")

  def mix(t, o):
    m = jnp.asarray(momentum, jnp.float32)
    return (m * t.astype(jnp.float32) + (1.0 - m) * o.astype(jnp.float32)).astype(t.dtype)

  return jax.tree.map(mix, target, online)


def cosine_momentum(step, total_steps: int, *, base: float = 0.996, final: float = 1.0) -> jax.Array:
  """BYOL's schedule: m = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2.

  Starts at `base` (0.996 in BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733, Section 3.2) and rises
  to `final` (1.0) at `total_steps`; DINO uses the same form for its teacher (0.996 -> 1).

  Example:
    >>> round(float(cosine_momentum(0, 100)), 6), round(float(cosine_momentum(100, 100)), 6)
    (0.996, 1.0)
  """
  if total_steps <= 0:
    raise ValueError(f"total_steps must be > 0; got {total_steps}.")
  progress = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
  return final - (final - base) * (jnp.cos(math.pi * progress) + 1.0) / 2.0


def constant_momentum(step, *, momentum: float = 0.999) -> jax.Array:
  """MoCo's schedule: a constant m (0.999 in MoCo v1/v2, He et al. 2020, https://arxiv.org/abs/1911.05722).

  Example:
    >>> float(constant_momentum(10))
    0.9990000128746033
  """
  del step
  return jnp.asarray(momentum, jnp.float32)
