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

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl import models
from rl.methods import _target
from rl.methods import base
from rl.methods import moco_v2
from rl.methods import simclr
from rl.methods import simsiam

BASES = {"simclr": simclr.make, "moco_v2": moco_v2.make, "simsiam": simsiam.make}
PARAMS_KEY = "hallucinator"  # the smoother's parameters, beside the base method's


def _split(params) -> tuple[dict[str, Any], Any]:
  """(the base method's params, the smoother's params or None)."""
  return {k: v for k, v in params.items() if k != PARAMS_KEY}, params.get(PARAMS_KEY)


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


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
    >>> config = hallucinator_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.hallucinator.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'hallucinator', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['hallucinator', 'nt_xent', 'nt_xent_hallucinated'], (8, 16))
  """
  cfg = config.hallucinator
  name = cfg.base
  if name not in BASES:
    raise ValueError(f"config.hallucinator.base: unknown base {name!r}; known bases: {', '.join(sorted(BASES))}.")
  if name not in config:
    raise ValueError(f"config.hallucinator.base={name!r} needs the section config.{name} with its hyper-parameters; "
                     f"build the config with configs/hallucinator.py:VARIANT,{name}.")
  max_ratio = float(cfg.max_ratio)
  if not max_ratio >= 0:
    raise ValueError(f"config.hallucinator.max_ratio must be >= 0; got {cfg.max_ratio}.")
  base_method = BASES[name](config)
  d = feature_dim(config, name)
  hidden = (2 * d, 2 * d) if cfg.smoother_hidden_dims is None else tuple(int(w) for w in cfg.smoother_hidden_dims)
  # The authors' generator: Linear-ReLU-Linear-ReLU-Linear, no BatchNorm.
  smoother_net = models.get_model("mlp_projector", hidden_dims=hidden, out_dim=d, use_bn=False) if cfg.smoother \
      else None

  def init(key, x):
    base_key, smoother_key = jax.random.split(key)
    params, state = base_method.init(base_key, x)
    if smoother_net is not None:
      params = {**params, PARAMS_KEY: smoother_net.init(smoother_key, jnp.zeros((1, 2 * d)), train=False)["params"]}
    return params, state

  def hallucinate(smoother_params, key, a, b, axis_name):
    smoother = None
    if smoother_net is not None:
      smoother = lambda x: smoother_net.apply({"params": smoother_params}, x, train=True)
    return losses.hallucinate(key, a, b, max_ratio=max_ratio, smoother=smoother, axis_name=axis_name)

  def simclr_loss(params, smoother_params, state, v1, v2, key, axis_name):
    temperature = float(config.simclr.temperature)
    b = v1.shape[0]
    net = simclr.build_network(config, axis_name)
    (h, z), new_state = net.apply({"params": params, **state}, jnp.concatenate([v1, v2]), train=True,
                                  mutable=list(state))
    z1, z2 = z[:b], z[b:]
    real = losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)
    z1_h = hallucinate(smoother_params, key, z1, z2, axis_name)
    fake = losses.nt_xent(z1_h, z2, temperature=temperature, axis_name=axis_name)
    return real, fake, dict(new_state), h[:b], "nt_xent"

  def moco_loss(params, smoother_params, state, v1, v2, key, axis_name):
    temperature = float(config.moco_v2.temperature)
    b = v1.shape[0]
    x = jnp.concatenate([v1, v2])
    net = simclr.build_network(config, axis_name)
    (h, q), new_bs = net.apply(_target.variables(params, state), x, train=True, mutable=["batch_stats"])
    k = _normalize(_target.target_projections(config, state["target"], x, axis_name=axis_name))
    q1, q2, k1, k2 = q[:b], q[b:], k[:b], k[b:]
    queue = jax.lax.stop_gradient(state["queue"])
    moco = lambda query, key_, queue_: losses.moco(query, key_, queue_, temperature=temperature, axis_name=axis_name)
    real = (moco(q1, k2, queue[1]) + moco(q2, k1, queue[0])) / 2
    q1_h = hallucinate(smoother_params, jax.random.fold_in(key, 0), q1, k2, axis_name)
    q2_h = hallucinate(smoother_params, jax.random.fold_in(key, 1), q2, k1, axis_name)
    fake = (moco(q1_h, k2, queue[1]) + moco(q2_h, k1, queue[0])) / 2
    queue0, ptr = losses.queue_push(queue[0], state["queue_ptr"], k1, axis_name=axis_name)
    queue1, _ = losses.queue_push(queue[1], state["queue_ptr"], k2, axis_name=axis_name)
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {}), "queue": jnp.stack([queue0, queue1]),
                 "queue_ptr": ptr}
    return real, fake, new_state, h[:b], "moco"

  def simsiam_loss(params, smoother_params, state, v1, v2, key, axis_name):
    b = v1.shape[0]
    net = _target.build_online(config, axis_name, config.simsiam.predictor_kwargs)
    (h, z, p), new_bs = net.apply(_target.variables(params, state), jnp.concatenate([v1, v2]), train=True,
                                  mutable=["batch_stats"])
    z = jax.lax.stop_gradient(z)
    p1, p2, z1, z2 = p[:b], p[b:], z[:b], z[b:]
    cos = lambda p_, z_: losses.negative_cosine(p_, z_, axis_name=axis_name)
    real = (cos(p1, z2) + cos(p2, z1)) / 2
    # As the authors: each prediction is pushed away from the other view's (un-hallucinated) prediction.
    p1_h = hallucinate(smoother_params, jax.random.fold_in(key, 0), p1, p2, axis_name)
    p2_h = hallucinate(smoother_params, jax.random.fold_in(key, 1), p2, p1, axis_name)
    fake = (cos(p1_h, z2) + cos(p2_h, z1)) / 2
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {})}
    return real, fake, new_state, h[:b], "negative_cosine"

  base_loss = {"simclr": simclr_loss, "moco_v2": moco_loss, "simsiam": simsiam_loss}[name]

  def loss(params, state, batch, key, *, axis_name=None):
    v1, v2 = batch["views"]
    params, smoother_params = _split(params)
    real, fake, new_state, features, metric = base_loss(params, smoother_params, state, v1, v2, key, axis_name)
    value = (real + fake) / 2
    metrics = {"hallucinator": value, metric: real, f"{metric}_hallucinated": fake}
    aux = {"metrics": metrics, "features": jax.lax.stop_gradient(features)}
    return value, (new_state, aux)

  def embed(params, state, x):
    return base_method.embed(_split(params)[0], state, x)

  update_after_step = None
  if base_method.update_after_step is not None:
    def update_after_step(params, state, step):
      return base_method.update_after_step(_split(params)[0], state, step)

  return base.Method(name="hallucinator", num_views=2, init=init, loss=loss, embed=embed,
                     update_after_step=update_after_step)
