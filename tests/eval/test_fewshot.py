"""Tests of rl.eval.fewshot (big_vision's fewshot_lsr) against a float64 NumPy reference."""
import numpy as np
import pytest

from rl.eval import fewshot


def _reference_weights(x, y, num_classes, l2_reg):
  """Ridge regression as a least-squares problem on the augmented system [X; sqrt(l2) I] W = [Y; 0]."""
  x = np.asarray(x, np.float64)
  z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-5)
  z = np.concatenate([z, np.full((len(z), 1), 100.0)], axis=1)
  targets = np.where(np.arange(num_classes)[None, :] == np.asarray(y)[:, None], 1.0, -1.0)
  a = np.concatenate([z, np.sqrt(l2_reg) * np.eye(z.shape[1])])
  b = np.concatenate([targets, np.zeros((z.shape[1], num_classes))])
  return np.linalg.lstsq(a, b, rcond=None)[0]


def _reference_accuracy(train, train_y, test, test_y, shots, l2_reg, seed, num_repeats, num_classes):
  out = {}
  for s in shots:
    accs = []
    for r in range(num_repeats):
      rng = np.random.default_rng(seed + r)
      perms = [rng.permutation(np.flatnonzero(train_y == c)) for c in range(num_classes)]
      idx = np.concatenate([p[:s] for p in perms])
      w = _reference_weights(train[idx], train_y[idx], num_classes, l2_reg)
      x = train[idx].astype(np.float64)
      z = (test - x.mean(axis=0)) / (x.std(axis=0) + 1e-5)
      scores = np.concatenate([z, np.full((len(z), 1), 100.0)], axis=1) @ w
      accs.append(np.mean(np.argmax(scores, axis=1) == test_y))
    out[s] = float(np.mean(accs))
  return out


def _noisy_data(seed, n_train=120, n_test=60, d=6, num_classes=4, noise=1.5):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, d))
  train_y = np.repeat(np.arange(num_classes), n_train // num_classes)
  test_y = rng.integers(0, num_classes, n_test)
  train = centres[train_y] + noise * rng.normal(size=(len(train_y), d))
  test = centres[test_y] + noise * rng.normal(size=(n_test, d))
  return train.astype(np.float32), train_y, test.astype(np.float32), test_y


@pytest.mark.parametrize("n,d", [(40, 5), (6, 20)])  # primal (n > d) and dual (n < d) branches
def test_ridge_fit_matches_least_squares_reference(n, d):
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(n, d)), rng.integers(0, 3, n)
  for l2_reg in (1e-2, 1.0, 2.0**10):
    weights, mean, std = fewshot._ridge_fit(x, y, num_classes=3, l2_reg=l2_reg)
    np.testing.assert_allclose(weights, _reference_weights(x, y, 3, l2_reg), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    np.testing.assert_allclose(std, x.std(axis=0) + 1e-5)


def test_accuracy_matches_reference():
  train, train_y, test, test_y = _noisy_data(0)
  got = fewshot.fewshot_accuracy(train, train_y, test, test_y, shots=(1, 3, 10), seed=5, num_repeats=2)
  want = _reference_accuracy(train, train_y, test, test_y, (1, 3, 10), 2.0**10, 5, 2, 4)
  assert list(got) == [1, 3, 10]
  for s in want:
    assert got[s] == pytest.approx(want[s], abs=1e-12)
  got = fewshot.fewshot_accuracy(train, train_y, test, test_y, shots=(5,), l2_reg=0.5, seed=0, num_repeats=1)
  assert got[5] == pytest.approx(_reference_accuracy(train, train_y, test, test_y, (5,), 0.5, 0, 1, 4)[5])


def test_separable_classes_give_perfect_accuracy():
  # Each class sits near its own axis, far from the others; one example per class already separates them.
  # (No pure-noise dimensions: whitening with the std of a few shots would blow their noise up to the
  # scale of the signal, as it does in big_vision.)
  rng = np.random.default_rng(3)
  num_classes = d = 5
  train_y = np.repeat(np.arange(num_classes), 12)
  test_y = np.tile(np.arange(num_classes), 10)
  train = 10.0 * np.eye(d)[train_y] + 0.1 * rng.normal(size=(len(train_y), d))
  test = 10.0 * np.eye(d)[test_y] + 0.1 * rng.normal(size=(len(test_y), d))
  got = fewshot.fewshot_accuracy(train, train_y, test, test_y, shots=(1, 5, 10))
  assert got == {1: 1.0, 5: 1.0, 10: 1.0}


def test_deterministic_under_the_seed():
  train, train_y, test, test_y = _noisy_data(1, noise=3.0)
  kwargs = dict(shots=(1, 5), num_repeats=2)
  first = fewshot.fewshot_accuracy(train, train_y, test, test_y, seed=7, **kwargs)
  assert fewshot.fewshot_accuracy(train, train_y, test, test_y, seed=7, **kwargs) == first
  others = [fewshot.fewshot_accuracy(train, train_y, test, test_y, seed=s, **kwargs) for s in (8, 9, 10)]
  assert any(o != first for o in others)  # the seed does pick the examples


def test_class_with_too_few_examples_is_named():
  train, train_y, test, test_y = _noisy_data(2)
  keep = np.ones(len(train_y), bool)
  keep[np.flatnonzero(train_y == 2)[4:]] = False  # class 2 keeps 4 examples
  with pytest.raises(ValueError, match=r"shots=10 needs 10 train examples of every class, but class 2 has 4"):
    fewshot.fewshot_accuracy(train[keep], train_y[keep], test, test_y, shots=(1, 10))
  assert set(fewshot.fewshot_accuracy(train[keep], train_y[keep], test, test_y, shots=(1, 4),
                                      num_repeats=1)) == {1, 4}
  # A class missing from the train set entirely (but present in the test set) is reported with 0.
  keep = train_y != 3
  with pytest.raises(ValueError, match=r"class 3 has 0"):
    fewshot.fewshot_accuracy(train[keep], train_y[keep], test, test_y, shots=(1,))


def test_errors_name_the_argument_and_shapes():
  x, y = np.ones((6, 3)), np.array([0, 0, 1, 1, 2, 2])
  with pytest.raises(ValueError, match=r"test_features must have feature dimension 3.*\(6, 4\)"):
    fewshot.fewshot_accuracy(x, y, np.ones((6, 4)), y, shots=(1,))
  with pytest.raises(ValueError, match=r"train_labels must have shape \[6\].*\(5,\)"):
    fewshot.fewshot_accuracy(x, y[:5], x, y, shots=(1,))
  with pytest.raises(ValueError, match=r"num_classes=2.*label 2"):
    fewshot.fewshot_accuracy(x, y, x, y, shots=(1,), num_classes=2)
  with pytest.raises(ValueError, match="shots must hold positive integers"):
    fewshot.fewshot_accuracy(x, y, x, y, shots=(0,))
  with pytest.raises(ValueError, match="l2_reg must be finite and positive"):
    fewshot.fewshot_accuracy(x, y, x, y, shots=(1,), l2_reg=0.0)
