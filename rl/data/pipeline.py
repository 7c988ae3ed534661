"""One input pipeline for every data set: a registered source -> host batches -> global `jax.Array`s on a mesh.

The host only reads, decodes, brings images to a fixed size and batches; augmentation runs on the device
(`rl.data.augment`). Every data set of the registry (`rl.data.registry`) goes through the same functions by name,
whatever its source: a TFDS builder ('cifar10', 'cifar100', 'stl10', 'imagenette', 'imagenet2012'), read with
tf.data (`rl.data._tfds`, which imports TensorFlow when it is first needed), or an in-memory loader of NumPy
arrays, served with NumPy alone (`rl.data._memory`): the embedded 'mnist1d' and 'digits' (`rl.data.embedded`) and
any data set registered with a loader. This module imports neither TensorFlow nor TFDS, so training on an
in-memory data set needs no TensorFlow.

Multi-host: process p reads `tfds.even_splits(split, jax.process_count())[p]`, batches
`global_batch_size // jax.process_count()` examples, and the global array is assembled with
`jax.make_array_from_process_local_data`, so the caller sees one batch of `global_batch_size` rows. With
`data_shards=S` (a multiple of the process count) the training split is cut into S slices instead and process p
reads the S / process_count slices p*k..p*k+k-1; the training stream then depends on S and not on the number of
processes that share it (one process with S=2 yields, row for row, what two processes yield side by side).
In-memory sources cut their splits the same way.

Training order is a pure function of (seed, step): epoch e (of `steps_per_epoch` full batches; the epoch's
remainder is dropped) reads the files in an order seeded by (seed, e, process) and shuffles the records with a
buffer seeded the same way, so a stream started at `start_step=s` skips the first `s mod steps_per_epoch`
batches of its epoch as undecoded records and is then identical to the stream started at 0. With `classes`,
the training stream keeps only the examples whose label is in the set (filtered before the shuffle), and an
epoch is a pass over those examples: `steps_per_epoch` is counted from them, with the same resumable order.
Within an epoch the order is a uniform permutation whenever the process's slice fits the shuffle buffer (50k
records by default: every data set here except imagenet2012). The shuffles use op-level seeds, so a global
`tf.random.set_seed` changes the order (still deterministically). Data sets held in memory (every in-memory
source, the embedded ones included, and a TFDS data set read with `in_memory=True`, decoded once) draw epoch e
as the permutation of `np.random.default_rng` seeded from the same (seed, e, process), and resuming skips
batches of it.

Images whose size differs from `image_size` are resized (bilinear, anti-aliased) so that the shorter side is
`image_size`, then centre-cropped to `image_size` x `image_size`. Default sizes: the native 32 for CIFAR,
96 for STL-10, 8 for digits, and 224 for imagenette (TFDS's default 'full-size-v2' config) and imagenet2012.
The host view keeps the whole shorter side (no 256->224 "crop pct"), so the device augmentations see as much
of the image as possible. In-memory images are served at their registered size.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from etils import epath
import jax
import numpy as np

from rl.data import _memory
from rl.data.registry import DatasetInfo
from rl.data.registry import dataset_info
from rl.data.registry import dataset_spec
from rl.data.registry import known_datasets
from rl.data.registry import with_validation

DEFAULT_SHUFFLE_BUFFER_SIZE = 50_000

__all__ = ["DEFAULT_SHUFFLE_BUFFER_SIZE", "DatasetInfo", "dataset_info", "eval_batches", "host_eval_batches",
           "host_train_batches", "known_datasets", "num_examples", "prepare", "train_batches",
           "with_validation"]


def _source(name: str, info: DatasetInfo, data_dir: epath.PathLike | None) -> Any:
  """The reader of a registered data set: `_tfds.TfdsSource` (imports TensorFlow) or `_memory.MemorySource`."""
  if dataset_spec(name).in_memory:
    return _memory.MemorySource(name, info)
  from rl.data import _tfds  # pylint: disable=g-import-not-at-top  (TensorFlow only for TFDS sources)
  return _tfds.TfdsSource(name, info, data_dir)


def prepare(name: str, *, data_dir: epath.PathLike | None = None, download: bool = False) -> None:
  """Makes sure `name` can be read: prepared in the TFDS data dir, or loaded from its in-memory source.

  An in-memory source (the embedded 'mnist1d' and 'digits', made on the machine, and any registered loader) is
  loaded and its arrays checked against the registered spec (a wrong shape, dtype or label raises a
  `ValueError`). TFDS data sets are downloaded and prepared only when `download=True` (this needs network);
  otherwise a missing data set raises an error that says how to prepare it.

  Example:
    >>> import tempfile
    >>> prepare("digits")  # embedded: made in memory, nothing to download, no data dir
    >>> prepare("cifar10", data_dir=tempfile.mkdtemp())  # streamed: must be prepared beforehand (or download=True)
    Traceback (most recent call last):
    FileNotFoundError: dataset 'cifar10' (TFDS 'cifar10') is not prepared in .... On a machine with network run
      `tfds build cifar10 --data_dir=...` ...

  Args:
    name: one of `known_datasets()`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default (~/tensorflow_datasets).
    download: allow downloading a streamed data set that is not prepared yet.

  Raises:
    FileNotFoundError: the data set is not prepared and `download` is False.
  """
  _source(name, dataset_info(name), data_dir).prepare(download)


def num_examples(name: str, split: str, *, data_dir: epath.PathLike | None = None) -> int:
  """Number of examples in `split` of `name` (all processes together).

  Example:
    >>> num_examples("digits", "train"), num_examples("digits", "test[:10%]")
    (1437, 36)

  Args:
    name: one of `known_datasets()`.
    split: a split, e.g. 'train' or 'test[:10%]' (TFDS's slicing syntax, for in-memory sources too).
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default. Unused by in-memory sources.

  Returns:
    The example count.
  """
  return _source(name, dataset_info(name), data_dir).num_examples(split)


def _check_data_shards(data_shards: int | None, process_count: int, local_batch_size: int) -> int:
  """`data_shards` (None: `process_count`), checked: a multiple of the process count that splits the local batch."""
  if data_shards is None:
    return process_count
  if isinstance(data_shards, bool) or not isinstance(data_shards, (int, np.integer)) or data_shards <= 0:
    raise ValueError(f"data_shards: expected None or a positive int, got {data_shards!r}")
  if data_shards % process_count:
    raise ValueError(f"data_shards: expected a multiple of the process count {process_count}, got {data_shards}")
  per_process = data_shards // process_count
  if local_batch_size % per_process:
    raise ValueError(f"data_shards: {data_shards} slices over {process_count} process(es) give each process "
                     f"{per_process} slices, which do not divide its local batch of {local_batch_size} rows")
  return int(data_shards)


def _check_host_args(local_batch_size: int, process_index: int, process_count: int) -> None:
  if isinstance(local_batch_size, bool) or not isinstance(local_batch_size, int) or local_batch_size <= 0:
    raise ValueError(f"local_batch_size: expected a positive int, got {local_batch_size!r}")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index: expected 0 <= process_index < process_count, got {process_index} and "
                     f"{process_count}")


def _local_batch_size(global_batch_size: int, sharding: jax.sharding.Sharding) -> int:
  num_devices = len(sharding.device_set)
  if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size <= 0:
    raise ValueError(f"global_batch_size: expected a positive int, got {global_batch_size!r}")
  if global_batch_size % num_devices:
    raise ValueError(f"global_batch_size: {global_batch_size} is not divisible by the {num_devices} devices of "
                     f"the sharding's mesh")
  # Every process holds the same number of devices, so this divides too.
  return global_batch_size // jax.process_count()


def _to_global(batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def host_train_batches(name: str, *, local_batch_size: int, seed: int, start_step: int = 0,
                       split: str | None = None, data_dir: epath.PathLike | None = None,
                       image_size: int | None = None, process_index: int = 0, process_count: int = 1,
                       shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER_SIZE,
                       classes: Sequence[int] | None = None, in_memory: bool | None = None,
                       data_shards: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """This process's part of `train_batches`, as NumPy arrays (see `train_batches` for the order).

  Example:
    >>> first = [next(host_train_batches("digits", local_batch_size=8, seed=0, process_index=p,
    ...                                 process_count=2)) for p in (0, 1)]  # as two processes would
    >>> {k: (v.shape, v.dtype.name) for k, v in first[0].items()}
    {'x': ((8, 8, 8, 1), 'uint8'), 'label': ((8,), 'int32'), 'index': ((8,), 'int32')}
    >>> bool(first[0]["index"].max() < 719 <= first[1]["index"].min())  # halves [0, 719), [719, 1437) of 'train'
    True

  Args:
    name: one of `known_datasets()`.
    local_batch_size: rows per batch of this process.
    seed: seeds the order.
    start_step: index of the first batch to yield.
    split: TFDS split (in-memory sources: a split of the loader, sliceable the same way, e.g. 'train[:50%]');
      None for the data set's `pretrain_split`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default. Unused by in-memory sources.
    image_size: host image side; None for the data set's default.
    process_index: which slice of the split to read (with `data_shards`: which group of slices).
    process_count: into how many slices the split is cut (with `data_shards`: how many processes share them).
    shuffle_buffer_size: records held by the shuffle buffer (encoded, so ~100 KB each for ImageNet JPEGs).
    classes: keep only examples whose label is one of these class ids; None keeps every example. Counting the
      kept examples costs one pass over the labels of every process slice when the stream is created.
    in_memory: decode this process's slice once into NumPy arrays and draw each epoch's order with
      `np.random.default_rng` (seeded like the shuffle buffer), instead of a tf.data pass per epoch; worth it for
      a small TFDS data set whose epochs are a few batches long, where rebuilding a tf.data pipeline every epoch
      would cost more than the training step. None: False for TFDS builders, except the embedded builders of
      `rl.data.builders` when registered by hand. In-memory sources always are (False is an error).
    data_shards: into how many slices the split is cut; a multiple of `process_count` whose share
      k = data_shards // process_count divides `local_batch_size`. None: `process_count` (one slice per process).
      This process reads slices process_index*k .. process_index*k+k-1, each in its own order (seeded by the
      slice's number), and each batch is the k slices' batches of local_batch_size // k rows one after another.
      The concatenation of all processes' batches is then the same for any process count.

  Yields:
    {'x': uint8 [b, H, W, C] or float32 [b, L], 'label': int32 [b], 'index': int32 [b]}, b = local_batch_size;
    'index' is each example's position in the split (for per-example memories such as NPID's memory bank).
  """
  info = dataset_info(name, image_size=image_size)
  _check_host_args(local_batch_size, process_index, process_count)
  if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
    raise ValueError(f"start_step: expected a non-negative int, got {start_step!r}")
  if shuffle_buffer_size <= 0:
    raise ValueError(f"shuffle_buffer_size: expected a positive int, got {shuffle_buffer_size!r}")
  classes = _memory.check_classes(classes, name, info.num_classes)
  shards = _check_data_shards(data_shards, process_count, local_batch_size)
  per_process = shards // process_count
  slice_batch_size = local_batch_size // per_process
  split = info.pretrain_split if split is None else split
  source = _source(name, info, data_dir)
  if in_memory is False and dataset_spec(name).in_memory:
    raise ValueError(f"in_memory: {name!r} is an in-memory data set (its source is a loader); expected None or "
                     f"True, got False")
  sizes = source.slice_sizes(split, shards, classes)
  steps_per_epoch = min(sizes) // slice_batch_size
  if steps_per_epoch == 0:
    kept = "" if classes is None else f" with a label in classes={classes}"
    if per_process == 1:
      raise ValueError(f"local_batch_size: {local_batch_size} (global batch / process count) is more than the "
                       f"{min(sizes)} examples{kept} of the smallest process slice of {name}:{split}")
    raise ValueError(f"local_batch_size: {local_batch_size} over {per_process} slices per process gives "
                     f"{slice_batch_size} rows per slice, more than the {min(sizes)} examples{kept} of the "
                     f"smallest of the {shards} slices (data_shards) of {name}:{split}")
  streams = [source.train_stream(split, shards, i, size=sizes[i], seed=seed, start_step=start_step,
                                 steps_per_epoch=steps_per_epoch, batch_size=slice_batch_size, classes=classes,
                                 in_memory=in_memory, shuffle_buffer_size=shuffle_buffer_size)
             for i in range(process_index * per_process, (process_index + 1) * per_process)]
  if per_process == 1:
    return streams[0]
  return ({k: np.concatenate([b[k] for b in parts]) for k in parts[0]} for parts in zip(*streams))


def train_batches(name: str, *, global_batch_size: int, seed: int, sharding: jax.sharding.Sharding,
                  start_step: int = 0, split: str | None = None, data_dir: epath.PathLike | None = None,
                  image_size: int | None = None, shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER_SIZE,
                  classes: Sequence[int] | None = None, in_memory: bool | None = None,
                  data_shards: int | None = None) -> Iterator[dict[str, jax.Array]]:
  """Endless stream of shuffled training batches, resumable at any step.

  Batch `s` depends only on (seed, s) (and the process count, or `data_shards` when given):
  `train_batches(..., start_step=s)` yields what the stream started at 0 yields from its s-th batch on, so a
  resumed run sees no repeated or skipped batch. An epoch is `smallest process slice // local batch` full batches
  (one process: `num_examples // global_batch_size`; with `data_shards`, `smallest slice // rows per slice`); the
  remainder of an epoch is dropped and the next epoch is reshuffled. With `classes`,
  only examples of those classes are read, and an epoch counts only them (`kept examples // global_batch_size`
  on one process), so `start_step` still resumes exactly.

  Example:
    >>> from rl.train import mesh as mesh_lib
    >>> sharding = mesh_lib.batch_sharding(mesh_lib.make_mesh())
    >>> stream = train_batches("digits", global_batch_size=16, seed=0, sharding=sharding)
    >>> batch = next(stream)
    >>> {k: (v.shape, v.dtype.name) for k, v in batch.items()}
    {'x': ((16, 8, 8, 1), 'uint8'), 'label': ((16,), 'int32'), 'index': ((16,), 'int32')}
    >>> resumed = train_batches("digits", global_batch_size=16, seed=0, sharding=sharding,
    ...                       start_step=1)  # a resumed run starts at its step
    >>> resumed = next(resumed)
    >>> bool((resumed["index"] == next(stream)["index"]).all())  # batch s depends only on (seed, s)
    True

  Args:
    name: one of `known_datasets()`.
    global_batch_size: rows per batch over all processes; divisible by the number of devices of `sharding`.
    seed: seeds the order; the same seed gives the same stream.
    sharding: where batches live, e.g. `NamedSharding(mesh, PartitionSpec('data'))` on a 1-D 'data' mesh.
    start_step: index of the first batch to yield.
    split: TFDS split (in-memory sources: a split of the loader, sliceable the same way, e.g. 'train[:50%]');
      None for the data set's `pretrain_split`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default. Unused by in-memory sources.
    image_size: host image side; None for the data set's default.
    shuffle_buffer_size: records held by the shuffle buffer (encoded, so ~100 KB each for ImageNet JPEGs).
    classes: pretrain on these class ids only (e.g. the old classes of a class-incremental split); None: all.
      Evaluation passes (`eval_batches`) are never filtered.
    in_memory: hold the process's slice in host memory and shuffle it with NumPy (see `host_train_batches`);
      None: only for in-memory sources (the embedded data sets included), where it is always on.
    data_shards: cut the split into this many slices, a multiple of `jax.process_count()`, shared out among the
      processes (see `host_train_batches`); None: one slice per process. A fixed number makes the stream the same
      for any process count that divides it (e.g. resuming on a different number of hosts, or 1 process x 8
      devices against 2 processes x 4 devices).

  Yields:
    {'x': uint8 [B, H, W, C] (images) or float32 [B, L] (signals), 'label': int32 [B], 'index': int32 [B]
    (position in the split)}, global `jax.Array`s with `sharding`, B = global_batch_size.

  Raises:
    ValueError: bad batch size (both numbers are named), negative `start_step`, a split (or its examples of
      `classes`) smaller than a batch, bad `classes`.
    FileNotFoundError: a streamed data set that is not prepared.
  """
  local = host_train_batches(
      name, local_batch_size=_local_batch_size(global_batch_size, sharding), seed=seed, start_step=start_step,
      split=split, data_dir=data_dir, image_size=image_size, process_index=jax.process_index(),
      process_count=jax.process_count(), shuffle_buffer_size=shuffle_buffer_size, classes=classes,
      in_memory=in_memory, data_shards=data_shards)
  return (_to_global(batch, sharding) for batch in local)


def host_eval_batches(name: str, split: str, *, local_batch_size: int,
                      data_dir: epath.PathLike | None = None, image_size: int | None = None,
                      process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """This process's part of `eval_batches`, as NumPy arrays.

  Example:
    >>> batches = list(host_eval_batches("digits", "test", local_batch_size=100))
    >>> [int(b["mask"].sum()) for b in batches], batches[0]["x"].shape
    ([100, 100, 100, 60], (100, 8, 8, 1))

  Args:
    name: one of `known_datasets()`.
    split: TFDS split (in-memory sources: a split of the loader, sliceable the same way).
    local_batch_size: rows per batch of this process.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default. Unused by in-memory sources.
    image_size: host image side; None for the data set's default.
    process_index: which slice of the split to read.
    process_count: into how many slices the split is cut.

  Yields:
    {'x': uint8 [b, H, W, C] or float32 [b, L], 'label': int32 [b], 'mask': bool [b]}; every process yields
    `ceil(largest slice / b)` batches.
  """
  info = dataset_info(name, image_size=image_size)
  _check_host_args(local_batch_size, process_index, process_count)
  return _source(name, info, data_dir).eval_batches(split, local_batch_size=local_batch_size,
                                                    process_index=process_index, process_count=process_count)


def eval_batches(name: str, split: str, *, global_batch_size: int, sharding: jax.sharding.Sharding,
                 data_dir: epath.PathLike | None = None,
                 image_size: int | None = None) -> Iterator[dict[str, jax.Array]]:
  """One pass over `split` in a fixed order, padded so that every example is seen exactly once.

  Every process yields `ceil(largest process slice / local batch)` batches; rows past the end of a process's
  slice are padding (x zeros, label -1, mask False). Reduce metrics with the mask.

  Example:
    >>> from rl.train import mesh as mesh_lib
    >>> sharding = mesh_lib.batch_sharding(mesh_lib.make_mesh())
    >>> batches = list(eval_batches("digits", "test", global_batch_size=128, sharding=sharding))
    >>> len(batches), sum(int(b["mask"].sum()) for b in batches)  # 360 test images in 3 padded batches
    (3, 360)
    >>> batches[-1]["label"][-3:]  # padding rows: label -1, mask False
    Array([-1, -1, -1], dtype=int32)

  Args:
    name: one of `known_datasets()`.
    split: TFDS split, e.g. `dataset_info(name).test_split`.
    global_batch_size: rows per batch over all processes; divisible by the number of devices of `sharding`.
    sharding: where batches live, e.g. `NamedSharding(mesh, PartitionSpec('data'))`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default. Unused by in-memory sources.
    image_size: host image side; None for the data set's default.

  Yields:
    {'x': uint8 [B, H, W, C] or float32 [B, L], 'label': int32 [B], 'mask': bool [B]}, global `jax.Array`s.

  Raises:
    ValueError: `global_batch_size` not divisible by the device count (both numbers are named).
    FileNotFoundError: a streamed data set that is not prepared.
  """
  local = host_eval_batches(
      name, split, local_batch_size=_local_batch_size(global_batch_size, sharding), data_dir=data_dir,
      image_size=image_size, process_index=jax.process_index(), process_count=jax.process_count())
  return (_to_global(batch, sharding) for batch in local)
