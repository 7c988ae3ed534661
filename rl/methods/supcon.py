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

import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """L^sup_out of the stacked projections and the labels, with `config.supcon.{temperature, base_temperature}`.

  Example:
    >>> from configs import supcon as supcon_config
    >>> supcon = objective(supcon_config.get_config("smoke"))
    >>> z, labels = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), jnp.array([0, 0, 1, 1])
    >>> bool(supcon(z, z, labels=labels) < supcon(z, z, labels=jnp.array([0, 1, 0, 1])))  # classes that cluster
    True
  """
  temperature = float(config.supcon.temperature)
  base_temperature = config.supcon.base_temperature
  base_temperature = None if base_temperature is None else float(base_temperature)

  def supcon(z1, z2, *, labels, axis_name=None):
    return losses.supcon(jnp.stack([z1, z2], axis=1), labels, temperature=temperature,
                         base_temperature=base_temperature, axis_name=axis_name)

  return supcon


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The (supervised) SupCon `Method` for a config with `model` and `supcon.{temperature, base_temperature}`.

  Example:
    >>> from configs import supcon as supcon_config
    >>> method = make(supcon_config.get_config("smoke"))
    >>> rl.methods.base.describe(method)["metrics"]  # the batch has labels
    ['supcon']
    >>> x = np.zeros((8, 40), np.float32)
    >>> method.loss(*method.init(jax.random.key(0), x), {"views": (x, x)}, jax.random.key(1))
    Traceback (most recent call last):
    ValueError: supcon is supervised: the batch needs 'label' ([b] int class labels); got keys ['views'].
  """
  return two_view.make(config, objective(config), name="supcon", with_labels=True)
