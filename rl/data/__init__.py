"""Data layer: TFDS builders for the embedded data sets and the input pipeline.

Importing `rl.data` registers the embedded TFDS builders ('mnist1d', 'digits'). On-device augmentations live in
`rl.data.augment`, imported separately by whoever needs them.
"""
from rl.data import builders
from rl.data.pipeline import DatasetInfo
from rl.data.pipeline import dataset_info
from rl.data.pipeline import eval_batches
from rl.data.pipeline import host_eval_batches
from rl.data.pipeline import host_train_batches
from rl.data.pipeline import known_datasets
from rl.data.pipeline import num_examples
from rl.data.pipeline import prepare
from rl.data.pipeline import train_batches

__all__ = [
    "DatasetInfo",
    "builders",
    "dataset_info",
    "eval_batches",
    "host_eval_batches",
    "host_train_batches",
    "known_datasets",
    "num_examples",
    "prepare",
    "train_batches",
]
