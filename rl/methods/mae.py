"""MAE: a ViT encoder that sees a random subset of the patches and a light decoder that reconstructs the rest.

He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, https://arxiv.org/abs/2111.06377.
The network is `rl.models.MAE` (encoder on the visible tokens only, mask tokens and sin-cos position embeddings in
the decoder); the objective is `rl.losses.mae`: the mean squared error of the predicted pixels of the masked
patches, with per-patch normalised targets when `norm_pix_loss` (the paper's default). One view per example; the
masks are drawn from the method key, example i of the global batch from `fold_in(key, i)`, so they do not depend
on the sharding. The representation is the encoder on ALL patches (no masking), read out by the class token or the
mean of the patch tokens (`model.encoder_kwargs.readout`).

1-D signals [b, l] (MNIST-1D) or [b, l, c] are the images [b, 1, l, c] with (1, p) patches: a 1-D ViT is the 2-D
one on a 1 x l image. `method_state` is empty: MAE keeps nothing between steps (no BatchNorm, no target network).

Differs from the paper: the online linear probe and `aux['features']` use an extra forward pass of the encoder on
the unmasked view (the paper probes offline, and fine-tunes); signals use the 2-D sin-cos embedding on a 1 x n
grid, whose row half is a constant (see `rl.models.vit`). Weight decay follows the official code (none on biases
and norms, `rl.train.optim.decay_mask`).
"""
from __future__ import annotations

import jax
import ml_collections

from rl import losses
from rl import models
from rl.methods import base

# Keys of `config.mae` passed to the model; they may not also appear in `config.model.encoder_kwargs`.
_METHOD_KEYS = ("mask_ratio", "norm_pix_loss")


def build_model(config: ml_collections.ConfigDict) -> models.MAE:
  """The MAE named by `config.model.encoder` ('mae') with `encoder_kwargs` and `config.mae.{mask_ratio,
  norm_pix_loss}`.

  Example:
    >>> from configs import mae as mae_config
    >>> model = build_model(mae_config.get_config("smoke"))
    >>> type(model).__name__, model.mask_ratio
    ('MAE', 0.75)
  """
  kwargs = config.model.encoder_kwargs.to_dict()
  clash = sorted(set(kwargs) & set(_METHOD_KEYS))
  if clash:
    raise ValueError(f"config.model.encoder_kwargs sets {clash}; set them in config.mae instead.")
  for name in ("patch_size",):
    if isinstance(kwargs.get(name), list):  # a tuple read back from JSON/YAML
      kwargs[name] = tuple(kwargs[name])
  model = base.get_model(config, config.model.encoder, **kwargs, **{k: config.mae[k] for k in _METHOD_KEYS})
  if not isinstance(model, models.MAE):
    raise ValueError(f"config.model.encoder must name a masked autoencoder ('mae'); got "
                     f"{config.model.encoder!r} ({type(model).__name__}).")
  return model


# Signals [b, l] / [b, l, c] as the images [b, 1, l, 1] / [b, 1, l, c] of a ViT with (1, p) patches.
to_image = models.vit.as_image


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The MAE `Method` for a config with `model` (encoder 'mae' and its kwargs) and `mae.{mask_ratio,
  norm_pix_loss}`.

  Example:
    >>> from configs import mae as mae_config
    >>> rl.methods.base.describe(make(mae_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['decoder', 'encoder'], 'state': [], 'metrics': ['mae'], 'embedding': (8, 16)}
  """
  model = build_model(config)

  def init(key, x):
    net_key, mask_key = jax.random.split(key)
    variables = model.init(net_key, to_image(x), key=mask_key, train=False)
    return variables["params"], {}

  def encode(params, x):
    return model.apply({"params": params}, to_image(x), method=models.MAE.encode)

  def loss(params, state, batch, key, *, axis_name=None):
    (view,) = batch["views"]
    x = to_image(view)
    pred, mask = model.apply({"params": params}, x, key=key, train=True, axis_name=axis_name)
    value = losses.mae(pred, x, mask, patch_size=model.patch_size, norm_pix=model.norm_pix_loss,
                       axis_name=axis_name)
    features = jax.lax.stop_gradient(encode(params, view))
    return value, (state, {"metrics": {"mae": value}, "features": features})

  def embed(params, state, x):
    del state
    return encode(params, x)

  return base.Method(name="mae", num_views=1, init=init, loss=loss, embed=embed)
