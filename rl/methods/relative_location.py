"""Relative patch location (context prediction): classify where a patch lies relative to the centre patch.

Doersch et al., "Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015,
https://arxiv.org/abs/1505.05192. For images, each example gives the centre patch of a 3 x 3 grid and one of its 8
neighbours, with a gap between cells and a random jitter of each patch (`rl.losses.relative_location_task`); both
patches go through the shared encoder (one batch, so BatchNorm statistics cover both), their features are
concatenated (centre first) and an MLP head classifies the pair into the 8 positions
(`rl.losses.pretext_cross_entropy`).

Signals ([b, l] or [b, l, c], MNIST-1D) use OUR 1-D analogue, not the paper's task: the centre segment of a row of
`grid` (odd) segments, with gap and jitter, and one other segment; grid - 1 classes
(`rl.methods.pretext.signal_relative_location_task`). The method dispatches on the input rank.

Differences from the paper: an MLP head on pooled encoder features stands for the paper's fc6 (per patch) + fc7 +
fc8 of its AlexNet-style towers; the paper's defences against chromatic aberration (projecting out green-magenta
or dropping colour channels) are not applied; the patch geometry is scaled to the input size (config).
`aux['features']` and `embed` are encoder features of the WHOLE input (so the online probe and evaluation see
whole inputs), from a second, stop-gradient pass in training mode; the BatchNorm running statistics kept in
`method_state` are those of this whole-input pass, because `embed` sees whole inputs (the patch pass normalises
with its own batch statistics, as training always does).
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import pretext


def num_classes(config: ml_collections.ConfigDict, signal: bool) -> int:
  """8 neighbours of a 3 x 3 grid (images), grid - 1 other segments (signals).

  Example:
    >>> from configs import relative_location as relative_location_config
    >>> config = relative_location_config.get_config("smoke")
    >>> num_classes(config, signal=False), config.relative_location.grid, num_classes(config, signal=True)
    (8, 5, 4)
  """
  return int(config.relative_location.grid) - 1 if signal else 8


def make_task(config: ml_collections.ConfigDict):
  """`task(key, x, axis_name) -> (pairs [b, 2, ...] (centre, other), labels [b])` for images or signals.

  Example:
    >>> from configs import relative_location as relative_location_config
    >>> task = make_task(relative_location_config.get_config("smoke"))
    >>> pairs, labels = task(jax.random.key(0), jnp.ones((8, 40)), None)
    >>> pairs.shape, labels.shape
    ((8, 2, 6), (8,))
  """
  rl_config = config.relative_location
  geometry = dict(gap=int(rl_config.gap), jitter=int(rl_config.jitter))

  def task(key, x, axis_name):
    if pretext.is_signal(x):
      centre, other, labels = pretext.signal_relative_location_task(
          key, x, grid=int(rl_config.grid), segment=int(rl_config.patch), axis_name=axis_name, **geometry)
    else:
      centre, other, labels = losses.relative_location_task(
          key, x, grid=int(rl_config.grid), patch=int(rl_config.patch), axis_name=axis_name, **geometry)
    return jnp.stack([centre, other], axis=1), labels

  return task


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The relative-location `Method` for a config with `model` and
  `relative_location.{grid, patch, gap, jitter, head_hidden_dims}`.

  Example:
    >>> from configs import relative_location as relative_location_config
    >>> rl.methods.base.describe(make(relative_location_config.get_config("smoke")))
    {'params': ['encoder', 'head'], 'state': ['batch_stats'], 'metrics': ['pretext_accuracy',
     'pretext_cross_entropy'], 'embedding': (8, 16)}
  """
  return pretext.make_method(config, make_task(config), name="relative_location",
                             head_hidden_dims=tuple(config.relative_location.head_hidden_dims),
                             num_classes=lambda x: num_classes(config, pretext.is_signal(x)))
