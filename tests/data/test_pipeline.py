"""The input pipeline: sharded global batches, resumable training order, exact evaluation passes."""
import collections
import itertools

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import rl.data
from rl.data import _tfds  # pylint: disable=protected-access  (the TF resize is tested directly)


@pytest.fixture(scope="module")
def data_dir(tfds_embedded):
  """The worker's TFDS data dir, where 'mnist1d_tfds' and 'digits_tfds' (tests/conftest.py) are prepared."""
  return tfds_embedded


@pytest.fixture(scope="module")
def sharding(mesh8):
  return NamedSharding(mesh8, P("data"))


def _split(name, split, data_dir):
  """A split as TFDS's own reader gives it (the builder's arrays, independent of `rl.data`'s readers)."""
  ds = tfds.builder(name.removesuffix("_tfds"), data_dir=data_dir).as_dataset(split=split, batch_size=-1)
  return tfds.as_numpy(ds)


def _take(stream, n):
  return [jax.tree.map(np.asarray, b) for b in itertools.islice(stream, n)]


def _assert_sharded(array, sharding, rows_per_device):
  assert array.sharding.spec == P("data")
  assert array.sharding.is_equivalent_to(sharding, array.ndim)
  shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start)
  assert len(shards) == 8 and len({s.device for s in shards}) == 8
  for i, shard in enumerate(shards):
    assert shard.data.shape == (rows_per_device,) + array.shape[1:]
    rows = np.asarray(array)[i * rows_per_device:(i + 1) * rows_per_device]
    np.testing.assert_array_equal(np.asarray(shard.data), rows)


def test_dataset_info():
  info = rl.data.dataset_info("cifar10")
  assert (info.kind, info.input_key, info.shape, info.num_classes) == ("image", "image", (32, 32, 3), 10)
  assert rl.data.dataset_info("cifar100").num_classes == 100
  assert rl.data.dataset_info("stl10").pretrain_split == "unlabelled"
  assert rl.data.dataset_info("stl10").shape == (96, 96, 3)
  assert rl.data.dataset_info("imagenet2012", image_size=160).shape == (160, 160, 3)
  assert rl.data.dataset_info("imagenet2012").test_split == "validation"
  signal = rl.data.dataset_info("mnist1d")
  assert (signal.kind, signal.input_key, signal.shape) == ("signal", "signal", (40,))
  assert signal.pretrain_split == "train"
  assert rl.data.dataset_info("digits").shape == (8, 8, 1)
  with pytest.raises(ValueError, match="image_size"):
    rl.data.dataset_info("mnist1d", image_size=32)
  with pytest.raises(ValueError, match="image_size"):
    rl.data.dataset_info("cifar10", image_size=0)


def test_unknown_name_lists_known_ones(sharding):
  with pytest.raises(ValueError, match="mnist2d") as err:
    rl.data.dataset_info("mnist2d")
  for known in ("mnist1d", "digits", "cifar10", "cifar100", "stl10", "imagenette", "imagenet2012"):
    assert known in str(err.value)
  with pytest.raises(ValueError, match="cifar10"):
    rl.data.train_batches("mnist2d", global_batch_size=8, seed=0, sharding=sharding)


def test_batch_size_not_divisible_by_devices(data_dir, sharding):
  with pytest.raises(ValueError, match=r"12.*8"):
    rl.data.train_batches("digits", global_batch_size=12, seed=0, sharding=sharding, data_dir=data_dir)
  with pytest.raises(ValueError, match=r"20.*8"):
    rl.data.eval_batches("digits", "test", global_batch_size=20, sharding=sharding, data_dir=data_dir)


def test_batch_larger_than_split(data_dir, sharding):
  with pytest.raises(ValueError, match="1437"):
    rl.data.train_batches("digits", global_batch_size=2048, seed=0, sharding=sharding, data_dir=data_dir)


def test_not_prepared_says_how_to_prepare(tmp_path, sharding):
  with pytest.raises(FileNotFoundError, match="tfds build cifar10"):
    rl.data.prepare("cifar10", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="TFDS_DATA_DIR"):
    next(rl.data.train_batches("cifar10", global_batch_size=8, seed=0, sharding=sharding, data_dir=str(tmp_path)))


@pytest.mark.parametrize("name,image_size,shape", [("cifar10", None, (32, 32, 3)), ("cifar10", 16, (16, 16, 3)),
                                                   ("imagenette", 24, (24, 24, 3))])
def test_mock_images_are_sharded_global_arrays(sharding, name, image_size, shape):
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    batch = next(rl.data.train_batches(name, global_batch_size=16, seed=0, sharding=sharding,
                                       image_size=image_size))
    assert set(batch) == {"x", "label", "index"}
    np.testing.assert_array_equal(batch["index"], -1)  # mock data carries no record ids
    assert batch["x"].shape == (16,) + shape and batch["x"].dtype == np.uint8
    assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
    assert np.all((np.asarray(batch["label"]) >= 0) & (np.asarray(batch["label"]) < 10))
    _assert_sharded(batch["x"], sharding, 2)
    _assert_sharded(batch["label"], sharding, 2)

    batches = list(rl.data.eval_batches(name, "test", global_batch_size=16, sharding=sharding,
                                        image_size=image_size))
    assert len(batches) == 3  # ceil(40 / 16)
    assert [int(np.asarray(b["mask"]).sum()) for b in batches] == [16, 16, 8]
    _assert_sharded(batches[-1]["mask"], sharding, 2)
    assert batches[-1]["x"].shape == (16,) + shape


def test_signal_batches(data_dir, sharding):
  batch = next(rl.data.train_batches("mnist1d", global_batch_size=32, seed=0, sharding=sharding,
                                     data_dir=data_dir))
  assert batch["x"].shape == (32, 40) and batch["x"].dtype == np.float32
  assert batch["label"].dtype == np.int32
  _assert_sharded(batch["x"], sharding, 4)
  train = _split("mnist1d", "train", data_dir)
  rows = {r.tobytes(): int(y) for r, y in zip(train["signal"], train["label"])}
  for x, y in zip(np.asarray(batch["x"]), np.asarray(batch["label"])):
    assert rows[x.tobytes()] == y  # Real training examples with their own labels.


# The three readers of a training stream: the in-memory loader (what 'mnist1d' is), and the TFDS builder of the same
# data decoded once into memory or read through tf.data every epoch (what streamed data sets use).
READERS = pytest.mark.parametrize("name,in_memory", [("mnist1d", None), ("mnist1d_tfds", True),
                                                     ("mnist1d_tfds", False)],
                                  ids=["loader", "tfds_in_memory", "tf_data"])
# The two readers of an evaluation pass: from memory, and through tf.data.
EVAL_READERS = pytest.mark.parametrize("suffix", ["", "_tfds"], ids=["loader", "tf_data"])


@READERS
def test_resume_equals_the_stream_from_zero(data_dir, sharding, name, in_memory):
  # 4000 // 256 = 15 batches per epoch: the checks below cross the epoch boundaries at 15 and 30.
  def stream(seed, start_step=0):
    return rl.data.train_batches(name, global_batch_size=256, seed=seed, sharding=sharding,
                                 start_step=start_step, data_dir=data_dir, in_memory=in_memory)

  reference = _take(stream(0), 34)
  for start in (12, 33):
    resumed = _take(stream(0, start), len(reference) - start)
    for want, got in zip(reference[start:], resumed):
      np.testing.assert_array_equal(got["x"], want["x"])
      np.testing.assert_array_equal(got["label"], want["label"])

  # One epoch is 15 * 256 distinct training examples; the next epoch is reshuffled.
  epoch0 = np.concatenate([b["x"] for b in reference[:15]])
  assert len({r.tobytes() for r in epoch0}) == 15 * 256
  epoch1 = np.concatenate([b["x"] for b in reference[15:30]])
  assert not np.array_equal(epoch0, epoch1)

  same = _take(stream(0), 2)
  other = _take(stream(1), 2)
  np.testing.assert_array_equal(same[1]["x"], reference[1]["x"])
  assert not np.array_equal(other[0]["x"], reference[0]["x"])
  assert not np.array_equal(other[1]["x"], reference[1]["x"])

  # The loader and the TFDS builder decoded into memory draw the same order from the same arrays; tf.data's
  # shuffle buffer draws another.
  default = _take(rl.data.train_batches("mnist1d", global_batch_size=256, seed=0, sharding=sharding), 1)
  assert np.array_equal(default[0]["x"], reference[0]["x"]) == (in_memory is not False)


@READERS
def test_processes_read_disjoint_slices(data_dir, name, in_memory):
  # 4000 examples over 3 processes: slices [0, 1334), [1334, 2667), [2667, 4000); 1333 // 100 = 13 batches per
  # epoch for every process, so the largest slice drops one more example per epoch.
  bounds = [(0, 1334), (1334, 2667), (2667, 4000)]
  seen = []
  for index, (start, stop) in enumerate(bounds):
    own = {r.tobytes() for r in _split(name, f"train[{start}:{stop}]", data_dir)["signal"]}
    stream = rl.data.host_train_batches(name, local_batch_size=100, seed=0, data_dir=data_dir,
                                        process_index=index, process_count=3, in_memory=in_memory)
    batches = list(itertools.islice(stream, 14))
    assert all(b["x"].shape == (100, 40) for b in batches)
    rows = [r.tobytes() for b in batches for r in b["x"]]
    assert set(rows) <= own
    seen.append(set(rows[:1300]))
    assert len(seen[-1]) == 1300  # One epoch: 13 batches of distinct examples.
  assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


@EVAL_READERS
def test_eval_counts_every_example_once(data_dir, sharding, suffix):
  test = _split("mnist1d", "test", data_dir)
  batches = [jax.tree.map(np.asarray, b)
             for b in rl.data.eval_batches("mnist1d" + suffix, "test", global_batch_size=24, sharding=sharding,
                                           data_dir=data_dir)]
  assert len(batches) == 42  # ceil(1000 / 24); 1000 is not a multiple of 24.
  for b in batches:
    assert b["x"].shape == (24, 40) and b["mask"].dtype == np.bool_ and b["label"].dtype == np.int32
  x = np.concatenate([b["x"] for b in batches])
  label = np.concatenate([b["label"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.sum() == 1000 and not mask[1000:].any()
  # A fixed order: the split's own.
  np.testing.assert_array_equal(x[mask], test["signal"])
  np.testing.assert_array_equal(label[mask], test["label"])
  assert np.all(x[~mask] == 0) and np.all(label[~mask] == -1)


@EVAL_READERS
def test_eval_across_processes_counts_every_example_once(data_dir, suffix):
  test = _split("digits", "test", data_dir)  # 360 examples: slices of 120, local batches of 7 -> 18 batches.
  per_process = [list(rl.data.host_eval_batches("digits" + suffix, "test", local_batch_size=7, data_dir=data_dir,
                                                process_index=i, process_count=3)) for i in range(3)]
  assert [len(b) for b in per_process] == [18, 18, 18]
  images, labels = [], []
  for batches in per_process:
    for b in batches:
      assert b["x"].shape == (7, 8, 8, 1) and b["x"].dtype == np.uint8
      images += [img.tobytes() for img in b["x"][b["mask"]]]
      labels += list(b["label"][b["mask"]])
  expected = collections.Counter(zip((img.tobytes() for img in test["image"]), test["label"]))
  assert collections.Counter(zip(images, labels)) == expected

  # 1000 over 3 processes is uneven (334, 333, 333): all processes still yield ceil(334 / 50) = 7 batches.
  counts = [[int(b["mask"].sum()) for b in rl.data.host_eval_batches(
      "mnist1d" + suffix, "test", local_batch_size=50, data_dir=data_dir, process_index=i, process_count=3)]
            for i in range(3)]
  assert [len(c) for c in counts] == [7, 7, 7]
  assert [sum(c) for c in counts] == [334, 333, 333]


def test_images_resized_and_centre_cropped(data_dir, sharding):
  # TFDS images are resized on the host; in-memory ones are served at their registered size (test_registry.py).
  batch = next(rl.data.train_batches("digits_tfds", global_batch_size=16, seed=0, sharding=sharding, data_dir=data_dir,
                                     image_size=16))
  assert batch["x"].shape == (16, 16, 16, 1) and batch["x"].dtype == np.uint8

  # A tall image: three horizontal bands; the centre crop keeps only the middle one.
  tall = np.zeros((64, 32, 3), np.uint8)
  tall[:16], tall[16:48], tall[48:] = 255, 100, 0
  out = _tfds.fixed_size(tf.constant(tall), 16).numpy()
  assert out.shape == (16, 16, 3)
  # Rows next to the crop border see the outer bands through the anti-aliasing filter.
  np.testing.assert_array_equal(out[2:-2], 100)
  # A wide image: bands are vertical.
  wide = np.ascontiguousarray(np.transpose(tall, (1, 0, 2)))
  out = _tfds.fixed_size(tf.constant(wide), 16).numpy()
  np.testing.assert_array_equal(out[:, 2:-2], 100)
  # Upsampling a constant image stays constant; an image of the right size is left alone.
  np.testing.assert_array_equal(_tfds.fixed_size(tf.fill([5, 7, 1], tf.constant(37, tf.uint8)), 12).numpy(), 37)
  same = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
  np.testing.assert_array_equal(_tfds.fixed_size(tf.constant(same), 16).numpy(), same)


@READERS
def test_train_batches_carry_each_examples_position_in_the_split(data_dir, sharding, name, in_memory):
  # The index is the example's position in the split, whatever the shuffled order and the process slice.
  train = _split(name, "train", data_dir)
  batches = _take(rl.data.train_batches(name, global_batch_size=256, seed=3, sharding=sharding,
                                        data_dir=data_dir, in_memory=in_memory), 16)  # crosses the epoch boundary at 15
  for b in batches:
    index, x = np.asarray(b["index"]), np.asarray(b["x"])
    assert b["index"].dtype == np.int32
    np.testing.assert_array_equal(x, train["signal"][index])
    np.testing.assert_array_equal(np.asarray(b["label"]), train["label"][index])
  assert len(set(np.concatenate([np.asarray(b["index"]) for b in batches[:15]]))) == 15 * 256
  stream = rl.data.host_train_batches(name, local_batch_size=100, seed=0, data_dir=data_dir,
                                      process_index=2, process_count=3, in_memory=in_memory)
  for b in itertools.islice(stream, 3):  # process 2 reads train[2667:4000]: its indices are global positions
    assert b["index"].min() >= 2667
    np.testing.assert_array_equal(b["x"], train["signal"][b["index"]])
