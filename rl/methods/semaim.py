"""SemAIM: autoregressive image modelling in a semantic-aware order.

Song, Zhang & Wang, "Semantic-Aware Autoregressive Image Modeling for Visual Representation Learning", AAAI 2024,
https://arxiv.org/abs/2312.10457 (github.com/skyoux/SemAIM). A two-stream ViT (`rl.models.AimViT`) predicts every
patch of an input from the patches before it in an order that starts at the most semantic patch and moves
outwards; each step:

1. `rl.losses.semaim_similarity`: how semantic each patch is, the softmax over patches of the cosine of its token
   to the class token, from a gradient-free pass of the content stream with full attention (the model itself, as
   the released code's `attention_center` order with `--attention_type cls` does when it keeps no EMA model);
2. `rl.losses.semaim_order`: patches by grid distance from the most similar one (ties at random);
3. `rl.losses.semaim_attention_masks`: the content and query streams' masks of that order;
4. `rl.losses.semaim_pixel_loss`: the query stream's predictions against the (optionally blurred and per-patch
   normalised) pixels of every patch.

`embed` is the content stream with full attention, the mean of its patch tokens. Signals [b, l] are images
[b, 1, l, 1] with (1, p) patches (a 1 x L grid: the order moves outwards along time). `method_state` is empty.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl import models
from rl.methods import base
from rl.models.aim import AimViT
from rl.models.vit import as_image


def build_model(config: ml_collections.ConfigDict) -> AimViT:
  """The `aim_vit` of `config.model.encoder_kwargs` (a tuple read back from JSON stays a tuple).

  Example:
    >>> from configs import semaim as semaim_config
    >>> model = build_model(semaim_config.get_config("smoke"))
    >>> type(model).__name__, model.width, model.patch_size
    ('AimViT', 16, (1, 4))
  """
  kwargs = config.model.encoder_kwargs.to_dict()
  if isinstance(kwargs.get("patch_size"), list):
    kwargs["patch_size"] = tuple(kwargs["patch_size"])
  model = base.get_model(config, config.model.encoder, **kwargs)
  if not isinstance(model, AimViT):
    raise ValueError(f"config.model.encoder must name the two-stream ViT ('aim_vit'); got {config.model.encoder!r} "
                     f"({type(model).__name__}).")
  return model


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SemAIM `Method` for a config with `model` ('aim_vit') and `semaim.{reference, jitter, norm_pix,
  blur_kernel_size, blur_sigma, loss_type}`.

  Example:
    >>> from configs import semaim as semaim_config
    >>> rl.methods.base.describe(make(semaim_config.get_config("smoke")))  # mnist1d signals, a tiny ViT
    {'params': ['block0', 'cls', 'norm', 'patch_embed', 'pred', 'pred_hidden', 'query_block0'], 'state': [],
     'metrics': ['semaim'], 'embedding': (8, 16)}
  """
  cfg = config.semaim
  model = build_model(config)
  patch = models.vit.patch_hw(model.patch_size)

  def init(key, x):
    return model.init(key, as_image(x), method=AimViT.init_all)["params"], {}

  def loss(params, state, batch, key, *, axis_name=None):
    (x,) = batch["views"]
    image = as_image(x)
    grid = (image.shape[1] // patch[0], image.shape[2] // patch[1])
    tokens = jax.lax.stop_gradient(model.apply({"params": params}, image, method=AimViT.tokens))
    similarity = losses.semaim_similarity(tokens, reference=cfg.reference)
    order = losses.semaim_order(key, similarity, grid_shape=grid, jitter=float(cfg.jitter), axis_name=axis_name)
    content, query = losses.semaim_attention_masks(order)
    pred = model.apply({"params": params}, image, content, query, method=AimViT.autoregress)
    value = losses.semaim_pixel_loss(pred, image, patch_size=patch, norm_pix=bool(cfg.norm_pix),
                                     blur_kernel_size=cfg.blur_kernel_size, blur_sigma=float(cfg.blur_sigma),
                                     loss_type=cfg.loss_type, axis_name=axis_name)
    features = jnp.mean(tokens[:, 1:], axis=1)  # the full-attention pass's patch tokens, for the online probe
    return value, (state, {"metrics": {"semaim": value}, "features": features})

  def embed(params, state, x):
    del state
    return model.apply({"params": params}, as_image(x))

  return base.Method(name="semaim", num_views=1, init=init, loss=loss, embed=embed)
