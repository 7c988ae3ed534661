"""The embedded data sets, made on the machine with NumPy: MNIST-1D and scikit-learn's 8x8 digits.

Neither needs a download nor TensorFlow: `mnist1d` runs the `mnist1d` package's seeded generator, `digits` reads
the images bundled with scikit-learn. The registry (`rl.data.registry`) serves both as in-memory data sets
through these loaders (`mnist1d(split)`, `digits(split)`), so a training run on them imports no TensorFlow (a
GPU machine without it trains `configs/*.py:mnist1d` as it is). The TFDS builders of `rl.data.builders` write the
same arrays, in the same order, as TFDS data sets for whoever wants `tfds.load('mnist1d')`.

* MNIST-1D (Greydanus & Kobak, 2020, https://arxiv.org/abs/2011.14439): a procedurally generated 1-D analogue of
  MNIST. Ten hand-designed 12-point templates are padded, translated, scaled, sheared, blurred with correlated
  noise and resampled to 40 points. `mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())`: 5000
  examples, seed 42, the first 80% as 'train' (4000) and the rest as 'test' (1000), in the generator's order;
  signals are float32, normalised by the generator to zero mean and unit standard deviation over the whole set.
  The package's `get_dataset`, which fetches a pickle over the network, is never called.
* digits (UCI "Optical Recognition of Handwritten Digits", test part: 1797 images, 8x8, 17 grey levels,
  `sklearn.datasets.load_digits`): split 80/20 with `sklearn.model_selection.train_test_split(test_size=0.2,
  random_state=0, stratify=labels)` into 'train' (1437) and 'test' (360); levels 0..16 are mapped to uint8 by
  round(level * 255 / 16); images are [8, 8, 1].
"""
from __future__ import annotations

import copy
import functools
import random
from typing import Any

import numpy as np

SIGNAL_LENGTH = 40  # MNIST-1D
IMAGE_SHAPE = (8, 8, 1)  # digits
NUM_CLASSES = 10  # both
MNIST1D_SEED = 42  # the generator's default seed: the MNIST-1D data set of the paper and of `rl`
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
# load_digits counts pixels on a 0..16 scale (number of "on" pixels of a 4x4 block of the 32x32 bitmap).
DIGITS_MAX_LEVEL = 16


def generate_mnist1d(seed: int = MNIST1D_SEED) -> dict[str, Any]:
  """Runs the `mnist1d` generator with its default arguments, leaving the global RNGs untouched.

  `seed` (the generator's, 42 by default: the data set `rl` ships) gives another draw of MNIST-1D from the same
  templates and nuisances, for checking that a result is not a property of one draw
  (`experiments/benchmarks/mnist1d_draws.py`).

  `make_dataset` seeds Python's and NumPy's global generators (`set_seed(42)`); their state is saved and
  restored so that building the data set does not change the randomness of the calling program. The generator
  (about 1 s) runs once per process: later calls return a copy of its output, which is the same every time.

  Example:
    >>> data = generate_mnist1d()
    >>> data["x"].shape, data["x_test"].shape, sorted(set(data["y"].tolist()))
    ((4000, 40), (1000, 40), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])

  Returns:
    The generator's dict: 'x' [4000, 40] and 'x_test' [1000, 40] float64 signals, 'y' [4000] and
    'y_test' [1000] integer labels in [0, 10), plus its templates and time axis.
  """
  return copy.deepcopy(_generated_mnist1d(seed))


@functools.cache
def _generated_mnist1d(seed: int = MNIST1D_SEED) -> dict[str, Any]:
  # Imported here: the package pulls in matplotlib and requests, which `import rl.data` should not pay for.
  from mnist1d import data as mnist1d_data  # pylint: disable=g-import-not-at-top

  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    args = mnist1d_data.get_dataset_args()
    args.seed = seed
    return mnist1d_data.make_dataset(args)
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)


def mnist1d(split: str, *, seed: int = MNIST1D_SEED) -> dict[str, np.ndarray]:
  """MNIST-1D's 'train' or 'test' split: {'x': float32 [n, 40], 'label': int32 [n]}, in the generator's order.

  Example:
    >>> test = mnist1d("test")
    >>> test["x"].shape, test["x"].dtype, test["label"][:5]
    ((1000, 40), dtype('float32'), array([2, 6, 3, 9, 4], dtype=int32))

  Args:
    split: 'train' (4000 examples) or 'test' (1000).
    seed: the generator's seed (`generate_mnist1d`); 42 is the shipped data set.

  Raises:
    KeyError: another split.
  """
  keys = {"train": ("x", "y"), "test": ("x_test", "y_test")}[split]
  data = _generated_mnist1d(seed)
  return {"x": data[keys[0]].astype(np.float32), "label": data[keys[1]].astype(np.int32)}


def digits_to_uint8(levels: np.ndarray) -> np.ndarray:
  """Maps load_digits' grey levels 0..16 to uint8 0..255 by round(level * 255 / 16).

  Example:
    >>> digits_to_uint8(np.array([0, 8, 16]))
    array([  0, 128, 255], dtype=uint8)

  Args:
    levels: array of levels in [0, 16], any shape.

  Returns:
    uint8 array of the same shape.
  """
  return np.round(np.asarray(levels, np.float64) * (255.0 / DIGITS_MAX_LEVEL)).astype(np.uint8)


def digits_split_indices() -> dict[str, np.ndarray]:
  """The fixed stratified 80/20 split of the 1797 digits.

  Example:
    >>> split = digits_split_indices()
    >>> len(split["train"]), len(split["test"])
    (1437, 360)

  Returns:
    {'train': int indices [1437], 'test': int indices [360]} into `load_digits()`'s arrays.
  """
  from sklearn import datasets, model_selection  # pylint: disable=g-import-not-at-top

  labels = datasets.load_digits().target
  train, test = model_selection.train_test_split(
      np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels)
  return {"train": train, "test": test}


def digits(split: str) -> dict[str, np.ndarray]:
  """The digits' 'train' or 'test' split: {'x': uint8 [n, 8, 8, 1], 'label': int32 [n]}.

  Example i of a split is image `digits_split_indices()[split][i]` of `load_digits()`.

  Example:
    >>> train = digits("train")
    >>> train["x"].shape, train["x"].dtype, int(train["x"].max())
    ((1437, 8, 8, 1), dtype('uint8'), 255)

  Args:
    split: 'train' (1437 examples) or 'test' (360).

  Raises:
    KeyError: another split.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  rows = digits_split_indices()[split]
  raw = datasets.load_digits()
  return {"x": digits_to_uint8(raw.images[rows])[..., None], "label": raw.target[rows].astype(np.int32)}
