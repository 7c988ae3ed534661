"""RotNet: an encoder and a small classifier trained to recognise which rotation was applied to the input.

Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018,
https://arxiv.org/abs/1803.07728. As in the paper, every input of the batch goes through the network in all four
rotations (0, 90, 180, 270 degrees; `rl.losses.rotation_task`) and the network is trained with a 4-way
cross-entropy (`rl.losses.pretext_cross_entropy`). The rotated copies share one forward pass, so BatchNorm
statistics cover all four (and, through `axis_name`, every device).

Signals ([b, l] or [b, l, c], MNIST-1D) cannot be rotated; for them the task is OUR 1-D analogue, not the paper's:
the four symmetries {identity, time reversal, negation, reversal + negation} of a signal, 4-way
(`rl.methods.pretext.signal_symmetry_task`). The method dispatches on the input rank.

Differences from the paper: the classifier is an MLP head on the pooled encoder features (the paper's NIN keeps
its last conv blocks as the rotation classifier and reads features from an intermediate block); evaluation reads
the pooled encoder features. `aux['features']` are the encoder features of the unrotated copy (label 0) from the
same training pass, so the online probe sees the whole, upright inputs.
"""
from __future__ import annotations

import ml_collections

from rl.methods import base
from rl.methods import pretext

NUM_CLASSES = 4


# The task: the 4 rotations of images, the 4 symmetries of signals (shared with the shortcut lens).
task = pretext.rotation_task


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The RotNet `Method` for a config with `model` and `rotnet.head_hidden_dims`.

  Example:
    >>> from configs import rotnet as rotnet_config
    >>> rl.methods.base.describe(make(rotnet_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'head'], 'state': ['batch_stats'], 'metrics': ['pretext_accuracy',
     'pretext_cross_entropy'], 'embedding': (8, 16)}
  """
  # The probe's features: the encoder features of the unrotated copies (label 0) from the same training pass.
  return pretext.make_method(config, task, name="rotnet", head_hidden_dims=tuple(config.rotnet.head_hidden_dims),
                             num_classes=NUM_CLASSES, probe_rows=slice(0, None, NUM_CLASSES))
