"""Matryoshka: a two-view objective applied to nested prefixes of the projection, summed over the nesting sizes.

Kusupati et al., "Matryoshka Representation Learning", NeurIPS 2022, https://arxiv.org/abs/2205.13147 (eq. 1).
`config.matryoshka.base` names the base objective (simclr, barlow_twins, vicreg, dcl, align_uniform) and its
hyper-parameters come from the base method's own config section (`config.simclr.temperature`, ...). For nesting
sizes m_1 < ... < m_n = d (the projector's `out_dim`) and weights c_m (1 in the paper),

    L = sum_m c_m * L_base(z1[:, :m], z2[:, :m]),

through `rl.losses.matryoshka`. Every prefix is passed to the base objective as is, so objectives that normalise
(NT-Xent, DCL, alignment/uniformity) or standardise (Barlow Twins) do so per prefix, as MRL does.

Where the nesting is (a choice). MRL nests the representation that is used downstream, with one linear head per
granularity on top of it. Here the nesting is on the projector output z: one shared encoder and projector (the
base method's network, `simclr.build_network`), and the base objective on the leading m coordinates of z. This
keeps the base method untouched (the same parameters, BatchNorm and forward passes) and makes every prefix of z a
usable embedding, but the evaluated representation is still the encoder output h, whose prefixes are NOT trained
to be nested. Nesting the encoder features with one projector per granularity is the other reading; it is not
implemented. The forward pass follows the base: both views as one batch for simclr, dcl and align_uniform, one
pass per view for barlow_twins and vicreg (per-view BatchNorm statistics, as in those methods).

Metrics: the weighted total (`matryoshka`) and the base loss at each nesting size (`<base metric>_d<m>`).
"""
from __future__ import annotations

from typing import Callable

import ml_collections

from rl import losses
from rl.methods import align_uniform
from rl.methods import barlow_twins
from rl.methods import base
from rl.methods import dcl
from rl.methods import simclr
from rl.methods import two_view
from rl.methods import vicreg

# name -> (the base's objective factory, the base's forward pass, the name of its per-size metric). The objectives
# are the base methods' own (`<base>.objective(config)`): Matryoshka wraps them, so it imports their modules.
BASES: dict[str, tuple[Callable[[ml_collections.ConfigDict], two_view.Objective], str, Callable]] = {
    "simclr": (simclr.objective, "joint", lambda config: "nt_xent"),
    "barlow_twins": (barlow_twins.objective, "per_view", lambda config: "barlow_twins"),
    "vicreg": (vicreg.objective, "per_view", lambda config: "vicreg"),
    "dcl": (dcl.objective, "joint", dcl.metric_name),
    "align_uniform": (align_uniform.objective, "joint", lambda config: "align_uniform"),
}


def default_dims(out_dim: int) -> tuple[int, ...]:
  """MRL's nesting sizes: powers of two from 8 up to `out_dim`, ending with `out_dim` (8 alone if smaller).

  Example:
    >>> default_dims(128), default_dims(100), default_dims(4)
    ((8, 16, 32, 64, 128), (8, 16, 32, 64, 100), (4,))
  """
  dims, m = [], 8
  while m < out_dim:
    dims.append(m)
    m *= 2
  return tuple(dims) + (int(out_dim),)


def resolve(config: ml_collections.ConfigDict) -> tuple[str, tuple[int, ...], tuple[float, ...] | None]:
  """(base name, nesting sizes, weights) of `config.matryoshka`, validated; ValueError otherwise.

  Example:
    >>> from configs import matryoshka as matryoshka_config
    >>> resolve(matryoshka_config.get_config("smoke"))
    ('simclr', (2, 4, 8), None)
  """
  cfg = config.matryoshka
  name = base.base_method(config, BASES)
  out_dim = int(config.model.projector_kwargs.out_dim)
  dims = default_dims(out_dim) if cfg.dims is None else tuple(int(m) for m in cfg.dims)
  if not dims or dims[-1] != out_dim:
    raise ValueError(f"config.matryoshka.dims={dims}: the largest nesting size must be the projector's out_dim "
                     f"({out_dim}), the full-size term of MRL.")
  weights = None if cfg.weights is None else tuple(float(w) for w in cfg.weights)
  return name, dims, weights


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The Matryoshka `Method` for a config with `model`, `matryoshka.{base, dims, weights}` and the base's section.

  Example:
    >>> from configs import matryoshka as matryoshka_config
    >>> method = make(matryoshka_config.get_config("smoke,vicreg"))  # VICReg at nesting sizes 2, 4 and 8
    >>> rl.methods.base.describe(method)["metrics"]
    ['matryoshka', 'vicreg_d2', 'vicreg_d4', 'vicreg_d8']
  """
  name, dims, weights = resolve(config)
  base_objective, forward, metric = BASES[name]
  base_objective, metric = base_objective(config), metric(config)

  def prefix_loss(z1, z2, axis_name):  # the base's loss alone (its metrics are those of the whole projection)
    return two_view.loss_and_metrics(base_objective(z1, z2, axis_name=axis_name), metric)[0]

  # Validates dims and weights now (positive, increasing, one weight per size), not at the first step.
  nested = losses.matryoshka(prefix_loss, dims, weights=weights, argnums=(0, 1), return_terms=True)

  def objective(z1, z2, *, axis_name=None):
    value, terms = nested(z1, z2, axis_name=axis_name)
    return value, {"matryoshka": value, **{f"{metric}_d{m}": term for m, term in terms.items()}}

  return two_view.make(config, objective, name="matryoshka", forward=forward)
