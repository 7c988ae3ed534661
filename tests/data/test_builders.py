"""The embedded data sets: the loaders of `rl.data.embedded` hold the generators' data, and the TFDS builders of
`rl.data.builders` build the same arrays offline and are reused once built."""
import collections
import random
import socket

import mnist1d.data
import numpy as np
import pytest
from sklearn import datasets as sk_datasets
import tensorflow_datasets as tfds

import rl.data
from rl.data import embedded
import tests


def _no_network(*args, **kwargs):
  raise AssertionError(f"network access while building an embedded data set: {args}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Both TFDS builders, built with sockets and mnist1d's download path disabled (and the generator run again).

  'mnist1d_tfds' and 'digits_tfds' (the builders as TFDS sources) are registered while this module's tests run.
  """
  path = tmp_path_factory.mktemp("tfds")
  names = tests.register_tfds_copies()
  try:
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(socket.socket, "connect", _no_network)
      mp.setattr(socket, "create_connection", _no_network)
      mp.setattr(mnist1d.data, "get_dataset", _no_network)
      embedded._generated_mnist1d.cache_clear()  # pylint: disable=protected-access
      for name in names:
        rl.data.prepare(name, data_dir=str(path))
    yield path
  finally:
    for name in names:
      rl.data.unregister_dataset(name)


def _load(name, split, data_dir):
  builder = tfds.builder(name, data_dir=str(data_dir))
  return builder, tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))


def test_registered_with_metadata():
  for name, cls in (("mnist1d", rl.data.builders.Mnist1d), ("digits", rl.data.builders.Digits)):
    assert tfds.builder_cls(name) is cls
    assert str(cls.VERSION) == "1.0.0"
    info = cls(data_dir="/nonexistent").info
    assert "@" in info.citation and info.description
    assert info.features["label"].num_classes == 10


@pytest.mark.parametrize("name,sizes", [("mnist1d", {"train": 4000, "test": 1000}),
                                        ("digits", {"train": 1437, "test": 360})])
def test_split_sizes(data_dir, name, sizes):
  builder = tfds.builder(name, data_dir=str(data_dir))
  assert builder.is_prepared()
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == sizes
  if name == "digits":
    assert sum(sizes.values()) == 1797
  for split, size in sizes.items():
    assert rl.data.num_examples(name + "_tfds", split, data_dir=str(data_dir)) == size
    assert rl.data.num_examples(name, split) == size  # the in-memory loader's


def test_mnist1d_dtypes_and_values_are_the_generators(data_dir):
  builder, test = _load("mnist1d", "test", data_dir)
  spec = builder.as_dataset(split="train").element_spec
  assert spec["signal"].shape == (40,) and spec["signal"].dtype.name == "float32"
  assert spec["label"].shape == () and spec["label"].dtype.name == "int64"
  _, train = _load("mnist1d", "train", data_dir)

  np_state, py_state = np.random.get_state(), random.getstate()
  reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
  np.random.set_state(np_state)
  random.setstate(py_state)
  # Example i of each split is row i of the generator's arrays (the builder keeps the order).
  np.testing.assert_array_equal(train["signal"], reference["x"].astype(np.float32))
  np.testing.assert_array_equal(train["label"], reference["y"])
  np.testing.assert_array_equal(test["signal"], reference["x_test"].astype(np.float32))
  np.testing.assert_array_equal(test["label"], reference["y_test"])
  assert set(np.unique(train["label"])) == set(range(10))
  # The loader that 'mnist1d' is served from holds the same arrays.
  for split, arrays in (("train", train), ("test", test)):
    loaded = embedded.mnist1d(split)
    assert loaded["x"].dtype == np.float32 and loaded["label"].dtype == np.int32
    np.testing.assert_array_equal(loaded["x"], arrays["signal"])
    np.testing.assert_array_equal(loaded["label"], arrays["label"])


def test_mnist1d_generation_leaves_global_rngs_alone():
  np.random.seed(123)
  random.seed(123)
  expected_np, expected_py = np.random.rand(3), random.random()
  np.random.seed(123)
  random.seed(123)
  embedded._generated_mnist1d.cache_clear()  # pylint: disable=protected-access  (the generator itself runs)
  first = embedded.generate_mnist1d()
  np.testing.assert_array_equal(np.random.rand(3), expected_np)
  assert random.random() == expected_py
  # Later calls reuse the output: equal to the first, and a copy (a caller may change its arrays).
  second = embedded.generate_mnist1d()
  np.testing.assert_array_equal(second["x"], first["x"])
  second["x"][0, 0] = 1e9
  assert embedded.generate_mnist1d()["x"][0, 0] == first["x"][0, 0]


def test_digits_dtypes_values_and_split(data_dir):
  builder, train = _load("digits", "train", data_dir)
  _, test = _load("digits", "test", data_dir)
  spec = builder.as_dataset(split="train").element_spec
  assert spec["image"].shape == (8, 8, 1) and spec["image"].dtype.name == "uint8"
  for split in (train, test):
    assert split["image"].dtype == np.uint8 and split["image"].shape[1:] == (8, 8, 1)

  raw = sk_datasets.load_digits()
  # Levels 0..16 map to round(level * 255 / 16): every value is one of those 17 and both ends are reached.
  allowed = {int(np.round(level * 255 / 16)) for level in range(17)}
  assert set(np.unique(np.concatenate([train["image"].ravel(), test["image"].ravel()]))) <= allowed
  assert train["image"].min() == 0 and train["image"].max() == 255
  np.testing.assert_array_equal(embedded.digits_to_uint8(np.array([0, 1, 8, 15, 16])), [0, 16, 128, 239, 255])

  # Train + test is exactly the 1797 bundled images, each once, with their labels.
  expected = collections.Counter(
      (np.round(img * 255 / 16).astype(np.uint8).tobytes(), int(y)) for img, y in zip(raw.images, raw.target))
  got = collections.Counter(
      (img.tobytes(), int(y)) for split in (train, test) for img, y in zip(split["image"], split["label"]))
  assert got == expected

  # Stratified 80/20: every class is split 80/20 up to rounding.
  class_counts = np.bincount(raw.target, minlength=10)
  test_counts = np.bincount(test["label"], minlength=10)
  assert np.all(np.abs(test_counts - 0.2 * class_counts) <= 1)

  # Example i of a split is the image at digits_split_indices()[split][i] (fixed seed, fixed order).
  indices = embedded.digits_split_indices()
  np.testing.assert_array_equal(test["label"], raw.target[indices["test"]])
  np.testing.assert_array_equal(test["image"][..., 0], np.round(raw.images[indices["test"]] * 255 / 16))
  # The loader that 'digits' is served from holds the same arrays.
  for split, arrays in (("train", train), ("test", test)):
    loaded = embedded.digits(split)
    assert loaded["x"].dtype == np.uint8 and loaded["label"].dtype == np.int32
    np.testing.assert_array_equal(loaded["x"], arrays["image"])
    np.testing.assert_array_equal(loaded["label"], arrays["label"])


def test_second_load_reuses_the_built_files(data_dir, monkeypatch):
  def files():
    return {p: p.stat().st_mtime_ns for p in data_dir.rglob("*") if p.is_file()}

  before = files()
  assert any(p.name.startswith("mnist1d-train.tfrecord") for p in before)

  def no_rebuild(*args, **kwargs):
    raise AssertionError("the data set was generated again")

  monkeypatch.setattr(rl.data.builders.Mnist1d, "_split_generators", no_rebuild)
  monkeypatch.setattr(rl.data.builders.Digits, "_split_generators", no_rebuild)
  for name in ("mnist1d", "digits"):
    rl.data.prepare(name + "_tfds", data_dir=str(data_dir))
    tfds.builder(name, data_dir=str(data_dir)).download_and_prepare()
  _, test = _load("digits", "test", data_dir)
  assert len(test["label"]) == 360
  assert files() == before
