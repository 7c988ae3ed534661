"""Synthetic image data sets, made on the host with NumPy: the same bytes on every machine, no download, no TF.

They stand in for CIFAR- and ImageNet-sized data where a run needs images of that shape rather than their
content: the trainer's throughput on a GPU machine that has neither the data sets nor TensorFlow
(`experiments/benchmarks/trainer_throughput.py`), and end-to-end checks of the image recipes. The registry
(`rl.data.registry`) serves two of them as in-memory data sets:

  name            images           classes   train    test
  synthetic_32    32 x 32 x 3      10        10,000   1,000    (CIFAR-like)
  synthetic_224   224 x 224 x 3    10         2,000     250    (ImageNet-like; 300 MB of uint8 in memory)

Any other shape is one registration away (a loader is `functools.partial(images, size=...)`):

    rl.data.register_dataset("synthetic_64", rl.data.DatasetSpec(
        kind="image", num_classes=10, size=64, channels=3, source=functools.partial(images, size=64)))

How an example is made, with integer arithmetic only, so that no floating-point difference between machines can
change a byte: class c has a template, a `GRID` x `GRID` grid of random colours blown up to the image size
(nearest neighbour); an example of class c is that template plus uniform integer noise in [-`NOISE`, `NOISE`] per
pixel and channel, clipped to [0, 255]. The classes differ in layout and colour, so a linear probe of the raw
pixels tells them apart and a trained encoder has something to find; the noise makes every example different.
Labels are uniform over the classes. The task is easy on purpose (the linear probe of a tiny ResNet trained two
steps reaches 99.9% on synthetic_32): these data sets check that a run works and how fast, not how well a method
learns.

Determinism: the templates come from `np.random.default_rng([seed, TEMPLATES])`, and a split is drawn in chunks of
`CHUNK` examples, chunk k from `np.random.default_rng([seed, split id, k])` (labels, then noise, always for a
whole chunk). Example i of a split therefore depends only on (seed, split, i) and the image shape and class count,
not on how many examples the split has, and the arrays are the same on every machine and for every process count
(each process of a multi-process run makes the whole split and reads its own slice of it, as for the other
in-memory data sets: `rl.data._memory`). NumPy keeps `default_rng`'s integer streams stable across releases;
`tests/data/test_synthetic.py` pins a digest of the arrays, so a change would be noticed.
"""
from __future__ import annotations

import numpy as np

NUM_CLASSES = 10
CHANNELS = 3
SEED = 0
GRID = 4  # the templates' coarse colour grid, GRID x GRID cells
NOISE = 48  # per-pixel noise amplitude, in grey levels
CHUNK = 256  # examples drawn from one generator
TEMPLATES = 1000  # stream id of the templates (split ids are below it)
# split -> (stream id, examples) of the built-in data sets, by image side.
SPLITS = {
    32: {"train": (0, 10_000), "test": (1, 1_000)},
    224: {"train": (0, 2_000), "test": (1, 250)},
}


def _positive(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name}: expected a positive int, got {value!r}")
  return int(value)


def templates(size: int, *, channels: int = CHANNELS, num_classes: int = NUM_CLASSES, seed: int = SEED) -> np.ndarray:
  """The class templates: uint8 [num_classes, size, size, channels], a `GRID` x `GRID` colour grid per class.

  Example:
    >>> t = templates(8, num_classes=2)
    >>> t.shape, t.dtype
    ((2, 8, 8, 3), dtype('uint8'))
    >>> bool((t[0, :2, :2] == t[0, 0, 0]).all())  # one cell of the 4 x 4 grid covers 2 x 2 pixels at size 8
    True

  Args:
    size: image side.
    channels: image channels.
    num_classes: number of classes (one template each).
    seed: the data set's seed.

  Returns:
    The templates.
  """
  size, channels, num_classes = (_positive(n, v) for n, v in
                                 (("size", size), ("channels", channels), ("num_classes", num_classes)))
  grid = np.random.default_rng([seed, TEMPLATES]).integers(0, 256, (num_classes, GRID, GRID, channels),
                                                            dtype=np.uint8)
  cell = np.arange(size) * GRID // size  # the grid cell of each pixel row (and column)
  return grid[:, cell][:, :, cell]


def generate(num_examples: int, *, size: int, stream: int, channels: int = CHANNELS, num_classes: int = NUM_CLASSES,
             seed: int = SEED) -> dict[str, np.ndarray]:
  """`num_examples` examples of one stream (a split): {'x': uint8 [n, size, size, channels], 'label': int32 [n]}.

  Example:
    >>> a = generate(3, size=8, stream=0)
    >>> a["x"].shape, a["x"].dtype, a["label"].dtype
    ((3, 8, 8, 3), dtype('uint8'), dtype('int32'))
    >>> b = generate(300, size=8, stream=0)  # a longer split starts with the same examples
    >>> bool((b["x"][:3] == a["x"]).all() and (b["label"][:3] == a["label"]).all())
    True

  Args:
    num_examples: how many examples.
    size: image side.
    stream: the split's stream id (`SPLITS`: train 0, test 1).
    channels: image channels.
    num_classes: number of classes.
    seed: the data set's seed.

  Returns:
    The arrays; example i depends only on (seed, stream, i), the shape and the class count.
  """
  num_examples = _positive("num_examples", num_examples)
  base = templates(size, channels=channels, num_classes=num_classes, seed=seed).astype(np.int16)
  x = np.empty((num_examples, size, size, channels), np.uint8)
  label = np.empty(num_examples, np.int32)
  for k, start in enumerate(range(0, num_examples, CHUNK)):
    rng = np.random.default_rng([seed, stream, k])
    n = min(CHUNK, num_examples - start)
    chunk_labels = rng.integers(0, num_classes, CHUNK, dtype=np.int32)[:n]
    noise = rng.integers(-NOISE, NOISE + 1, (CHUNK, size, size, channels), dtype=np.int16)[:n]
    noise += base[chunk_labels]  # in place: a chunk of 224 x 224 images is 77 MB of int16
    x[start:start + n] = np.clip(noise, 0, 255, out=noise)
    label[start:start + n] = chunk_labels
  return {"x": x, "label": label}


def images(split: str, *, size: int, channels: int = CHANNELS, num_classes: int = NUM_CLASSES, seed: int = SEED,
           splits: dict[str, tuple[int, int]] | None = None) -> dict[str, np.ndarray]:
  """The loader of a synthetic data set (`DatasetSpec.source`): split 'train' or 'test' of `size` x `size` images.

  Example:
    >>> test = images("test", size=32)
    >>> test["x"].shape, test["x"].dtype, test["label"][:5]
    ((1000, 32, 32, 3), dtype('uint8'), array([5, 8, 9, 5, 3], dtype=int32))

  Args:
    split: a split name of `splits`.
    size: image side.
    channels: image channels.
    num_classes: number of classes.
    seed: the data set's seed.
    splits: split name -> (stream id, number of examples); None: `SPLITS[size]` for the built-in sides (32, 224),
      else 10,000 train and 1,000 test examples.

  Returns:
    {'x': uint8 [n, size, size, channels], 'label': int32 [n]}.

  Raises:
    KeyError: a split that `splits` does not have.
  """
  if splits is None:
    splits = SPLITS.get(size, SPLITS[32])
  stream, count = splits[split]
  return generate(count, size=size, stream=stream, channels=channels, num_classes=num_classes, seed=seed)
