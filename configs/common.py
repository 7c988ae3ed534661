"""Defaults shared by every method's config; a method's `get_config(arg)` starts from `base()`.

Every key exists here (with a placeholder where it has no value), so overrides of unknown keys are errors.
"""
from __future__ import annotations

import dataclasses

import ml_collections

from rl.data import augment


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = ""
  c.uses_labels = False  # True for the supervised references (SupCon, supervised): not self-supervised rows
  c.dataset = ""
  c.data_dir = ml_collections.config_dict.placeholder(str)  # None: $TFDS_DATA_DIR or the TFDS default
  c.image_size = ml_collections.config_dict.placeholder(int)  # host-side fixed size; None: the dataset default
  # Size of the pretraining split; None: the trainer counts it (per-example memories such as NPID's bank use it).
  c.num_train_examples = ml_collections.config_dict.placeholder(int)
  # Pretrain on these class ids only (e.g. `--config.data_classes='(0,1,2,3,4)'`); None: every class. Only the
  # training stream is filtered (an epoch is then a pass over those classes); evaluation sees every class.
  c.data_classes = ml_collections.config_dict.placeholder(tuple)
  c.batch_size = 256
  c.total_steps = 1000
  c.log_every_steps = 50
  # Mixed precision: "bfloat16" computes every model and head in bfloat16 (parameters, optimizer state and
  # BatchNorm statistics stay float32; losses upcast). "float32" or "bfloat16"; rl.train.precision checks it.
  c.compute_dtype = "float32"
  # Cut the training split into this many slices (a multiple of the process count), each process reading its own;
  # None: one slice per process. A fixed number makes the data stream the same on any process count dividing it.
  c.data_shards = ml_collections.config_dict.placeholder(int)

  c.model = ml_collections.ConfigDict()
  c.model.encoder = "conv1d"
  c.model.encoder_kwargs = ml_collections.ConfigDict()
  c.model.projector_kwargs = ml_collections.ConfigDict()

  c.augment = ml_collections.ConfigDict()
  c.augment.views = ("simclr", "simclr")  # one recipe name per view (rl.data.augment.get_recipe)
  c.augment.overrides = ml_collections.ConfigDict()  # recipe fields applied to every view
  c.augment.out_size = ml_collections.config_dict.placeholder(int)  # crop size for images
  # Multi-crop (SwAV, DINO): one output size per view (image side / signal length); None: every view out_size.
  c.augment.view_sizes = ml_collections.config_dict.placeholder(tuple)

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
  c.eval.tsne_points = 1000  # 0: no t-SNE plot
  c.eval.baselines = True  # the random-encoder and raw-input rows of the final report
  c.eval.final = True  # False: stop after training, without the final report (sweeps, resume tests, the soak)
  c.eval.projection = True  # a report row for the projection head's output (methods that have one)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 3
  # Multi-host: how often the hosts agree on a SIGTERM/SIGINT (a host-side all-gather); one process checks every step.
  c.checkpoint.preemption_sync_every_steps = 10
  # Steps with a non-finite loss or gradient to skip (the update is dropped) before stopping; 0: stop at the first.
  c.skip_nonfinite_steps = 0
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


def mnist1d(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `mnist1d` variant's shared part: conv1d encoder, two MNIST-1D views, AdamW 4e-3, 2000 steps of 128.

  The budget of `experiments/benchmarks/mnist1d_table.py` (every method x 3 seeds in 90 minutes on 2 CPU cores).
  At equal compute, 2000 steps of 128 gave SimCLR a better probe than 1000 steps of 256 (0.844-0.872 against
  0.83-0.856, single runs). The lr was tuned on that budget (seed 0, linear probe at 2e-3 / 4e-3 / 8e-3):
  SimCLR 0.844 / 0.856 / 0.864, VICReg 0.856 / 0.868 / 0.851, Barlow Twins 0.811 / 0.834 / -, DCL 0.863 /
  0.887 / -, RotNet 0.903 / 0.931 / -; BYOL 0.753 / 0.750 / -."""
  c.dataset = "mnist1d"
  c.model.encoder = "conv1d"
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
  c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
  c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
  c.augment.views = ("mnist1d", "mnist1d")
  # Every field of the preset except the crop's, so each can be overridden from the command line (the crop
  # fields stay with the presets: multi-crop's local views differ from the global ones only there).
  fields = {k: v for k, v in dataclasses.asdict(augment.MNIST1D).items() if not k.startswith("crop_")}
  c.augment.overrides = ml_collections.ConfigDict(fields)
  c.batch_size = 128
  c.total_steps = 2000
  c.optim.name = "adamw"
  c.optim.lr = 4e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 100
  c.eval.every_steps = 500
  c.checkpoint.every_steps = 500
  return c


def digits(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `digits` variant's shared part: ResNet-18 (CIFAR stem) on 8x8 grey digits, two SimCLR views."""
  c.dataset = "digits"
  c.model.encoder = "resnet18"
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
  c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
  c.augment.views = ("simclr", "simclr")
  c.augment.out_size = 8
  c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
  c.batch_size = 256
  c.total_steps = 1000
  return c


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def cifar(c: ml_collections.ConfigDict, variant: str, *, epochs: int = 1000,
          batch_size: int = 256) -> ml_collections.ConfigDict:
  """The `cifar10`/`cifar100` variants' shared part, after solo-learn's CIFAR recipes (scripts/pretrain/cifar/):
  ResNet-18 with the CIFAR stem, two SimCLR views of 32x32 without blur, batch `batch_size` (256), LARS with the
  lr scaled by batch/256, 10 warm-up epochs, `epochs` epochs of 50,000 images. Each method sets its lr, weight
  decay and heads."""
  c.dataset = variant
  c.model.encoder = "resnet18"
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
  c.augment.views = ("simclr", "simclr")
  c.augment.out_size = 32
  c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, mean=CIFAR_MEAN, std=CIFAR_STD))
  c.batch_size = batch_size
  c.total_steps = epochs * 50000 // batch_size
  c.optim.name = "lars"
  c.optim.scale_by_batch = True
  c.optim.warmup_steps = 10 * 50000 // batch_size
  c.eval.every_steps = 5000
  c.checkpoint.every_steps = 2000
  return c


IMAGENET_TRAIN_EXAMPLES = 1281167  # TFDS 'imagenet2012' (ILSVRC-2012) train split


def imagenet(c: ml_collections.ConfigDict, *, epochs: int = 100, encoder: str = "resnet50",
             batch_size: int = 256) -> ml_collections.ConfigDict:
  """The `imagenet` variant's shared part: ImageNet-1k (TFDS 'imagenet2012', 1,281,167 training images).

  `encoder` at its defaults ('resnet50': the ImageNet stem; 'vit_small': ViT-S/16), two SimCLR views of 224 x 224
  (with blur; ImageNet's mean and std, the recipes' defaults), batch `batch_size`, LARS with the lr scaled by
  batch/256, 10 warm-up epochs (solo-learn's default, solo/methods/base.py), `epochs` epochs. Each method sets its
  lr, weight decay, heads and views; a method that changes the batch passes it here, so that the epoch-based
  counts (total steps, warm-up, evaluation and checkpoint cadence) follow it.

  Evaluation: kNN every 10 epochs, and the final evaluation, on the first 100,000 training images (~100 per
  class: 0.8 GB of ResNet-50 features, where all 1.28M would take 10 GB and the linear probe ten times longer),
  against the 50,000 validation images. No baselines: the raw-input probe would flatten 100,000 x 224 x 224 x 3
  pixels (60 GB as float32). A checkpoint every epoch (~5000 steps at batch 256).
  """
  steps_per_epoch = IMAGENET_TRAIN_EXAMPLES // batch_size
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.model.encoder = encoder
  c.model.encoder_kwargs = ml_collections.ConfigDict()
  c.augment.views = ("simclr", "simclr")
  c.augment.out_size = 224
  c.augment.overrides = ml_collections.ConfigDict()
  c.batch_size = batch_size
  c.total_steps = epochs * IMAGENET_TRAIN_EXAMPLES // batch_size
  c.log_every_steps = 100
  c.optim.name = "lars"
  c.optim.scale_by_batch = True
  c.optim.warmup_steps = 10 * IMAGENET_TRAIN_EXAMPLES // batch_size
  c.eval.every_steps = 10 * steps_per_epoch
  c.eval.max_train_examples = 100_000
  c.eval.baselines = False
  c.checkpoint.every_steps = steps_per_epoch
  return c


def check_variant(path: str, variant: str, variants) -> None:
  """ValueError naming the config file and the known variants."""
  if variant not in variants:
    raise ValueError(f"{path}: unknown variant {variant!r}; known variants: {', '.join(variants)}.")
