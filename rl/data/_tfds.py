"""The TFDS source of the pipeline: tf.data reading, decoding and fixed-size images on the host.

Imported by `rl.data.pipeline` only when a data set whose `DatasetSpec.source` is a TFDS builder name is read, so
TensorFlow is loaded only then. Importing this module registers the TFDS builders of the embedded data sets
(`rl.data.builders`) with TFDS before any builder is asked for; they are read here only when registered by hand
under a TFDS source (the embedded data sets themselves are in-memory loaders).

Training order (see `rl.data.pipeline.train_batches`): epoch e of slice k reads the files in an order seeded by
`epoch_seeds(seed, e, k)[0]` and shuffles the records with a buffer seeded by `[1]`; resuming skips whole batches
as undecoded records. The shuffles use op-level seeds, so a global `tf.random.set_seed` changes the order (still
deterministically). With `in_memory` the slice is decoded once and `rl.data._memory.shuffled_batches` draws the
order with NumPy instead.

Images whose size differs from `image_size` are resized (bilinear, anti-aliased) so that the shorter side is
`image_size`, then centre-cropped to `image_size` x `image_size`. The host view keeps the whole shorter side (no
256->224 "crop pct"), so the device augmentations see as much of the image as possible.
"""
from __future__ import annotations

from typing import Any, Iterator

from etils import epath
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rl.data import _memory
from rl.data import builders
from rl.data import registry

try:
  # TF must not reserve accelerator memory that JAX needs; it only runs the host pipeline.
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF was initialised before this import; nothing left to change.
  pass


def _not_prepared_error(name: str, builder: tfds.core.DatasetBuilder) -> FileNotFoundError:
  tfds_name = registry.dataset_spec(name).source
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
  """The TFDS builder of `name`; the builders of `rl.data.builders` are generated first if missing."""
  tfds_name = registry.dataset_spec(name).source
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  if tfds_name in builders.EMBEDDED and not builder.is_prepared():
    builder.download_and_prepare()
  return builder


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


def _process_splits(split: str, process_count: int) -> list[Any]:
  """The split of every process; process p reads element p."""
  return [split] if process_count == 1 else tfds.even_splits(split, n=process_count)


def fixed_size(image: tf.Tensor, size: int) -> tf.Tensor:
  """Resizes the shorter side of a uint8 [h, w, c] image to `size`, then centre-crops to [size, size, c].

  Example:
    >>> fixed_size(tf.zeros([20, 10, 3], tf.uint8), 8).shape  # shorter side 10 -> 8, then the centre 8 x 8
    TensorShape([8, 8, 3])
  """
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


def _example_fn(builder: tfds.core.DatasetBuilder, info: registry.DatasetInfo):
  """Maps a TFDS example (image still encoded) to {'x', 'label'} at the host output shape and dtype."""
  feature = builder.info.features[info.input_key]

  def fn(example):
    x = example[info.input_key]
    if info.kind == "image":
      x = feature.decode_example(x)
      static = tuple(x.shape)
      if static != info.shape:  # Skips the resize op when the stored size is already the output size.
        x = tf.ensure_shape(x, [None, None, info.shape[-1]])
        x = fixed_size(x, info.shape[0])
      x = tf.cast(x, tf.uint8)
    else:
      x = tf.ensure_shape(tf.cast(x, tf.float32), info.shape)
    return {"x": x, "label": tf.cast(example["label"], tf.int32)}

  return fn


def _read(name: str, builder: tfds.core.DatasetBuilder, info: registry.DatasetInfo, split: Any,
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


def _label_in(classes: tuple[int, ...]):
  """A `tf.data` predicate on a raw record (input not yet decoded): its label is one of `classes`."""
  table = tf.constant(classes, tf.int64)
  return lambda ex: tf.reduce_any(tf.equal(tf.cast(ex["label"], tf.int64), table))


class TfdsSource:
  """A registered data set whose source is a TFDS builder, read through tf.data."""

  def __init__(self, name: str, info: registry.DatasetInfo, data_dir: epath.PathLike | None):
    self.name, self.info = name, info
    self.builder = _builder(name, data_dir)
    self.embedded = registry.dataset_spec(name).source in builders.EMBEDDED

  def prepare(self, download: bool) -> None:
    if self.embedded:
      return
    if download:
      self.builder.download_and_prepare()
    else:
      # Creating the dataset reads nothing, but fails the same way a training run would.
      _as_dataset(self.name, self.builder, self.info.train_split)

  def num_examples(self, split: str) -> int:
    return _split_size(self.name, self.builder, split)

  def _count_in_classes(self, split: Any, classes: tuple[int, ...]) -> int:
    """Examples of `split` whose label is in `classes` (one pass over the split; images are not decoded)."""
    labels = _read(self.name, self.builder, self.info, split, shuffle_seed=None).map(lambda ex: ex["label"])
    return sum(int(np.isin(batch, classes).sum()) for batch in labels.batch(8192).as_numpy_iterator())

  def slice_sizes(self, split: str, count: int, classes: tuple[int, ...] | None) -> list[int]:
    if classes is None:
      return [_split_size(self.name, self.builder, s) for s in _process_splits(split, count)]
    return [self._count_in_classes(s, classes) for s in _process_splits(split, count)]

  def train_stream(self, split: str, count: int, index: int, *, size: int, seed: int, start_step: int,
                   steps_per_epoch: int, batch_size: int, classes: tuple[int, ...] | None, in_memory: bool | None,
                   shuffle_buffer_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `batch_size` rows of slice `index` of `count` (of `size` examples, or kept ones of `classes`)."""
    name, builder, info = self.name, self.builder, self.info
    local_split = _process_splits(split, count)[index]
    example_fn = _example_fn(builder, info)
    index_fn = _index_fn(builder, split)
    if in_memory is None:
      in_memory = self.embedded

    def decode(ex):
      return {**example_fn(ex), "index": index_fn(ex.get("tfds_id"))}

    if in_memory:
      ds = _read(name, builder, info, local_split, shuffle_seed=None, add_tfds_id=True)
      if classes is not None:
        ds = ds.filter(_label_in(classes))
      parts = list(ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(8192).as_numpy_iterator())
      arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
      return _memory.shuffled_batches(lambda rows: {k: v[rows] for k, v in arrays.items()}, size, seed=seed,
                                      slice_index=index, start_step=start_step, steps_per_epoch=steps_per_epoch,
                                      batch_size=batch_size)

    def epoch_dataset(epoch: int, skip_batches: int) -> tf.data.Dataset:
      file_seed, record_seed = _memory.epoch_seeds(seed, epoch, index)
      ds = _read(name, builder, info, local_split, shuffle_seed=file_seed, add_tfds_id=True)
      if classes is not None:
        ds = ds.filter(_label_in(classes))
      ds = ds.shuffle(min(size, shuffle_buffer_size), seed=record_seed, reshuffle_each_iteration=False)
      # Skipping before the decoding map keeps a resume cheap: skipped records are never decoded.
      ds = ds.skip(skip_batches * batch_size)
      ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      ds = ds.batch(batch_size, drop_remainder=True)
      # Other slices may be one example shorter: all slices (and processes) stop after the same batch.
      ds = ds.take(steps_per_epoch - skip_batches)
      return ds.prefetch(tf.data.AUTOTUNE)

    def stream() -> Iterator[dict[str, np.ndarray]]:
      epoch, skip_batches = divmod(start_step, steps_per_epoch)
      while True:
        yield from epoch_dataset(epoch, skip_batches).as_numpy_iterator()
        epoch, skip_batches = epoch + 1, 0

    return stream()

  def eval_batches(self, split: str, *, local_batch_size: int, process_index: int,
                   process_count: int) -> Iterator[dict[str, np.ndarray]]:
    name, builder, info = self.name, self.builder, self.info
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
