"""ODC: a classifier trained on pseudo-labels that an online-updated memory of features and centroids provides.

Zhan et al., "Online Deep Clustering for Unsupervised Representation Learning", CVPR 2020,
https://arxiv.org/abs/2006.10645. The network is an encoder, ODC's neck (mmselfsup `ODCNeck`:
Linear-BN(no affine)-ReLU-Dropout-Linear-ReLU) and a linear classification head over `num_clusters` pseudo-classes
(mmselfsup `ClsHead`, weights N(0, 0.01)). Each step (Sec. 3.2):
  1. the loss is `rl.losses.odc`: cross-entropy of the head's logits against the pseudo-labels of the batch in the
     label bank, each sample re-weighted by the inverse square root of its cluster's size (Sec. 3.3);
  2. `rl.losses.odc_update` (in `loss`, over the gathered global batch) moves the batch's rows of the feature bank
     towards their neck features (momentum 0.5) and re-labels them with their nearest centroid;
  3. in `update_after_step`, identical on every device: every `centroid_update_every` steps (mmselfsup: 10) all
     centroids are recomputed from the bank (`odc_update_centroids`), and every `fix_small_clusters_every` steps
     (mmselfsup: 1) clusters below `min_cluster` members are dissolved and refilled by splitting the largest
     (`odc_fix_small_clusters`), each under a `lax.cond` so that nothing runs when it is not due or not needed.

`method_state`: BatchNorm statistics, 'feature_bank' [N, d], 'label_bank' [N] int32, 'centroids' [C, d] (the
`rl.losses.ODCMemory` fields, N = `config.num_train_examples`, rows indexed by `batch["index"]`) and 'warm'
(int32, 1 once the memory holds the initial clustering).

Initial clustering (differs from the paper). ODC initialises the memory with k-means over the features of the
randomly initialised network on the whole dataset, a pass `Method.init` cannot make (it sees one sample). Here,
with `odc.warmup_epochs` = E > 0, the first ceil(E * N / batch_size) steps are that pass, done online: the loss is
multiplied by 0 (the network stays at its initialisation, up to weight decay and BatchNorm running statistics),
each visited sample's bank row is overwritten with its neck feature (momentum 0), and after the last warm-up step
cosine k-means (`rl.losses.spherical_kmeans`, `kmeans_iters` Lloyd iterations, seeds from `config.seed`) over the
whole bank gives the initial labels and centroids; empty clusters are then refilled by the small-cluster fix.
Samples the warm-up did not visit keep their initial random unit rows. With E = 0 there is no warm-up: the memory
starts as random unit features with balanced random labels and their class-mean centroids, and the online updates
turn that into a clustering of real features over the first epochs.

Other differences: the features are those of one augmented view in training mode (mmselfsup extracts them with
a centre crop); k-means is on the unit sphere (mmselfsup: faiss k-means on L2-normalised features); the head
shares the optimizer's momentum (mmselfsup sets the head's momentum to 0); centroids are unit vectors, so
re-labelling uses cosine similarity (see `rl.losses.odc_update`).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.models.heads import batch_norm

MEMORY_KEYS = ("feature_bank", "label_bank", "centroids", "warm")
# Stream id of the keys of update_after_step (k-means seeds, cluster splits): fold_in(key(seed), ID), then step.
_UPDATE_STREAM = 0x0DC


class ODCNeck(nn.Module):
  """mmselfsup's ODCNeck: Linear-BN(no affine)-ReLU-Dropout-Linear-ReLU.

  Dropout takes an explicit keep-mask (drawn by the caller for the global batch, so that it does not depend on
  the device count); no mask: no dropout (evaluation, init).
  """
  hidden_dim: int
  out_dim: int
  dropout: float = 0.5
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, *, train: bool, keep_mask=None):
    x = nn.Dense(self.hidden_dim, name="fc0")(x)
    x = batch_norm(train=train, axis_name=self.axis_name, use_scale=False, use_bias=False, name="bn0")(x)
    x = nn.relu(x)
    if keep_mask is not None and self.dropout > 0:
      x = jnp.where(keep_mask, x / (1.0 - self.dropout), 0.0)
    return nn.relu(nn.Dense(self.out_dim, name="fc1")(x))


class ODCNetwork(nn.Module):
  """Encoder, neck and classification head; returns (encoder features h, neck features z, logits)."""
  encoder: nn.Module
  neck: ODCNeck
  num_clusters: int

  def setup(self):
    self.head = nn.Dense(self.num_clusters, kernel_init=nn.initializers.normal(0.01), name="head")

  def __call__(self, x, *, train: bool, keep_mask=None):
    h = self.encoder(x, train=train)
    z = self.neck(h, train=train, keep_mask=keep_mask)
    return h, z, self.head(z)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def build_odc_network(config: ml_collections.ConfigDict, axis_name: str | None) -> ODCNetwork:
  """Encoder from `config.model`, ODCNeck from `config.odc.neck_kwargs`, head over `config.odc.num_clusters`.

  Example:
    >>> from configs import odc as odc_config
    >>> config = odc_config.get_config("smoke")
    >>> net = build_odc_network(config, axis_name=None)
    >>> x = np.zeros((8, 40), np.float32)
    >>> h, z, logits = net.apply(net.init(jax.random.key(0), x, train=False), x, train=False)
    >>> h.shape, z.shape, logits.shape[-1] == config.odc.num_clusters  # encoder features, neck features, logits
    ((8, 16), (8, 8), True)
  """
  encoder = base.get_model(config, config.model.encoder, axis_name=axis_name, **config.model.encoder_kwargs.to_dict())
  neck = ODCNeck(axis_name=axis_name, **config.odc.neck_kwargs.to_dict())
  return ODCNetwork(encoder=encoder, neck=neck, num_clusters=int(config.odc.num_clusters))


def _split(state):
  return ({k: v for k, v in state.items() if k not in MEMORY_KEYS},
          {k: v for k, v in state.items() if k in MEMORY_KEYS})


def _memory(state) -> losses.ODCMemory:
  return losses.ODCMemory(state["feature_bank"], state["label_bank"], state["centroids"])


def _keep_mask(key, rate: float, b: int, width: int, axis_name):
  """This device's rows of a Bernoulli(1 - rate) mask drawn for the whole global batch."""
  if axis_name is None:
    return jax.random.bernoulli(key, 1.0 - rate, (b, width))
  n_dev = lax.psum(1, axis_name)
  full = jax.random.bernoulli(key, 1.0 - rate, (b * n_dev, width))
  return lax.dynamic_slice_in_dim(full, lax.axis_index(axis_name) * b, b, axis=0)


def warmup_steps(config: ml_collections.ConfigDict) -> int:
  """Steps of the initial feature pass: ceil(warmup_epochs * num_train_examples / batch_size).

  Example:
    >>> from configs import odc as odc_config
    >>> config = odc_config.get_config("smoke")
    >>> config.num_train_examples, config.batch_size, config.odc.warmup_epochs = 1000, 64, 1
    >>> warmup_steps(config)
    16
  """
  return int(math.ceil(float(config.odc.warmup_epochs) * int(config.num_train_examples) / int(config.batch_size)))


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The ODC `Method` for a config with `model`, `num_train_examples`, `batch_size` and `odc.*` (configs/odc.py).

  Example:
    >>> from configs import odc as odc_config
    >>> config = odc_config.get_config("smoke")
    >>> config.num_train_examples = 64  # the trainer sets it from the data: one bank row per example
    >>> summary = rl.methods.base.describe(make(config))
    >>> summary["params"], summary["metrics"]  # odc_warm: 0 during the initial feature pass, then 1
    (['encoder', 'head', 'neck'], ['odc', 'odc_change_ratio', 'odc_warm'])
  """
  if config.num_train_examples is None:
    raise ValueError("config.num_train_examples is None: ODC sizes its feature and label banks with it (the "
                     "trainer fills it in rl.train.loop.build; set it yourself when calling odc.make directly).")
  o = config.odc
  num_examples = int(config.num_train_examples)
  num_clusters = int(o.num_clusters)
  if not 1 <= num_clusters <= num_examples:
    raise ValueError(f"config.odc.num_clusters must be in [1, num_train_examples={num_examples}]; got {num_clusters}.")
  momentum, dropout = float(o.momentum), float(o.neck_kwargs.dropout)
  n_warm = warmup_steps(config)
  centroid_every, fix_every = int(o.centroid_update_every), int(o.fix_small_clusters_every)
  if centroid_every < 1 or fix_every < 1:
    raise ValueError("config.odc.centroid_update_every and fix_small_clusters_every must be >= 1; got "
                     f"{centroid_every} and {fix_every}.")
  update_root = jax.random.fold_in(jax.random.key(int(config.seed)), _UPDATE_STREAM)
  eval_net = build_odc_network(config, axis_name=None)

  def init(key, x):
    net_key, bank_key, label_key = jax.random.split(key, 3)
    variables = eval_net.init(net_key, x, train=False)
    params = variables.pop("params")
    _, z, _ = jax.eval_shape(lambda v: eval_net.apply({"params": params, **v}, x, train=False), variables)
    bank = jax.random.normal(bank_key, (num_examples, z.shape[-1]), jnp.float32)
    labels = jax.random.permutation(label_key, jnp.arange(num_examples, dtype=jnp.int32) % num_clusters)
    memory = losses.odc_init(bank, labels, num_clusters)
    return params, {**variables, **memory._asdict(), "warm": jnp.int32(0 if n_warm > 0 else 1)}

  def loss(params, state, batch, key, *, axis_name=None):
    net_state, mem_state = _split(state)
    (v,) = batch["views"]
    idx = batch["index"]
    b = v.shape[0]
    keep = _keep_mask(key, dropout, b, config.odc.neck_kwargs.hidden_dim, axis_name) if dropout > 0 else None
    net = build_odc_network(config, axis_name=axis_name)
    (h, z, logits), new_net_state = net.apply({"params": params, **net_state}, v, train=True, keep_mask=keep,
                                              mutable=list(net_state))
    memory = _memory(mem_state)
    value = losses.odc(logits, idx, memory.label_bank, reweight=bool(o.reweight), reweight_pow=float(o.reweight_pow),
                       axis_name=axis_name)
    warm = mem_state["warm"]
    # During the warm-up pass the bank rows are overwritten (momentum 0) and nothing is learnt.
    m = jnp.where(warm > 0, momentum, 0.0)
    memory, upd = losses.odc_update(memory, z, idx, momentum=m, update_centroids=False, axis_name=axis_name)
    new_state = {**new_net_state, **memory._asdict(), "warm": warm}
    aux = {"metrics": {"odc": value, "odc_change_ratio": upd["change_ratio"], "odc_warm": warm.astype(jnp.float32)},
           "features": lax.stop_gradient(h)}
    return value * warm.astype(value.dtype), (new_state, aux)

  def update_after_step(params, state, step):
    del params
    net_state, mem_state = _split(state)
    memory, warm = _memory(mem_state), mem_state["warm"]
    key = jax.random.fold_in(update_root, step)
    if n_warm > 0:
      def initial_kmeans(mem):
        centroids, labels = losses.spherical_kmeans(jax.random.fold_in(key, 0), mem.feature_bank, num_clusters,
                                                    iters=int(o.kmeans_iters))
        return losses.ODCMemory(mem.feature_bank, labels.astype(mem.label_bank.dtype),
                                centroids.astype(mem.centroids.dtype))
      done = (step == n_warm - 1) & (warm == 0)
      memory = lax.cond(done, initial_kmeans, lambda mem: mem, memory)
      warm = jnp.where(done, jnp.int32(1), warm)
    on = warm > 0
    memory = lax.cond(on & ((step + 1) % centroid_every == 0), losses.odc_update_centroids, lambda mem: mem, memory)
    counts = jnp.bincount(memory.label_bank, length=num_clusters)
    due = on & ((step + 1) % fix_every == 0) & jnp.any(counts < int(o.min_cluster))
    memory = lax.cond(
        due, lambda mem: losses.odc_fix_small_clusters(mem, jax.random.fold_in(key, 1), min_cluster=int(o.min_cluster),
                                                       kmeans_iters=int(o.kmeans_iters))[0],
        lambda mem: mem, memory)
    return {**net_state, **memory._asdict(), "warm": warm}

  def embed(params, state, x):
    net_state, _ = _split(state)
    return eval_net.apply({"params": params, **net_state}, x, method=ODCNetwork.encode)

  return base.Method(name="odc", num_views=1, init=init, loss=loss, embed=embed, update_after_step=update_after_step)
