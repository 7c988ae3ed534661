"""The synthetic image data sets (`rl.data.synthetic`): shapes, the same bytes everywhere, and their streams.

The trainer runs on them where `import tensorflow` fails in tests/test_imports.py (the `train` extra's run).
"""
import hashlib
import itertools

import numpy as np
import pytest

import rl.data
from rl.data import synthetic

# sha256 of the bytes of synthetic_32's and synthetic_224's test splits (x, then label), as made on the machine that
# wrote this test: another machine, NumPy release or process count must make the same bytes.
DIGESTS = {32: "4c79b7318e03baf4db5c468625e1a55d969724c34be1ed9e6b8123b44973d27f",
           224: "ea15d2712a785dc70c19a070e35af514beb9b8c1009f0c49fbeaa450fc0c93f2"}


def _digest(arrays):
  return hashlib.sha256(arrays["x"].tobytes() + arrays["label"].tobytes()).hexdigest()


@pytest.mark.parametrize("side", [32, 224])
def test_registered_shapes_and_the_same_bytes_everywhere(side):
  name = f"synthetic_{side}"
  info = rl.data.dataset_info(name)
  assert (info.kind, info.shape, info.num_classes, info.test_split) == ("image", (side, side, 3), 10, "test")
  assert rl.data.dataset_spec(name).in_memory
  test = synthetic.images("test", size=side)  # the registered loader's split (224's train split is 300 MB)
  assert test["x"].shape == (synthetic.SPLITS[side]["test"][1], side, side, 3) and test["x"].dtype == np.uint8
  assert test["label"].dtype == np.int32 and set(test["label"].tolist()) == set(range(10))
  assert _digest(test) == DIGESTS[side]


def test_counts_and_what_the_trainer_reads():
  assert rl.data.num_examples("synthetic_32", "train") == 10_000
  assert rl.data.num_examples("synthetic_32", "test") == 1_000
  batch = next(rl.data.host_train_batches("synthetic_32", local_batch_size=16, seed=0))
  assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
      "x": ((16, 32, 32, 3), "uint8"), "label": ((16,), "int32"), "index": ((16,), "int32")}
  train = synthetic.images("train", size=32)
  np.testing.assert_array_equal(batch["x"], train["x"][batch["index"]])
  np.testing.assert_array_equal(batch["label"], train["label"][batch["index"]])


def test_the_streams_do_not_depend_on_the_process_count():
  # One process reading two slices (data_shards=2) yields, batch for batch, what two processes yield side by side.
  def take(**kwargs):
    return list(itertools.islice(rl.data.host_train_batches("synthetic_32", seed=3, start_step=5, **kwargs), 3))
  halves = [take(local_batch_size=8, process_index=p, process_count=2) for p in (0, 1)]
  for one, first, second in zip(take(local_batch_size=16, data_shards=2), *halves):
    for key in one:
      np.testing.assert_array_equal(one[key], np.concatenate([first[key], second[key]]))


def test_examples_depend_only_on_their_index_and_seed():
  short, long = (synthetic.generate(n, size=8, stream=0) for n in (5, synthetic.CHUNK + 5))
  for key in ("x", "label"):
    np.testing.assert_array_equal(long[key][:5], short[key])
  assert not np.array_equal(synthetic.generate(5, size=8, stream=1)["x"], short["x"])  # the other split
  assert not np.array_equal(synthetic.generate(5, size=8, stream=0, seed=1)["x"], short["x"])
  grey = synthetic.generate(5, size=8, stream=0, channels=1, num_classes=2)
  assert grey["x"].shape == (5, 8, 8, 1) and set(grey["label"].tolist()) <= {0, 1}


def test_each_class_is_its_template_plus_bounded_noise():
  test = synthetic.images("test", size=32)
  templates = synthetic.templates(32).astype(np.int32)
  offset = test["x"].astype(np.int32) - templates[test["label"]]
  # Clipping to [0, 255] only shrinks the offset.
  assert np.abs(offset).max() <= synthetic.NOISE and np.abs(offset).mean() > synthetic.NOISE / 4
  distances = np.square(test["x"][:200, None].astype(np.int32) - templates[None]).sum((2, 3, 4))
  assert (distances.argmin(1) == test["label"][:200]).all()  # the raw pixels tell the classes apart


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_examples=0, size=8, stream=0), r"^num_examples: expected a positive int, got 0$"),
    (dict(num_examples=4, size=-1, stream=0), r"^size: expected a positive int, got -1$"),
    (dict(num_examples=4, size=8, stream=0, channels=True), r"^channels: expected a positive int, got True$"),
])
def test_bad_arguments_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    synthetic.generate(**kwargs)


def test_unknown_split_is_named():
  with pytest.raises(ValueError, match=r"^split: 'synthetic_32' \(an in-memory data set\) has no split 'validation'"):
    rl.data.num_examples("synthetic_32", "validation")
