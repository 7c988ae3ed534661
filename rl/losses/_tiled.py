"""Row-wise log-sum-exp of a similarity matrix that is never materialised (the tiled contrastive losses).

`row_logsumexp(a, k)` is `logsumexp(a @ k.T, axis=1)` computed tile by tile with an online (streaming) log-sum-exp,
as in FlashAttention (Dao et al. 2022, https://arxiv.org/abs/2205.14135) and in the tiled InfoNCE of Inf-CL
(Cheng et al. 2024, https://arxiv.org/abs/2410.17243). A `jax.custom_vjp` saves only the inputs and the per-row
result; the backward pass recomputes each tile, so memory is O((n + m) d + tile^2) instead of O(n m).

With `axis_name` (inside `jax.shard_map` or `jax.pmap`) the columns are the union of every device's `k` block:
the blocks travel around a ring with `lax.ppermute` (D - 1 hops forward), so no device ever holds all of them.
In the backward pass the blocks travel the same ring again, each with an accumulator of its gradient that every
device adds its rows' contribution to; one last hop brings the accumulator home to the block's owner.

The similarity is a plain dot product: callers fold the temperature or logit scale into `a` (autodiff carries
the gradient to it). Matmuls run in the operands' dtype (bfloat16 in, bfloat16 matmul) with float32 accumulation
and float32 statistics.
"""
from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp

# `impl="auto"` picks the tiled form when a device's logits block would have more entries than this
# (2^26 float32 entries = 256 MiB; SimCLR at 4096 pairs on one device, 8192 x 8192, stays plain).
AUTO_MIN_ENTRIES = 2 ** 26
DEFAULT_TILE = 4096
IMPLS = ("plain", "tiled", "auto")


def choose(impl: str, rows: int, cols: int) -> bool:
  """True when `impl` ("plain", "tiled" or "auto") means the tiled form for a [rows, cols] logits block."""
  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}.")
  return impl == "tiled" or (impl == "auto" and rows * cols > AUTO_MIN_ENTRIES)


def check_tile(tile_size) -> int:
  if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
    raise ValueError(f"tile_size must be a positive int; got {tile_size!r}.")
  return tile_size


def matmul_dtype(*xs: jax.Array):
  """bfloat16 when any input is bfloat16 (mixed precision), else float32."""
  return jnp.bfloat16 if any(x.dtype == jnp.bfloat16 for x in xs) else jnp.float32


def _varying_axes(x) -> frozenset:
  """The mesh axes over which `x` is typed as varying inside `jax.shard_map` (empty elsewhere).

  jax 0.10 spells it `typeof(x).manual_axis_type.varying`, earlier releases `typeof(x).vma`."""
  aval = jax.typeof(x)
  manual = getattr(aval, "manual_axis_type", None)
  if manual is not None:
    return frozenset(manual.varying)
  return frozenset(getattr(aval, "vma", None) or ())


def _match_vma(x, ref):
  """`x` typed as varying over the same mesh axes as `ref` under `jax.shard_map(check_vma=True)` (scan carries
  built from constants must match the varying values they are updated with); a no-op elsewhere."""
  missing = tuple(sorted(_varying_axes(ref) - _varying_axes(x)))
  return lax.pcast(x, missing, to="varying") if missing else x


def _pad_rows(x: jax.Array, multiple: int) -> jax.Array:
  extra = -x.shape[0] % multiple
  return jnp.pad(x, ((0, extra), (0, 0))) if extra else x


def _tiles(n: int, m: int, tile: int) -> tuple[int, int]:
  return min(tile, n), min(tile, m)


def _logits(a_blk, k_blk, row0, col0, m, exclude_diag):
  """[tr, tc] float32 logits of one tile, with padded columns (and the diagonal, if asked) set to -inf."""
  s = lax.dot_general(a_blk, k_blk, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
  col = col0 + jnp.arange(k_blk.shape[0])
  invalid = (col >= m)[None, :]
  if exclude_diag is not None:
    row = row0 + jnp.arange(a_blk.shape[0])
    invalid = invalid | (exclude_diag & (col[None, :] == row[:, None]))
  return jnp.where(invalid, -jnp.inf, s)


def _block_stats(a, k, exclude_diag, tile, labels=None):
  """Per-row statistics of s = a @ k.T over one key block, streamed over [tile, tile] tiles: (max, sum of
  exp(s - max), sum of the positives' s, number of positives).

  `exclude_diag`: None, or a traced bool: when true, entry (i, i) is left out (the anchor itself).
  `labels`: None (no positives), or (row labels [n], this block's column labels [m]): entry (i, j) is a positive
  when the labels are equal (and the entry is not left out); its value is read from the same tiles.
  """
  n, d = a.shape
  m = k.shape[0]
  tr, tc = _tiles(n, m, tile)
  a_t = _pad_rows(a, tr).reshape(-1, tr, d)
  k_t = _pad_rows(k, tc).reshape(-1, tc, d)
  rows, cols = labels if labels is not None else (jnp.zeros((n,), jnp.int32), jnp.ones((m,), jnp.int32))
  rows_t = _pad_rows(rows.astype(jnp.int32)[:, None], tr).reshape(-1, tr)
  cols_t = _pad_rows(cols.astype(jnp.int32)[:, None], tc).reshape(-1, tc)  # padded columns are -inf: no match

  def row_block(args):
    i, a_blk, row_lab = args

    def col_step(carry, args):
      mx, se, pos_sum, pos_count = carry
      j, k_blk, col_lab = args
      s = _logits(a_blk, k_blk, i * tr, j * tc, m, exclude_diag)
      new = jnp.maximum(mx, jnp.max(s, axis=1))
      safe = jnp.where(jnp.isfinite(new), new, 0.0)
      se = se * jnp.exp(mx - safe) + jnp.sum(jnp.exp(s - safe[:, None]), axis=1)
      hit = (row_lab[:, None] == col_lab[None, :]) & jnp.isfinite(s)
      pos_sum = pos_sum + jnp.sum(jnp.where(hit, s, 0.0), axis=1)
      pos_count = pos_count + jnp.sum(hit, axis=1).astype(jnp.float32)
      return (new, se, pos_sum, pos_count), None

    zeros = jnp.zeros((tr,), jnp.float32)
    init = (jnp.full((tr,), -jnp.inf, jnp.float32), zeros, zeros, zeros)
    init = jax.tree.map(lambda x: _match_vma(x, a_blk), init)
    stats, _ = lax.scan(col_step, init, (jnp.arange(k_t.shape[0]), k_t, cols_t))
    return stats

  stats = lax.map(row_block, (jnp.arange(a_t.shape[0]), a_t, rows_t))
  return tuple(x.reshape(-1)[:n] for x in stats)


def _merge(stats, new):
  (mx, se, pos_sum, pos_count), (mx2, se2, pos_sum2, pos_count2) = stats, new
  top = jnp.maximum(mx, mx2)
  safe = jnp.where(jnp.isfinite(top), top, 0.0)
  return top, se * jnp.exp(mx - safe) + se2 * jnp.exp(mx2 - safe), pos_sum + pos_sum2, pos_count + pos_count2


def _block_grads(a, k, w_row, lse, exclude_diag, tile):
  """Gradients of sum_i w_i lse_i over one key block: (d/da [n, d], d/dk [m, d]), tile by tile, float32.

  p_ij = exp(s_ij - lse_i) are this block's softmax weights under the GLOBAL row statistics `lse`.
  """
  n, d = a.shape
  m = k.shape[0]
  tr, tc = _tiles(n, m, tile)
  a_t = _pad_rows(a, tr).reshape(-1, tr, d)
  k_t = _pad_rows(k, tc).reshape(-1, tc, d)
  # Padded rows get weight 0 (and lse 0), so they add nothing to dk.
  w_t = _pad_rows(w_row[:, None], tr).reshape(-1, tr)
  lse_t = _pad_rows(lse[:, None], tr).reshape(-1, tr)

  def row_step(dk, args):
    i, a_blk, w_blk, lse_blk = args

    def col_step(da, args):
      j, k_blk = args
      s = _logits(a_blk, k_blk, i * tr, j * tc, m, exclude_diag)
      p = jnp.exp(s - lse_blk[:, None]) * w_blk[:, None]  # [tr, tc]; -inf entries give 0
      pc = p.astype(a_blk.dtype)
      da = da + lax.dot_general(pc, k_blk, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
      dk_blk = lax.dot_general(pc, a_blk, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
      return da, dk_blk

    da0 = _match_vma(jnp.zeros((tr, d), jnp.float32), a_blk)
    da, dk_blks = lax.scan(col_step, da0, (jnp.arange(k_t.shape[0]), k_t))
    return dk + dk_blks, da

  dk0 = _match_vma(jnp.zeros(k_t.shape, jnp.float32), a_t)
  dk, da = lax.scan(row_step, dk0, (jnp.arange(a_t.shape[0]), a_t, w_t, lse_t))
  return da.reshape(-1, d)[:n], dk.reshape(-1, d)[:m]


def _ring(axis_name):
  size = lax.axis_size(axis_name)
  return size, [(i, (i + 1) % size) for i in range(size)]


def _forward(a, k, labels, exclude_self, axis_name, tile):
  own = jnp.asarray(True) if exclude_self else None
  stats = _block_stats(a, k, own, tile, labels)
  if axis_name is not None:
    size, perm = _ring(axis_name)
    no = jnp.asarray(False) if exclude_self else None

    def hop(carry, _):
      stats, block, block_labels = carry
      block, block_labels = lax.ppermute((block, block_labels), axis_name, perm)
      new = _block_stats(a, block, no, tile, None if labels is None else (labels[0], block_labels))
      return (_merge(stats, new), block, block_labels), None

    if size > 1:
      col_labels = jnp.zeros((k.shape[0],), jnp.int32) if labels is None else labels[1]
      (stats, _, _), _ = lax.scan(hop, (stats, k, col_labels), None, length=size - 1)
  mx, se, pos_sum, pos_count = stats
  # lse minus the positives' mean logit, formed before the large row maximum is added back: float32-exact in
  # the small difference when the positive is the row's maximum (the same number, read from the same tile).
  rel = (mx - pos_sum / jnp.maximum(pos_count, 1.0)) + jnp.log(se)
  return mx + jnp.log(se), rel


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _row_lse(a, k, labels, exclude_self, axis_name, tile):
  return _forward(a, k, labels, exclude_self, axis_name, tile)


def _row_lse_fwd(a, k, labels, exclude_self, axis_name, tile):
  lse, rel = _forward(a, k, labels, exclude_self, axis_name, tile)
  return (lse, rel), (a, k, lse)


def _row_lse_bwd(exclude_self, axis_name, tile, res, cotangents):
  # `rel` leaves `row_logsumexp` under stop_gradient: its cotangent is zero and ignored here.
  a, k, lse = res
  g = cotangents[0].astype(jnp.float32)
  own = jnp.asarray(True) if exclude_self else None
  da, dk = _block_grads(a, k, g, lse, own, tile)
  if axis_name is not None:
    size, perm = _ring(axis_name)
    if size > 1:
      no = jnp.asarray(False) if exclude_self else None

      def hop(carry, _):
        da, block, acc = carry
        block, acc = lax.ppermute((block, acc), axis_name, perm)
        da_r, dk_r = _block_grads(a, block, g, lse, no, tile)
        return (da + da_r, block, acc + dk_r), None

      (da, _, dk), _ = lax.scan(hop, (da, k, dk), None, length=size - 1)
      dk = lax.ppermute(dk, axis_name, perm)  # the last hop home: block o's accumulator returns to device o
  return da.astype(a.dtype), dk.astype(k.dtype), None


_row_lse.defvjp(_row_lse_fwd, _row_lse_bwd)


def row_logsumexp(a: jax.Array, k: jax.Array, *, exclude_self: bool = False, axis_name: str | None = None,
                  tile_size: int = DEFAULT_TILE, labels: tuple[jax.Array, jax.Array] | None = None):
  """log sum_j exp(a_i . k_j) for every row i of `a`, without forming a @ k.T (see the module docstring).

  Args:
    a: [n, d] anchors, already scaled (e.g. divided by the temperature); float32 or bfloat16.
    k: [m, d] keys of the same dtype. With `axis_name`, this device's block; the columns are every device's.
    exclude_self: leave out column i of this device's own block for row i (requires n == m): the anchor itself.
    axis_name: None for one block; the mapped axis name inside `jax.shard_map` or `jax.pmap`.
    tile_size: side of the square logits tiles computed at a time.
    labels: optional (row labels [n], column labels [m] of this device's keys), integers, global across devices:
      column j is a positive of row i when their labels are equal (self excluded with `exclude_self`).

  Returns:
    [n] float32 log-sum-exp per row, differentiable in `a` and `k` (custom VJP that recomputes the tiles). With
    `labels`, the pair (lse, rel): rel_i = lse_i - (mean logit of row i's positives), read from the same tiles
    and formed before the row's maximum is added back, under stop_gradient. A contrastive loss's lse - pos is then
    `minus_positive(lse, pos, rel)`: lse - pos in float32 loses a loss that is small against 1 / temperature to
    the rounding of two numbers of that size (1.5e-4 relative for NT-Xent at 256 pairs, d = 128, tau = 0.07).
  """
  if exclude_self and a.shape[0] != k.shape[0]:
    raise ValueError(f"exclude_self needs as many anchors as keys; got a {tuple(a.shape)} and k {tuple(k.shape)}.")
  if labels is not None and (tuple(labels[0].shape) != a.shape[:1] or tuple(labels[1].shape) != k.shape[:1]):
    raise ValueError(f"labels must be ([{a.shape[0]}], [{k.shape[0]}]) arrays; got "
                     f"({tuple(labels[0].shape)}, {tuple(labels[1].shape)}).")
  if axis_name is not None:
    a, k = varying(a, axis_name), varying(k, axis_name)
    if labels is not None:
      labels = tuple(varying(x, axis_name) for x in labels)
  lse, rel = _row_lse(a, k, labels, bool(exclude_self), axis_name, check_tile(tile_size))
  return lse if labels is None else (lse, lax.stop_gradient(rel))


def minus_positive(lse: jax.Array, pos: jax.Array, rel: jax.Array) -> jax.Array:
  """lse - pos per row, with the value of `rel` (from `row_logsumexp(..., labels=...)`) and the gradient of
  lse - pos (`pos`: the positives' mean logit, computed differentiably by the caller)."""
  plain = lse - pos
  return plain + lax.stop_gradient(rel - plain)


def varying(x: jax.Array, axis_name: str) -> jax.Array:
  """Marks `x` as device-varying under `jax.shard_map(check_vma=True)`, so that its cotangent may be too.

  A replicated input (a MoCo queue) used by per-device rows has a per-device gradient; `lax.pcast` makes the
  transpose sum it over devices. A no-op under `jax.pmap` and for inputs that already vary.
  """
  if axis_name in _varying_axes(x):
    return x
  return lax.pcast(x, axis_name, to="varying")


def _block_label_sum(y_rows, y_cols, x, tile):
  """sum_j [y_rows[i] == y_cols[j]] x[j] for every row i, over one block of columns, streamed over tiles."""
  n = y_rows.shape[0]
  m, d = x.shape
  tr, tc = _tiles(n, m, tile)
  yr_t = _pad_rows(y_rows[:, None], tr).reshape(-1, tr)
  yc_t = _pad_rows(y_cols[:, None], tc).reshape(-1, tc)
  x_t = _pad_rows(x, tc).reshape(-1, tc, d)  # padded columns hold zeros: they add nothing

  def row_block(yr):
    def col_step(acc, args):
      yc, xb = args
      mask = (yr[:, None] == yc[None, :]).astype(xb.dtype)
      return acc + lax.dot_general(mask, xb, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32), None

    acc0 = _match_vma(jnp.zeros((tr, d), jnp.float32), x_t)
    acc, _ = lax.scan(col_step, acc0, (yc_t, x_t))
    return acc

  return lax.map(row_block, yr_t).reshape(-1, d)[:n]


def _label_sum_forward(labels, x, axis_name, tile):
  total = _block_label_sum(labels, labels, x, tile)
  if axis_name is not None:
    size, perm = _ring(axis_name)
    if size > 1:
      def hop(carry, _):
        total, block_labels, block = carry
        block_labels, block = lax.ppermute((block_labels, block), axis_name, perm)
        return (total + _block_label_sum(labels, block_labels, block, tile), block_labels, block), None

      (total, _, _), _ = lax.scan(hop, (total, labels, x), None, length=size - 1)
  return total


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _label_sum(labels, x, axis_name, tile):
  return _label_sum_forward(labels, x, axis_name, tile)


def _label_sum_fwd(labels, x, axis_name, tile):
  return _label_sum_forward(labels, x, axis_name, tile), labels


def _label_sum_bwd(axis_name, tile, labels, g):
  # The map is x -> M x with M_ij = [y_i == y_j] over the GLOBAL rows, which are also the global columns: M is
  # symmetric, so the transpose is the same ring pass applied to the cotangent (no gradient needs routing home).
  return None, _label_sum_forward(labels, g.astype(jnp.float32), axis_name, tile)


_label_sum.defvjp(_label_sum_fwd, _label_sum_bwd)


def same_label_sum(labels: jax.Array, x: jax.Array, *, axis_name: str | None = None,
                   tile_size: int = DEFAULT_TILE) -> jax.Array:
  """sum_j [labels_j == labels_i] x_j for every local row i, j over the rows of every device, without the
  [n, N] label-equality matrix: streamed in tiles and, with `axis_name`, around a ring of `ppermute`s.

  Args:
    labels: [n] integer labels of this device's rows.
    x: [n, d] values of the same rows.
    axis_name: None for one device; the mapped axis name inside `jax.shard_map` or `jax.pmap`.
    tile_size: side of the mask tiles.

  Returns:
    [n, d] float32 sums (row i's own x_i included), differentiable in `x`.
  """
  x = x.astype(jnp.float32)
  if axis_name is not None:
    labels, x = varying(labels, axis_name), varying(x, axis_name)
  return _label_sum(labels, x, axis_name, check_tile(tile_size))
