"""Tests of rl.eval.knn against a float64 NumPy brute force of the NPID weighted kNN."""
import numpy as np
import pytest

from rl.eval import knn


def _reference_scores(train, labels, test, num_classes, k, temperature):
  """Brute force in float64: full similarity matrix, sort, weighted vote, shares."""
  train = np.asarray(train, np.float64)
  test = np.asarray(test, np.float64)
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  sim = test @ train.T
  scores = np.zeros((test.shape[0], num_classes))
  for i in range(test.shape[0]):
    nearest = np.argsort(-sim[i], kind="stable")[:k]
    for j in nearest:
      scores[i, labels[j]] += np.exp(sim[i, j] / temperature)
  return scores / scores.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (12, 0.5), (40, 2.0)])
def test_scores_match_numpy_brute_force(k, temperature):
  rng = np.random.default_rng(0)
  train = rng.normal(size=(40, 6))
  labels = rng.integers(0, 3, 40)
  test = rng.normal(size=(9, 6))
  got = knn.knn_scores(train, labels, test, num_classes=3, k=k, temperature=temperature)
  want = _reference_scores(train, labels, test, 3, k, temperature)
  assert got.shape == (9, 3)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(
      knn.knn_predict(train, labels, test, num_classes=3, k=k, temperature=temperature),
      np.argmax(want, axis=1))


def test_weighting_overrides_majority():
  # Two class-0 neighbours orthogonal to the query, one class-1 neighbour on it. A sharp temperature
  # lets the close neighbour win (exp(1/0.07) >> 2 exp(0)); a flat one gives the plain majority.
  train = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
  labels = np.array([1, 0, 0, 1])
  query = np.array([[1.0, 0.0, 0.0]])
  assert knn.knn_predict(train, labels, query, num_classes=2, k=3, temperature=0.07)[0] == 1
  assert knn.knn_predict(train, labels, query, num_classes=2, k=3, temperature=100.0)[0] == 0
  shares = knn.knn_scores(train, labels, query, num_classes=2, k=3, temperature=1.0)[0]
  e = np.e
  np.testing.assert_allclose(shares, [2.0 / (e + 2.0), e / (e + 2.0)], rtol=1e-6)


def test_ties_at_the_kth_neighbour_are_irrelevant():
  # Every train row appears twice with the same label: an odd k cuts a tied pair, and whichever copy
  # top_k keeps, the vote is the same as the reference's.
  rng = np.random.default_rng(1)
  base = rng.normal(size=(15, 4))
  base_labels = rng.integers(0, 4, 15)
  train = np.repeat(base, 2, axis=0)
  labels = np.repeat(base_labels, 2)
  order = rng.permutation(30)
  train, labels = train[order], labels[order]
  test = rng.normal(size=(11, 4))
  for k in (1, 3, 7):
    got = knn.knn_scores(train, labels, test, num_classes=4, k=k, temperature=0.1)
    np.testing.assert_allclose(got, _reference_scores(train, labels, test, 4, k, 0.1),
                               rtol=1e-4, atol=1e-6)


def test_chunked_equals_unchunked():
  rng = np.random.default_rng(2)
  train = rng.normal(size=(64, 8)).astype(np.float32)
  labels = rng.integers(0, 5, 64)
  test = rng.normal(size=(50, 8)).astype(np.float32)
  whole = knn.knn_scores(train, labels, test, num_classes=5, k=10, chunk_size=1024)
  for chunk in (1, 7, 16, 50):
    np.testing.assert_allclose(
        knn.knn_scores(train, labels, test, num_classes=5, k=10, chunk_size=chunk), whole,
        rtol=1e-6, atol=1e-7)


def test_accuracy_for_several_k_matches_single_k_predictions():
  # Overlapping classes, so different k give different accuracies.
  rng = np.random.default_rng(3)
  centers = rng.normal(size=(4, 5)) * 10.0
  train_y = rng.integers(0, 4, 80)
  test_y = rng.integers(0, 4, 30)
  train = centers[train_y] + 12.0 * rng.normal(size=(80, 5))
  test = centers[test_y] + 12.0 * rng.normal(size=(30, 5))
  acc = knn.knn_accuracy(train, train_y, test, test_y, num_classes=4, ks=(20, 1, 5), chunk_size=8)
  assert list(acc) == [20, 1, 5]
  for k, value in acc.items():
    pred = knn.knn_predict(train, train_y, test, num_classes=4, k=k)
    assert value == pytest.approx(np.mean(pred == test_y))


def test_separable_blobs_are_classified_perfectly():
  rng = np.random.default_rng(4)
  centers = rng.normal(size=(5, 16)) * 10.0
  train_y = np.repeat(np.arange(5), 60)
  test_y = rng.integers(0, 5, 100)
  train = centers[train_y] + rng.normal(size=(300, 16))
  test = centers[test_y] + rng.normal(size=(100, 16))
  acc = knn.knn_accuracy(train, train_y, test, test_y, num_classes=5, ks=(20, 200))
  assert acc == {20: 1.0, 200: 1.0}


def test_random_labels_give_chance_accuracy():
  rng = np.random.default_rng(5)
  train = rng.normal(size=(400, 16))
  test = rng.normal(size=(1000, 16))
  acc = knn.knn_accuracy(train, rng.integers(0, 4, 400), test, rng.integers(0, 4, 1000),
                         num_classes=4, ks=(20, 200))
  for value in acc.values():
    assert 0.19 < value < 0.31  # chance is 0.25; 1000 test points give a std of ~0.014


def test_outputs_and_determinism():
  rng = np.random.default_rng(6)
  train = rng.normal(size=(20, 3))
  labels = rng.integers(0, 3, 20)
  test = rng.normal(size=(7, 3))
  pred = knn.knn_predict(train, labels, test, num_classes=3, k=4)
  assert pred.shape == (7,) and pred.dtype == np.int32
  np.testing.assert_array_equal(pred, knn.knn_predict(train, labels, test, num_classes=3, k=4))
  scores = knn.knn_scores(train, labels, test, num_classes=3, k=4)
  np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
  assert np.all(scores >= 0)


def test_errors_name_the_argument():
  rng = np.random.default_rng(7)
  train = rng.normal(size=(10, 3))
  labels = rng.integers(0, 2, 10)
  test = rng.normal(size=(4, 3))
  with pytest.raises(ValueError, match=r"k=11 .*train set size 10"):
    knn.knn_predict(train, labels, test, num_classes=2, k=11)
  with pytest.raises(ValueError, match=r"k=20 .*train set size 10"):
    knn.knn_accuracy(train, labels, test, labels[:4], num_classes=2)
  with pytest.raises(ValueError, match="k must be a positive"):
    knn.knn_predict(train, labels, test, num_classes=2, k=0)
  with pytest.raises(ValueError, match=r"test_features.*\(10, 3\).*\(4, 5\)"):
    knn.knn_predict(train, labels, rng.normal(size=(4, 5)), num_classes=2, k=3)
  with pytest.raises(ValueError, match=r"train_features.*\(10,\)"):
    knn.knn_predict(train[:, 0], labels, test, num_classes=2, k=3)
  with pytest.raises(ValueError, match=r"train_labels.*\[10\].*\(9,\)"):
    knn.knn_predict(train, labels[:9], test, num_classes=2, k=3)
  with pytest.raises(ValueError, match="train_labels.*num_classes=2"):
    knn.knn_predict(train, labels + 1, test, num_classes=2, k=3)
  with pytest.raises(ValueError, match="test_labels"):
    knn.knn_accuracy(train, labels, test, np.array([0, 1, 2, 0]), num_classes=2, ks=(3,))
  bad = test.copy()
  bad[1, 2] = np.nan
  with pytest.raises(ValueError, match="test_features contains NaN"):
    knn.knn_predict(train, labels, bad, num_classes=2, k=3)
  with pytest.raises(ValueError, match="temperature"):
    knn.knn_predict(train, labels, test, num_classes=2, k=3, temperature=0.0)
  with pytest.raises(ValueError, match="chunk_size"):
    knn.knn_predict(train, labels, test, num_classes=2, k=3, chunk_size=0)
