"""Data layer: the registry of data sets, the input pipeline, and the embedded data sets.

A data set is declared once in the registry (`register_dataset(name, DatasetSpec(...))`, `rl.data.registry`);
its source is a TFDS builder or an in-memory loader of NumPy arrays. The embedded data sets, 'mnist1d' and
'digits', are made on the machine by the loaders of `rl.data.embedded`, and the synthetic image data sets
'synthetic_32' and 'synthetic_224' (CIFAR- and ImageNet-shaped, the same bytes on every machine) by those of
`rl.data.synthetic`; all are served from memory, so training on them needs no TensorFlow. Importing `rl.data`
loads neither TensorFlow nor TFDS: TensorFlow is imported when a TFDS source (cifar10, imagenet2012, ...) is first
read (`rl.data.pipeline`). `rl.data.builders` (imported on first use)
has TFDS builders of the embedded data sets, for `tfds.load('mnist1d')`. On-device augmentations live in
`rl.data.augment`, imported separately by whoever needs them.
"""
import importlib

from rl.data.pipeline import DatasetInfo
from rl.data.pipeline import dataset_info
from rl.data.pipeline import eval_batches
from rl.data.pipeline import host_eval_batches
from rl.data.pipeline import host_train_batches
from rl.data.pipeline import known_datasets
from rl.data.pipeline import num_examples
from rl.data.pipeline import prepare
from rl.data.pipeline import train_batches
from rl.data.pipeline import with_validation
from rl.data.registry import DatasetSpec
from rl.data.registry import dataset_spec
from rl.data.registry import register_dataset
from rl.data.registry import unregister_dataset

__all__ = [
    "DatasetInfo",
    "DatasetSpec",
    "builders",
    "dataset_info",
    "dataset_spec",
    "eval_batches",
    "host_eval_batches",
    "host_train_batches",
    "known_datasets",
    "num_examples",
    "prepare",
    "register_dataset",
    "train_batches",
    "unregister_dataset",
    "with_validation",
]


def __getattr__(name: str):
  # PEP 562: `rl.data.builders` imports TFDS (and TensorFlow), so it is loaded on first use only.
  if name == "builders":
    return importlib.import_module("rl.data.builders")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
