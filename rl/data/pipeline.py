"""One input pipeline for every data set: TFDS -> host batches -> global `jax.Array`s sharded on a mesh.

The host only reads, decodes, brings images to a fixed size and batches; augmentation runs on the device
(`rl.data.augment`). Every data set, embedded ('mnist1d', 'digits') or streamed ('cifar10', 'cifar100', 'stl10',
'imagenette', 'imagenet2012'), goes through the same code by name.

Multi-host: process p reads `tfds.even_splits(split, jax.process_count())[p]`, batches
`global_batch_size // jax.process_count()` examples, and the global array is assembled with
`jax.make_array_from_process_local_data`, so the caller sees one batch of `global_batch_size` rows. With
`data_shards=S` (a multiple of the process count) the training split is cut into S slices instead and process p
reads the S / process_count slices p*k..p*k+k-1; the training stream then depends on S and not on the number of
processes that share it (one process with S=2 yields, row for row, what two processes yield side by side).

Training order is a pure function of (seed, step): epoch e (of `steps_per_epoch` full batches; the epoch's
remainder is dropped) reads the files in an order seeded by (seed, e, process) and shuffles the records with a
buffer seeded the same way, so a stream started at `start_step=s` skips the first `s mod steps_per_epoch`
batches of its epoch as undecoded records and is then identical to the stream started at 0. With `classes`,
the training stream keeps only the examples whose label is in the set (filtered before the shuffle), and an
epoch is a pass over those examples: `steps_per_epoch` is counted from them, with the same resumable order.
Within an epoch the order is a uniform permutation whenever the process's slice fits the shuffle buffer (50k
records by default: every data set here except imagenet2012). The shuffles use op-level seeds, so a global
`tf.random.set_seed` changes the order (still deterministically). The embedded data sets, whose epochs are a
few batches long, are decoded once and held in memory instead: epoch e is then the permutation drawn by
`np.random.default_rng` from the same (seed, e, process) seed, and resuming skips batches of it
(`in_memory=` chooses either path for any data set).

Images whose size differs from `image_size` are resized (bilinear, anti-aliased) so that the shorter side is
`image_size`, then centre-cropped to `image_size` x `image_size`. Default sizes: the native 32 for CIFAR,
96 for STL-10, 8 for digits, and 224 for imagenette (TFDS's default 'full-size-v2' config) and imagenet2012.
The host view keeps the whole shorter side (no 256->224 "crop pct"), so the device augmentations see as much
of the image as possible.
"""
import dataclasses
from typing import Any, Iterator, Sequence

from etils import epath
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rl.data import builders

try:
  # TF must not reserve accelerator memory that JAX needs; it only runs the host pipeline.
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF was initialised before this import; nothing left to change.
  pass

DEFAULT_SHUFFLE_BUFFER_SIZE = 50_000


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the rest of `rl` needs to know about a data set.

  Attributes:
    name: the name `rl.data` knows it by (e.g. 'cifar10').
    kind: 'image' or 'signal'.
    input_key: the TFDS feature the inputs come from ('image' or 'signal').
    shape: shape of one host example: (H, W, C) for images at the host output size, (L,) for signals.
    num_classes: number of classes of 'label'.
    train_split: TFDS split for supervised training (linear probe, kNN bank).
    test_split: TFDS split for evaluation.
    pretrain_split: TFDS split for self-supervised pretraining (stl10: 'unlabelled', whose labels are -1;
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


@dataclasses.dataclass(frozen=True)
class _Spec:
  tfds_name: str
  kind: str
  num_classes: int
  train_split: str
  test_split: str
  pretrain_split: str
  size: int  # Default image side, or the signal length.
  channels: int = 0  # Images only.


_SPECS = {
    "mnist1d": _Spec("mnist1d", "signal", 10, "train", "test", "train", builders.mnist1d.SIGNAL_LENGTH),
    "digits": _Spec("digits", "image", 10, "train", "test", "train", 8, 1),
    "cifar10": _Spec("cifar10", "image", 10, "train", "test", "train", 32, 3),
    "cifar100": _Spec("cifar100", "image", 100, "train", "test", "train", 32, 3),
    "stl10": _Spec("stl10", "image", 10, "train", "test", "unlabelled", 96, 3),
    "imagenette": _Spec("imagenette", "image", 10, "train", "validation", "train", 224, 3),
    "imagenet2012": _Spec("imagenet2012", "image", 1000, "train", "validation", "train", 224, 3),
}


def known_datasets() -> tuple[str, ...]:
  """Names accepted by every function of this module.

  Example:
    >>> known_datasets()
    ('mnist1d', 'digits', 'cifar10', 'cifar100', 'stl10', 'imagenette', 'imagenet2012')
  """
  return tuple(_SPECS)


def _spec(name: str) -> _Spec:
  if name not in _SPECS:
    raise ValueError(f"name: unknown dataset {name!r}; known datasets: {', '.join(_SPECS)}")
  return _SPECS[name]


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
    image_size: side of the square host images; None for the data set's default. Must be None for signals.

  Returns:
    The `DatasetInfo`; `shape` is (image_size, image_size, C) for images and (L,) for signals.

  Raises:
    ValueError: unknown name (the message lists the known ones), or a bad `image_size`.
  """
  spec = _spec(name)
  if spec.kind == "signal":
    if image_size is not None:
      raise ValueError(f"image_size: {name!r} is a signal data set; expected None, got {image_size!r}")
    shape = (spec.size,)
    input_key = "signal"
  else:
    if image_size is None:
      image_size = spec.size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
      raise ValueError(f"image_size: expected a positive int or None, got {image_size!r}")
    shape = (image_size, image_size, spec.channels)
    input_key = "image"
  return DatasetInfo(name=name, kind=spec.kind, input_key=input_key, shape=shape, num_classes=spec.num_classes,
                     train_split=spec.train_split, test_split=spec.test_split, pretrain_split=spec.pretrain_split)


def _not_prepared_error(name: str, builder: tfds.core.DatasetBuilder) -> FileNotFoundError:
  tfds_name = _spec(name).tfds_name
  root = builder.data_dir_root
  manual = (" imagenet2012 also needs the ILSVRC2012 tar files in <data_dir>/downloads/manual (see its TFDS page)."
            if name == "imagenet2012" else "")
  return FileNotFoundError(
      f"dataset {name!r} (TFDS {tfds_name!r}) is not prepared in {root}. On a machine with network run "
      f"`tfds build {tfds_name} --data_dir={root}` (or `rl.data.prepare({name!r}, data_dir=..., download=True)`), "
      f"then point TFDS_DATA_DIR or data_dir= at that directory.{manual}")


def _as_dataset(name: str, builder: tfds.core.DatasetBuilder, split: Any, **kwargs) -> tf.data.Dataset:
  """`builder.as_dataset` that turns TFDS's "could not find data" assertion into an actionable error."""
  try:
    return builder.as_dataset(split=split, **kwargs)
  except AssertionError as e:
    raise _not_prepared_error(name, builder) from e


def _builder(name: str, data_dir: epath.PathLike | None) -> tfds.core.DatasetBuilder:
  """The TFDS builder of `name`; embedded data sets are generated first if missing."""
  spec = _spec(name)
  builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
  if spec.tfds_name in builders.EMBEDDED and not builder.is_prepared():
    builder.download_and_prepare()
  return builder


def prepare(name: str, *, data_dir: epath.PathLike | None = None, download: bool = False) -> None:
  """Makes sure `name` is available in the TFDS data dir.

  Embedded data sets ('mnist1d', 'digits') are generated offline if missing, and reused afterwards. Other data
  sets are downloaded and prepared only when `download=True` (this needs network); otherwise a missing data set
  raises an error that says how to prepare it.

  Example:
    >>> import tempfile
    >>> data_dir = tempfile.mkdtemp()
    >>> prepare("digits", data_dir=data_dir)  # embedded: generated offline the first time
    Downloading and preparing dataset ...
    >>> prepare("digits", data_dir=data_dir)  # then reused
    >>> prepare("cifar10", data_dir=data_dir)  # streamed: must be prepared beforehand (or download=True)
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
  spec = _spec(name)
  builder = _builder(name, data_dir)
  if spec.tfds_name in builders.EMBEDDED:
    return
  if download:
    builder.download_and_prepare()
  else:
    # Creating the dataset reads nothing, but fails the same way a training run would.
    _as_dataset(name, builder, spec.train_split)


def _split_size(name: str, builder: tfds.core.DatasetBuilder, split: Any) -> int:
  try:
    return builder.info.splits[split].num_examples
  except KeyError:
    # The split metadata is empty: the data set is not prepared (then `_as_dataset` says how to prepare it), or
    # TFDS is mocked by `tfds.testing.mock_data`, whose datasets know their cardinality.
    cardinality = int(_as_dataset(name, builder, split).cardinality())
    if cardinality < 0:
      raise ValueError(f"split: cannot count the examples of {name}:{split}") from None
    return cardinality


def num_examples(name: str, split: str, *, data_dir: epath.PathLike | None = None) -> int:
  """Number of examples in `split` of `name` (all processes together).

  Example:
    >>> import tempfile
    >>> data_dir = tempfile.mkdtemp()
    >>> prepare("digits", data_dir=data_dir)
    Downloading and preparing dataset ...
    >>> num_examples("digits", "train", data_dir=data_dir), num_examples("digits", "test[:10%]", data_dir=data_dir)
    (1437, 36)

  Args:
    name: one of `known_datasets()`.
    split: a TFDS split, e.g. 'train' or 'test[:10%]'.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default.

  Returns:
    The example count.
  """
  return _split_size(name, _builder(name, data_dir), split)


def _process_splits(split: str, process_count: int) -> list[Any]:
  """The split of every process; process p reads element p."""
  return [split] if process_count == 1 else tfds.even_splits(split, n=process_count)


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


def _fixed_size(image: tf.Tensor, size: int) -> tf.Tensor:
  """Resizes the shorter side of a uint8 [h, w, c] image to `size`, then centre-crops to [size, size, c]."""
  shape = tf.shape(image)
  h, w = shape[0], shape[1]

  def resize_and_crop():
    scale = tf.cast(size, tf.float32) / tf.cast(tf.minimum(h, w), tf.float32)
    # max() guards the shorter side against rounding below `size`.
    new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32))
    new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32))
    resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    return tf.image.crop_to_bounding_box(resized, (new_h - size) // 2, (new_w - size) // 2, size, size)

  out = tf.cond(tf.logical_and(tf.equal(h, size), tf.equal(w, size)), lambda: image, resize_and_crop)
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def _example_fn(builder: tfds.core.DatasetBuilder, info: DatasetInfo):
  """Maps a TFDS example (image still encoded) to {'x', 'label'} at the host output shape and dtype."""
  feature = builder.info.features[info.input_key]

  def fn(example):
    x = example[info.input_key]
    if info.kind == "image":
      x = feature.decode_example(x)
      static = tuple(x.shape)
      if static != info.shape:  # Skips the resize op when the stored size is already the output size.
        x = tf.ensure_shape(x, [None, None, info.shape[-1]])
        x = _fixed_size(x, info.shape[0])
      x = tf.cast(x, tf.uint8)
    else:
      x = tf.ensure_shape(tf.cast(x, tf.float32), info.shape)
    return {"x": x, "label": tf.cast(example["label"], tf.int32)}

  return fn


def _read(name: str, builder: tfds.core.DatasetBuilder, info: DatasetInfo, split: Any,
          shuffle_seed: int | None, add_tfds_id: bool = False) -> tf.data.Dataset:
  decoders = {info.input_key: tfds.decode.SkipDecoding()} if info.kind == "image" else None
  read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, try_autocache=False, add_tfds_id=add_tfds_id)
  # Ordered data sets (the embedded ones, one small shard per split) refuse file shuffling; the record
  # shuffle buffer holds all of them anyway.
  shuffle_files = shuffle_seed is not None and not builder.info.disable_shuffling
  return _as_dataset(name, builder, split, shuffle_files=shuffle_files, decoders=decoders, read_config=read_config)


def _index_fn(builder: tfds.core.DatasetBuilder, split: str):
  """Maps a record's `tfds_id` ("<name>-<split>.<format>-<shard>-of-<n>__<record>") to its position in the split.

  The position (shard offset + record number) is the same whatever the read order, so methods that keep a
  per-example memory (NPID's memory bank, ODC's labels) can index it.
  """
  base = str(split).split("[")[0]
  try:
    shard_lengths = builder.info.splits[base].shard_lengths
  except KeyError:  # TFDS mock data (tests) has no split metadata and no record ids: the index is unknown (-1).
    shard_lengths = []
  offsets = np.concatenate([[0], np.cumsum(shard_lengths)[:-1]]).astype(np.int64)
  table = tf.constant(offsets, tf.int64)

  def fn(tfds_id):
    if tfds_id is None or not shard_lengths:
      return tf.constant(-1, tf.int32)
    file_part, record = tf.strings.split(tfds_id, "__")[0], tf.strings.split(tfds_id, "__")[-1]
    shard = tf.strings.to_number(tf.strings.regex_replace(file_part, r".*-(\d+)-of-\d+$", r"\1"), tf.int64)
    return tf.cast(tf.gather(table, shard) + tf.strings.to_number(record, tf.int64), tf.int32)

  return fn


def _to_global(batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def _epoch_seeds(seed: int, epoch: int, slice_index: int) -> tuple[int, int]:
  """(file-order seed, record-shuffle seed) for one epoch of one slice (by default, one process's slice)."""
  file_seed, record_seed = np.random.SeedSequence([seed % 2**64, epoch, slice_index]).generate_state(2)
  return int(file_seed), int(record_seed)


def _check_classes(classes: Sequence[int] | None, name: str, num_classes: int) -> tuple[int, ...] | None:
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


def _label_in(classes: tuple[int, ...]):
  """A `tf.data` predicate on a raw record (input not yet decoded): its label is one of `classes`."""
  table = tf.constant(classes, tf.int64)
  return lambda ex: tf.reduce_any(tf.equal(tf.cast(ex["label"], tf.int64), table))


def _count_in_classes(name: str, builder: tfds.core.DatasetBuilder, info: DatasetInfo, split: Any,
                      classes: tuple[int, ...]) -> int:
  """Examples of `split` whose label is in `classes` (one pass over the split; images are not decoded)."""
  labels = _read(name, builder, info, split, shuffle_seed=None).map(lambda ex: ex["label"]).batch(8192)
  return sum(int(np.isin(batch, classes).sum()) for batch in labels.as_numpy_iterator())


def host_train_batches(name: str, *, local_batch_size: int, seed: int, start_step: int = 0,
                       split: str | None = None, data_dir: epath.PathLike | None = None,
                       image_size: int | None = None, process_index: int = 0, process_count: int = 1,
                       shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER_SIZE,
                       classes: Sequence[int] | None = None, in_memory: bool | None = None,
                       data_shards: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """This process's part of `train_batches`, as NumPy arrays (see `train_batches` for the order).

  Example:
    >>> import tempfile
    >>> data_dir = tempfile.mkdtemp()
    >>> prepare("digits", data_dir=data_dir)
    Downloading and preparing dataset ...
    >>> first = [next(host_train_batches("digits", local_batch_size=8, seed=0, data_dir=data_dir, process_index=p,
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
    split: TFDS split; None for the data set's `pretrain_split`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default.
    image_size: host image side; None for the data set's default.
    process_index: which slice of the split to read (with `data_shards`: which group of slices).
    process_count: into how many slices the split is cut (with `data_shards`: how many processes share them).
    shuffle_buffer_size: records held by the shuffle buffer (encoded, so ~100 KB each for ImageNet JPEGs).
    classes: keep only examples whose label is one of these class ids; None keeps every example. Counting the
      kept examples costs one pass over the labels of every process slice when the stream is created.
    in_memory: decode this process's slice once into NumPy arrays and draw each epoch's order with
      `np.random.default_rng` (seeded like the shuffle buffer), instead of a tf.data pass per epoch; None: only
      for the embedded data sets ('mnist1d', 'digits'), whose epochs are a few batches long, so that rebuilding
      a tf.data pipeline every epoch would cost more than the training step.
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
  classes = _check_classes(classes, name, info.num_classes)
  shards = _check_data_shards(data_shards, process_count, local_batch_size)
  per_process = shards // process_count
  slice_batch_size = local_batch_size // per_process
  split = info.pretrain_split if split is None else split
  builder = _builder(name, data_dir)
  slice_splits = _process_splits(split, shards)
  if classes is None:
    sizes = [_split_size(name, builder, s) for s in slice_splits]
  else:
    sizes = [_count_in_classes(name, builder, info, s, classes) for s in slice_splits]
  steps_per_epoch = min(sizes) // slice_batch_size
  if steps_per_epoch == 0:
    kept = "" if classes is None else f" with a label in classes={classes}"
    if per_process == 1:
      raise ValueError(f"local_batch_size: {local_batch_size} (global batch / process count) is more than the "
                       f"{min(sizes)} examples{kept} of the smallest process slice of {name}:{split}")
    raise ValueError(f"local_batch_size: {local_batch_size} over {per_process} slices per process gives "
                     f"{slice_batch_size} rows per slice, more than the {min(sizes)} examples{kept} of the "
                     f"smallest of the {shards} slices (data_shards) of {name}:{split}")
  example_fn = _example_fn(builder, info)
  index_fn = _index_fn(builder, split)
  if in_memory is None:
    in_memory = _spec(name).tfds_name in builders.EMBEDDED

  def decode(ex):
    return {**example_fn(ex), "index": index_fn(ex.get("tfds_id"))}

  def slice_stream(slice_index: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `slice_batch_size` rows of one slice; with one slice per process, the process's stream."""
    local_split, local_size = slice_splits[slice_index], sizes[slice_index]
    if in_memory:
      ds = _read(name, builder, info, local_split, shuffle_seed=None, add_tfds_id=True)
      if classes is not None:
        ds = ds.filter(_label_in(classes))
      parts = list(ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(8192).as_numpy_iterator())
      arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

      def memory_stream() -> Iterator[dict[str, np.ndarray]]:
        epoch, skip_batches = divmod(start_step, steps_per_epoch)
        while True:
          _, record_seed = _epoch_seeds(seed, epoch, slice_index)
          order = np.random.default_rng(record_seed).permutation(local_size)
          for i in range(skip_batches, steps_per_epoch):
            rows = order[i * slice_batch_size:(i + 1) * slice_batch_size]
            yield {k: v[rows] for k, v in arrays.items()}
          epoch, skip_batches = epoch + 1, 0

      return memory_stream()

    def epoch_dataset(epoch: int, skip_batches: int) -> tf.data.Dataset:
      file_seed, record_seed = _epoch_seeds(seed, epoch, slice_index)
      ds = _read(name, builder, info, local_split, shuffle_seed=file_seed, add_tfds_id=True)
      if classes is not None:
        ds = ds.filter(_label_in(classes))
      ds = ds.shuffle(min(local_size, shuffle_buffer_size), seed=record_seed, reshuffle_each_iteration=False)
      # Skipping before the decoding map keeps a resume cheap: skipped records are never decoded.
      ds = ds.skip(skip_batches * slice_batch_size)
      ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      ds = ds.batch(slice_batch_size, drop_remainder=True)
      # Other slices may be one example shorter: all slices (and processes) stop after the same batch.
      ds = ds.take(steps_per_epoch - skip_batches)
      return ds.prefetch(tf.data.AUTOTUNE)

    def stream() -> Iterator[dict[str, np.ndarray]]:
      epoch, skip_batches = divmod(start_step, steps_per_epoch)
      while True:
        yield from epoch_dataset(epoch, skip_batches).as_numpy_iterator()
        epoch, skip_batches = epoch + 1, 0

    return stream()

  streams = [slice_stream(i) for i in range(process_index * per_process, (process_index + 1) * per_process)]
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
    >>> import tempfile
    >>> from rl.train import mesh as mesh_lib
    >>> data_dir = tempfile.mkdtemp()
    >>> prepare("digits", data_dir=data_dir)
    Downloading and preparing dataset ...
    >>> sharding = mesh_lib.batch_sharding(mesh_lib.make_mesh())
    >>> stream = train_batches("digits", global_batch_size=16, seed=0, sharding=sharding, data_dir=data_dir)
    >>> batch = next(stream)
    >>> {k: (v.shape, v.dtype.name) for k, v in batch.items()}
    {'x': ((16, 8, 8, 1), 'uint8'), 'label': ((16,), 'int32'), 'index': ((16,), 'int32')}
    >>> resumed = train_batches("digits", global_batch_size=16, seed=0, sharding=sharding, data_dir=data_dir,
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
    split: TFDS split; None for the data set's `pretrain_split`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default.
    image_size: host image side; None for the data set's default.
    shuffle_buffer_size: records held by the shuffle buffer (encoded, so ~100 KB each for ImageNet JPEGs).
    classes: pretrain on these class ids only (e.g. the old classes of a class-incremental split); None: all.
      Evaluation passes (`eval_batches`) are never filtered.
    in_memory: hold the process's slice in host memory and shuffle it with NumPy (see `host_train_batches`);
      None: only for the embedded data sets.
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
    >>> import tempfile
    >>> data_dir = tempfile.mkdtemp()
    >>> prepare("digits", data_dir=data_dir)
    Downloading and preparing dataset ...
    >>> batches = list(host_eval_batches("digits", "test", local_batch_size=100, data_dir=data_dir))
    >>> [int(b["mask"].sum()) for b in batches], batches[0]["x"].shape
    ([100, 100, 100, 60], (100, 8, 8, 1))

  Args:
    name: one of `known_datasets()`.
    split: TFDS split.
    local_batch_size: rows per batch of this process.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default.
    image_size: host image side; None for the data set's default.
    process_index: which slice of the split to read.
    process_count: into how many slices the split is cut.

  Yields:
    {'x': uint8 [b, H, W, C] or float32 [b, L], 'label': int32 [b], 'mask': bool [b]}; every process yields
    `ceil(largest slice / b)` batches.
  """
  info = dataset_info(name, image_size=image_size)
  _check_host_args(local_batch_size, process_index, process_count)
  builder = _builder(name, data_dir)
  process_splits = _process_splits(split, process_count)
  sizes = [_split_size(name, builder, s) for s in process_splits]
  num_batches = -(-max(sizes) // local_batch_size)
  example_fn = _example_fn(builder, info)

  ds = _read(name, builder, info, process_splits[process_index], shuffle_seed=None)
  ds = ds.map(lambda ex: {**example_fn(ex), "mask": tf.constant(True)}, num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  padding = {"x": tf.zeros(info.shape, tf.uint8 if info.kind == "image" else tf.float32),
             "label": tf.constant(-1, tf.int32), "mask": tf.constant(False)}
  num_padding = num_batches * local_batch_size - sizes[process_index]
  ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat(num_padding))
  ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return ds.as_numpy_iterator()


def eval_batches(name: str, split: str, *, global_batch_size: int, sharding: jax.sharding.Sharding,
                 data_dir: epath.PathLike | None = None,
                 image_size: int | None = None) -> Iterator[dict[str, jax.Array]]:
  """One pass over `split` in a fixed order, padded so that every example is seen exactly once.

  Every process yields `ceil(largest process slice / local batch)` batches; rows past the end of a process's
  slice are padding (x zeros, label -1, mask False). Reduce metrics with the mask.

  Example:
    >>> import tempfile
    >>> from rl.train import mesh as mesh_lib
    >>> data_dir = tempfile.mkdtemp()
    >>> prepare("digits", data_dir=data_dir)
    Downloading and preparing dataset ...
    >>> sharding = mesh_lib.batch_sharding(mesh_lib.make_mesh())
    >>> batches = list(eval_batches("digits", "test", global_batch_size=128, sharding=sharding, data_dir=data_dir))
    >>> len(batches), sum(int(b["mask"].sum()) for b in batches)  # 360 test images in 3 padded batches
    (3, 360)
    >>> batches[-1]["label"][-3:]  # padding rows: label -1, mask False
    Array([-1, -1, -1], dtype=int32)

  Args:
    name: one of `known_datasets()`.
    split: TFDS split, e.g. `dataset_info(name).test_split`.
    global_batch_size: rows per batch over all processes; divisible by the number of devices of `sharding`.
    sharding: where batches live, e.g. `NamedSharding(mesh, PartitionSpec('data'))`.
    data_dir: TFDS data dir; None for `$TFDS_DATA_DIR` or the TFDS default.
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
