"""Pretraining on a subset of the classes: `classes=` of the training stream (config.data_classes)."""
import itertools

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest
import tensorflow_datasets as tfds

import rl.data

CLASSES = (7, 0, 3)


@pytest.fixture(scope="module")
def data_dir(tfds_embedded):
  """The worker's TFDS data dir, where 'mnist1d_tfds' (tests/conftest.py) is prepared."""
  return tfds_embedded


@pytest.fixture(scope="module")
def sharding(mesh8):
  return NamedSharding(mesh8, P("data"))


@pytest.fixture(scope="module")
def train(data_dir):
  return tfds.as_numpy(tfds.builder("mnist1d", data_dir=data_dir).as_dataset(split="train", batch_size=-1))


def _take(stream, n):
  return [jax.tree.map(np.asarray, b) for b in itertools.islice(stream, n)]


# The in-memory loader ('mnist1d') and the TFDS builder of the same data, decoded into memory or read by tf.data.
READERS = pytest.mark.parametrize("name,in_memory", [("mnist1d", None), ("mnist1d_tfds", True),
                                                     ("mnist1d_tfds", False)],
                                  ids=["loader", "tfds_in_memory", "tf_data"])


def _stream(data_dir, sharding, start_step=0, classes=CLASSES, batch=128, name="mnist1d", in_memory=None):
  return rl.data.train_batches(name, global_batch_size=batch, seed=0, sharding=sharding,
                               start_step=start_step, data_dir=data_dir, classes=classes, in_memory=in_memory)


@READERS
def test_only_the_classes_appear_and_an_epoch_is_a_pass_over_them(data_dir, sharding, train, name, in_memory):
  kept = int(np.isin(train["label"], CLASSES).sum())
  steps_per_epoch = kept // 128
  batches = _take(_stream(data_dir, sharding, name=name, in_memory=in_memory), steps_per_epoch + 2)
  labels = np.concatenate([b["label"] for b in batches])
  assert set(labels.tolist()) == set(CLASSES)
  for b in batches:
    assert b["x"].shape == (128, 40)
    np.testing.assert_array_equal(b["x"], train["signal"][b["index"]])  # real examples, with their positions
    np.testing.assert_array_equal(b["label"], train["label"][b["index"]])
  # One epoch: every kept example at most once, all but the dropped remainder; then a new shuffle.
  epoch0 = np.concatenate([b["index"] for b in batches[:steps_per_epoch]])
  assert len(set(epoch0.tolist())) == steps_per_epoch * 128
  assert set(epoch0.tolist()) <= set(np.flatnonzero(np.isin(train["label"], CLASSES)).tolist())
  epoch1 = np.concatenate([b["index"] for b in batches[steps_per_epoch:]])
  assert not np.array_equal(epoch1, epoch0[:len(epoch1)])


@READERS
def test_resume_equals_the_uninterrupted_stream(data_dir, sharding, train, name, in_memory):
  steps_per_epoch = int(np.isin(train["label"], CLASSES).sum()) // 128
  reference = _take(_stream(data_dir, sharding, name=name, in_memory=in_memory), steps_per_epoch + 3)
  for start in (3, steps_per_epoch - 1, steps_per_epoch + 1):  # inside the first epoch and across its end
    resumed = _take(_stream(data_dir, sharding, start_step=start, name=name, in_memory=in_memory),
                    len(reference) - start)
    for want, got in zip(reference[start:], resumed):
      np.testing.assert_array_equal(got["x"], want["x"])
      np.testing.assert_array_equal(got["index"], want["index"])
  # The order of the filtered stream does not depend on how the classes are listed.
  reordered = _take(_stream(data_dir, sharding, classes=sorted(CLASSES), name=name, in_memory=in_memory), 2)
  np.testing.assert_array_equal(reordered[1]["index"], reference[1]["index"])


@READERS
def test_processes_read_their_own_slice_of_the_classes(data_dir, train, name, in_memory):
  seen = []
  for index, (start, stop) in enumerate([(0, 2000), (2000, 4000)]):
    stream = rl.data.host_train_batches(name, local_batch_size=50, seed=0, data_dir=data_dir,
                                        process_index=index, process_count=2, classes=(1, 2),
                                        in_memory=in_memory)
    rows = np.concatenate([b["index"] for b in itertools.islice(stream, 4)])
    assert rows.min() >= start and rows.max() < stop
    assert set(train["label"][rows].tolist()) <= {1, 2}
    seen.append(set(rows.tolist()))
  assert not seen[0] & seen[1]


def test_bad_classes_are_refused(data_dir, sharding):
  for classes, match in [((), r"non-empty sequence"), (3, r"non-empty sequence"), ((1, 1), r"distinct"),
                         ((0, 10), r"out-of-range ids \[10\]"), ((True, 2), r"int class ids")]:
    with pytest.raises(ValueError, match=f"classes: .*{match}"):
      next(_stream(data_dir, sharding, classes=classes))
  # About 400 examples of one class: fewer than a batch of 512.
  with pytest.raises(ValueError, match=r"512 .* examples with a label in classes=\(4,\)"):
    next(_stream(data_dir, sharding, classes=(4,), batch=512))
