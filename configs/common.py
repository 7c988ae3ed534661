"""Defaults shared by every method's config; a method's `get_config(arg)` starts from `base()`.

Every key exists here (with a placeholder where it has no value), so overrides of unknown keys are errors.
"""
from __future__ import annotations

import ml_collections


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = ""
  c.dataset = ""
  c.data_dir = ml_collections.config_dict.placeholder(str)  # None: $TFDS_DATA_DIR or the TFDS default
  c.image_size = ml_collections.config_dict.placeholder(int)  # host-side fixed size; None: the dataset default
  # Size of the pretraining split; None: the trainer counts it (per-example memories such as NPID's bank use it).
  c.num_train_examples = ml_collections.config_dict.placeholder(int)
  c.batch_size = 256
  c.total_steps = 1000
  c.log_every_steps = 50

  c.model = ml_collections.ConfigDict()
  c.model.encoder = "conv1d"
  c.model.encoder_kwargs = ml_collections.ConfigDict()
  c.model.projector_kwargs = ml_collections.ConfigDict()

  c.augment = ml_collections.ConfigDict()
  c.augment.views = ("simclr", "simclr")  # one recipe name per view (rl.data.augment.get_recipe)
  c.augment.overrides = ml_collections.ConfigDict()  # recipe fields applied to every view
  c.augment.out_size = ml_collections.config_dict.placeholder(int)  # crop size for images

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.scale_by_batch = False  # lr * batch_size / 256 (the linear scaling rule)
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 1e-4
  c.optim.momentum = 0.9
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.grad_clip_norm = 0.0  # 0: no clipping

  c.online_probe = ml_collections.ConfigDict()
  c.online_probe.lr = 1e-3

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 500  # kNN on the test set during training; 0 turns it off
  c.eval.batch_size = 512
  c.eval.knn_ks = (20, 200)
  c.eval.knn_temperature = 0.07
  c.eval.max_train_examples = ml_collections.config_dict.placeholder(int)  # cap on train features (big datasets)
  c.eval.alignment_examples = 1000
  c.eval.tsne_points = 1000

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 3
  return c


def shrink_for_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The shared part of every method's `smoke` variant: a tiny conv1d encoder, 6 steps, a quick evaluation.

  Each config calls it in its smoke branch and then shrinks its own heads (projector, predictor, queue).
  """
  c.batch_size = 64
  c.total_steps = 6
  c.log_every_steps = 2
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(8, 16)))
  c.eval.every_steps = 4
  c.eval.batch_size = 256
  c.eval.knn_ks = (5, 20)
  c.eval.alignment_examples = 200
  c.eval.tsne_points = 100
  c.eval.max_train_examples = 512
  c.checkpoint.every_steps = 3
  return c
