"""Host-side NumPy pieces of the pipeline, and the in-memory source (no TensorFlow).

`shuffled_batches` is the in-memory training order of every data set held in host memory: the embedded TFDS
data sets (decoded once by `rl.data._tfds`) and the in-memory loaders of the registry (`MemorySource`). Epoch e of
slice k is the permutation drawn by `np.random.default_rng` from `epoch_seeds(seed, e, k)[1]`; a stream started
at step s skips the first `s mod steps_per_epoch` batches of its epoch, so it equals the stream started at 0 from
its s-th batch on.

`MemorySource` serves a data set whose `DatasetSpec.source` is a loader of NumPy arrays with the semantics of the
TFDS path: process slices as `tfds.even_splits` cuts them (the first `n mod count` slices one example longer),
TFDS's slicing syntax for splits (`train[:10%]`, `test[100:200]`), `index` = position in the (unsliced) split,
and evaluation passes padded with masked rows (x zeros, label -1, mask False).
"""
from __future__ import annotations

import re
from typing import Callable, Iterator, Sequence
import weakref

import numpy as np

from rl.data import registry

_SPLIT_RE = re.compile(r"^(?P<base>[\w-]+)(\[(?P<selector>[^\]]*)\])?$")
_BOUND_RE = re.compile(r"^(?P<value>-?\d+(\.\d*)?)?(?P<unit>%)?$")

# Loaded splits of in-memory data sets: spec -> {base split: arrays}. Weak keys: an unregistered spec's arrays go
# with it.
_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def epoch_seeds(seed: int, epoch: int, slice_index: int) -> tuple[int, int]:
  """(file-order seed, record-shuffle seed) for one epoch of one slice (by default, one process's slice)."""
  file_seed, record_seed = np.random.SeedSequence([seed % 2**64, epoch, slice_index]).generate_state(2)
  return int(file_seed), int(record_seed)


def shuffled_batches(take: Callable[[np.ndarray], dict[str, np.ndarray]], size: int, *, seed: int,
                     slice_index: int, start_step: int, steps_per_epoch: int,
                     batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Endless batches of one slice held in memory; `take(rows)` gives the batch of the slice's rows `rows`.

  Epoch e is `np.random.default_rng(epoch_seeds(seed, e, slice_index)[1]).permutation(size)`, cut into
  `steps_per_epoch` batches of `batch_size` rows (the remainder is dropped).
  """
  epoch, skip_batches = divmod(start_step, steps_per_epoch)
  while True:
    _, record_seed = epoch_seeds(seed, epoch, slice_index)
    order = np.random.default_rng(record_seed).permutation(size)
    for i in range(skip_batches, steps_per_epoch):
      yield take(order[i * batch_size:(i + 1) * batch_size])
    epoch, skip_batches = epoch + 1, 0


def even_split(start: int, end: int, count: int, index: int) -> tuple[int, int]:
  """Rows [lo, hi) of slice `index` of `count` slices of rows [start, end), as `tfds.even_splits` cuts them."""
  per_slice, remainder = divmod(end - start, count)
  lo = start + per_slice * index + min(index, remainder)
  hi = start + per_slice * (index + 1) + min(index + 1, remainder)
  return lo, hi


def _bound(text: str, unit: str | None, n: int, default: int, split: str) -> int:
  if not text:
    return default
  value = round(float(text) * n / 100.0) if unit else int(text)
  if abs(value) > n:
    raise ValueError(f"split: {split!r} asks for rows up to {value} of a split of {n} examples")
  return n + value if value < 0 else value


def parse_split(split: str, num_examples: Callable[[str], int]) -> tuple[str, int, int]:
  """(base split, first row, end row) of a TFDS-style split: 'train', 'train[10:20]', 'test[:10%]', 'train[-5:]'.

  Percentages round to the closest row, as TFDS does.
  """
  match = _SPLIT_RE.match(split) if isinstance(split, str) else None
  parts = match["selector"].split(":") if match and match["selector"] is not None else []
  bounds = [_BOUND_RE.match(p) for p in parts]
  if not match or len(parts) not in (0, 2) or not all(bounds) or (parts and not any(parts)):
    raise ValueError(f"split: expected a split name, optionally sliced as 'train[a:b]' or 'train[a%:b%]' "
                     f"(no '+'), got {split!r}")
  base = match["base"]
  n = num_examples(base)
  if not parts:
    return base, 0, n
  unit = bounds[0]["unit"] or bounds[1]["unit"]
  if unit is None and any("." in p for p in parts):
    raise ValueError(f"split: absolute bounds must be ints, got {split!r}")
  start = _bound(bounds[0]["value"], unit, n, 0, split)
  end = _bound(bounds[1]["value"], unit, n, n, split)
  return base, start, max(start, end)


def _check_arrays(name: str, split: str, arrays, spec: registry.DatasetSpec) -> dict[str, np.ndarray]:
  """The loader's arrays for `split`, checked against the spec: x as uint8 images or float32 signals, int32 labels."""
  where = f"the loader of {name!r} for split {split!r}"
  if not hasattr(arrays, "keys") or set(arrays.keys()) != {"x", "label"}:
    got = sorted(arrays.keys()) if hasattr(arrays, "keys") else type(arrays).__name__
    raise ValueError(f"source: {where} must return {{'x': ..., 'label': ...}}; got {got}")
  x, label = np.asarray(arrays["x"]), np.asarray(arrays["label"])
  if spec.kind == "image":
    expected, layout = (spec.size, spec.size, spec.channels), "uint8 [n, H, W, C] images"
    if x.dtype != np.uint8:
      raise ValueError(f"source: {where} must give {layout}; got x of dtype {x.dtype}")
  else:
    expected, layout = (spec.size,), "float [n, L] signals"
    if not np.issubdtype(x.dtype, np.floating):
      raise ValueError(f"source: {where} must give {layout}; got x of dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
  if x.ndim != 1 + len(expected) or tuple(x.shape[1:]) != expected:
    raise ValueError(f"source: {where} must give {layout} of shape [n, {', '.join(map(str, expected))}]; got x "
                     f"of shape {x.shape}")
  if label.shape != (x.shape[0],) or not np.issubdtype(label.dtype, np.integer):
    raise ValueError(f"source: {where} must give int labels of shape [{x.shape[0]}]; got label of shape "
                     f"{label.shape} and dtype {label.dtype}")
  if label.size and (label.min() < -1 or label.max() >= spec.num_classes):
    raise ValueError(f"source: {where} gave labels in [{label.min()}, {label.max()}]; expected -1 (unlabelled) or "
                     f"0..{spec.num_classes - 1}")
  return {"x": x, "label": label.astype(np.int32, copy=False)}


class MemorySource:
  """A registered data set whose source is an in-memory loader: reads, counts and batches with NumPy only."""

  def __init__(self, name: str, info: registry.DatasetInfo):
    self.name, self.info = name, info
    self.spec = registry.dataset_spec(name)

  def arrays(self, base: str) -> dict[str, np.ndarray]:
    """The checked arrays of a base split; the loader runs once per split while the spec stays registered."""
    loaded = _LOADED.setdefault(self.spec, {})
    if base not in loaded:
      try:
        raw = self.spec.source(base)
      except KeyError as e:
        raise ValueError(f"split: {self.name!r} (an in-memory data set) has no split {base!r}; its loader raised "
                         f"KeyError: {e}") from None
      loaded[base] = _check_arrays(self.name, base, raw, self.spec)
    return loaded[base]

  def _rows(self, split: str) -> tuple[str, int, int]:
    return parse_split(split, lambda base: len(self.arrays(base)["label"]))

  def prepare(self, download: bool) -> None:
    """Loads and checks the pretrain, train and test splits (nothing to download)."""
    del download
    for split in dict.fromkeys((self.spec.pretrain_split, self.spec.train_split, self.spec.test_split)):
      self._rows(split)

  def num_examples(self, split: str) -> int:
    _, start, end = self._rows(split)
    return end - start

  def _slice_rows(self, split: str, count: int, index: int, classes: tuple[int, ...] | None) -> np.ndarray:
    base, start, end = self._rows(split)
    rows = np.arange(*even_split(start, end, count, index))
    if classes is not None:
      rows = rows[np.isin(self.arrays(base)["label"][rows], classes)]
    return rows

  def slice_sizes(self, split: str, count: int, classes: tuple[int, ...] | None) -> list[int]:
    return [len(self._slice_rows(split, count, i, classes)) for i in range(count)]

  def train_stream(self, split: str, count: int, index: int, *, size: int, seed: int, start_step: int,
                   steps_per_epoch: int, batch_size: int, classes: tuple[int, ...] | None, in_memory: bool | None,
                   shuffle_buffer_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `batch_size` rows of slice `index` of `count` (`size` examples, or kept ones of `classes`).

    `in_memory` and `shuffle_buffer_size` concern tf.data sources only: this one is always in memory.
    """
    del in_memory, shuffle_buffer_size
    base = self._rows(split)[0]
    x, label = self.arrays(base)["x"], self.arrays(base)["label"]
    rows = self._slice_rows(split, count, index, classes)
    assert len(rows) == size, (len(rows), size)

    def take(positions: np.ndarray) -> dict[str, np.ndarray]:
      picked = rows[positions]
      return {"x": x[picked], "label": label[picked], "index": picked.astype(np.int32)}

    return shuffled_batches(take, len(rows), seed=seed, slice_index=index, start_step=start_step,
                            steps_per_epoch=steps_per_epoch, batch_size=batch_size)

  def eval_batches(self, split: str, *, local_batch_size: int, process_index: int,
                   process_count: int) -> Iterator[dict[str, np.ndarray]]:
    base, start, end = self._rows(split)
    x, label = self.arrays(base)["x"], self.arrays(base)["label"]
    slices = [even_split(start, end, process_count, p) for p in range(process_count)]
    num_batches = -(-max(hi - lo for lo, hi in slices) // local_batch_size)
    lo, hi = slices[process_index]

    def batch(first: int) -> dict[str, np.ndarray]:
      rows = np.arange(first, min(first + local_batch_size, hi))
      pad = local_batch_size - len(rows)
      return {"x": np.concatenate([x[rows], np.zeros((pad,) + x.shape[1:], x.dtype)]),
              "label": np.concatenate([label[rows], np.full(pad, -1, np.int32)]),
              "mask": np.arange(local_batch_size) < len(rows)}

    return (batch(first) for first in range(lo, lo + num_batches * local_batch_size, local_batch_size))


def check_classes(classes: Sequence[int] | None, name: str, num_classes: int) -> tuple[int, ...] | None:
  """`classes` as a sorted tuple of distinct ints in [0, num_classes), or None (all classes)."""
  if classes is None:
    return None
  if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
    raise ValueError(f"classes: expected None or a non-empty sequence of class ids, got {classes!r}")
  if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in classes):
    raise ValueError(f"classes: expected int class ids, got {classes!r}")
  if len(set(classes)) != len(classes):
    raise ValueError(f"classes: expected distinct class ids, got {classes!r}")
  bad = [int(c) for c in classes if not 0 <= c < num_classes]
  if bad:
    raise ValueError(f"classes: {name!r} has classes 0..{num_classes - 1}; got out-of-range ids {bad}")
  return tuple(sorted(int(c) for c in classes))
