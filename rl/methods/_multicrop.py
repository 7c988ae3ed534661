"""Multi-crop forward pass shared by SwAV and DINO: views of several sizes through one encoder and one head.

Caron et al. 2020 (https://arxiv.org/abs/2006.09882, Sec. 3.2) train on 2 global crops and V - 2 small local crops.
The encoder runs once per group of consecutive views with the same shape (global crops together, local crops
together, as the official `MultiCropWrapper`), and the head runs once on all features, crop-major. Each group's
BatchNorm statistics are its own (as in the official code); the head's cover every crop.

Also the small pieces of state both methods keep: a step counter (for schedules and freezing, since `loss` is not
given the step) and a helper that stops the gradient of a sub-tree while a freeze is on.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import models


def shape_groups(views: Sequence[jax.Array]) -> list[list[int]]:
  """Indices of consecutive views with the same shape, e.g. [[0, 1], [2, 3, 4, 5]] for 2 global + 4 local."""
  groups: list[list[int]] = []
  for i, v in enumerate(views):
    if groups and views[groups[-1][0]].shape == v.shape:
      groups[-1].append(i)
    else:
      groups.append([i])
  return groups


class MultiCropNetwork(nn.Module):
  """Encoder on each same-shape group of views, then `head` on all features; returns (features h, head(h)).

  `h` is crop-major: rows c*b..(c+1)*b-1 belong to view c. `views` may also be a single array (one view).
  """
  encoder: nn.Module
  head: nn.Module

  def __call__(self, views, *, train: bool):
    views = (views,) if hasattr(views, "ndim") else tuple(views)  # one array (NumPy or JAX) is one view
    feats = [self.encoder(jnp.concatenate([views[i] for i in group]), train=train)
             for group in shape_groups(views)]
    h = jnp.concatenate(feats)
    return h, self.head(h, train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def build_encoder(config: ml_collections.ConfigDict, axis_name: str | None) -> nn.Module:
  """`config.model.encoder` with `config.model.encoder_kwargs`."""
  return models.get_model(config.model.encoder, axis_name=axis_name, **config.model.encoder_kwargs.to_dict())


def variables(params, state) -> dict[str, Any]:
  """Flax variables of the online network (params and BatchNorm statistics)."""
  return {"params": params, "batch_stats": state["batch_stats"]}


def freeze_while(tree, frozen: jax.Array):
  """`tree` with no gradient while `frozen` is true (SwAV's first-epoch prototypes, DINO's last layer)."""
  return jax.tree.map(lambda x: jnp.where(frozen, jax.lax.stop_gradient(x), x), tree)


def check_views(views: Sequence[jax.Array], num_global: int, method: str) -> None:
  """The first `num_global` views must share one shape (they are the global crops)."""
  if len(views) < max(2, num_global):
    raise ValueError(f"{method} needs at least {max(2, num_global)} views (config.augment.views); got {len(views)}.")
  shapes = {tuple(v.shape) for v in views[:num_global]}
  if len(shapes) != 1:
    raise ValueError(f"{method}: the {num_global} global views must have one shape (config.augment.view_sizes); "
                     f"got shapes {[tuple(v.shape) for v in views[:num_global]]}.")
