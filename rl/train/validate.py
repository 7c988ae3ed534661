"""`check_config(config)`: one sentence per mistake in a training config, before anything heavy runs.

It prepares no data, initialises no model and compiles nothing, so a typo costs seconds, not a queue slot. Each
error names the key (`config.batch_size`), what was expected and what was given. Names are checked against the
registries themselves (`rl.methods.METHODS`, `rl.models.MODELS`, `rl.data.known_datasets()`,
`rl.train.optim.OPTIMIZERS`, the augmentation recipes), so a new entry needs no change here.

Unknown keys and values of the wrong type given on the command line are refused earlier, by `ml_collections`
(`--config.batchsize=...`: "Did you mean "batch_size""); the type checks here catch what Python code assigns to a
config that is not type-safe (a placeholder, a new ConfigDict).
"""
from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import numpy as np

from rl import data
from rl import methods
from rl import models
from rl.data import augment
from rl.train import optim

# (key, smallest allowed value): integer settings of the loop.
_INTS = (
    ("batch_size", 1),
    ("total_steps", 1),
    ("log_every_steps", 1),
    ("checkpoint.every_steps", 1),
    ("checkpoint.keep", 1),
    ("checkpoint.preemption_sync_every_steps", 1),
    ("eval.every_steps", 0),
    ("eval.validation_percent", 0),
    ("eval.batch_size", 1),
    ("optim.warmup_steps", 0),
    ("skip_nonfinite_steps", 0),
)
# Global batches that are sharded over every device.
_SHARDED_BATCHES = ("batch_size", "eval.batch_size")
# (key, what it names, the registry's names): the message lists the known names, sorted.
_NAMES = (
    ("method", "method", lambda: methods.METHODS),
    ("dataset", "dataset", data.known_datasets),
    ("model.encoder", "model", lambda: models.MODELS),
    ("optim.name", "optimizer", lambda: optim.OPTIMIZERS),
)
_MISSING = object()


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  """The value at a dotted key, or `_MISSING` when a part is absent (an older workdir's config)."""
  node = config
  for part in key.split("."):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return _MISSING
    node = node[part]
  return node


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_ints(config, devices: int) -> None:
  for key, low in _INTS:
    value = _get(config, key)
    if value is _MISSING:
      continue
    expected = "a positive int" if low == 1 else f"an int >= {low}"
    if not _is_int(value):
      raise TypeError(f"config.{key}: expected {expected}, got {value!r} ({type(value).__name__}).")
    if value < low:
      raise ValueError(f"config.{key}: expected {expected}, got {value}.")
  percent = _get(config, "eval.validation_percent")
  if percent is not _MISSING and percent >= 100:
    raise ValueError(f"config.eval.validation_percent: expected an int in [0, 100), got {percent}.")
  for key in _SHARDED_BATCHES:
    value = _get(config, key)
    if value is not _MISSING and value % devices:
      raise ValueError(f"config.{key}: expected a multiple of the device count {devices} (the batch is split "
                       f"evenly over the devices), got {value}.")


def _check_positive_number(key: str, value) -> None:
  if not _is_number(value):
    raise TypeError(f"config.{key}: expected a finite number > 0, got {value!r} ({type(value).__name__}).")
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"config.{key}: expected a finite number > 0, got {value}.")


def _check_names(config) -> None:
  for key, what, known in _NAMES:
    value = _get(config, key)
    if value is _MISSING:
      continue
    names = sorted(known())
    if value not in names:
      raise ValueError(f"config.{key}: unknown {what} {value!r}; known {what}s: {', '.join(names)}.")


def _is_temperature(name: str) -> bool:
  return name in ("temperature", "temp") or name.endswith(("_temperature", "_temp"))


def _temperature_keys(config) -> list[str]:
  """Dotted keys of every temperature of the method's section (and of its base method's, e.g. hallucinator)."""
  sections = [config.method]
  base = _get(config, f"{config.method}.base")
  if isinstance(base, str):
    sections.append(base)
  keys = ["eval.knn_temperature"]

  def walk(node, prefix):
    for name in node:
      value = node[name]
      if isinstance(value, ml_collections.ConfigDict):
        walk(value, f"{prefix}{name}.")
      elif _is_temperature(name):
        keys.append(prefix + name)

  for section in sections:
    node = _get(config, section)
    if isinstance(node, ml_collections.ConfigDict):
      walk(node, f"{section}.")
  return keys


def _check_model(config) -> None:
  """The encoder's keyword arguments are fields of its module (the module is built, not initialised)."""
  kwargs = _get(config, "model.encoder_kwargs")
  if kwargs is _MISSING:
    return
  kwargs = kwargs.to_dict() if isinstance(kwargs, ml_collections.ConfigDict) else dict(kwargs)
  try:
    models.get_model(config.model.encoder, **kwargs)
  except ValueError as e:
    raise ValueError(f"config.model.encoder_kwargs: {e}") from None


def _check_views(config, info: data.DatasetInfo) -> None:
  """Recipe names and overrides, one size per view, and (images) no crop larger than the host images."""
  views = tuple(config.augment.views)
  overrides = config.augment.overrides.to_dict()
  for i, name in enumerate(views):
    try:
      augment.get_recipe(name, **overrides)
    except (ValueError, TypeError) as e:
      raise ValueError(f"config.augment.views[{i}] (with config.augment.overrides): {e}") from None
  view_sizes = config.augment.view_sizes
  if view_sizes is not None and len(view_sizes) != len(views):
    raise ValueError(f"config.augment.view_sizes: expected one size per view ({len(views)}, "
                     f"config.augment.views), got {len(view_sizes)}: {tuple(view_sizes)}.")
  if info.kind != "image":
    return
  image = info.shape[0]
  source = "config.image_size" if config.image_size is not None else f"the default of {config.dataset!r}"
  crops = [("augment.out_size", config.augment.out_size)]
  crops += [(f"augment.view_sizes[{i}]", s) for i, s in enumerate(view_sizes or ())]
  for key, size in crops:
    if size is not None and size > image:
      raise ValueError(f"config.{key}: expected a crop no larger than the {image} x {image} images "
                       f"({source}), got {size}.")


def _check_knn(config) -> None:
  ks = _get(config, "eval.knn_ks")
  if ks is _MISSING:
    return
  if not ks or not all(_is_int(k) and k > 0 for k in ks):
    raise ValueError(f"config.eval.knn_ks: expected a non-empty tuple of positive ints, got {ks!r}.")
  cap = _get(config, "eval.max_train_examples")
  if _is_int(cap) and max(ks) > cap:
    raise ValueError(f"config.eval.knn_ks: expected every k <= config.eval.max_train_examples={cap} (the kNN "
                     f"train set), got {tuple(ks)}.")


def check_config(config: ml_collections.ConfigDict, *, num_devices: int | None = None) -> None:
  """Validates a training config before any data is prepared, any model initialised or anything compiled.

  Checks: integer settings (`batch_size`, `total_steps`, `log_every_steps`, `checkpoint.every_steps`,
  `checkpoint.keep` > 0; `eval.every_steps`, `optim.warmup_steps`, `skip_nonfinite_steps` >= 0); `batch_size` and
  `eval.batch_size` divisible by the device count (`num_devices`, default `jax.device_count()`); `optim.lr` finite and
  > 0; the method, dataset, encoder and optimizer names (known to their registries); the encoder's keyword arguments;
  every temperature of the method's section (keys `temperature`, `temp`, `*_temperature`, `*_temp`) and
  `eval.knn_temperature` > 0; the augmentation recipes, one size per view, and for image datasets no crop
  (`augment.out_size`, `augment.view_sizes`) larger than the host images (`image_size`, or the dataset's default);
  `eval.knn_ks` positive and at most `eval.max_train_examples`; `compute_dtype`. Keys that the config lacks are
  skipped.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> check_config(config)  # returns None: nothing to complain about
    >>> config.optim.lr = 0.0
    >>> check_config(config)
    Traceback (most recent call last):
    ValueError: config.optim.lr: expected a finite number > 0, got 0.0.

  Args:
    config: the run's config (`configs/<method>.py:get_config(...)` with overrides).
    num_devices: the devices the batch is split over; None: every device (`jax.device_count()`).

  Raises:
    TypeError: a value of the wrong type, naming the key, the expected type and the value.
    ValueError: a bad value, naming the key, what was expected and the value.
  """
  _check_ints(config, jax.device_count() if num_devices is None else num_devices)
  if _get(config, "optim.lr") is not _MISSING:
    _check_positive_number("optim.lr", config.optim.lr)
  methods.base.compute_dtype(config)
  _check_names(config)
  for key in _temperature_keys(config):
    value = _get(config, key)
    if value is not None and value is not _MISSING:  # None: an optional one left unset (supcon.base_temperature)
      _check_positive_number(key, value)
  _check_model(config)
  try:
    info = data.dataset_info(config.dataset, image_size=config.image_size)
  except ValueError as e:  # the name is known by now: a bad image_size, whose message starts with "image_size:"
    raise ValueError(f"config.{e}") from None
  _check_views(config, info)
  _check_knn(config)


__all__ = ["check_config"]
