"""Shared machinery of the cluster-discrimination methods (Unicom, MLCD): online pseudo-labels from a feature bank.

In both papers the labels come from k-means over features of a pretrained model (CLIP) computed OFFLINE over the
whole dataset (LAION-400M into one million clusters); the network then trains a margin softmax on those fixed
labels with learned class centres. Our `Method` protocol only sees batches, so this module does it ONLINE, in the
manner of DeepCluster (Caron et al., "Deep Clustering for Unsupervised Learning of Visual Features", ECCV 2018,
https://arxiv.org/abs/1807.05520), on the network's own features:

- `method_state['bank']` [N, d] (N = `config.num_train_examples`) holds the stop-gradient, L2-normalised
  PROJECTOR outputs of the first view (the space of the prototypes), written at `batch['index']` by
  `rl.losses.memory_bank_update` (momentum `bank_momentum`; 0 overwrites). The bank starts at ZERO rows, which
  mean "not seen yet": the first write of a row is then exactly the normalised feature, whatever the momentum, and
  unseen rows carry no weight in k-means.
- `method_state['labels']` holds each example's pseudo-label(s): [N] int32 (Unicom) or [N, k] int32, the k
  nearest clusters (MLCD). `method_state['centroids']` [C, d] are the centroids of the last clustering.
- Every `recluster_every` steps (after steps recluster_every-1, 2*recluster_every-1, ... counted from 0; default
  one epoch, ceil(N / batch_size) steps) `update_after_step` re-clusters the bank with spherical k-means (Lloyd
  iterations, `lloyd`) INITIALISED FROM THE CURRENT LEARNED PROTOTYPES (normalised), so that cluster c stays the
  class of prototype c (the optimizer owns the prototypes, the method cannot reset them as DeepCluster resets its
  classifier), then re-assigns the labels (nearest centroid, or the top k with `rl.losses.assign_topk`). A
  cluster that becomes empty is re-seeded with a random bank row (DeepCluster's rule against the trivial solution
  where a few clusters take every example; without it, 128 clusters on mnist1d fell to 20 within 200 steps); its
  id then names a new cluster, which its prototype learns. The bank and the prototypes are replicated, so the
  re-clustering gives the same result on every device. The step runs under `lax.cond`: nothing is computed at
  other steps.
- Before the FIRST clustering there are no labels: the loss is multiplied by 0 (no gradient; BatchNorm statistics
  and the bank still update), so the first epoch fills the bank with features of the (random-initialised, since
  nothing trains) network. The first clustering starts from K distinct random SEEN bank rows (Forgy
  initialisation, key from `config.seed` and the step) rather than from the untrained random prototypes, which
  would leave most clusters empty; later clusterings start from the prototypes. Rows still unseen at a clustering
  (e.g. dropped by the last incomplete batch of an epoch) are assigned like the zero vector (cluster 0, or clusters
  0..k-1), until the next clustering after they are seen.

The prototypes are a plain parameter `params['prototypes']` [C, d] (replicated, like every parameter). The margin
losses of `rl.losses.margin` shard the classes over devices (Partial FC): with `axis_name`, device r passes its
slice of C / num_devices rows, so C must be a multiple of the device count; the gradient of the full matrix is
the sum of the per-device slice gradients, which `shard_map` builds from the replicated parameter.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
from jax import lax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view

# objective(z [2b, d], labels [2b] or [2b, k], local prototypes [C_local, d], key, axis_name) -> scalar loss.
Objective = Callable[..., jax.Array]


def _normalize(x: jax.Array) -> jax.Array:
  return losses.l2_normalize(x.astype(jnp.float32))


def lloyd(points: jax.Array, init: jax.Array, *, iters: int, weights: jax.Array | None = None,
          key: jax.Array | None = None) -> jax.Array:
  r"""Spherical k-means (Lloyd iterations on the unit sphere) from GIVEN initial centroids.

  `rl.losses.spherical_kmeans` draws its initial centroids from the data; here the start is given, so that the
  cluster ids stay those of `init` (the learned prototypes). With u_i = points_i / ||points_i|| and weights w_i:

  .. math:: a_i = \arg\max_c u_i^\top c_c, \qquad
            c_c \leftarrow \frac{\sum_{i: a_i = c} w_i u_i}{\|\sum_{i: a_i = c} w_i u_i\|}

  A cluster with no weight keeps its previous centroid, or, with `key`, is RE-SEEDED with a random point (drawn
  with probability proportional to w_i, so mostly from the big clusters, which it splits): DeepCluster's rule
  against empty clusters (Caron et al. 2018, sec. 3.3, with a data point instead of a perturbed centroid). Each
  iteration draws C distinct points, so two empty clusters never get the same one. Zero rows of `points` stay
  zero after normalisation.

  Args:
    points: [n, d] points (normalised here), n >= C when `key` is given.
    init: [C, d] initial centroids (normalised here).
    iters: number of iterations (>= 0; 0 returns the normalised `init`).
    weights: optional [n] non-negative point weights (0 excludes a point); default all ones.
    key: optional PRNG key for re-seeding empty clusters (None: they keep their centroid).

  Returns:
    The [C, d] float32 centroids.

  Example:
    >>> points = jnp.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])  # two clusters on the circle
    >>> np.asarray(lloyd(points, jnp.array([[1.0, 1.0], [-1.0, 1.0]]), iters=3)).round(3)
    array([[1., 0.],
           [0., 1.]], dtype=float32)
  """
  x = _normalize(points)
  w = jnp.ones(x.shape[:1], jnp.float32) if weights is None else weights.astype(jnp.float32)
  num_c = init.shape[0]

  def step(i, c):
    a = jnp.argmax(x @ c.T, axis=1)
    sums = jax.ops.segment_sum(x * w[:, None], a, num_segments=num_c)
    mass = jax.ops.segment_sum(w, a, num_segments=num_c)
    keep = c
    if key is not None:
      scores = jnp.where(w > 0, jnp.log(jnp.maximum(w, 1e-30)) + jax.random.gumbel(jax.random.fold_in(key, i),
                                                                                     w.shape), -jnp.inf)
      keep = x[lax.top_k(scores, num_c)[1]]
    return jnp.where((mass > 0)[:, None], _normalize(sums), keep)

  return lax.fori_loop(0, iters, step, _normalize(init))


def recluster_keys(seed: int, step) -> tuple[jax.Array, jax.Array]:
  """(Forgy key of the first clustering, re-seeding key of the Lloyd iterations) of the clustering after `step`.

  Example:
    >>> forgy, reseed = recluster_keys(0, 9)  # the same on every device and every run with seed 0
    >>> bool((jax.random.key_data(forgy) == jax.random.key_data(recluster_keys(0, 9)[0])).all())
    True
  """
  key = jax.random.fold_in(jax.random.key(seed), step)
  return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def assign(points: jax.Array, centroids: jax.Array, topk: int | None) -> jax.Array:
  """Labels of `points`: the nearest centroid [n] (topk None) or the `topk` nearest [n, topk] (cosine), int32.

  Example:
    >>> points, centroids = jnp.array([[1.0, 0.2], [0.1, 1.0]]), jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> assign(points, centroids, None).tolist(), assign(points, centroids, 2).tolist()
    ([1, 0], [[1, 2], [0, 2]])
  """
  if topk is None:
    return jnp.argmax(_normalize(points) @ _normalize(centroids).T, axis=1).astype(jnp.int32)
  return losses.assign_topk(points, centroids, topk)[1].astype(jnp.int32)


def _local_prototypes(prototypes: jax.Array, axis_name: str | None) -> jax.Array:
  """This device's class slice [C / num_devices, d] of the replicated [C, d] prototypes (all of them without axis)."""
  if axis_name is None:
    return prototypes
  n = lax.axis_size(axis_name)
  num_c = prototypes.shape[0]
  if num_c % n:
    raise ValueError(f"the number of clusters ({num_c}) must be a multiple of the number of devices ({n}): the "
                     "margin losses shard the classes over devices.")
  c_local = num_c // n
  return lax.dynamic_slice_in_dim(prototypes, lax.axis_index(axis_name) * c_local, c_local, axis=0)


def _split_params(params):
  """(network params, prototypes)."""
  return {k: v for k, v in params.items() if k != "prototypes"}, params["prototypes"]


def _recluster_period(config: ml_collections.ConfigDict, cfg: ml_collections.ConfigDict) -> int:
  """Steps between re-clusterings: `cfg.recluster_every`, or one epoch (ceil(N / batch_size)) when it is None."""
  if cfg.recluster_every is not None:
    return int(cfg.recluster_every)
  return max(1, math.ceil(int(config.num_train_examples) / int(config.batch_size)))


def make(config: ml_collections.ConfigDict, *, name: str, cfg: ml_collections.ConfigDict, topk: int | None,
         objective: Objective) -> base.Method:
  """A cluster-discrimination `Method`: the network of SimCLR (encoder + projector), prototypes, bank and labels.

  `cfg` is the method's config section with `num_clusters`, `bank_momentum`, `kmeans_iters`, `recluster_every`
  (None: one epoch); `topk` is None for one label per example, k for k positive clusters per example.

  Example:
    >>> from configs import unicom as unicom_config
    >>> config = unicom_config.get_config("smoke")
    >>> config.num_train_examples = 64  # the trainer sets it from the data: one bank row per example
    >>> import optax
    >>> def objective(z, labels, prototypes, key, axis_name):  # a plain softmax over the prototypes
    ...   return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z @ prototypes.T, labels))
    >>> method = make(config, name="softmax_clusters", cfg=config.unicom, topk=None, objective=objective)
    >>> rl.methods.base.describe(method)["state"]
    ['bank', 'batch_stats', 'centroids', 'labels', 'num_clusterings']
  """
  if config.num_train_examples is None:
    raise ValueError(f"{name}: config.num_train_examples is None; the trainer fills it from the pretraining split "
                     "before building the method (set it yourself when calling make(config) directly): the "
                     "feature bank and the label bank have one row per training example.")
  num_examples = int(config.num_train_examples)
  num_clusters = int(cfg.num_clusters)
  momentum = float(cfg.bank_momentum)
  iters = int(cfg.kmeans_iters)
  every = _recluster_period(config, cfg)
  if num_clusters < 1 or (topk is not None and not 1 <= topk <= num_clusters):
    raise ValueError(f"{name}: need num_clusters >= 1 and 1 <= k <= num_clusters; got num_clusters={num_clusters}, "
                     f"k={topk}.")
  if num_clusters > num_examples:
    raise ValueError(f"{name}: num_clusters ({num_clusters}) exceeds the number of training examples "
                     f"({num_examples}).")
  if every < 1 or iters < 0:
    raise ValueError(f"{name}: recluster_every must be >= 1 and kmeans_iters >= 0; got {every} and {iters}.")
  seed = int(config.seed)
  label_shape = (num_examples,) if topk is None else (num_examples, topk)
  net = two_view.Network(config)

  def init(key, x):
    net_key, proto_key = jax.random.split(key)
    params, state = net.init(net_key, x)
    d = net.output_shapes(params, state, x).z[0].shape[-1]
    params = {**params, "prototypes": jax.random.normal(proto_key, (num_clusters, d), jnp.float32) / math.sqrt(d)}
    state = {**state,
             "bank": jnp.zeros((num_examples, d), jnp.float32),
             "labels": jnp.zeros(label_shape, jnp.int32),
             "centroids": _normalize(params["prototypes"]),
             "num_clusterings": jnp.zeros((), jnp.int32)}
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    if "index" not in batch:
      raise ValueError(f"{name} needs batch['index'] (each example's row in the feature and label banks); the data "
                       "source must provide record ids.")
    net_params, prototypes = _split_params(params)
    out, state = net.apply(net_params, state, batch["views"], axis_name=axis_name)
    z1, z2 = out.z
    index = batch["index"].astype(jnp.int32)
    labels = state["labels"][index]
    both = jnp.concatenate([labels, labels])  # both views share the example's pseudo-label(s)
    value = objective(jnp.concatenate([z1, z2]), both, _local_prototypes(prototypes, axis_name), key, axis_name)
    value = jnp.where(state["num_clusterings"] > 0, value, 0.0)
    bank = losses.memory_bank_update(state["bank"], z1, index, momentum=momentum, axis_name=axis_name)
    flat = state["labels"].reshape(-1)
    used = jnp.sum(jax.ops.segment_sum(jnp.ones_like(flat), flat, num_segments=num_clusters) > 0)
    metrics = {name: value, "clusters_used": used.astype(jnp.float32),
               "num_clusterings": state["num_clusterings"].astype(jnp.float32)}
    return value, ({**state, "bank": bank}, {"metrics": metrics, "features": jax.lax.stop_gradient(out.h[0])})

  def recluster(params, state, step):
    """The re-clustering of `state` (unconditionally); see the module docstring."""
    bank = state["bank"]
    seen = jnp.linalg.norm(bank, axis=1) > 0
    forgy_key, reseed_key = recluster_keys(seed, step)
    scores = jnp.where(seen, jax.random.gumbel(forgy_key, seen.shape), -jnp.inf)
    forgy = bank[lax.top_k(scores, num_clusters)[1]]  # K distinct random seen rows
    start = jnp.where(state["num_clusterings"] > 0, _normalize(params["prototypes"]), _normalize(forgy))
    centroids = lloyd(bank, start, iters=iters, weights=seen.astype(jnp.float32), key=reseed_key)
    return {**state, "centroids": centroids, "labels": assign(bank, centroids, topk),
            "num_clusterings": state["num_clusterings"] + 1}

  def update_after_step(params, state, step):
    due = (step + 1) % every == 0
    return lax.cond(due, lambda s: recluster(params, s, step), lambda s: s, state)

  def embed(params, state, x):
    return net.embed(_split_params(params)[0], state, x)

  def project(params, state, x):
    return net.project(_split_params(params)[0], state, x)

  return base.Method(name=name, num_views=2, init=init, loss=loss, embed=embed, project=project,
                     update_after_step=update_after_step)


__all__ = ["recluster_keys", "lloyd", "assign", "make"]
