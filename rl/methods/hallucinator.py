"""Hallucinator: extra positives made in feature space, added to SimCLR, MoCo v2 or SimSiam.

Wu, Hobbs & Hovakimyan, "Hallucination Improves the Performance of Unsupervised Visual Representation Learning",
ICCV 2023, https://arxiv.org/abs/2307.12168; the wiring follows the authors' code (github.com/jingwu6/
Hallucination-improves-the-performance-of-unsupervised-visual-representation-learning: models/generator.py,
models/moco.py, models/simsiam.py, models/simclr_generator.py).

`config.hallucinator.base` in {simclr, moco_v2, simsiam} gives the networks, state and objective of that method
(its hyper-parameters come from its own section, e.g. `config.moco_v2.temperature`). For a positive pair (a, b) of
the base objective, where a is the trained side (SimCLR's first projection, MoCo's query, SimSiam's prediction) and b
the other view's matching feature (SimCLR's second projection, MoCo's momentum key, SimSiam's other prediction),
`losses.hallucinate` builds

    a~ = g([a; a + lam (a - b)]),   lam ~ U(0, max_ratio) per example,

with g the learned smoother (a 3-layer ReLU MLP 2d -> 2d -> 2d -> d, trained with the rest, parameters under
`params["hallucinator"]`; `smoother=False` leaves a + lam (a - b)). a~ is an EXTRA positive, used in place of a with
the same partner, and the loss is the mean of the base objective on the real and on the hallucinated pairs:

    simclr:   (nt_xent(z1, z2) + nt_xent(z1~, z2)) / 2,            z1~ = g(z1, z2)
    moco_v2:  mean over both directions of (moco(q, k', queue) + moco(q~, k', queue)) / 2,  q~ = g(q, k')
    simsiam:  mean over both directions of (D(p, sg z') + D(p~, sg z')) / 2,            p~ = g(p, p')

For MoCo and SimSiam this is exactly the authors' code, which concatenates [a; a~] against [b; b] and averages
over the 2b rows. SimCLR's queue-free NT-Xent is where the forms differ: the authors run NT-Xent on the 2b-row
batch ([z1; z1~], [z2; z2]), so the hallucinated rows are also negatives of every other anchor and each z2_i appears
twice (once as the positive, once as a negative of z1_i); here the hallucinated pair has its own NT-Xent over the b
examples. With `max_ratio=0` and no smoother a~ = a and the loss is the base method's loss exactly.

Other differences: each example draws its own lam (the authors draw one per batch); MoCo v2 is solo-learn's
symmetrised form (both directions hallucinated, one queue per view, keys pushed once, not twice as the authors'
concatenated keys); the authors' SimCLR and MoCo hallucinate only from the first view. Method state and
`update_after_step` are the base method's (BatchNorm statistics; for MoCo v2 the EMA target and the queues).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import ema_target
from rl.methods import moco_v2
from rl.methods import simclr
from rl.methods import simsiam
from rl.methods import two_view

PARAMS_KEY = "hallucinator"  # the smoother's parameters, beside the base method's


@dataclasses.dataclass(frozen=True)
class Pair:
  """A positive pair of the base objective: `term(a)` is its loss with trained side a; b is a's partner."""
  a: jax.Array
  b: jax.Array
  term: Callable[[jax.Array], jax.Array]


def _simclr_pairs(config, out, state, batch, axis_name):
  temperature = float(config.simclr.temperature)
  z1, z2 = out.z
  return [Pair(z1, z2, lambda a: losses.nt_xent(a, z2, temperature=temperature, axis_name=axis_name))], state


def _moco_pairs(config, out, state, batch, axis_name):
  temperature = float(config.moco_v2.temperature)
  q1, q2 = out.z
  k1, k2 = (losses.l2_normalize(k.astype(jnp.float32)) for k in ema_target.target_projections(
      config, state["target"], batch["views"], axis_name=axis_name))
  queue = jax.lax.stop_gradient(state["queue"])
  moco = lambda k, queue_: lambda a: losses.moco(a, k, queue_, temperature=temperature, axis_name=axis_name)
  pairs = [Pair(q1, k2, moco(k2, queue[1])), Pair(q2, k1, moco(k1, queue[0]))]
  return pairs, {**state, **moco_v2.push_keys(state, k1, k2, axis_name=axis_name)}


def _simsiam_pairs(config, out, state, batch, axis_name):
  (p1, p2), (z1, z2) = out.p, jax.lax.stop_gradient(out.z)
  cos = lambda z: lambda a: losses.negative_cosine(a, z, axis_name=axis_name)
  # As the authors: each prediction is pushed away from the other view's (un-hallucinated) prediction.
  return [Pair(p1, p2, cos(z2)), Pair(p2, p1, cos(z1))], state


class Base(NamedTuple):
  """A method the Hallucinator can extend."""
  make: Callable[[ml_collections.ConfigDict], base.Method]  # the base method (init, embed, state updates)
  predictor_kwargs: Callable[[ml_collections.ConfigDict], Any]  # its network's predictor, if any
  pairs: Callable  # (config, out, state, batch, axis_name) -> (its positive pairs, the new method state)
  metric: str  # the name of its loss


BASES = {
    "simclr": Base(simclr.make, lambda config: None, _simclr_pairs, "nt_xent"),
    "moco_v2": Base(moco_v2.make, lambda config: None, _moco_pairs, "moco"),
    "simsiam": Base(simsiam.make, lambda config: config.simsiam.predictor_kwargs, _simsiam_pairs, "negative_cosine"),
}


def _split(params) -> tuple[dict[str, Any], Any]:
  """(the base method's params, the smoother's params or None)."""
  return {k: v for k, v in params.items() if k != PARAMS_KEY}, params.get(PARAMS_KEY)


def feature_dim(config: ml_collections.ConfigDict, name: str) -> int:
  """Size of the hallucinated features: the projection (simclr, moco_v2) or the prediction (simsiam).

  Example:
    >>> from configs import hallucinator as hallucinator_config
    >>> config = hallucinator_config.get_config("smoke")
    >>> config.hallucinator.base, feature_dim(config, config.hallucinator.base)
    ('simclr', 8)
  """
  if name == "simsiam":
    return int(config.simsiam.predictor_kwargs.out_dim)
  return int(config.model.projector_kwargs.out_dim)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The Hallucinator `Method` for a config with `model`, `hallucinator.{base, max_ratio, smoother,
  smoother_hidden_dims}` and the base method's section.

  Example:
    >>> from configs import hallucinator as hallucinator_config
    >>> rl.methods.base.describe(make(hallucinator_config.get_config("smoke")))
    {'params': ['encoder', 'hallucinator', 'projector'], 'state': ['batch_stats'], 'metrics': ['hallucinator',
     'nt_xent', 'nt_xent_hallucinated'], 'embedding': (8, 16)}
  """
  cfg = config.hallucinator
  name = base.base_method(config, BASES)
  max_ratio = float(cfg.max_ratio)
  if not max_ratio >= 0:
    raise ValueError(f"config.hallucinator.max_ratio must be >= 0; got {cfg.max_ratio}.")
  make_base, predictor_kwargs, pairs_of, metric = BASES[name]
  base_method = make_base(config)
  net = two_view.Network(config, predictor_kwargs(config))
  d = feature_dim(config, name)
  hidden = (2 * d, 2 * d) if cfg.smoother_hidden_dims is None else tuple(int(w) for w in cfg.smoother_hidden_dims)
  # The authors' generator: Linear-ReLU-Linear-ReLU-Linear, no BatchNorm.
  smoother_net = (base.get_model(config, "mlp_projector", hidden_dims=hidden, out_dim=d, use_bn=False)
                  if cfg.smoother else None)

  def init(key, x):
    base_key, smoother_key = jax.random.split(key)
    params, state = base_method.init(base_key, x)
    if smoother_net is not None:
      params = {**params, PARAMS_KEY: smoother_net.init(smoother_key, jnp.zeros((1, 2 * d)), train=False)["params"]}
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    params, smoother_params = _split(params)
    smoother = None
    if smoother_net is not None:
      smoother = lambda x: smoother_net.apply({"params": smoother_params}, x, train=True)
    out, state = net.apply(params, state, batch["views"], axis_name=axis_name)
    pairs, state = pairs_of(config, out, state, batch, axis_name)
    keys = [key] if len(pairs) == 1 else [jax.random.fold_in(key, i) for i in range(len(pairs))]
    real = sum(pair.term(pair.a) for pair in pairs) / len(pairs)
    fake = sum(pair.term(losses.hallucinate(k, pair.a, pair.b, max_ratio=max_ratio, smoother=smoother,
                                            axis_name=axis_name)) for k, pair in zip(keys, pairs)) / len(pairs)
    value = (real + fake) / 2
    metrics = {"hallucinator": value, metric: real, f"{metric}_hallucinated": fake}
    return value, (state, {"metrics": metrics, "features": jax.lax.stop_gradient(out.h[0])})

  def embed(params, state, x):
    return base_method.embed(_split(params)[0], state, x)

  def project(params, state, x):
    return base_method.project(_split(params)[0], state, x)

  def update_after_step(params, state, step):
    return base_method.update_after_step(_split(params)[0], state, step)

  return base.Method(name="hallucinator", num_views=2, init=init, loss=loss, embed=embed, project=project,
                     update_after_step=update_after_step if base_method.update_after_step else None)
