"""Image-retrieval evaluation of frozen features: recall@k and mean average precision.

The protocol of Unicom (An et al., ICLR 2023, "Unicom: Universal and Compact Representation Learning for
Image Retrieval", https://arxiv.org/abs/2304.05884), as in its `retrieval.py`: features are
L2-normalised, every query ranks the gallery by cosine similarity (Unicom ranks by Euclidean distance
between unit vectors, the same order), and an item is relevant when it has the query's label. When the
test set is searched against itself (Unicom's CUB, Cars, SOP and iNaturalist setting) the query is
removed from its own ranking; Unicom does this by taking the second nearest neighbour, here the query's
own row is dropped by index, so exact duplicates of a query still count as matches.

* recall@k: share of queries with at least one relevant item among their top k (Unicom's "rank-1" is
  recall@1).
* mAP: mean over queries of the average precision over the whole ranked gallery,
  `AP = (1 / R) * sum_{j : rel_j} precision@j`, with `R` the number of relevant gallery items.

The `[n_query, n_gallery]` similarity matrix is computed and ranked in chunks of query rows (NumPy,
float32 matrix products, int64 sort keys), so memory is `O(chunk_size * n_gallery)`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from rl.eval import _checks



def _check_features(name: str, x, dim: int | None = None) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"{name} must have shape [n, d] with n >= 1; got shape {x.shape}.")
  if dim is not None and x.shape[1] != dim:
    raise ValueError(
        f"{name} must have feature dimension {dim} like query_features; got shape {x.shape}.")
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
  _checks.check_finite(name, x)
  return x


def _check_labels(name: str, y, n: int, features_name: str) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(
        f"{name} must have shape [{n}] to match {features_name}; got shape {y.shape}.")
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class ids; got dtype {y.dtype}.")
  return y.astype(np.int64)


def _normalize(x: np.ndarray) -> np.ndarray:
  return _checks.l2_normalize(x.astype(np.float32))


def _ranking_keys(sim: np.ndarray) -> np.ndarray:
  """int64 keys whose ascending order is the ranking: descending cosine, ties in gallery order.

  The high 32 bits are the order-preserving integer image of `-sim`, the low 32 bits the gallery index
  (unique keys, ties in index order). Sorting them (NumPy's SIMD sort) is several times faster than a
  stable `argsort` of the similarities.
  """
  neg = -sim
  neg += np.float32(0.0)  # -0.0 -> +0.0, so both zeros tie
  bits = neg.view(np.int32)
  # IEEE-754 bits -> int32 with the same order: negative floats have their magnitude bits flipped.
  bits = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
  keys = bits.astype(np.int64) << 32
  keys |= np.arange(sim.shape[1], dtype=np.int64)
  return keys


def retrieval_metrics(query_features: ArrayLike, query_labels: ArrayLike, gallery_features: ArrayLike,
                      gallery_labels: ArrayLike, *, ks: Sequence[int] = (1, 5, 10),
                      exclude_self: bool = False, chunk_size: int = 256) -> dict[str, float]:
  """Recall@k and mAP of cosine-similarity retrieval (the Unicom protocol, An et al. 2023).

  For each query `q`, the gallery is sorted by `cos(q, g_j)`, largest first; `rel_j = [label(g_j) ==
  label(q)]` along that ranking. Then

    recall@k(q) = [sum_{j <= k} rel_j > 0],
    AP(q) = (1 / R) * sum_j rel_j * (sum_{i <= j} rel_i) / j,   R = sum_j rel_j,

  and both are averaged over the queries with `R >= 1` (a query with no relevant gallery item, e.g. a
  singleton class searched against its own set, can be answered by no representation, so it is left
  out rather than scored 0; `num_queries` says how many remain).

  Ties: items with equal similarity are ranked in gallery order (a stable sort), so the metrics are those
  of one fixed, deterministic ranking; they are not averaged over the orders of tied items. Float
  features rarely tie exactly, except for duplicated rows.

  Example:
    >>> z = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]]); y = np.array([0, 0, 1, 1])
    >>> retrieval_metrics(z, y, z, y, ks=(1,), exclude_self=True)
    {'recall_at_1': 1.0, 'map': 1.0, 'num_queries': 4}

  Args:
    query_features: `[n_q, d]` features of the queries.
    query_labels: `[n_q]` integer labels of the queries.
    gallery_features: `[n_g, d]` features of the searched set.
    gallery_labels: `[n_g]` integer labels of the gallery.
    ks: cut-offs of recall@k; each must be at most the ranked gallery size (`n_g`, or `n_g - 1` with
      `exclude_self`).
    exclude_self: the queries are the gallery (row `i` of both is the same example, so `n_q == n_g`):
      drop each query from its own ranking.
    chunk_size: query rows per block of the `[chunk_size, n_g]` similarity matrix.

  Returns:
    A dict with 'recall_at_{k}' for every k in `ks` and 'map' (in `[0, 1]`, Python floats), and
    'num_queries' (the number of queries with at least one relevant gallery item).

  Raises:
    ValueError: naming the argument, on wrong shapes, NaN/inf features, non-integer labels, a k larger
      than the ranked gallery, `exclude_self` with `n_q != n_g`, or when no query has a relevant item.
  """
  query_features = _check_features("query_features", query_features)
  gallery_features = _check_features("gallery_features", gallery_features,
                                     dim=query_features.shape[1])
  n_q, n_g = query_features.shape[0], gallery_features.shape[0]
  query_labels = _check_labels("query_labels", query_labels, n_q, "query_features")
  gallery_labels = _check_labels("gallery_labels", gallery_labels, n_g, "gallery_features")
  if exclude_self and n_q != n_g:
    raise ValueError(
        "exclude_self=True needs the queries to be the gallery (row i of both the same example); got "
        f"query_features of shape {query_features.shape} and gallery_features of shape "
        f"{gallery_features.shape}.")
  n_ranked = n_g - 1 if exclude_self else n_g
  ks = tuple(ks)
  if not ks:
    raise ValueError("ks must name at least one k; got an empty sequence.")
  for k in ks:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_ranked:
      raise ValueError(
          f"ks must hold integers in [1, {n_ranked}] (the ranked gallery size"
          f"{', without the query itself' if exclude_self else ''}); got k={k!r}.")
  if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}.")

  query = _normalize(query_features)
  gallery_t = np.ascontiguousarray(_normalize(gallery_features).T)
  hits = {int(k): 0 for k in ks}
  ap_sum, num_valid = 0.0, 0
  for start in range(0, n_q, chunk_size):
    q = query[start:start + chunk_size]
    rows = np.arange(q.shape[0])
    sim = q @ gallery_t
    relevant = gallery_labels[None, :] == query_labels[start:start + q.shape[0], None]
    if exclude_self:
      # The query's own row ranks last (a -inf cosine) and is not relevant, so it changes no rank.
      sim[rows, start + rows] = -np.inf
      relevant[rows, start + rows] = False
    keys = _ranking_keys(sim)
    relevant_keys = np.where(relevant, keys, np.iinfo(np.int64).max)
    keys.sort(axis=1)
    relevant_keys.sort(axis=1)
    num_relevant = relevant.sum(axis=1)
    for i in np.flatnonzero(num_relevant):
      # 1-based rank of each relevant item, in ranking order; the j-th of them has precision j / rank.
      rank = np.searchsorted(keys[i], relevant_keys[i, :num_relevant[i]]) + 1
      ap_sum += float(np.mean(np.arange(1, num_relevant[i] + 1) / rank))
      for k in hits:
        hits[k] += int(rank[0] <= k)
    num_valid += int(np.count_nonzero(num_relevant))
  if num_valid == 0:
    raise ValueError(
        "No query has a relevant gallery item (a gallery item with its label"
        f"{', other than itself' if exclude_self else ''}); query_labels and gallery_labels share no "
        "class, so recall and mAP are undefined.")
  out = {f"recall_at_{k}": hits[int(k)] / num_valid for k in ks}
  out["map"] = ap_sum / num_valid
  out["num_queries"] = num_valid
  return out
