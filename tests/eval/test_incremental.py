"""Tests of rl.eval.incremental: the class-subset probe, the stability/plasticity deltas and linear CKA."""
import numpy as np
import pytest

from rl.eval import incremental


def _toy():
  """Classes 0-3 sit at the corners of a square (separable); classes 4 and 5 share one point (inseparable).

  The test set holds 3 examples of class 4 and 1 of class 5.
  """
  rng = np.random.default_rng(0)
  corners = np.array([[5.0, 5.0], [5.0, -5.0], [-5.0, 5.0], [-5.0, -5.0]])
  train_y = np.repeat(np.arange(6), 20)
  train_x = np.concatenate([corners[train_y[:80]] + 0.1 * rng.normal(size=(80, 2)), np.ones((40, 2))])
  test_y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 5])
  test_x = np.concatenate([corners[test_y[:8]], np.ones((4, 2))])
  return train_x.astype(np.float32), train_y, test_x.astype(np.float32), test_y


def test_subset_probe_hand_checked():
  train_x, train_y, test_x, test_y = _toy()
  out = incremental.class_subset_probe(train_x, train_y, test_x, test_y, classes=(3, 0, 2, 1))
  assert out["accuracy"] == 1.0
  assert (out["num_train"], out["num_test"], out["classes"]) == (80, 8, [0, 1, 2, 3])
  # Classes 4 and 5 have identical features and balanced train counts: the weights and the (unpenalised) bias
  # stay at zero, the tie goes to the first class (4), which is 3 of the 4 test examples.
  out = incremental.class_subset_probe(train_x, train_y, test_x, test_y, classes=(4, 5))
  assert out["accuracy"] == 0.75
  assert (out["num_train"], out["num_test"]) == (40, 4)


def test_subset_probe_ignores_other_classes():
  train_x, train_y, test_x, test_y = _toy()
  keep_train, keep_test = np.isin(train_y, (0, 1)), np.isin(test_y, (0, 1))
  full = incremental.class_subset_probe(train_x, train_y, test_x, test_y, classes=(0, 1))
  alone = incremental.class_subset_probe(train_x[keep_train], train_y[keep_train], test_x[keep_test],
                                         test_y[keep_test], classes=(0, 1))
  assert full == alone


def test_old_new_accuracies_and_deltas():
  train_x, train_y, test_x, test_y = _toy()
  acc = incremental.old_new_accuracies(train_x, train_y, test_x, test_y, old=(0, 1, 2, 3), new=(4, 5))
  assert acc == {"old": 1.0, "new": 0.75}
  deltas = incremental.stability_plasticity({"old": 0.5, "new": 0.25}, {"old": 0.75, "new": 0.5},
                                            {"old": 0.625, "new": 1.0})
  assert deltas == {"stability": -0.125, "plasticity": 0.5, "plasticity_vs_random": 0.75,
                    "forward_transfer": 0.25}


def test_linear_cka():
  # One-dimensional features: CKA is the squared correlation. x = [1, 2, 3], y = [1, 3, 2]: centred, sum(xy) = 1,
  # sum(x^2) = sum(y^2) = 2, so CKA = 1 / 4.
  assert incremental.linear_cka([[1.0], [2.0], [3.0]], [[1.0], [3.0], [2.0]]) == pytest.approx(0.25)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(50, 6))
  q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  assert incremental.linear_cka(x, x) == pytest.approx(1.0)
  assert incremental.linear_cka(x, 3.0 * x @ q + 7.0) == pytest.approx(1.0)  # rotation, scale, shift
  assert incremental.linear_cka(x, rng.normal(size=(50, 4))) < 0.5


def test_errors_name_the_argument():
  train_x, train_y, test_x, test_y = _toy()
  with pytest.raises(ValueError, match=r"classes must be a sequence of at least 2"):
    incremental.class_subset_probe(train_x, train_y, test_x, test_y, classes=(1,))
  with pytest.raises(ValueError, match=r"classes must hold distinct"):
    incremental.class_subset_probe(train_x, train_y, test_x, test_y, classes=(1, 1))
  with pytest.raises(ValueError, match=r"no train example of class\(es\) \[7\]"):
    incremental.class_subset_probe(train_x, train_y, test_x, test_y, classes=(1, 7))
  with pytest.raises(ValueError, match=r"no test example"):
    incremental.class_subset_probe(train_x, train_y, test_x[:4], test_y[:4], classes=(4, 5))
  with pytest.raises(ValueError, match=r"old and new must be disjoint; both hold \[3\]"):
    incremental.old_new_accuracies(train_x, train_y, test_x, test_y, old=(0, 3), new=(3, 4))
  with pytest.raises(ValueError, match=r"after must have the keys"):
    incremental.stability_plasticity({"old": 0, "new": 0}, {"old": 0, "new": 0}, {"old": 0})
  with pytest.raises(ValueError, match=r"same n"):
    incremental.linear_cka(np.ones((3, 2)), np.ones((4, 2)))
  with pytest.raises(ValueError, match=r"constant"):
    incremental.linear_cka(np.ones((3, 2)), np.arange(6.0).reshape(3, 2))
