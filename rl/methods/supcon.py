"""SupCon: SUPERVISED contrastive learning; every view with the anchor's class label is a positive.

Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, https://arxiv.org/abs/2004.11362 (eq. 2,
L^sup_out). This method is SUPERVISED: it reads `batch["label"]`, so it is a reference row for the
self-supervised methods (an upper bound of what the same encoder, augmentations and budget give with labels),
not a self-supervised method itself.

The two views go through the encoder and projector as one batch (BatchNorm statistics over both views and every
device); the projections are stacked as `[b, 2, d]` for `rl.losses.supcon`, which gathers the contrast set and the
labels from every device. As in the authors' code and solo-learn, the projector is Linear-ReLU-Linear without
BatchNorm (`model.projector_kwargs.use_bn=False` in configs/supcon.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.simclr import EncoderProjector, build_network


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The (supervised) SupCon `Method` for a config with `model` and `supcon.{temperature, base_temperature}`.

  Example:
    >>> from configs import supcon as supcon_config
    >>> config = supcon_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.supcon.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> batch = {"views": (x, x + 0.1), "label": np.arange(8) % 2}
    >>> loss, (state, aux) = method.loss(params, state, batch, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['supcon'], (8, 16))
  """
  temperature = float(config.supcon.temperature)
  base_temperature = config.supcon.base_temperature
  base_temperature = None if base_temperature is None else float(base_temperature)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # the objective is deterministic given the views and labels
    if batch.get("label") is None:
      raise ValueError("supcon is supervised: the batch needs 'label' ([b] int class labels); got keys "
                       f"{sorted(batch)}.")
    v1, v2 = batch["views"]
    b = v1.shape[0]
    net = build_network(config, axis_name=axis_name)
    (h, z), new_state = net.apply({"params": params, **state}, jnp.concatenate([v1, v2]), train=True,
                                  mutable=list(state))
    views = jnp.stack([z[:b], z[b:]], axis=1)  # [b, 2, d]
    value = losses.supcon(views, batch["label"], temperature=temperature, base_temperature=base_temperature,
                          axis_name=axis_name)
    aux = {"metrics": {"supcon": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (dict(new_state), aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.project)

  return base.Method(name="supcon", num_views=2, init=init, loss=loss, embed=embed, project=project)
