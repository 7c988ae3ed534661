"""Unicom: margin-softmax discrimination of pseudo-classes, with random partial class and feature selection.

An et al., "Unicom: Universal and Compact Representation Learning for Image Retrieval", ICLR 2023,
https://arxiv.org/abs/2304.05884. The paper clusters LAION-400M into one million pseudo-classes with k-means on
CLIP image and text features, offline, then trains the image encoder with an ArcFace margin softmax (margin 0.3,
scale 64) over learned class prototypes, in which only a random part of the negative prototypes (Partial FC
sampling) and a random part of the feature dimensions enter each step. The loss is
`rl.losses.partial_margin_softmax` (see its docstring for its own choices: one Bernoulli draw per class, a
differentiated margin).

What differs from the paper (our adaptation to the `Method` protocol, which sees batches only):
- the pseudo-labels are computed ONLINE, DeepCluster-style, from a feature bank of the network's own
  projections, re-clustered every epoch (by default) with spherical k-means started from the current prototypes,
  not once from CLIP features; the loss is 0 until the first clustering (one epoch by default). See
  `rl.methods.cluster_discrimination` for the bank, the schedule and the first clustering;
- the network is SimCLR's encoder + MLP projector trained from scratch on two augmented views per example, both
  with the example's label (so augmentation invariance comes from the shared label), instead of a pretrained
  ViT on one view; the encoder features (before the projector) are the representation, as for every method here;
- the hyper-parameters are scaled down for small datasets (a few hundred clusters instead of 10^6; see the
  configs).
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import cluster_discrimination
from rl.methods import base


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The Unicom `Method` for a config with `model`, `num_train_examples`, `batch_size`, `seed` and
  `unicom.{num_clusters, margin, scale, class_ratio, feature_ratio, bank_momentum, kmeans_iters, recluster_every}`.

  Example:
    >>> from configs import unicom as unicom_config
    >>> config = unicom_config.get_config("smoke")
    >>> config.num_train_examples = 64  # the trainer sets it from the data: one bank row per example
    >>> params, state = make(config).init(jax.random.key(0), np.zeros((8, 40), np.float32))
    >>> params["prototypes"].shape, state["bank"].shape, state["labels"].shape  # learned class centres, the banks
    ((16, 8), (64, 8), (64,))
  """
  cfg = config.unicom
  margin, scale = float(cfg.margin), float(cfg.scale)
  class_ratio, feature_ratio = float(cfg.class_ratio), float(cfg.feature_ratio)

  def objective(z, labels, prototypes, key, axis_name):
    return losses.partial_margin_softmax(z, labels, prototypes, key=key, class_ratio=class_ratio,
                                         feature_ratio=feature_ratio, margin=margin, scale=scale,
                                         axis_name=axis_name)

  return cluster_discrimination.make(config, name="unicom", cfg=cfg, topk=None, objective=objective)
