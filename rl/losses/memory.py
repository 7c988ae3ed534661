"""Objectives that keep state across steps: a queue of keys (MoCo), a support set (NNCLR), a memory bank (NPID).

The state (queue, support set, memory bank) is REPLICATED: every device holds the same array and computes the
same new state from the keys/features of all devices (gathered in device order, i.e. global batch order), so it
never needs to be synchronised. The losses read the state under `stop_gradient`; the caller threads it through the
training step (`new_state = update(state, ...)`) and checkpoints it with the parameters.
"""
from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def _check_state(name: str, state, d: int, what: str) -> None:
  _checks.check_array(name, state, ndim=2, shape_doc=f"[{what}, d]")
  if state.shape[1] != d:
    raise ValueError(f"{name} must have shape [{what}, {d}] to match the embeddings of dimension {d}; "
                     f"got shape {tuple(state.shape)}.")


# ----------------------------------------------------------------------------------------------------------------
# Queue (MoCo keys, NNCLR support set)
# ----------------------------------------------------------------------------------------------------------------

def queue_push(queue: jax.Array, ptr: jax.Array, keys: jax.Array, *,
               axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  r"""Writes a batch of keys into a FIFO ring buffer, overwriting the oldest rows.

  With B the global batch size (all devices, gathered in device order) and K the queue length:

  .. math::
      \text{queue}[(\text{ptr} + j) \bmod K] \leftarrow \text{keys}_j \quad (j = 0..B-1), \qquad
      \text{ptr} \leftarrow (\text{ptr} + B) \bmod K .

  B need not divide K (the write wraps around). The keys are stored as given (MoCo and NNCLR push
  L2-normalised embeddings; `moco` and `nearest_neighbor` normalise the queue again, which is harmless) and under
  `stop_gradient`: a queue holds constants.

  Args:
    queue: [K, d] the queue, replicated on every device.
    ptr: int32 scalar, the row where the next key goes (the oldest entry).
    keys: [b, d] this device's keys (the whole batch when `axis_name` is None); cast to `queue.dtype`.
    axis_name: None, or the mapped axis name inside `jax.shard_map` / `jax.pmap`: the keys of every device are
      gathered so that every device writes the same B rows and returns the same queue.

  Returns:
    `(new_queue, new_ptr)`, both replicated.

  Example:
    >>> q, p = queue_push(jnp.zeros((5, 2)), jnp.int32(4), jnp.ones((2, 2)))
    >>> q[:, 0].tolist(), int(p)
    ([1.0, 0.0, 0.0, 0.0, 1.0], 1)

  He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
  https://arxiv.org/abs/1911.05722 (sec. 3.2, the dictionary as a queue).
  """
  _checks.check_array("queue", queue, ndim=2, shape_doc="[K, d]")
  _checks.check_array("keys", keys, ndim=2, shape_doc="[b, d]")
  if keys.shape[1] != queue.shape[1]:
    raise ValueError(f"keys must have shape [b, {queue.shape[1]}] to match queue {tuple(queue.shape)}; "
                     f"got shape {tuple(keys.shape)}.")
  ptr = jnp.asarray(ptr)
  if ptr.shape != () or not jnp.issubdtype(ptr.dtype, jnp.integer):
    raise ValueError(f"ptr must be an integer scalar; got shape {tuple(ptr.shape)} and dtype {ptr.dtype}.")
  queue = jnp.asarray(queue)
  all_keys = _collectives.all_gather_replicated(lax.stop_gradient(keys), axis_name)
  big_b, k = all_keys.shape[0], queue.shape[0]
  if big_b > k:
    raise ValueError(f"the global batch of {big_b} keys does not fit in a queue of {k} rows (need B <= K).")
  ptr = ptr.astype(jnp.int32)
  rows = (ptr + jnp.arange(big_b, dtype=jnp.int32)) % k  # distinct rows since B <= K
  new_queue = queue.at[rows].set(all_keys.astype(queue.dtype), unique_indices=True)
  return new_queue, (ptr + big_b) % k


def moco(q: jax.Array, k: jax.Array, queue: jax.Array, *, temperature: float = 0.2,
         axis_name: str | None = None) -> jax.Array:
  r"""MoCo v1/v2 InfoNCE: the query against its key (positive) and the queue (negatives).

  With u, w, n the L2-normalised queries, keys and queue rows:

  .. math::
      \ell_i = -\log \frac{\exp(u_i^\top w_i / \tau)}
      {\exp(u_i^\top w_i / \tau) + \sum_{j=1}^{K} \exp(u_i^\top n_j / \tau)},
      \qquad L = \frac{1}{B} \sum_{i=1}^{B} \ell_i .

  As in MoCo the negatives are only the queue: keys of the other examples in the batch (on any device) are not
  used. `k` and `queue` are under `stop_gradient` (they come from the momentum encoder), so gradients flow into
  `q` only. The caller keeps the queue and, after the step, pushes the keys: `queue_push(queue, ptr, k)`.

  Args:
    q: [b, d] queries from the online encoder (normalised here).
    k: [b, d] keys from the momentum (EMA) encoder for the same examples; row i is the positive of `q[i]`.
    queue: [K, d] keys of earlier batches, replicated on every device (normalised here).
    temperature: tau > 0; 0.2 is MoCo v2's default, MoCo v1 uses 0.07.
    axis_name: None, or the mapped axis name inside `jax.shard_map` / `jax.pmap`: the value is the mean over the
      global batch (see `_collectives` for the gradient convention).

  Returns:
    The scalar mean loss over the B queries of the global batch (float32 for bfloat16/float32 inputs).

  Example:
    >>> q = jnp.eye(2); queue = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    >>> bool(moco(q, q, queue) < moco(q, q[::-1], queue))
    True

  He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
  https://arxiv.org/abs/1911.05722 (eq. 1); Chen et al., "Improved Baselines with Momentum Contrastive Learning",
  2020, https://arxiv.org/abs/2003.04297 (temperature 0.2).
  """
  _checks.check_embeddings(q=q, k=k)
  _check_state("queue", queue, q.shape[1], "K")
  _checks.check_positive("temperature", temperature)
  q, k, queue = _ops.to_float32(q, lax.stop_gradient(k), lax.stop_gradient(queue))
  u, w, n = l2_normalize(q), l2_normalize(k), l2_normalize(queue)
  pos = jnp.sum(u * w, axis=1, keepdims=True) / temperature  # [b, 1]
  neg = (u @ n.T) / temperature  # [b, K]
  logits = jnp.concatenate([pos, neg], axis=1)
  per_query = jax.nn.logsumexp(logits, axis=1) - pos[:, 0]
  return _collectives.global_mean(jnp.sum(per_query), q.shape[0], axis_name)


# ----------------------------------------------------------------------------------------------------------------
# NNCLR
# ----------------------------------------------------------------------------------------------------------------

def nearest_neighbor_index(z: jax.Array, support: jax.Array) -> jax.Array:
  """Index of the support row with the highest cosine similarity to each row of `z`.

  Args:
    z: [b, d] queries.
    support: [n, d] the support set.

  Returns:
    [b] int32 row indices into `support` (ties go to the lowest index).
  
  Example:
    >>> nearest_neighbor_index(jnp.array([[1.0, 0.1]]), jnp.array([[0.0, 1.0], [2.0, 0.0]])).tolist()
    [1]

  Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of Visual
  Representations", ICCV 2021, https://arxiv.org/abs/2104.14548.
  """
  _checks.check_array("z", z, ndim=2, shape_doc="[b, d]")
  _check_state("support", support, z.shape[1], "n")
  z, support = _ops.to_float32(lax.stop_gradient(z), lax.stop_gradient(support))
  sims = l2_normalize(z) @ l2_normalize(support).T
  return jnp.argmax(sims, axis=1).astype(jnp.int32)


def nearest_neighbor(z: jax.Array, support: jax.Array) -> jax.Array:
  """The L2-normalised support vector nearest (in cosine similarity) to each row of `z`, as a constant.

  NNCLR does not backpropagate through the lookup, so the result is under `stop_gradient`. Use
  `nearest_neighbor_index` for the indices (e.g. to log how often the neighbour shares the label).

  Args:
    z: [b, d] queries (normalised for the comparison).
    support: [n, d] the support set (normalised here).

  Returns:
    [b, d] unit-norm neighbours (float32 for bfloat16/float32 inputs), without gradient.

  Example:
    >>> nearest_neighbor(jnp.array([[0.9, 0.1]]), jnp.array([[0.0, 2.0], [3.0, 0.0]])).tolist()
    [[1.0, 0.0]]

  Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of Visual
  Representations", ICCV 2021, https://arxiv.org/abs/2104.14548 (eq. 1).
  """
  idx = nearest_neighbor_index(z, support)
  unit = l2_normalize(_ops.to_float32(lax.stop_gradient(support)))
  return jnp.take(unit, idx, axis=0)


def _nn_info_nce(nn: jax.Array, p: jax.Array, temperature, axis_name) -> jax.Array:
  """Local sum over this device's anchors of -log softmax_k(nn_i . p_k / T)[i], k over the global batch."""
  b = nn.shape[0]
  p_all = _collectives.all_gather(l2_normalize(p), axis_name)  # negatives from every device
  logits = (nn @ p_all.T) / temperature  # [b, B]
  pos_col = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  pos = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  return jnp.sum(jax.nn.logsumexp(logits, axis=1) - pos)


def nnclr(z1: jax.Array, z2: jax.Array, support: jax.Array, *, p1: jax.Array | None = None,
          p2: jax.Array | None = None, temperature: float = 0.1, axis_name: str | None = None) -> jax.Array:
  r"""NNCLR: InfoNCE with the nearest neighbour of one view in a support set as the positive of the other view.

  With NN(z) the unit support vector nearest to z, and p the L2-normalised predictor outputs (p = z without a
  predictor), the symmetrised loss of the paper's algorithm is

  .. math::
      \ell(a, c)_i = -\log \frac{\exp(\mathrm{NN}(a_i)^\top c_i / \tau)}
      {\sum_{k=1}^{B} \exp(\mathrm{NN}(a_i)^\top c_k / \tau)},
      \qquad L = \frac{1}{2B} \sum_{i=1}^{B} \big[\ell(z^1, p^2)_i + \ell(z^2, p^1)_i\big],

  where k runs over the GLOBAL batch (all devices). The neighbours are constants (`stop_gradient`): gradients
  reach the encoder through `p1, p2` (or `z1, z2` when no predictor outputs are given).

  What the caller passes: `z1, z2` are the projector outputs of the two views (the neighbours are looked up with
  them); `p1, p2` the predictor outputs, when the model has a predictor (the paper's default). The caller keeps the
  support set and after the step pushes the first view's projections: `queue_push(support, ptr, z1n)` with
  `z1n` the L2-normalised `z1`.

  Args:
    z1: [b, d] projections of the first view.
    z2: [b, d] projections of the second view (row i is the same example as `z1[i]`).
    support: [n, d] the support set, replicated on every device (normalised here).
    p1: optional [b, d] predictor outputs of the first view (default `z1`).
    p2: optional [b, d] predictor outputs of the second view (default `z2`).
    temperature: tau > 0 (the paper uses 0.1).
    axis_name: None, or the mapped axis name inside `jax.shard_map` / `jax.pmap`: the negatives come from every
      device and the value is the global mean.

  Returns:
    The scalar loss (float32 for bfloat16/float32 inputs), the same on every device.

  Example:
    >>> z = jnp.eye(3); support = jnp.eye(3)
    >>> bool(nnclr(z, z, support) < nnclr(z, z[::-1], support))
    True

  Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of Visual
  Representations", ICCV 2021, https://arxiv.org/abs/2104.14548 (eq. 2 and Algorithm 1).
  """
  p1 = z1 if p1 is None else p1
  p2 = z2 if p2 is None else p2
  _checks.check_embeddings(z1=z1, z2=z2, p1=p1, p2=p2)
  _checks.check_positive("temperature", temperature)
  nn1, nn2 = nearest_neighbor(z1, support), nearest_neighbor(z2, support)
  p1, p2 = _ops.to_float32(p1, p2)
  local = _nn_info_nce(nn1, p2, temperature, axis_name) + _nn_info_nce(nn2, p1, temperature, axis_name)
  return _collectives.global_mean(local, 2 * z1.shape[0], axis_name)


# ----------------------------------------------------------------------------------------------------------------
# NPID
# ----------------------------------------------------------------------------------------------------------------

def _check_npid(features, indices, memory_bank) -> None:
  _checks.check_array("features", features, ndim=2, shape_doc="[b, d]")
  _checks.check_labels("indices", indices, features.shape[0])
  _check_state("memory_bank", memory_bank, features.shape[1], "N")


def _nce_scores(f, indices, bank, num_negatives, key, temperature, axis_name):
  """Scores v.f/T of each example's own bank row [b] and of its m uniform noise rows [b, m]."""
  n = bank.shape[0]
  rows = jnp.arange(f.shape[0]) + _collectives.axis_index(axis_name) * f.shape[0]
  # One key per GLOBAL example position, so the noise is the same whatever the number of devices.
  draw = lambda r: jax.random.randint(jax.random.fold_in(key, r), (num_negatives,), 0, n)
  noise = jax.vmap(draw)(rows)  # [b, m]
  pos = jnp.sum(f * jnp.take(bank, indices, axis=0), axis=1) / temperature
  neg = jnp.einsum("bd,bmd->bm", f, jnp.take(bank, noise, axis=0)) / temperature
  return pos, neg


def _log_normalizer(neg: jax.Array, n: int, axis_name) -> jax.Array:
  """log Z with Z = N * mean of exp(score) over the noise samples of the global batch (paper eq. 7)."""
  neg = lax.stop_gradient(neg)
  m = _collectives.pmax(jnp.max(neg), axis_name)
  total = _collectives.psum(jnp.sum(jnp.exp(neg - m)), axis_name)
  count = _collectives.psum(neg.size, axis_name)
  return jnp.log(n) + m + jnp.log(total) - jnp.log(count)


def npid_nce_normalizer(features: jax.Array, indices: jax.Array, memory_bank: jax.Array, *,
                        temperature: float = 0.07, num_negatives: int = 4096, key: jax.Array,
                        axis_name: str | None = None) -> jax.Array:
  r"""The Monte-Carlo estimate of NPID's partition function Z from this batch and its noise samples.

  .. math:: Z \approx \frac{N}{B m} \sum_{i=1}^{B} \sum_{k=1}^{m} \exp(v_{j_{ik}}^\top f_i / \tau)

  with the same noise indices `npid` draws for the same `key`. The paper fixes Z once, from the first batch: call
  this at step 0, keep the value in the training state and pass it to `npid(..., nce_normalizer=Z)` thereafter.

  Args: as `npid` (`features` [b, d] normalised here, `indices` [b], `memory_bank` [N, d], `key` a PRNG key).

  Returns:
    Z, a float32 scalar without gradient, the same on every device.

  Example:
    >>> bank = jnp.zeros((10, 2))  # every score is 0, so Z = N * exp(0)
    >>> z = npid_nce_normalizer(jnp.ones((3, 2)), jnp.arange(3), bank, num_negatives=4, key=jax.random.PRNGKey(0))
    >>> round(float(z), 4)
    10.0

  Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018,
  https://arxiv.org/abs/1805.01978 (eq. 7).
  """
  _check_npid(features, indices, memory_bank)
  _checks.check_positive("temperature", temperature)
  _checks.check_positive("num_negatives", num_negatives)
  f = l2_normalize(_ops.to_float32(lax.stop_gradient(features)))
  bank = _ops.to_float32(lax.stop_gradient(memory_bank))
  _, neg = _nce_scores(f, indices, bank, num_negatives, key, temperature, axis_name)
  return jnp.exp(_log_normalizer(neg, bank.shape[0], axis_name))


def npid(features: jax.Array, indices: jax.Array, memory_bank: jax.Array, *, temperature: float = 0.07,
         num_negatives: int | None = None, key: jax.Array | None = None, nce_normalizer=None,
         axis_name: str | None = None) -> jax.Array:
  r"""Non-parametric instance discrimination: each example is its own class, with the memory bank as weights.

  With f the L2-normalised feature of example i and v_j the memory-bank rows (j = 1..N), P(i|f) =
  exp(v_i^T f / tau) / Z. With `num_negatives=None` the loss is the full non-parametric softmax (eq. 2),
  Z = sum_j exp(v_j^T f / tau), and

  .. math:: L = -\frac{1}{B} \sum_i \log P(i \mid f_i).

  With `num_negatives=m` it is NCE (eq. 5-7) against m noise rows j_{ik} drawn uniformly (P_n = 1/N):

  .. math::
      h(i, v) = \frac{P(i \mid v)}{P(i \mid v) + m P_n}, \qquad
      L = \frac{1}{B} \sum_i \Big[-\log h(i, v_i) - \sum_{k=1}^{m} \log\big(1 - h(i, v_{j_{ik}})\big)\Big],

  with Z the constant `nce_normalizer` or, when None, the estimate of `npid_nce_normalizer` on this batch (the
  paper and its code fix Z from the first batch; pass that value back in). Noise for the example at global
  position r (device index * b + row) is drawn with `fold_in(key, r)`, so it does not depend on the device count.

  The bank is read under `stop_gradient` (its rows are expected to be unit vectors, as `memory_bank_update`
  keeps them); the caller keeps it and after the step calls `memory_bank_update(memory_bank, features, indices)`.

  Args:
    features: [b, d] embeddings (normalised here).
    indices: [b] int dataset index of each example (its class and its memory-bank row).
    memory_bank: [N, d] one row per training example, replicated on every device.
    temperature: tau > 0 (paper: 0.07).
    num_negatives: None for the full softmax, or m > 0 for NCE (paper: 4096).
    key: PRNG key for the noise samples (required with `num_negatives`), replicated on every device.
    nce_normalizer: Z for NCE (a positive scalar), or None to estimate it on this batch.
    axis_name: None, or the mapped axis name inside `jax.shard_map` / `jax.pmap` (the value is the global mean).

  Returns:
    The scalar mean loss over the global batch (float32 for bfloat16/float32 inputs).

  Example:
    >>> bank = jnp.eye(3)
    >>> bool(npid(jnp.eye(3), jnp.arange(3), bank) < npid(jnp.eye(3), jnp.array([1, 2, 0]), bank))
    True

  Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018,
  https://arxiv.org/abs/1805.01978.
  """
  _check_npid(features, indices, memory_bank)
  _checks.check_positive("temperature", temperature)
  f = l2_normalize(_ops.to_float32(features))
  bank = _ops.to_float32(lax.stop_gradient(memory_bank))
  n = bank.shape[0]
  if num_negatives is None:
    logits = (f @ bank.T) / temperature  # [b, N]
    pos = jnp.take_along_axis(logits, indices[:, None].astype(jnp.int32), axis=1)[:, 0]
    return _collectives.global_mean(jnp.sum(jax.nn.logsumexp(logits, axis=1) - pos), f.shape[0], axis_name)
  _checks.check_positive("num_negatives", num_negatives)
  if key is None:
    raise ValueError("npid with num_negatives (NCE) needs a PRNG key for the noise samples; got key=None.")
  _checks.check_positive("nce_normalizer", nce_normalizer)
  pos, neg = _nce_scores(f, indices, bank, num_negatives, key, temperature, axis_name)
  if nce_normalizer is None:
    log_z = _log_normalizer(neg, n, axis_name)
  else:
    log_z = jnp.log(lax.stop_gradient(jnp.asarray(nce_normalizer, jnp.float32)))
  log_mpn = jnp.log(num_negatives / n)  # log(m P_n)
  # log h = log P - log(P + m Pn), log(1 - h) = log(m Pn) - log(P + m Pn), with log P = score - log Z.
  log_h_pos = (pos - log_z) - jnp.logaddexp(pos - log_z, log_mpn)
  log_1mh_neg = log_mpn - jnp.logaddexp(neg - log_z, log_mpn)
  per_example = -log_h_pos - jnp.sum(log_1mh_neg, axis=1)
  return _collectives.global_mean(jnp.sum(per_example), f.shape[0], axis_name)


def memory_bank_update(memory_bank: jax.Array, features: jax.Array, indices: jax.Array, *,
                       momentum: float = 0.5, axis_name: str | None = None) -> jax.Array:
  r"""Proximal (momentum) update of the memory-bank rows of the examples in the batch.

  .. math:: v_i \leftarrow \frac{\eta v_i + (1 - \eta) f_i}{\lVert \eta v_i + (1 - \eta) f_i \rVert}

  with f_i the L2-normalised feature and eta the momentum. The features and indices of every device are gathered,
  so every device writes the same rows and returns the same bank. An index that appears several times in the
  global batch gets ONE update with the mean of its (normalised) features, whatever the device count. Other rows
  are unchanged. No gradient flows through the result.

  Args:
    memory_bank: [N, d] the bank, replicated on every device.
    features: [b, d] this device's embeddings (normalised here).
    indices: [b] int dataset index (bank row) of each example.
    momentum: eta in [0, 1) (paper: 0.5; 0 overwrites the rows with the new features).
    axis_name: None, or the mapped axis name inside `jax.shard_map` / `jax.pmap`.

  Returns:
    The new [N, d] bank, in `memory_bank.dtype`.

  Example:
    >>> bank = memory_bank_update(jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([[0.0, 5.0]]), jnp.array([1]))
    >>> [[round(float(x), 4) for x in row] for row in bank]
    [[1.0, 0.0], [0.7071, 0.7071]]

  Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018,
  https://arxiv.org/abs/1805.01978 (sec. 3.4, proximal regularisation).
  """
  _check_npid(features, indices, memory_bank)
  _checks.check_in_range("momentum", momentum, 0.0, 1.0, high_inclusive=False)
  f = l2_normalize(_ops.to_float32(lax.stop_gradient(features)))
  memory_bank = jnp.asarray(memory_bank)
  f = _collectives.all_gather_replicated(f, axis_name)  # [B, d] in global batch order
  idx = _collectives.all_gather_replicated(jnp.asarray(indices).astype(jnp.int32), axis_name)
  # Duplicates: average their features over a [B, B] match matrix (no [N, d] temporary), so that every copy
  # of an index writes the same value and the scatter is deterministic.
  same = (idx[:, None] == idx[None, :]).astype(f.dtype)
  f_mean = (same @ f) / jnp.sum(same, axis=1, keepdims=True)
  old = _ops.to_float32(jnp.take(memory_bank, idx, axis=0))
  new = l2_normalize(momentum * old + (1.0 - momentum) * f_mean)
  return lax.stop_gradient(memory_bank.at[idx].set(new.astype(memory_bank.dtype)))
