"""Alignment and uniformity on the hypersphere, optimised directly (Wang & Isola 2020).

Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere", ICML 2020, https://arxiv.org/abs/2005.10242 (sec. 4.1 and 6; their `examples/stl10/main.py`). With
u the L2-normalised projections of the two views,

    L = L_align(u1, u2; alpha) + lam * (L_uniform(u1; t) + L_uniform(u2; t)) / 2,

alpha = 2, t = 2, lam = 1 being the paper's defaults. The authors' encoder ends in a Linear layer followed by the
normalisation; here that is SimCLR's encoder + MLP projector (so the method plugs into the same configs), and the
representation that is evaluated is the encoder output, as for every other method.
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """L_align + lam * mean L_uniform of the normalised projections, with `config.align_uniform.{alpha, t, lam}`.

  Returns (loss, {'align', 'uniform'}).

  Example:
    >>> from configs import align_uniform as align_uniform_config
    >>> align_uniform = objective(align_uniform_config.get_config("smoke"))
    >>> value, metrics = align_uniform(jnp.eye(3), jnp.eye(3))  # aligned (0), spread over 3 orthogonal directions
    >>> round(float(metrics["align"]), 4), round(float(metrics["uniform"]), 4)
    (0.0, -4.0)
  """
  alpha, t, lam = (float(config.align_uniform[k]) for k in ("alpha", "t", "lam"))

  def align_uniform(z1, z2, *, axis_name=None):
    u1, u2 = (losses.l2_normalize(z.astype(jnp.float32)) for z in (z1, z2))
    align = losses.alignment(u1, u2, alpha=alpha, axis_name=axis_name)
    uniform = (losses.uniformity(u1, t=t, axis_name=axis_name) + losses.uniformity(u2, t=t, axis_name=axis_name)) / 2
    return align + lam * uniform, {"align": align, "uniform": uniform}

  return align_uniform


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The alignment + uniformity `Method` for a config with `model` and `align_uniform.{alpha, t, lam}`.

  Example:
    >>> from configs import align_uniform as align_uniform_config
    >>> rl.methods.base.describe(make(align_uniform_config.get_config("smoke")))
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['align', 'uniform'], 'embedding': (8,
     16)}
  """
  return two_view.make(config, objective(config), name="align_uniform")
