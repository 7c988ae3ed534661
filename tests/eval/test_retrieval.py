"""Tests of rl.eval.retrieval against a float64 brute force of recall@k and average precision."""
import numpy as np
import pytest

from rl.eval import retrieval


def _reference(query, query_labels, gallery, gallery_labels, ks, exclude_self):
  """Per query: float64 cosines, a full sort, AP summed position by position from its definition."""
  query = np.asarray(query, np.float64)
  gallery = np.asarray(gallery, np.float64)
  query = query / np.linalg.norm(query, axis=1, keepdims=True)
  gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  recalls = {k: [] for k in ks}
  aps = []
  for i in range(len(query)):
    candidates = [j for j in range(len(gallery)) if not (exclude_self and j == i)]
    sims = [float(query[i] @ gallery[j]) for j in candidates]
    ranked = [candidates[t] for t in sorted(range(len(candidates)), key=lambda t: -sims[t])]
    relevant = [gallery_labels[j] == query_labels[i] for j in ranked]
    if not any(relevant):
      continue
    for k in ks:
      recalls[k].append(float(any(relevant[:k])))
    found, total = 0, 0.0
    for position, is_rel in enumerate(relevant, start=1):
      if is_rel:
        found += 1
        total += found / position
    aps.append(total / sum(relevant))
  out = {f"recall_at_{k}": float(np.mean(v)) for k, v in recalls.items()}
  out["map"] = float(np.mean(aps))
  out["num_queries"] = len(aps)
  return out


def _assert_matches(got, want):
  assert set(got) == set(want)
  assert got["num_queries"] == want["num_queries"]
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("chunk_size", [1, 4, 256])
def test_query_vs_gallery_matches_brute_force(chunk_size):
  rng = np.random.default_rng(0)
  query, gallery = rng.normal(size=(13, 5)), rng.normal(size=(37, 5))
  query_labels, gallery_labels = rng.integers(0, 4, 13), rng.integers(0, 4, 37)
  got = retrieval.retrieval_metrics(query, query_labels, gallery, gallery_labels, ks=(1, 3, 10),
                                    chunk_size=chunk_size)
  _assert_matches(got, _reference(query, query_labels, gallery, gallery_labels, (1, 3, 10), False))


@pytest.mark.parametrize("chunk_size", [3, 1000])
def test_set_against_itself_excludes_each_query(chunk_size):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(30, 6)).astype(np.float32)
  labels = rng.integers(0, 5, 30)
  got = retrieval.retrieval_metrics(x, labels, x, labels, ks=(1, 5, 10), exclude_self=True,
                                    chunk_size=chunk_size)
  _assert_matches(got, _reference(x, labels, x, labels, (1, 5, 10), True))
  # Without the exclusion every query finds itself first.
  assert retrieval.retrieval_metrics(x, labels, x, labels, ks=(1,))["recall_at_1"] == 1.0


def test_hand_case():
  # Gallery on the unit circle at 10, 20, 30 and 90 degrees with labels 0, 1, 0, 0.
  angles = np.deg2rad([10.0, 20.0, 30.0, 90.0])
  gallery = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  gallery_labels = np.array([0, 1, 0, 0])
  query = np.array([[2.0, 0.0], [0.0, 3.0]])  # at 0 degrees (label 0) and 90 degrees (label 1)
  query_labels = np.array([0, 1])
  # Query 0 ranks 10, 20, 30, 90: relevance 1, 0, 1, 1 -> AP = (1/1 + 2/3 + 3/4) / 3.
  # Query 1 ranks 90, 30, 20, 10: relevance 0, 0, 1, 0 -> AP = (1/3) / 1; first hit at rank 3.
  got = retrieval.retrieval_metrics(query, query_labels, gallery, gallery_labels, ks=(1, 2, 3))
  ap0, ap1 = (1.0 + 2.0 / 3.0 + 3.0 / 4.0) / 3.0, 1.0 / 3.0
  assert got["recall_at_1"] == 0.5 and got["recall_at_2"] == 0.5 and got["recall_at_3"] == 1.0
  np.testing.assert_allclose(got["map"], 0.5 * (ap0 + ap1), rtol=1e-6)
  assert got["num_queries"] == 2


def test_duplicate_of_a_query_still_counts_with_exclude_self():
  # Rows 0 and 1 are the same point; only the query's own row is dropped, so each finds its twin.
  x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
  labels = np.array([0, 0, 1, 1])
  got = retrieval.retrieval_metrics(x, labels, x, labels, ks=(1,), exclude_self=True)
  assert got == {"recall_at_1": 1.0, "map": 1.0, "num_queries": 4}


def test_ties_are_ranked_in_gallery_order():
  query = np.array([[1.0, 0.0]])
  gallery = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 tie
  first_relevant = retrieval.retrieval_metrics(query, [0], gallery, [0, 1, 0], ks=(1,))
  second_relevant = retrieval.retrieval_metrics(query, [0], gallery, [1, 0, 0], ks=(1,))
  assert first_relevant["recall_at_1"] == 1.0 and second_relevant["recall_at_1"] == 0.0
  np.testing.assert_allclose(first_relevant["map"], (1.0 + 2.0 / 3.0) / 2.0)
  np.testing.assert_allclose(second_relevant["map"], (1.0 / 2.0 + 2.0 / 3.0) / 2.0)


def test_ranking_keys_order_by_descending_similarity_then_index():
  sim = np.array([[0.5, -0.0, 0.0, -0.5, 0.5, -np.inf, 1.0, -1e-30]], np.float32)
  order = np.argsort(retrieval._ranking_keys(sim), axis=1)
  np.testing.assert_array_equal(order, [[6, 0, 4, 1, 2, 7, 3, 5]])


def test_queries_without_a_match_are_left_out():
  gallery = np.eye(3)
  got = retrieval.retrieval_metrics(np.eye(3), [0, 1, 7], gallery, [0, 1, 2], ks=(1,))
  assert got == {"recall_at_1": 1.0, "map": 1.0, "num_queries": 2}
  with pytest.raises(ValueError, match="No query has a relevant gallery item"):
    retrieval.retrieval_metrics(np.eye(3), [5, 6, 7], gallery, [0, 1, 2], ks=(1,))


def test_errors_name_the_argument_and_shapes():
  x, y = np.ones((4, 3)), np.zeros(4, np.int32)
  with pytest.raises(ValueError, match=r"gallery_features must have feature dimension 3.*\(5, 2\)"):
    retrieval.retrieval_metrics(x, y, np.ones((5, 2)), np.zeros(5, np.int32))
  with pytest.raises(ValueError, match=r"query_labels must have shape \[4\].*\(3,\)"):
    retrieval.retrieval_metrics(x, y[:3], x, y, ks=(1,))
  with pytest.raises(ValueError, match=r"exclude_self=True.*\(4, 3\).*\(5, 3\)"):
    retrieval.retrieval_metrics(x, y, np.ones((5, 3)), np.zeros(5, np.int32), ks=(1,), exclude_self=True)
  with pytest.raises(ValueError, match=r"ks must hold integers in \[1, 3\].*k=4"):
    retrieval.retrieval_metrics(x, y, x, y, ks=(1, 4), exclude_self=True)
  with pytest.raises(ValueError, match="query_features contains NaN"):
    retrieval.retrieval_metrics(np.full((4, 3), np.nan), y, x, y, ks=(1,))
  with pytest.raises(ValueError, match="gallery_labels must hold integer"):
    retrieval.retrieval_metrics(x, y, x, y.astype(np.float32), ks=(1,))
