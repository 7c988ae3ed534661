"""Every variant of every configs/<name>.py: it builds, names a registered method, sets no key outside `base()` and
the method's section, gives one size per view, and `rl.methods.get_method` builds from it. The `imagenet`
variants are also checked for ImageNet-1k at 224 x 224 for 100 epochs. Then `configs/common.py` itself: the
variants every file shares, command-line overrides as `experiments/main.py` parses them (placeholders keep their
types), and the errors of `apply_variant` for an unknown group or key.

Building a method only constructs closures and modules (nothing is initialised or compiled), so this is fast.
"""
from __future__ import annotations

import dataclasses
import importlib
import pathlib

from absl import flags
import ml_collections
import pytest

import tests

from configs import common
from rl import methods
from rl import models
from rl.data import augment
from rl.models.heads import MLPProjector

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
NAMES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem not in ("__init__", "common"))
# Free-form sub-dicts (model and recipe keyword arguments): their keys are checked against the module's or the
# recipe's fields instead of against base().
OPEN = ("model.encoder_kwargs", "model.projector_kwargs", "augment.overrides")
# Training-set sizes, so that per-example memories and cluster counts are checked at their real size.
TRAIN_EXAMPLES = {"mnist1d": 4000, "digits": 1437, "cifar10": 50000, "cifar100": 50000,
                  "imagenet2012": common.IMAGENET_TRAIN_EXAMPLES}


def _module(name):
  return importlib.import_module(f"configs.{name}")


def _cases():
  """(config name, get_config argument): every variant, and every base of the configs built on a base method."""
  cases = []
  for name in NAMES:
    module = _module(name)
    for variant in module.VARIANTS:
      bases = getattr(module, "BASES", None)
      cases += [(name, f"{variant},{b}") for b in bases] if bases else [(name, variant)]
  return cases


def _flat_keys(d: dict, prefix: str = ""):
  for k, v in d.items():
    if isinstance(v, dict) and v and prefix + k not in OPEN:
      yield from _flat_keys(v, f"{prefix}{k}.")
    else:
      yield prefix + k


BASE_KEYS = frozenset(_flat_keys(common.base().to_dict()))


def test_configs_are_discovered():
  assert {"simclr", "byol", "dino", "swav", "matryoshka"} <= set(NAMES), NAMES


@pytest.mark.parametrize("name,arg", _cases(), ids=[f"{n}:{a}" for n, a in _cases()])
def test_config(name, arg):
  config = _module(name).get_config(arg)
  assert config.method in methods.METHODS, f"configs/{name}.py: method {config.method!r} is not registered"

  # No key outside base() and the method's own section (plus the base method's, for methods built on one).
  sections = {config.method}
  base_method = config.get(config.method, {}).get("base")
  if base_method:
    sections.add(base_method)
  stray = sorted(k for k in _flat_keys(config.to_dict())
                 if k not in BASE_KEYS and k.split(".")[0] not in sections)
  assert not stray, f"configs/{name}.py:{arg} sets keys that base() and c.{'/c.'.join(sorted(sections))} lack: {stray}"

  # Model and recipe keyword arguments name real fields.
  models.get_model(config.model.encoder, **config.model.encoder_kwargs.to_dict())
  projector_fields = {f.name for f in dataclasses.fields(MLPProjector)}
  assert set(config.model.projector_kwargs) <= projector_fields, sorted(config.model.projector_kwargs)
  for view in config.augment.views:
    augment.get_recipe(view, **config.augment.overrides.to_dict())

  if config.augment.view_sizes is not None:
    assert len(config.augment.view_sizes) == len(config.augment.views), (config.augment.view_sizes,
                                                                          config.augment.views)

  config.num_train_examples = TRAIN_EXAMPLES[config.dataset]
  method = methods.get_method(config)
  assert method.num_views == len(config.augment.views), (method.num_views, config.augment.views)

  if arg.split(",")[0] == "imagenet":
    _check_imagenet(name, config)


def _check_imagenet(name, config):
  n = common.IMAGENET_TRAIN_EXAMPLES
  assert config.dataset == "imagenet2012"
  # 100 epochs: total_steps = 100 * n // batch_size.
  assert 0 <= 100 * n - config.total_steps * config.batch_size < config.batch_size, (config.total_steps,
                                                                                    config.batch_size)
  assert config.optim.warmup_steps < config.total_steps
  assert config.eval.max_train_examples is not None and config.eval.max_train_examples <= 100_000
  sizes = config.augment.view_sizes or (None,) * len(config.augment.views)
  sizes = [config.augment.out_size if s is None else s for s in sizes]  # None: the view is out_size
  if name == "relative_location":
    # The paper's 96-pixel patches with 48-pixel gaps and 7 pixels of jitter do not fit 224: 400 x 400 images.
    rl_cfg = config.relative_location
    span = 3 * rl_cfg.patch + 2 * rl_cfg.gap + 2 * rl_cfg.jitter
    assert config.image_size == config.augment.out_size >= span, (config.image_size, config.augment.out_size, span)
  else:
    num_global = 2 if len(sizes) > 2 else len(sizes)  # multi-crop: the first two views are the global crops
    assert config.augment.out_size == 224 and tuple(sizes[:num_global]) == (224,) * num_global, sizes


@pytest.mark.parametrize("name", NAMES)
def test_unknown_variant_names_the_file(name):
  with pytest.raises(ValueError, match=f"configs/{name}.py"):
    _module(name).get_config("no_such_variant")


def test_every_config_has_the_common_variants():
  for name in NAMES:
    assert tuple(_module(name).VARIANTS) == common.VARIANTS, name


def _command_line(name: str, variant: str, *overrides: str):
  """`configs/<name>.py:<variant>` parsed as experiments/main.py's --config flag (locked), with `overrides`."""
  return tests.parse_config(f"{name}.py:{variant}", *overrides)


@pytest.mark.parametrize("name,variant", [("simclr", "mnist1d"), ("dino", "mnist1d"), ("unicom", "mnist1d"),
                                          ("byol", "smoke"), ("simclr", "cifar10"), ("mae", "imagenet")])
def test_command_line_overrides_keep_types(name, variant):
  views = len(_module(name).get_config(variant).augment.views)
  config = _command_line(name, variant, "--config.data_dir=/x", f"--config.augment.view_sizes=({'24,' * views})",
                         "--config.batch_size=32")
  assert config.data_dir == "/x" and config.batch_size == 32
  assert config.augment.view_sizes == (24,) * views and type(config.augment.view_sizes) is tuple
  if variant == "mnist1d":  # mnist1d's encoder_kwargs.out_dim: placeholder(int), None (the last width)
    assert config.model.encoder_kwargs.out_dim is None
    config = _command_line(name, variant, "--config.model.encoder_kwargs.out_dim=32")
    assert config.model.encoder_kwargs.out_dim == 32 and type(config.model.encoder_kwargs.out_dim) is int
    with pytest.raises(flags.IllegalFlagValueError, match="out_dim"):
      _command_line(name, variant, "--config.model.encoder_kwargs.out_dim=wide")


def test_command_line_overrides_of_method_placeholders():
  assert _command_line("npid", "cifar10", "--config.npid.num_negatives=1024").npid.num_negatives == 1024
  assert _command_line("npid", "mnist1d").npid.num_negatives is None  # the full softmax; still an int field
  assert _command_line("npid", "mnist1d", "--config.npid.num_negatives=64").npid.num_negatives == 64
  assert _command_line("unicom", "smoke", "--config.unicom.recluster_every=5").unicom.recluster_every == 5
  assert _command_line("supcon", "digits", "--config.supcon.base_temperature=0.07").supcon.base_temperature == 0.07


def test_recipe_steps_follow_the_table():
  n = common.CIFAR_TRAIN_EXAMPLES
  config = _module("align_uniform").get_config("cifar100")  # 200 epochs of 768, no warm-up
  assert (config.dataset, config.batch_size, config.total_steps, config.optim.warmup_steps) == (
      "cifar100", 768, 200 * n // 768, 0)
  config = _module("unicom").get_config("cifar10")  # 1000 epochs of 256, 11 warm-up epochs
  assert (config.total_steps, config.optim.warmup_steps) == (1000 * n // 256, 11 * n // 256)
  assert _module("supervised").get_config("digits").augment.views == ("simclr",)  # num_views 1


def test_tables_are_not_shared_between_configs():
  config = _module("simclr").get_config("smoke")
  config.model.projector_kwargs.hidden_dims = (4,)
  assert _module("simclr").get_config("smoke").model.projector_kwargs.hidden_dims == (16,)
  # A table's mutable values (here a ConfigDict) are copied into each config, not shared.
  table = {"all": {"model.projector_kwargs": ml_collections.ConfigDict(dict(out_dim=8))}}
  one, two = (common.apply_variant(common.base("simclr"), "mnist1d", table) for _ in range(2))
  one.model.projector_kwargs.out_dim = 4
  assert two.model.projector_kwargs.out_dim == 8 and table["all"]["model.projector_kwargs"].out_dim == 8


def test_apply_variant_errors():
  with pytest.raises(ValueError, match=r"configs/simclr.py: the 'cifar' group sets 'optim.learning_rate', which "
                                       r"base\(\) and the method's section lack."):
    common.apply_variant(common.base("simclr"), "cifar10", {"cifar": {"optim.learning_rate": 0.1}})
  with pytest.raises(ValueError, match=r"configs/simclr.py: unknown OVERRIDES groups \['cifar_10'\]"):
    common.apply_variant(common.base("simclr"), "cifar10", {"cifar_10": {"optim.lr": 0.1}})
  with pytest.raises(ValueError, match="configs/simclr.py: unknown variant 'cifar'; known variants: mnist1d, digits, "
                                       "cifar10, cifar100, imagenet, smoke."):
    common.apply_variant(common.base("simclr"), "cifar", {})
  # Inside the free-form keyword dicts a group may add keys.
  config = common.apply_variant(common.base("simclr"), "cifar10", {"cifar": {"model.projector_kwargs.use_bn": False}})
  assert config.model.projector_kwargs.use_bn is False
