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

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.align_uniform import l2_normalize
from rl.methods.barlow_twins import apply_per_view
from rl.methods.simclr import EncoderProjector, build_network

Objective = Callable[..., jax.Array]


def _simclr(config):
  temperature = float(config.simclr.temperature)
  return "nt_xent", lambda z1, z2, axis_name: losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)


def _dcl(config):
  kwargs = dict(temperature=float(config.dcl.temperature), weighted=bool(config.dcl.weighted),
                sigma=float(config.dcl.sigma))
  return ("dclw" if kwargs["weighted"] else "dcl"), (
      lambda z1, z2, axis_name: losses.dcl(z1, z2, axis_name=axis_name, **kwargs))


def _barlow_twins(config):
  lambda_ = float(config.barlow_twins.lambda_)
  scale_loss = float(config.barlow_twins.scale_loss)
  return "barlow_twins", lambda z1, z2, axis_name: scale_loss * losses.barlow_twins(
      z1, z2, lambda_=lambda_, axis_name=axis_name)


def _vicreg(config):
  coeffs = {name: float(config.vicreg[name]) for name in ("sim_coeff", "std_coeff", "cov_coeff")}
  return "vicreg", lambda z1, z2, axis_name: losses.vicreg(z1, z2, axis_name=axis_name, **coeffs)


def _align_uniform(config):
  alpha, t, lam = (float(config.align_uniform[k]) for k in ("alpha", "t", "lam"))

  def objective(z1, z2, axis_name):
    u1, u2 = l2_normalize(z1), l2_normalize(z2)  # per prefix
    align = losses.alignment(u1, u2, alpha=alpha, axis_name=axis_name)
    uniform = (losses.uniformity(u1, t=t, axis_name=axis_name) + losses.uniformity(u2, t=t, axis_name=axis_name)) / 2
    return align + lam * uniform
  return "align_uniform", objective


# name -> (builder of (metric name, objective(z1, z2, axis_name)), per-view forward passes)
BASES: dict[str, tuple[Callable, bool]] = {
    "simclr": (_simclr, False),
    "barlow_twins": (_barlow_twins, True),
    "vicreg": (_vicreg, True),
    "dcl": (_dcl, False),
    "align_uniform": (_align_uniform, False),
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
  name = cfg.base
  if name not in BASES:
    raise ValueError(f"config.matryoshka.base: unknown base {name!r}; known bases: {', '.join(sorted(BASES))}.")
  if name not in config:
    raise ValueError(f"config.matryoshka.base={name!r} needs the section config.{name} with its hyper-parameters; "
                     f"build the config with configs/matryoshka.py:VARIANT,{name}.")
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
    >>> config = matryoshka_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.matryoshka.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['matryoshka', 'nt_xent_d2', 'nt_xent_d4', 'nt_xent_d8'], (8, 16))
  """
  name, dims, weights = resolve(config)
  build_objective, per_view = BASES[name]
  metric, objective = build_objective(config)
  # Validates dims and weights now (positive, increasing, one weight per size), not at the first step.
  nested = losses.matryoshka(objective, dims, weights=weights, argnums=(0, 1), return_terms=True)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def project(params, state, views, axis_name):
    """(features of view 1, z1, z2, new state) with the base method's forward passes."""
    net = build_network(config, axis_name=axis_name)
    if per_view:
      (h1, _), (z1, z2), new_state = apply_per_view(net, params, state, views)
      return h1, z1, z2, new_state
    v1, v2 = views
    b = v1.shape[0]
    (h, z), new_state = net.apply({"params": params, **state}, jnp.concatenate([v1, v2]), train=True,
                                  mutable=list(state))
    return h[:b], z[:b], z[b:], dict(new_state)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # every base objective here is deterministic given the views
    h1, z1, z2, new_state = project(params, state, batch["views"], axis_name)
    value, terms = nested(z1, z2, axis_name=axis_name)
    metrics = {"matryoshka": value, **{f"{metric}_d{m}": terms[i] for i, m in enumerate(dims)}}
    aux = {"metrics": metrics, "features": jax.lax.stop_gradient(h1)}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  return base.Method(name="matryoshka", num_views=2, init=init, loss=loss, embed=embed)
