"""The one registry of data sets: what each one is (kind, classes, splits, default size) and where it comes from.

A data set is declared once, with `register_dataset(name, DatasetSpec(...))`; every function of `rl.data`
(`dataset_info`, `prepare`, `num_examples`, `train_batches`, `eval_batches`, the `host_*` batches) and the config
check of the trainer read it from here. The source is either

* a TFDS builder name (a `str`): read through tf.data (`cifar10`, ...); TensorFlow is imported only when such a
  data set is first read; or
* an in-memory loader (a callable `loader(split) -> {'x': ..., 'label': ...}` of NumPy arrays): served from
  host memory with NumPy alone, no TensorFlow. Images are uint8 [n, H, W, C] at the registered size, signals
  float [n, L] (served as float32), labels int [n] in [0, num_classes) (-1: unlabelled). The loader is called
  once per split and process; its arrays are kept while the spec stays registered. The embedded data sets,
  'mnist1d' and 'digits', are such loaders (`rl.data.embedded`), and so are the synthetic image data sets
  'synthetic_32' and 'synthetic_224' (`rl.data.synthetic`).

This module imports neither TensorFlow nor TFDS.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import threading
from typing import Callable, Mapping, Union

import numpy as np

from rl.data import embedded
from rl.data import synthetic

# An in-memory source: base split name -> {'x': inputs, 'label': labels}.
Loader = Callable[[str], Mapping[str, np.ndarray]]
Source = Union[str, Loader]

_KINDS = ("image", "signal")
_NAME_RE = re.compile(r"^\w[\w.-]*$")


def _positive_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How a data set is declared: what it holds and where it is read from.

  Every field is checked when the spec is built; a bad one raises a `ValueError` that names the field, what was
  expected and what was given.

  Attributes:
    kind: 'image' (uint8 [H, W, C] examples) or 'signal' (float32 [L] examples).
    num_classes: number of classes of 'label' (labels are 0..num_classes-1; -1 marks an unlabelled example).
    size: the default image side (images are served square, `size` x `size`), or the signal length.
    source: a TFDS builder name, or an in-memory loader `loader(split) -> {'x': array, 'label': array}` called
      with a base split name (e.g. 'train'); see the module docstring for the arrays it must return.
    channels: image channels (1 grey, 3 RGB); 0 for signals.
    train_split: split for supervised training (linear probe, kNN bank).
    test_split: split for evaluation.
    pretrain_split: split for self-supervised pretraining; None: `train_split`.

  Example:
    >>> spec = DatasetSpec(kind="image", num_classes=10, size=32, channels=3, source="cifar10")
    >>> spec.pretrain_split, spec.in_memory
    ('train', False)
    >>> DatasetSpec(kind="video", num_classes=10, size=32, source="cifar10")
    Traceback (most recent call last):
    ValueError: DatasetSpec.kind: expected 'image' or 'signal', got 'video'
  """
  kind: str
  num_classes: int
  size: int
  source: Source
  channels: int = 0
  train_split: str = "train"
  test_split: str = "test"
  pretrain_split: str | None = None

  def __post_init__(self):
    def bad(field: str, expected: str, got) -> ValueError:
      return ValueError(f"DatasetSpec.{field}: expected {expected}, got {got!r}")

    if self.kind not in _KINDS:
      raise bad("kind", "'image' or 'signal'", self.kind)
    if not _positive_int(self.num_classes):
      raise bad("num_classes", "a positive int", self.num_classes)
    if not _positive_int(self.size):
      raise bad("size", "a positive int (image side or signal length)", self.size)
    if self.kind == "image" and not _positive_int(self.channels):
      raise bad("channels", "a positive int for an image data set", self.channels)
    if self.kind == "signal" and self.channels != 0:
      raise bad("channels", "0 for a signal data set", self.channels)
    if isinstance(self.source, str):
      if not self.source:
        raise bad("source", "a TFDS builder name or a loader callable", self.source)
    elif not callable(self.source):
      raise bad("source", "a TFDS builder name (str) or a loader callable", self.source)
    if self.pretrain_split is None:
      object.__setattr__(self, "pretrain_split", self.train_split)
    for field in ("train_split", "test_split", "pretrain_split"):
      value = getattr(self, field)
      if not isinstance(value, str) or not value:
        raise bad(field, "a non-empty split name", value)
    object.__setattr__(self, "num_classes", int(self.num_classes))
    object.__setattr__(self, "size", int(self.size))
    object.__setattr__(self, "channels", int(self.channels))

  @property
  def in_memory(self) -> bool:
    """Whether the source is an in-memory loader (served without TensorFlow) rather than a TFDS builder."""
    return not isinstance(self.source, str)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the rest of `rl` needs to know about a data set.

  Attributes:
    name: the name `rl.data` knows it by (e.g. 'cifar10').
    kind: 'image' or 'signal'.
    input_key: the TFDS feature the inputs come from ('image' or 'signal').
    shape: shape of one host example: (H, W, C) for images at the host output size, (L,) for signals.
    num_classes: number of classes of 'label'.
    train_split: split for supervised training (linear probe, kNN bank).
    test_split: split for evaluation.
    pretrain_split: split for self-supervised pretraining (stl10: 'unlabelled', whose labels are -1;
      otherwise the train split).
  """
  name: str
  kind: str
  input_key: str
  shape: tuple[int, ...]
  num_classes: int
  train_split: str
  test_split: str
  pretrain_split: str


_SPECS: dict[str, DatasetSpec] = {}
_LOCK = threading.Lock()


def register_dataset(name: str, spec: DatasetSpec, *, replace: bool = False) -> None:
  """Declares a data set, so every function of `rl.data` and the trainer (`config.dataset`) accept its name.

  Registries are global to the process: a test or notebook that registers a data set for a while removes it
  afterwards with `unregister_dataset` (in a `finally`).

  Example:
    >>> rng = np.random.default_rng(0)
    >>> arrays = {split: {"x": rng.normal(size=(n, 16)).astype(np.float32), "label": rng.integers(0, 2, n)}
    ...           for split, n in (("train", 64), ("test", 32))}
    >>> spec = DatasetSpec(kind="signal", num_classes=2, size=16, source=lambda split: arrays[split])
    >>> register_dataset("toy_signals", spec)
    >>> dataset_info("toy_signals").shape, rl.data.num_examples("toy_signals", "train")
    ((16,), 64)
    >>> register_dataset("toy_signals", spec)  # a second time: an error, unless replace=True
    Traceback (most recent call last):
    ValueError: name: dataset 'toy_signals' is already registered; pass replace=True to replace it
    >>> _ = unregister_dataset("toy_signals")  # registries are process-global: clean up

  Args:
    name: the data set's name (letters, digits, '_', '.', '-'), as `config.dataset` spells it.
    spec: its `DatasetSpec`.
    replace: replace a data set registered under the same name; otherwise that is an error.

  Raises:
    ValueError: a bad name, a spec that is not a `DatasetSpec`, or a name already registered without `replace`.
  """
  if not isinstance(name, str) or not _NAME_RE.match(name):
    raise ValueError(f"name: expected a non-empty name of letters, digits, '_', '.' or '-', got {name!r}")
  if not isinstance(spec, DatasetSpec):
    raise ValueError(f"spec: expected a rl.data.DatasetSpec, got {type(spec).__name__}")
  with _LOCK:
    if name in _SPECS and not replace:
      raise ValueError(f"name: dataset {name!r} is already registered; pass replace=True to replace it")
    _SPECS[name] = spec


def unregister_dataset(name: str) -> DatasetSpec:
  """Removes a registered data set (e.g. one a test registered) and returns its spec.

  Example:
    >>> register_dataset("cifar10_copy", dataset_spec("cifar10"))
    >>> unregister_dataset("cifar10_copy").source
    'cifar10'
    >>> "cifar10_copy" in known_datasets()
    False

  Args:
    name: a registered name.

  Returns:
    The `DatasetSpec` it had.

  Raises:
    ValueError: the name is not registered.
  """
  with _LOCK:
    if name not in _SPECS:
      raise _unknown(name)
    return _SPECS.pop(name)


def _unknown(name) -> ValueError:
  return ValueError(f"name: unknown dataset {name!r}; known datasets: {', '.join(_SPECS)}")


def known_datasets() -> tuple[str, ...]:
  """Names accepted by every function of `rl.data`, in the order they were registered.

  Example:
    >>> known_datasets()
    ('mnist1d', 'digits', 'cifar10', 'cifar100', 'stl10', 'imagenette', 'imagenet2012', 'synthetic_32', 'synthetic_224')
  """
  return tuple(_SPECS)


def dataset_spec(name: str) -> DatasetSpec:
  """The `DatasetSpec` registered under `name`.

  Example:
    >>> spec = dataset_spec("stl10")
    >>> spec.source, spec.pretrain_split, spec.size
    ('stl10', 'unlabelled', 96)

  Raises:
    ValueError: unknown name (the message lists the known ones).
  """
  try:
    return _SPECS[name]
  except (KeyError, TypeError):
    raise _unknown(name) from None


def dataset_info(name: str, *, image_size: int | None = None) -> DatasetInfo:
  """Describes a data set as the pipeline delivers it.

  Example:
    >>> dataset_info("mnist1d").shape, dataset_info("mnist1d").kind
    ((40,), 'signal')
    >>> info = dataset_info("cifar10", image_size=40)  # host images resized to 40 x 40
    >>> info.kind, info.shape, info.num_classes, info.test_split
    ('image', (40, 40, 3), 10, 'test')

  Args:
    name: one of `known_datasets()`.
    image_size: side of the square host images; None for the data set's default. Must be None for signals,
      and None or the registered size for in-memory images (they are served as the loader gives them).

  Returns:
    The `DatasetInfo`; `shape` is (image_size, image_size, C) for images and (L,) for signals.

  Raises:
    ValueError: unknown name (the message lists the known ones), or a bad `image_size`.
  """
  spec = dataset_spec(name)
  if spec.kind == "signal":
    if image_size is not None:
      raise ValueError(f"image_size: {name!r} is a signal data set; expected None, got {image_size!r}")
    shape = (spec.size,)
  else:
    if image_size is None:
      image_size = spec.size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
      raise ValueError(f"image_size: expected a positive int or None, got {image_size!r}")
    if spec.in_memory and image_size != spec.size:
      raise ValueError(f"image_size: {name!r} is an in-memory data set of {spec.size}x{spec.size} images, which "
                       f"are not resized; expected None or {spec.size}, got {image_size}")
    shape = (image_size, image_size, spec.channels)
  return DatasetInfo(name=name, kind=spec.kind, input_key=spec.kind, shape=shape, num_classes=spec.num_classes,
                     train_split=spec.train_split, test_split=spec.test_split, pretrain_split=spec.pretrain_split)



def with_validation(info: DatasetInfo, percent: int) -> DatasetInfo:
  """`info` with its evaluation split carved from the training split: the last `percent`% of `train_split`.

  Pretraining (when it reads the training split) and the probe's training set keep the first (100 - percent)%;
  the test split is not read. This is the split to tune hyper-parameters on (`config.eval.validation_percent`).

  Example:
    >>> info = with_validation(dataset_info("mnist1d"), 10)
    >>> info.pretrain_split, info.train_split, info.test_split
    ('train[:90%]', 'train[:90%]', 'train[90%:]')
    >>> with_validation(dataset_info("mnist1d"), 0).test_split  # 0: the test split, unchanged
    'test'

  Args:
    info: from `dataset_info`.
    percent: an int in [0, 100); 0 returns `info` unchanged.

  Raises:
    ValueError: a bad `percent`, or a training split that is already sliced.
  """
  if isinstance(percent, bool) or not isinstance(percent, (int, np.integer)) or not 0 <= percent < 100:
    raise ValueError(f"percent: expected an int in [0, 100), got {percent!r}")
  if percent == 0:
    return info
  if "[" in info.train_split:
    raise ValueError(f"percent: {info.name!r} trains on the sliced split {info.train_split!r}; a validation "
                     "split can only be carved from a whole one")
  keep, held = f"{info.train_split}[:{100 - percent}%]", f"{info.train_split}[{100 - percent}%:]"
  pretrain = keep if info.pretrain_split == info.train_split else info.pretrain_split
  return dataclasses.replace(info, train_split=keep, test_split=held, pretrain_split=pretrain)

# The data sets `rl` knows out of the box. mnist1d and digits are made on the machine by the loaders of
# `rl.data.embedded`, and synthetic_32 and synthetic_224 (CIFAR- and ImageNet-shaped images of 10 classes) by those of
# `rl.data.synthetic`; all four are served from memory, without TensorFlow (MNIST-1D signals have 40 samples). The
# others are streamed from a prepared TFDS data dir. Default sizes: the native 32 for CIFAR, 96 for STL-10, 8 for
# digits, and 224 for imagenette (TFDS's default 'full-size-v2' config) and imagenet2012.
register_dataset("mnist1d", DatasetSpec(kind="signal", num_classes=embedded.NUM_CLASSES, size=embedded.SIGNAL_LENGTH,
                                        source=embedded.mnist1d))
register_dataset("digits", DatasetSpec(kind="image", num_classes=embedded.NUM_CLASSES, size=embedded.IMAGE_SHAPE[0],
                                       channels=embedded.IMAGE_SHAPE[2], source=embedded.digits))
register_dataset("cifar10", DatasetSpec(kind="image", num_classes=10, size=32, channels=3, source="cifar10"))
register_dataset("cifar100", DatasetSpec(kind="image", num_classes=100, size=32, channels=3, source="cifar100"))
register_dataset("stl10", DatasetSpec(kind="image", num_classes=10, size=96, channels=3, source="stl10",
                                      pretrain_split="unlabelled"))
register_dataset("imagenette", DatasetSpec(kind="image", num_classes=10, size=224, channels=3, source="imagenette",
                                           test_split="validation"))
register_dataset("imagenet2012", DatasetSpec(kind="image", num_classes=1000, size=224, channels=3,
                                             source="imagenet2012", test_split="validation"))
register_dataset("synthetic_32", DatasetSpec(kind="image", num_classes=synthetic.NUM_CLASSES, size=32,
                                             channels=synthetic.CHANNELS, source=functools.partial(synthetic.images,
                                                                                                   size=32)))
register_dataset("synthetic_224", DatasetSpec(kind="image", num_classes=synthetic.NUM_CLASSES, size=224,
                                              channels=synthetic.CHANNELS, source=functools.partial(synthetic.images,
                                                                                                    size=224)))
