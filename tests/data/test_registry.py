"""The data set registry and its in-memory source: declaring, checking, streaming, padding, and training on one.

Registries are process-global and the suite runs on two pytest-xdist workers: every data set a test registers is
unregistered by the `registered` fixture, even when the test fails.
"""
import itertools
import json

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

import rl.data
from rl.data import _memory  # pylint: disable=protected-access  (the even-split arithmetic is tested directly)
from rl.data import DatasetSpec
from rl.data import embedded

N_TRAIN, N_TEST, LENGTH = 512, 100, 40


def _signals(n, seed):
  """Random 40-sample signals; label 1 when the first half carries more energy than the second."""
  x = np.random.default_rng(seed).normal(size=(n, LENGTH)).astype(np.float32)
  label = (np.square(x[:, :LENGTH // 2]).sum(1) > np.square(x[:, LENGTH // 2:]).sum(1)).astype(np.int64)
  return {"x": x, "label": label}


SIGNALS = {"train": _signals(N_TRAIN, 0), "test": _signals(N_TEST, 1)}


def signal_spec(**overrides):
  fields = dict(kind="signal", num_classes=2, size=LENGTH, source=lambda split: SIGNALS[split])
  return DatasetSpec(**{**fields, **overrides})


@pytest.fixture
def registered():
  """`registered(name, spec)` registers a data set for the test; all of them are removed afterwards."""
  names = []

  def register(name, spec):
    rl.data.register_dataset(name, spec)
    names.append(name)
    return name

  yield register
  for name in names:
    if name in rl.data.known_datasets():
      rl.data.unregister_dataset(name)


@pytest.fixture(scope="module")
def sharding(mesh8):
  return NamedSharding(mesh8, P("data"))


def _take(stream, n):
  return [jax.tree.map(np.asarray, b) for b in itertools.islice(stream, n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      assert x[k].dtype == y[k].dtype, k
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


# --- Declaring data sets.


def test_builtin_datasets_are_registered_in_order():
  assert rl.data.known_datasets()[:2] == ("mnist1d", "digits")
  # The embedded data sets are in-memory loaders (no TensorFlow); the streamed ones are TFDS builders.
  assert rl.data.dataset_spec("mnist1d").source is embedded.mnist1d and rl.data.dataset_spec("mnist1d").in_memory
  assert rl.data.dataset_spec("digits").source is embedded.digits and rl.data.dataset_spec("digits").in_memory
  assert rl.data.dataset_spec("cifar10").source == "cifar10" and not rl.data.dataset_spec("cifar10").in_memory
  # One declaration of the MNIST-1D length: the registry's equals the loader's and the TFDS builder's.
  assert rl.data.dataset_info("mnist1d").shape == (embedded.SIGNAL_LENGTH,)
  assert rl.data.builders.mnist1d.SIGNAL_LENGTH == embedded.SIGNAL_LENGTH


def test_register_then_unregister(registered):
  registered("reg_toy", signal_spec())
  assert "reg_toy" in rl.data.known_datasets()
  info = rl.data.dataset_info("reg_toy")
  assert (info.kind, info.shape, info.num_classes, info.pretrain_split, info.test_split) == (
      "signal", (LENGTH,), 2, "train", "test")
  assert rl.data.unregister_dataset("reg_toy").size == LENGTH
  assert "reg_toy" not in rl.data.known_datasets()
  with pytest.raises(ValueError, match=r"^name: unknown dataset 'reg_toy'; known datasets: mnist1d, digits"):
    rl.data.unregister_dataset("reg_toy")


def test_registering_a_name_twice_is_an_error_unless_replaced(registered):
  registered("reg_twice", signal_spec())
  with pytest.raises(ValueError, match=r"^name: dataset 'reg_twice' is already registered; pass replace=True"):
    rl.data.register_dataset("reg_twice", signal_spec(num_classes=3))
  assert rl.data.dataset_info("reg_twice").num_classes == 2
  rl.data.register_dataset("reg_twice", signal_spec(num_classes=3), replace=True)
  assert rl.data.dataset_info("reg_twice").num_classes == 3
  with pytest.raises(ValueError, match=r"^name: dataset 'mnist1d' is already registered"):
    rl.data.register_dataset("mnist1d", signal_spec())


@pytest.mark.parametrize("fields, message", [
    (dict(kind="video"), r"^DatasetSpec.kind: expected 'image' or 'signal', got 'video'$"),
    (dict(num_classes=0), r"^DatasetSpec.num_classes: expected a positive int, got 0$"),
    (dict(num_classes=2.0), r"^DatasetSpec.num_classes: expected a positive int, got 2.0$"),
    (dict(size=-4), r"^DatasetSpec.size: expected a positive int \(image side or signal length\), got -4$"),
    (dict(channels=3), r"^DatasetSpec.channels: expected 0 for a signal data set, got 3$"),
    (dict(kind="image"), r"^DatasetSpec.channels: expected a positive int for an image data set, got 0$"),
    (dict(source=""), r"^DatasetSpec.source: expected a TFDS builder name or a loader callable, got ''$"),
    (dict(source=3), r"^DatasetSpec.source: expected a TFDS builder name \(str\) or a loader callable, got 3$"),
    (dict(test_split=""), r"^DatasetSpec.test_split: expected a non-empty split name, got ''$"),
    (dict(pretrain_split=7), r"^DatasetSpec.pretrain_split: expected a non-empty split name, got 7$"),
])
def test_bad_spec_names_the_field_the_expected_and_the_given_value(fields, message):
  with pytest.raises(ValueError, match=message):
    signal_spec(**fields)


def test_bad_name_or_spec():
  with pytest.raises(ValueError, match=r"^name: expected a non-empty name of letters, digits.*, got 'a b'$"):
    rl.data.register_dataset("a b", signal_spec())
  with pytest.raises(ValueError, match=r"^spec: expected a rl.data.DatasetSpec, got dict$"):
    rl.data.register_dataset("reg_dict", {"kind": "signal"})
  assert "reg_dict" not in rl.data.known_datasets()


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, LENGTH), np.float32)}, r"must return \{'x': \.\.\., 'label': \.\.\.\}; got \['x'\]"),
    ({"x": np.zeros((4, LENGTH), np.int32), "label": np.zeros(4, int)}, r"float \[n, L\] signals; got x of dtype"),
    ({"x": np.zeros((4, 39), np.float32), "label": np.zeros(4, int)}, r"of shape \[n, 40\]; got x of shape \(4, 39\)"),
    ({"x": np.zeros((4, LENGTH), np.float32), "label": np.zeros(3, int)}, r"int labels of shape \[4\]; got label"),
    ({"x": np.zeros((4, LENGTH), np.float32), "label": np.array([0, 1, 2, -1])},
     r"gave labels in \[-1, 2\]; expected -1 \(unlabelled\) or 0..1"),
])
def test_bad_loader_output_is_named_when_prepared(registered, arrays, message):
  registered("reg_bad", signal_spec(source=lambda split: arrays))
  with pytest.raises(ValueError, match=r"^source: the loader of 'reg_bad' for split 'train' .*" + message):
    rl.data.prepare("reg_bad")


def test_unknown_split_and_bad_slices(registered):
  registered("reg_split", signal_spec())
  with pytest.raises(ValueError, match=r"^split: 'reg_split' \(an in-memory data set\) has no split 'valid'"):
    rl.data.num_examples("reg_split", "valid")
  with pytest.raises(ValueError, match=r"^split: expected a split name, optionally sliced"):
    rl.data.num_examples("reg_split", "train+test")
  with pytest.raises(ValueError, match=r"^split: 'train\[:600\]' asks for rows up to 600 of a split of 512"):
    rl.data.num_examples("reg_split", "train[:600]")


def test_in_memory_images_are_served_at_their_size(registered):
  images = {"x": np.zeros((8, 4, 4, 1), np.uint8), "label": np.zeros(8, int)}
  registered("reg_img", DatasetSpec(kind="image", num_classes=1, size=4, channels=1, source=lambda s: images))
  assert rl.data.dataset_info("reg_img").shape == (4, 4, 1)
  with pytest.raises(ValueError, match=r"^image_size: 'reg_img' is an in-memory data set of 4x4 images.*got 8$"):
    rl.data.dataset_info("reg_img", image_size=8)
  floats = {"x": np.zeros((8, 4, 4, 1), np.float32), "label": np.zeros(8, int)}
  rl.data.register_dataset("reg_img", DatasetSpec(kind="image", num_classes=1, size=4, channels=1,
                                                  source=lambda s: floats), replace=True)
  with pytest.raises(ValueError, match=r"uint8 \[n, H, W, C\] images; got x of dtype float32"):
    rl.data.prepare("reg_img")


# --- The in-memory stream.


def test_slicing_and_counts_follow_tfds(registered):
  registered("reg_count", signal_spec())
  counts = [rl.data.num_examples("reg_count", s) for s in ("train", "test", "test[:10%]", "train[-12:]",
                                                           "train[100:150]", "test[33%:]")]
  assert counts == [512, 100, 10, 12, 50, 67]
  # tfds.even_splits: the first n mod count slices get one more example ('11 examples, n=3: [4, 4, 3]').
  assert [_memory.even_split(0, 11, 3, i) for i in range(3)] == [(0, 4), (4, 8), (8, 11)]
  assert [_memory.even_split(0, 1437, 2, i) for i in range(2)] == [(0, 719), (719, 1437)]


def test_stream_resumes_exactly_and_each_epoch_is_a_permutation(registered):
  registered("reg_resume", signal_spec())
  stream = lambda start: rl.data.host_train_batches("reg_resume", local_batch_size=100, seed=3, start_step=start)
  full = _take(stream(0), 12)  # 5 batches per epoch (512 // 100): crosses two epoch boundaries
  for start in (1, 4, 5, 7):
    _assert_batches_equal(_take(stream(start), 12 - start), full[start:])
  for epoch in range(2):
    index = np.concatenate([b["index"] for b in full[5 * epoch:5 * epoch + 5]])
    assert len(set(index.tolist())) == 500 and index.min() >= 0 and index.max() < N_TRAIN
  assert not np.array_equal(full[0]["index"], full[5]["index"])  # the next epoch is reshuffled
  batch = full[0]
  assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
      "x": ((100, LENGTH), "float32"), "label": ((100,), "int32"), "index": ((100,), "int32")}
  # `index` is the position in the split: it names the row the loader gave.
  np.testing.assert_array_equal(batch["x"], SIGNALS["train"]["x"][batch["index"]])
  np.testing.assert_array_equal(batch["label"], SIGNALS["train"]["label"][batch["index"]])
  other_seed = _take(rl.data.host_train_batches("reg_resume", local_batch_size=100, seed=4), 1)
  assert not np.array_equal(other_seed[0]["index"], batch["index"])


def test_stream_slices_processes_and_shards(registered):
  registered("reg_shard", signal_spec())
  per_process = [_take(rl.data.host_train_batches("reg_shard", local_batch_size=32, seed=0, process_index=p,
                                                  process_count=2), 9) for p in (0, 1)]
  for p, (lo, hi) in enumerate([(0, 256), (256, 512)]):
    index = np.concatenate([b["index"] for b in per_process[p]])
    assert index.min() >= lo and index.max() < hi
  # One process reading the same two slices (data_shards=2) yields both processes' batches side by side.
  sharded = _take(rl.data.host_train_batches("reg_shard", local_batch_size=64, seed=0, data_shards=2), 9)
  for i, batch in enumerate(sharded):
    np.testing.assert_array_equal(batch["index"], np.concatenate([per_process[0][i]["index"],
                                                                  per_process[1][i]["index"]]))


def test_class_filter_counts_its_epoch_from_the_kept_examples(registered):
  registered("reg_classes", signal_spec())
  kept = int((SIGNALS["train"]["label"] == 1).sum())
  batches = _take(rl.data.host_train_batches("reg_classes", local_batch_size=50, seed=0, classes=[1]),
                  kept // 50)
  index = np.concatenate([b["index"] for b in batches])
  assert (np.concatenate([b["label"] for b in batches]) == 1).all() and len(set(index.tolist())) == len(index)
  resumed = _take(rl.data.host_train_batches("reg_classes", local_batch_size=50, seed=0, classes=[1],
                                             start_step=kept // 50 - 1), 1)
  _assert_batches_equal(resumed, batches[-1:])


def test_eval_batches_are_padded_and_masked(registered, sharding):
  registered("reg_eval", signal_spec())
  batches = _take(rl.data.eval_batches("reg_eval", "test", global_batch_size=48, sharding=sharding), 10)
  assert len(batches) == 3  # ceil(100 / 48)
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.dtype == bool and mask.sum() == N_TEST and not mask[N_TEST:].any()
  x, label = np.concatenate([b["x"] for b in batches]), np.concatenate([b["label"] for b in batches])
  np.testing.assert_array_equal(x[:N_TEST], SIGNALS["test"]["x"])  # the split's order
  assert (x[N_TEST:] == 0).all() and (label[N_TEST:] == -1).all() and label.dtype == np.int32
  # Two processes: 50 rows each, both yield ceil(50 / 16) = 4 batches.
  halves = [list(rl.data.host_eval_batches("reg_eval", "test", local_batch_size=16, process_index=p,
                                           process_count=2)) for p in (0, 1)]
  assert [len(h) for h in halves] == [4, 4]
  assert [int(sum(b["mask"].sum() for b in h)) for h in halves] == [50, 50]
  np.testing.assert_array_equal(halves[1][0]["x"], SIGNALS["test"]["x"][50:66])


def test_in_memory_false_is_an_error_for_a_loader(registered):
  registered("reg_mem", signal_spec())
  with pytest.raises(ValueError, match=r"^in_memory: 'reg_mem' is an in-memory data set .* got False$"):
    rl.data.host_train_batches("reg_mem", local_batch_size=8, seed=0, in_memory=False)


def test_loader_runs_once_per_split(registered):
  calls = []

  def loader(split):
    calls.append(split)
    return SIGNALS[split]

  registered("reg_once", signal_spec(source=loader))
  rl.data.prepare("reg_once")
  _take(rl.data.host_train_batches("reg_once", local_batch_size=8, seed=0), 2)
  list(rl.data.host_eval_batches("reg_once", "test", local_batch_size=64))
  assert sorted(calls) == ["test", "train"]


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_in_memory_source_streams_like_the_tfds_path(tfds_embedded, sharding, name):
  """An embedded data set from its loader gives, batch for batch, what its TFDS builder gives read into memory.

  So moving 'mnist1d' and 'digits' from their TFDS builders to the loaders of `rl.data.embedded` changed no batch
  (and no recorded training run). Eval passes are also equal to tf.data's.
  """
  pair = (name, name + "_tfds")  # registered by tests/conftest.py
  for kwargs in (dict(), dict(start_step=30), dict(classes=[2, 7]), dict(data_shards=2)):
    same = [_take(rl.data.train_batches(n, global_batch_size=64, seed=5, sharding=sharding, data_dir=tfds_embedded,
                                        in_memory=True, **kwargs), 3) for n in pair]
    _assert_batches_equal(*same)
  for p in (0, 1, 2):
    same = [_take(rl.data.host_train_batches(n, local_batch_size=24, seed=1, data_dir=tfds_embedded,
                                             process_index=p, process_count=3, start_step=2, in_memory=True), 2)
            for n in pair]
    _assert_batches_equal(*same)
  for split in ("test", "train[10%:20%]"):
    same = [_take(rl.data.eval_batches(n, split, global_batch_size=64, sharding=sharding, data_dir=tfds_embedded),
                  99) for n in pair]
    _assert_batches_equal(*same)
    assert rl.data.num_examples(pair[0], split) == rl.data.num_examples(pair[1], split, data_dir=tfds_embedded)


# --- End to end.


def test_trainer_runs_on_a_dataset_registered_at_run_time(registered, tmp_path):
  from configs import simclr  # pylint: disable=import-outside-toplevel
  from rl.train import loop  # pylint: disable=import-outside-toplevel
  registered("reg_e2e", signal_spec())
  config = simclr.get_config("smoke")
  config.dataset = "reg_e2e"
  config.total_steps, config.log_every_steps = 4, 1
  # kNN evaluations at steps 2 and 4 (the last step's too: there is no final report) read the in-memory splits
  config.eval.every_steps = 2
  config.eval.final = False
  workdir = tmp_path / "run"
  loop.train_and_evaluate(config, workdir)
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines() if l]
  losses = [l["loss"] for l in lines if "loss" in l]
  assert len(losses) == 4 and np.isfinite(losses).all(), lines
  evals = [l for l in lines if l["kind"] == "eval"]
  assert [l["step"] for l in evals] == [2, 4], evals
  assert all(0 <= v <= 1 for e in evals for k, v in e.items() if "accuracy" in k), evals
  assert (workdir / "checkpoints").is_dir() and any((workdir / "checkpoints").iterdir())
