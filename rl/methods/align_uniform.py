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

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.simclr import EncoderProjector, build_network


def l2_normalize(z: jax.Array, eps: float = 1e-12) -> jax.Array:
  """z / max(|z|, eps) per row, in float32 (as torch.nn.functional.normalize).

  Example:
    >>> l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]]))
    Array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
  """
  z = z.astype(jnp.float32)
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), eps)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The alignment + uniformity `Method` for a config with `model` and `align_uniform.{alpha, t, lam}`.

  Example:
    >>> from configs import align_uniform as align_uniform_config
    >>> config = align_uniform_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.align_uniform.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['align', 'uniform'], (8, 16))
  """
  alpha = float(config.align_uniform.alpha)
  t = float(config.align_uniform.t)
  lam = float(config.align_uniform.lam)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # the objective is deterministic given the views
    v1, v2 = batch["views"]
    b = v1.shape[0]
    net = build_network(config, axis_name=axis_name)
    (h, z), new_state = net.apply({"params": params, **state}, jnp.concatenate([v1, v2]), train=True,
                                  mutable=list(state))
    u1, u2 = l2_normalize(z[:b]), l2_normalize(z[b:])
    align = losses.alignment(u1, u2, alpha=alpha, axis_name=axis_name)
    uniform = (losses.uniformity(u1, t=t, axis_name=axis_name) + losses.uniformity(u2, t=t, axis_name=axis_name)) / 2
    value = align + lam * uniform
    aux = {"metrics": {"align": align, "uniform": uniform}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (dict(new_state), aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.project)

  return base.Method(name="align_uniform", num_views=2, init=init, loss=loss, embed=embed, project=project)
