"""Slide-level pathology pre-training: COBRA's views of a whole-slide image in feature space.

COBRA trains a slide encoder with MoCo v3 (`rl.losses.info_nce`, symmetric, tau = 0.2) on tile embeddings that
several pathology foundation models have already extracted at several magnifications. Its two views of a slide are
two of these feature sets drawn at random (so the views differ in foundation model and/or magnification), each
reduced to a fixed number of tiles: a random subset when the slide has enough tiles, otherwise every tile repeated
in random order plus a random remainder, and zero-padded to a common feature width.

- `cobra_pad_or_sample`: one feature set -> a fixed-size tile set;
- `cobra_views`: the two views of one slide from its stacked feature sets.

Both are pure and jittable (`jax.vmap` them over slides with split keys). The paper's method section was not in our
stored copies, so this follows the authors' released code (github.com/KatherLab/COBRA, `cobra/ssl/data.py`
`FeatDataset.__getitem__` and `pad_or_sample`, `cobra/ssl/pretrain.py`, `cobra/config/cobra.yml`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rl.losses import _checks



def _check_static_positive_int(name: str, value) -> None:
  if not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive int (static); got {value!r}.")


def _check_num_tiles_value(num_tiles, n_max: int) -> None:
  if isinstance(num_tiles, (int, np.integer)) and not 1 <= num_tiles <= n_max:
    raise ValueError(f"num_tiles must be in [1, {n_max}] (the rows of features); got {num_tiles}.")


def cobra_pad_or_sample(key: jax.Array, features: jax.Array, num_tiles, *, num_feats: int = 1024,
                        feat_len: int = 1536) -> jax.Array:
  r"""COBRA's fixed-size tile set of one slide: sample without repeats, or repeat every tile, then zero-pad.

  With L valid tiles and N = `num_feats` output rows:

  - L >= N: the first N tiles of a random permutation (N distinct tiles);
  - L < N: R + 1 blocks, each a fresh random permutation of all L tiles, with R = (N - L) // L, followed by
    r = (N - L) mod L rows drawn without replacement from those (R + 1) L rows (so every tile appears R + 1 times
    in the blocks and up to min(R + 1, r) more times in the remainder).

  The rows are then zero-padded on the right from the feature width k to `feat_len` (foundation models differ in
  width: 768 to 1536 in the released configuration).

  .. math::
      V = \big[\, F_{\pi(1)}, \dots, F_{\pi(N)} \,\big] \oplus 0_{N \times (K - k)},

  with F the valid tiles and :math:`\pi` the index sequence above.

  Source: after the authors' code, `FeatDataset.pad_or_sample` (KatherLab/COBRA, cobra/ssl/data.py); the
  default `num_feats=1024` is the released pre-training configuration's `nr_feats` (cobra/config/cobra.yml; the
  class default is 600) and `feat_len=1536` is what cobra/ssl/pretrain.py passes.

  Args:
    key: a `jax.random` key.
    features: [n_max, k] tile embeddings of one slide from one foundation model, the valid tiles first (rows
      at and after `num_tiles` are padding and never drawn).
    num_tiles: L in [1, n_max], the number of valid tiles (an int or a traced integer scalar).
    num_feats: N, the number of tiles of the output (static).
    feat_len: K >= k, the feature width of the output (static).

  Returns:
    The [num_feats, feat_len] tile set, in the dtype of `features`.

  Example:
    >>> f = jnp.arange(3.0)[:, None] + jnp.zeros((3, 2))  # 3 tiles, tile i filled with i
    >>> v = cobra_pad_or_sample(jax.random.PRNGKey(0), f, 3, num_feats=7, feat_len=4)
    >>> counts = jnp.bincount(v[:, 0].astype(jnp.int32), length=3)  # every tile twice, one of them three times
    >>> v.shape, sorted(counts.tolist()), float(abs(v[:, 2:]).sum())
    ((7, 4), [2, 2, 3], 0.0)

  Lenz et al., "Unsupervised Foundation Model-Agnostic Slide-Level Representation Learning", CVPR 2025,
  https://arxiv.org/abs/2411.13623; code github.com/KatherLab/COBRA.
  """
  _checks.check_array("features", features, ndim=2, shape_doc="[n_max, k]")
  _check_static_positive_int("num_feats", num_feats)
  _check_static_positive_int("feat_len", feat_len)
  n_max, k = features.shape
  if k > feat_len:
    raise ValueError(f"feat_len must be >= the feature width k of features, [n_max, k]; got feat_len = {feat_len} "
                     f"and shape {tuple(features.shape)}.")
  if not hasattr(num_tiles, "shape"):
    _check_num_tiles_value(num_tiles, n_max)
  elif num_tiles.shape != () or not jnp.issubdtype(num_tiles.dtype, jnp.integer):
    raise ValueError(f"num_tiles must be an integer scalar; got shape {tuple(num_tiles.shape)} and dtype "
                     f"{num_tiles.dtype}.")
  n = num_feats
  length = jnp.clip(jnp.asarray(num_tiles, jnp.int32), 1, n_max)
  k_first, k_blocks, k_rest = jax.random.split(key, 3)

  # L >= N: a random permutation of the valid rows, first N kept.
  rows = jnp.arange(n_max)
  first = jnp.argsort(jnp.where(rows < length, jax.random.uniform(k_first, (n_max,)), jnp.inf))
  first = jnp.pad(first, (0, max(n - n_max, 0)))[:n]

  # L < N: virtual rows v = block * L + position; ordering by (block, random score) gives each block a fresh
  # uniform permutation of the L tiles.
  v = jnp.arange(n)
  block = v // length
  order = jnp.lexsort((jax.random.uniform(k_blocks, (n,)), block))
  tile_of_row = order - block * length  # tile at virtual row v (valid for the full blocks)
  full = n - (n - length) % length  # (R + 1) L rows of whole blocks
  rest = jnp.argsort(jnp.where(v < full, jax.random.uniform(k_rest, (n,)), jnp.inf))  # without replacement
  rest_row = rest[jnp.clip(v - full, 0, n - 1)]
  repeated = jnp.where(v < full, tile_of_row, tile_of_row[rest_row])

  index = jnp.where(length >= n, first, repeated)
  out = jnp.take(features, index, axis=0)
  return jnp.pad(out, ((0, 0), (0, feat_len - k)))


def cobra_views(key: jax.Array, feature_sets: jax.Array, num_tiles: jax.Array, *, num_sets=None,
                num_feats: int = 1024, feat_len: int = 1536) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""COBRA's two views of one slide: two feature sets drawn at random, each made a fixed-size tile set.

  .. math::
      i, j \sim \mathcal{U}\{0, \dots, S - 1\} \text{ (independently)}, \qquad
      V_1 = \mathrm{pad\_or\_sample}(F^{(i)}), \quad V_2 = \mathrm{pad\_or\_sample}(F^{(j)}),

  with :math:`F^{(s)}` the slide's s-th feature set (one foundation model at one magnification). As in the code,
  i and j are drawn independently, so both views may come from the same set (then they differ only in the tiles
  drawn). Feed the views to the slide encoder and its momentum copy, and the embeddings to MoCo v3's symmetric
  `rl.losses.info_nce` (tau = `moco_t` = 0.2 in the released configuration).

  Source: after the authors' code, `FeatDataset.__getitem__` (KatherLab/COBRA, cobra/ssl/data.py: two
  `np.random.randint(0, len(self.pat_dict[pat]))` file indices, each set through `pad_or_sample`; the sets of a
  slide are its feature files over the configured foundation models and magnifications, `get_pat_dict`). The
  code also returns each set's original feature width: look it up with the returned indices.

  Args:
    key: a `jax.random` key.
    feature_sets: [s, n_max, k] the slide's feature sets, each zero-padded to n_max tiles and to the widest
      width k (valid tiles first).
    num_tiles: [s] integer, the number of valid tiles of each set.
    num_sets: how many of the s sets are real (the first ones), an int or a traced integer scalar; None: all s.
    num_feats: N, the number of tiles of each view (static).
    feat_len: K >= k, the feature width of each view (static).

  Returns:
    `(view1, view2, sets)`: two [num_feats, feat_len] views and the [2] int32 indices of the sets they came from.

  Example:
    >>> sets = jnp.stack([jnp.zeros((5, 3)), jnp.ones((5, 3))])  # two models' features of one slide
    >>> v1, v2, idx = cobra_views(jax.random.PRNGKey(1), sets, jnp.array([5, 4]), num_feats=8, feat_len=4)
    >>> v1.shape, v2.shape, idx.shape
    ((8, 4), (8, 4), (2,))

  Lenz et al., "Unsupervised Foundation Model-Agnostic Slide-Level Representation Learning", CVPR 2025,
  https://arxiv.org/abs/2411.13623; code github.com/KatherLab/COBRA.
  """
  _checks.check_array("feature_sets", feature_sets, ndim=3, shape_doc="[s, n_max, k]")
  s, n_max, _ = feature_sets.shape
  if not hasattr(num_tiles, "shape") or tuple(num_tiles.shape) != (s,):
    raise ValueError(f"num_tiles must have shape [{s}] (one count per set of feature_sets, [s, n_max, k]); got "
                     f"{tuple(getattr(num_tiles, 'shape', ())) or type(num_tiles).__name__}.")
  if not jnp.issubdtype(num_tiles.dtype, jnp.integer):
    raise ValueError(f"num_tiles must be an integer array; got dtype {num_tiles.dtype}.")
  if num_sets is None:
    num_sets = s
  if isinstance(num_sets, (int, np.integer)) and not 1 <= num_sets <= s:
    raise ValueError(f"num_sets must be in [1, {s}] (the sets of feature_sets); got {num_sets}.")
  k_sets, k1, k2 = jax.random.split(key, 3)
  sets = jax.random.randint(k_sets, (2,), 0, num_sets, dtype=jnp.int32)
  feature_sets, num_tiles = jnp.asarray(feature_sets), jnp.asarray(num_tiles)
  view1 = cobra_pad_or_sample(k1, feature_sets[sets[0]], num_tiles[sets[0]], num_feats=num_feats,
                              feat_len=feat_len)
  view2 = cobra_pad_or_sample(k2, feature_sets[sets[1]], num_tiles[sets[1]], num_feats=num_feats,
                              feat_len=feat_len)
  return view1, view2, sets

