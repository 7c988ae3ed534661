"""MLCD: multi-label cluster discrimination, the k nearest clusters of each example as its positive classes.

An et al., "Multi-label Cluster Discrimination for Visual Representation Learning", ECCV 2024,
https://arxiv.org/abs/2407.17331. As Unicom, the paper clusters LAION-400M offline into one million centres
(k-means on off-the-shelf CLIP embeddings); each image then gets its k nearest centres as positive labels (k = 10
in the paper), and the encoder trains with a multi-label loss that separates the positive and the negative classes
(each compared with a threshold, so that the positives do not compete with each other), with margin, scale and
sampled negatives as Unicom. The loss is `rl.losses.multilabel_cluster_loss` (see its docstring for the form used
and the caveat that it is the standard reading of the abstract and the authors' Partial FC code).

What differs from the paper (our adaptation to the `Method` protocol, which sees batches only):
- the centres and the k positive labels (`rl.losses.assign_topk`) are computed ONLINE, DeepCluster-style, from a
  feature bank of the network's own projections, re-clustered every epoch (by default) with spherical k-means
  started from the current prototypes; the loss is 0 until the first clustering (one epoch by default). See
  `rl.methods.cluster_discrimination`;
- SimCLR's encoder + MLP projector from scratch on two augmented views that share the example's labels, instead
  of a pretrained ViT on one view; the encoder features are the representation;
- scaled-down hyper-parameters (a few hundred clusters and k = 3 instead of 10^6 and 10; see the configs).
"""
from __future__ import annotations

import ml_collections

from rl import losses
from rl.methods import cluster_discrimination
from rl.methods import base


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The MLCD `Method` for a config with `model`, `num_train_examples`, `batch_size`, `seed` and
  `mlcd.{num_clusters, num_positives, margin, scale, negative_ratio, feature_ratio, bank_momentum, kmeans_iters,
  recluster_every}`.

  Example:
    >>> from configs import mlcd as mlcd_config
    >>> config = mlcd_config.get_config("smoke")
    >>> config.num_train_examples = 64  # the trainer sets it from the data: one bank row per example
    >>> method = make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> state["labels"].shape  # the k positive clusters of each training example (k = 2 in the smoke config)
    (64, 2)
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1), "index": np.arange(8)},
    ...                                  jax.random.key(1))
    >>> float(loss), sorted(aux["metrics"])  # the loss is 0 until the first clustering (after one epoch by default)
    (0.0, ['clusters_used', 'mlcd', 'num_clusterings'])
  """
  cfg = config.mlcd
  margin, scale = float(cfg.margin), float(cfg.scale)
  negative_ratio, feature_ratio = float(cfg.negative_ratio), float(cfg.feature_ratio)

  def objective(z, positive_ids, prototypes, key, axis_name):
    return losses.multilabel_cluster_loss(z, positive_ids, prototypes, key=key, margin=margin, scale=scale,
                                          negative_ratio=negative_ratio, feature_ratio=feature_ratio,
                                          axis_name=axis_name)

  return cluster_discrimination.make(config, name="mlcd", cfg=cfg, topk=int(cfg.num_positives),
                                      objective=objective)
