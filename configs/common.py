"""What every method's config shares: `base()` (every key), the variants' dataset recipes, and `apply_variant`.

A method's file, `configs/<method>.py`, holds only what is its own: the section `c.<method>` with the method's
defaults, and `OVERRIDES`, a table of what the method changes per variant. `get_config(arg)` builds the section
and hands both to `apply_variant`, which applies the variant's dataset recipe and then the table:

    def get_config(arg=None):
      c = common.base("simclr")
      c.simclr.temperature = 0.1
      return common.apply_variant(c, arg, OVERRIDES)

The variants (`VARIANT_TABLE`; `arg` picks one, mnist1d by default):

  variant   dataset recipe (below)                                    groups of OVERRIDES applied, in order
  mnist1d   mnist1d(): conv1d, 2 MNIST-1D views, AdamW 4e-3, 8000 x 128     all, mnist1d
  digits    digits(): small ResNet (3 x 1 blocks, width 16), 8 x 8, 500 x 256  all, digits
  cifar10   cifar(): ResNet-18, LARS, 1000 epochs of 256 (solo-learn)      all, cifar, cifar10
  cifar100  cifar(), on CIFAR-100                                           all, cifar, cifar100
  imagenet  imagenet(): ResNet-50 at 224, LARS, 100 epochs of 256          all, imagenet
  smoke     mnist1d(), then SMOKE (a tiny encoder, 6 steps; for tests)      all, mnist1d, smoke

A group maps dotted config keys to values, set in order: `"optim.lr": 0.4` sets one field, a dict value replaces
the whole sub-dict (`"model.projector_kwargs": dict(hidden_dims=(2048,), out_dim=256)`) and a dotted key into it
changes one field of it (`"model.projector_kwargs.out_dim": 256`). A key that `base()` and the method's section
lack is an error, except inside the free-form keyword dicts (`*_kwargs`, `augment.overrides`). The recipe first
reads its arguments from the variant's groups: `batch_size` (also a config key), `num_views` (2: how many views of
the dataset's default augmentation) and, for cifar and imagenet, `epochs` and `warmup_epochs`, which it turns into
`total_steps` and `optim.warmup_steps` (and imagenet's evaluation and checkpoint cadence) with the batch size.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
from typing import Any, Mapping, Sequence

import ml_collections

from rl.data import augment

# One group of a method's OVERRIDES: dotted config key -> value.
Group = Mapping[str, Any]
# The keys of a group that the dataset recipe takes as arguments; all but batch_size are not config keys.
RECIPE_ARGS = ("batch_size", "num_views", "epochs", "warmup_epochs")
# The smoke variant's projection head (and the predictors of the methods that have one): one hidden layer of 16, 8-d.
SMOKE_PROJECTOR = dict(hidden_dims=(16,), out_dim=8)
# solo-learn's asymmetric views (augmentations/asymmetric.yaml): BYOL's two view recipes, with torchvision's
# multiplicative brightness. A group takes them as `**common.ASYMMETRIC_VIEWS`.
ASYMMETRIC_VIEWS = {"augment.views": ("byol_view1", "byol_view2"),
                    "augment.overrides.brightness_mode": "multiplicative"}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_TRAIN_EXAMPLES = 50000  # TFDS 'cifar10' and 'cifar100' train splits
IMAGENET_TRAIN_EXAMPLES = 1281167  # TFDS 'imagenet2012' (ILSVRC-2012) train split


def base(method: str = "") -> ml_collections.ConfigDict:
  """Every key of every config, at its default; with `method`, also `c.method` and its empty section `c.<method>`.

  Args:
    method: the registered method name (`rl.methods.METHODS`); "" for the bare template (`rl.train.restore`).

  Returns:
    A new ConfigDict.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = method
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
  # Top-level parameter groups that learn at the schedule's peak lr throughout (SimSiam's predictor, Sec. 4).
  c.optim.constant_lr_params = ()

  c.online_probe = ml_collections.ConfigDict()
  c.online_probe.lr = 1e-3

  c.eval = ml_collections.ConfigDict()
  # kNN on the test set every this many steps during training (0: off); also at the last step if eval.final is False
  c.eval.every_steps = 500
  c.eval.batch_size = 512
  c.eval.knn_ks = (20, 200)
  c.eval.knn_temperature = 0.07
  c.eval.max_train_examples = ml_collections.config_dict.placeholder(int)  # cap on train features (big datasets)
  c.eval.alignment_examples = 1000
  c.eval.tsne_points = 1000  # 0: no t-SNE plot
  c.eval.baselines = True  # the random-encoder and raw-input rows of the final report
  # > 0: evaluate on the last N% of the training split instead of the test split (pretraining and the probe use the
  # first 100-N%; the test split is not read). Hyper-parameters are chosen this way (experiments/sweep.py: 10).
  c.eval.validation_percent = 0
  c.eval.final = True  # False: stop after training, without the final report (sweeps, resume tests, the soak)
  c.eval.projection = True  # a report row for the projection head's output (methods that have one)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 3
  # Multi-host: how often the hosts agree on a SIGTERM/SIGINT (a host-side all-gather); one process checks every step.
  c.checkpoint.preemption_sync_every_steps = 10
  # Steps with a non-finite loss or gradient to skip (the update is dropped) before stopping; 0: stop at the first.
  c.skip_nonfinite_steps = 0
  if method:
    c[method] = ml_collections.ConfigDict()
  return c


def mnist1d(c: ml_collections.ConfigDict, *, batch_size: int = 128, num_views: int = 2) -> None:
  """The `mnist1d` recipe: conv1d encoder, `num_views` (2) MNIST-1D views, AdamW 4e-3, 8000 steps of 128.

  8000 steps: SimCLR's steps sweep on the validation split (configs/simclr.py: 94.9 at 2000 and 4000 steps, 95.4 at
  6000, 95.9 at 8000), about 2.5 minutes of training for a two-view method on 2 CPU cores, within the 5-minute
  budget of issue 19; a method that needs more per step sets fewer steps in its config. Each method's own
  settings were checked on the validation split at 2000 steps (`experiments/sweep.py`; each config names its
  sweep). The lr was tuned at 2000 steps with the previous view recipe (seed 0, linear probe at 2e-3 / 4e-3 /
  8e-3): SimCLR 0.844 / 0.856 / 0.864, VICReg 0.856 / 0.868 / 0.851, Barlow Twins 0.811 / 0.834 / -, DCL 0.863 /
  0.887 / -, RotNet 0.903 / 0.931 / -; BYOL 0.753 / 0.750 / -."""
  c.dataset = "mnist1d"
  c.model.encoder = "conv1d"
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(widths=(64, 128, 256), kernel_size=5))
  c.model.encoder_kwargs.out_dim = ml_collections.config_dict.placeholder(int)
  c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(256,), out_dim=64))
  c.augment.views = ("mnist1d",) * num_views
  # Every field of the preset except the crop's, so each can be overridden from the command line (the crop
  # fields stay with the presets: multi-crop's local views differ from the global ones only there).
  fields = {k: v for k, v in dataclasses.asdict(augment.MNIST1D).items() if not k.startswith("crop_")}
  c.augment.overrides = ml_collections.ConfigDict(fields)
  c.batch_size = batch_size
  c.total_steps = 8000
  c.optim.name = "adamw"
  c.optim.lr = 4e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 100
  c.eval.every_steps = 1000
  c.checkpoint.every_steps = 1000


def digits(c: ml_collections.ConfigDict, *, batch_size: int = 256, num_views: int = 2) -> None:
  """The `digits` recipe: a small ResNet (CIFAR stem, one basic block in each of 3 stages, widths 16-32-64, 64-d
  features, ~0.1M parameters) on 8x8 grey digits, `num_views` (2) SimCLR views, 500 steps of 256 (~90 epochs of
  the 1437 training digits).

  ResNet-18 is far too big for 8x8 images on the CPU the results table runs on: about 20 minutes per 1000 steps at
  width 64 (and 8 minutes at width 16) on one core, against about 1.5 minutes for this network. The network and
  the steps were chosen for that time, not for accuracy (no hyper-parameter of digits was selected on its test
  split); a first SimCLR run of 300 steps gave a linear probe of 97.2% (raw pixels: 96.4%).
  """
  c.dataset = "digits"
  c.model.encoder = "resnet"
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar", stage_sizes=(1, 1, 1), width=16))
  c.model.projector_kwargs = ml_collections.ConfigDict(dict(hidden_dims=(512,), out_dim=128))
  c.augment.views = ("simclr",) * num_views
  c.augment.out_size = 8
  c.augment.overrides = ml_collections.ConfigDict(dict(crop_scale=(0.5, 1.0), flip_p=0.0, mean=(0.5,), std=(0.25,)))
  c.batch_size = batch_size
  c.total_steps = 500


def cifar(c: ml_collections.ConfigDict, dataset: str, *, epochs: int = 1000, warmup_epochs: int = 10,
          batch_size: int = 256, num_views: int = 2) -> None:
  """The `cifar10`/`cifar100` recipe, after solo-learn's CIFAR recipes (scripts/pretrain/cifar/): ResNet-18 with the
  CIFAR stem, `num_views` (2) SimCLR views of 32x32 without blur, batch `batch_size` (256), LARS with the lr scaled by
  batch/256, `warmup_epochs` (10) warm-up epochs, `epochs` (1000) epochs of 50,000 images. Each method sets its lr,
  weight decay and heads."""
  c.dataset = dataset
  c.model.encoder = "resnet18"
  c.model.encoder_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
  c.augment.views = ("simclr",) * num_views
  c.augment.out_size = 32
  c.augment.overrides = ml_collections.ConfigDict(dict(blur_p=0.0, mean=CIFAR_MEAN, std=CIFAR_STD))
  c.batch_size = batch_size
  c.total_steps = epochs * CIFAR_TRAIN_EXAMPLES // batch_size
  c.optim.name = "lars"
  c.optim.scale_by_batch = True
  c.optim.warmup_steps = warmup_epochs * CIFAR_TRAIN_EXAMPLES // batch_size
  c.eval.every_steps = 5000
  c.checkpoint.every_steps = 2000


def imagenet(c: ml_collections.ConfigDict, *, epochs: int = 100, warmup_epochs: int = 10, batch_size: int = 256,
             num_views: int = 2) -> None:
  """The `imagenet` recipe: ImageNet-1k (TFDS 'imagenet2012', 1,281,167 training images).

  ResNet-50 (the ImageNet stem; `"model.encoder": "vit_small"` gives ViT-S/16), `num_views` (2) SimCLR views of
  224 x 224 (with blur; ImageNet's mean and std, the recipes' defaults), batch `batch_size`, LARS with the lr
  scaled by batch/256, `warmup_epochs` warm-up epochs (10: solo-learn's default, solo/methods/base.py), `epochs`
  epochs. Each method sets its lr, weight decay, heads and views; a method that changes the batch sets
  `batch_size` in its imagenet group, so that the epoch-based counts (total steps, warm-up, evaluation and
  checkpoint cadence) follow it.

  Evaluation: kNN every 10 epochs, and the final evaluation, on the first 100,000 training images (~100 per
  class: 0.8 GB of ResNet-50 features, where all 1.28M would take 10 GB and the linear probe ten times longer),
  against the 50,000 validation images. No baselines: the raw-input probe would flatten 100,000 x 224 x 224 x 3
  pixels (60 GB as float32). A checkpoint every epoch (~5000 steps at batch 256).
  """
  steps_per_epoch = IMAGENET_TRAIN_EXAMPLES // batch_size
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.model.encoder = "resnet50"
  c.model.encoder_kwargs = ml_collections.ConfigDict()
  c.augment.views = ("simclr",) * num_views
  c.augment.out_size = 224
  c.augment.overrides = ml_collections.ConfigDict()
  c.batch_size = batch_size
  c.total_steps = epochs * IMAGENET_TRAIN_EXAMPLES // batch_size
  c.log_every_steps = 100
  c.optim.name = "lars"
  c.optim.scale_by_batch = True
  c.optim.warmup_steps = warmup_epochs * IMAGENET_TRAIN_EXAMPLES // batch_size
  c.eval.every_steps = 10 * steps_per_epoch
  c.eval.max_train_examples = 100_000
  c.eval.baselines = False
  c.checkpoint.every_steps = steps_per_epoch


# The shared part of the `smoke` variant (mnist1d for tests): a tiny conv1d encoder, 6 steps, a quick evaluation.
# `apply_variant` applies it after the mnist1d groups; the method's smoke group then shrinks its own heads
# (projector: `SMOKE_PROJECTOR`, predictor, queue, prototypes).
SMOKE = {
    "batch_size": 64,
    "total_steps": 6,
    "log_every_steps": 2,
    "model.encoder_kwargs": dict(widths=(8, 16)),
    "eval.every_steps": 4,
    "eval.batch_size": 256,
    "eval.knn_ks": (5, 20),
    "eval.alignment_examples": 200,
    "eval.tsne_points": 100,
    "eval.max_train_examples": 512,
    "checkpoint.every_steps": 3,
}


# variant -> (its dataset recipe, the groups of a method's OVERRIDES applied after it, in order). The first is the
# default. A new dataset: its recipe function above and a row here (and, where a method needs them, its groups).
VARIANT_TABLE = {
    "mnist1d": (mnist1d, ("all", "mnist1d")),
    "digits": (digits, ("all", "digits")),
    "cifar10": (functools.partial(cifar, dataset="cifar10"), ("all", "cifar", "cifar10")),
    "cifar100": (functools.partial(cifar, dataset="cifar100"), ("all", "cifar", "cifar100")),
    "imagenet": (imagenet, ("all", "imagenet")),
    "smoke": (mnist1d, ("all", "mnist1d", "smoke")),  # SMOKE before the smoke group
}
VARIANTS = tuple(VARIANT_TABLE)
GROUPS = frozenset(g for _, groups in VARIANT_TABLE.values() for g in groups)


def check_variant(path: str, variant: str, variants: Sequence[str] = VARIANTS) -> None:
  """ValueError naming the config file and the known variants."""
  if variant not in variants:
    raise ValueError(f"{path}: unknown variant {variant!r}; known variants: {', '.join(variants)}.")


def apply_variant(c: ml_collections.ConfigDict, arg: str | None, *tables: Mapping[str, Group]
                  ) -> ml_collections.ConfigDict:
  """Applies variant `arg` (None or "": mnist1d) to `c`: its dataset recipe, then each table's groups for it.

  Args:
    c: `base(method)` with the method's section filled in; changed in place.
    arg: the variant, one of `VARIANTS`.
    *tables: the method's OVERRIDES (and any table it shares with another method, first): group name ("all",
      a variant, or "cifar" for both CIFARs) -> {dotted key: value}. For each group, the tables apply in order.

  Returns:
    `c`.

  Raises:
    ValueError: an unknown variant (naming `configs/<method>.py` and the known variants), an unknown group, or a
      key that `base()` and the method's section lack.
  """
  path = f"configs/{c.method}.py"
  variant = arg or VARIANTS[0]
  check_variant(path, variant)
  for table in tables:
    if set(table) - GROUPS:
      raise ValueError(f"{path}: unknown OVERRIDES groups {sorted(set(table) - GROUPS)}; known: {sorted(GROUPS)}.")
  recipe, groups = VARIANT_TABLE[variant]
  args = {}  # the recipe's arguments, first: its step counts follow the batch size and the epochs
  for group in groups:
    for table in tables:
      args.update({k: v for k, v in table.get(group, {}).items() if k in RECIPE_ARGS})
  recipe(c, **args)
  for group in groups:
    if group == "smoke":
      _apply(c, SMOKE, "configs/common.py: SMOKE")
    for table in tables:
      _apply(c, table.get(group, {}), f"{path}: the {group!r} group")
  return c


def apply_overrides(c: ml_collections.ConfigDict, variant: str, *tables: Mapping[str, Group]
                    ) -> ml_collections.ConfigDict:
  """Sets the groups of `variant` (its `VARIANT_TABLE` groups, in order) from each table on a config already built,
  e.g. one from `on_base` (a method built on another changes the base's config per variant). Recipe arguments
  (`batch_size`, `num_views`, epochs) are not re-applied here: the base's recipe has run.

  Returns:
    `c`.
  """
  path = f"configs/{c.method}.py"
  for group in VARIANT_TABLE[variant][1]:
    if group == "smoke":  # as in `apply_variant`: the shared smoke settings win over the mnist1d group's
      _apply(c, SMOKE, "configs/common.py: SMOKE")
    for table in tables:
      _apply(c, table.get(group, {}), f"{path}: the {group!r} group")
  return c


def _apply(c: ml_collections.ConfigDict, group: Group, where: str) -> None:
  """Sets every key of `group` but the recipe's arguments that are not config keys."""
  for key, value in group.items():
    if key not in RECIPE_ARGS[1:]:
      _set(c, key, value, where)


def _set(c: ml_collections.ConfigDict, key: str, value: Any, where: str) -> None:
  """`c.<key> = value` for a dotted key; new keys only inside the free-form keyword dicts."""
  *parents, leaf = key.split(".")
  node = c
  for parent in parents:
    if parent not in node:
      raise ValueError(f"{where} sets {key!r}, but the config has no {parent!r} there.")
    node = node[parent]
  free_form = bool(parents) and (parents[-1].endswith("_kwargs") or parents[-2:] == ["augment", "overrides"])
  if leaf not in node and not free_form:
    raise ValueError(f"{where} sets {key!r}, which base() and the method's section lack.")
  node[leaf] = copy.deepcopy(value)  # the tables are module constants: configs share no mutable value


def on_base(method: str, arg: str | None, bases: Sequence[str]) -> tuple[ml_collections.ConfigDict, str]:
  """The config of a method built on a base method, for `arg` = `VARIANT[,BASE]` (mnist1d and `bases[0]` by default).

  It is the base's own config of that variant (`configs/<BASE>.py:get_config(VARIANT)`) with `c.method = method`
  and the section `c.<method>` holding `base`.

  Returns:
    The config and the variant.

  Raises:
    ValueError: an unknown variant or base, naming `configs/<method>.py` and the known ones.
  """
  path = f"configs/{method}.py"
  variant, _, base = (arg or "").partition(",")
  variant, base = variant or VARIANTS[0], base or bases[0]
  check_variant(path, variant)
  if base not in bases:
    raise ValueError(f"{path}: unknown base {base!r}; known bases: {', '.join(bases)}.")
  c = importlib.import_module(f"configs.{base}").get_config(variant)
  c.method = method
  c[method] = ml_collections.ConfigDict(dict(base=base))
  return c, variant
