"""LEGATO: a hierarchical graph autoencoder over the views (feature sets) of multi-view tabular data.

Liu et al. encode each view of a table into one node, learn the edges between the view nodes, pool the graph into
a smaller latent graph with a learned assignment, unpool it back to one node per view and decode every view. The
latent graph's node features are the representation. The parameter-free pieces, as functions of arrays:

- `legato_graph`: the learned input graph, thresholded absolute cosine similarities between the view nodes'
  (projected) features;
- `legato_pool`: the pooling (and unpooling) step given the assignment logits, Z' = S^T Z, A' = T(S^T A S), with
  the softmax over the INPUT nodes when pooling (each latent node is a convex combination of view nodes) and over
  the output nodes when unpooling;
- `legato_loss`: the training objective, view reconstruction + graph reconstruction + alpha x orthogonality of
  the latent nodes + beta x sparsity of the input graph.

The networks are the caller's: the per-view encoders and decoders, the node normalisation (a BatchNorm over the
batch), the graph learner's projection h = LeakyReLU([z, onehot(view)] W), and the two GCNs of each pooling layer
(one gives the node embeddings, one the assignment logits). LEGATO's regularisers are these two; it has none of
DiffPool's link-prediction or assignment-entropy terms.

The paper's method section was not in our stored copies, so everything here follows the authors' released code
(github.com/tennisonliu/LEGATO: `training_utils/losses.py` `RegLoss`, `method/GraphPooling.py`,
`method/GraphLearner.py`, `method/LEGATO.py`); each docstring names what it transcribes. The cosine similarities
use PyTorch's form x.y / (max(|x|, eps) max(|y|, eps)) with the code's eps = 1e-3.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops

_COS_EPS = 1e-3  # nn.CosineSimilarity(dim=-1, eps=1e-3) in LearnerHead and RegLoss


def _abs(x: jax.Array) -> jax.Array:
  """|x| with PyTorch's gradient sign(x), 0 at x = 0 (jnp.abs's is 1 there: the graph's diagonal sits at |1 - 1|)."""
  return x * jnp.sign(x)


def _abs_cosine_matrix(h: jax.Array) -> jax.Array:
  """|cos| between the node vectors of each example, [b, n, d] -> [b, n, n], with PyTorch's eps clamp."""
  # sqrt(max(|h|^2, eps^2)) = max(|h|, eps), with a finite gradient at h = 0.
  norm = jnp.sqrt(jnp.maximum(jnp.sum(h * h, axis=-1, keepdims=True), _COS_EPS ** 2))
  u = h / norm
  return _abs(jnp.einsum("bid,bjd->bij", u, u))


def _threshold(a: jax.Array, threshold: float) -> jax.Array:
  """torch.nn.Threshold(threshold, 0): keep entries strictly above the threshold, zero the rest."""
  return jnp.where(a > threshold, a, 0.0)


def legato_graph(node_features: jax.Array, *, threshold: float = 0.1) -> jax.Array:
  r"""LEGATO's learned input graph: the thresholded absolute cosine similarity between every two view nodes.

  .. math::
      A_{ij} = T\Big(\Big|\frac{h_i \cdot h_j}{\max(\lVert h_i \rVert, \epsilon)\,\max(\lVert h_j \rVert,
      \epsilon)}\Big|\Big), \qquad T(a) = a \ \text{if } a > \tau \ \text{else } 0,

  per example, with h the projected node features and :math:`\epsilon = 10^{-3}`. The diagonal is 1 for every
  node of norm at least :math:`\epsilon`. The projection h = LeakyReLU([z_i, onehot(i)] W) of each view's
  (normalised) embedding z_i and its one-hot view index is the caller's; with several heads the code averages
  their graphs (pass each head's graph to `legato_loss` as [b, heads, n, n]).

  Source: after the authors' code, `LearnerHead.forward` (LEGATO, method/GraphLearner.py: `self.cos_criterion(h[:,
  None], h[:, :, None]).abs()` then `nn.Threshold(threshold, 0)`); the default tau = 0.1 is LEGATO's
  `sparse_threshold` in every experiment script.

  Args:
    node_features: [b, n, d] the projected features h of the n view nodes of each example.
    threshold: tau, the sparsity threshold.

  Returns:
    The [b, n, n] symmetric adjacency of each example (float32 for float32/bfloat16 input).

  Example:
    >>> h = jnp.array([[[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]]])
    >>> np.round(np.asarray(legato_graph(h)[0], np.float64), 3).tolist()  # |cos 45 deg| = 0.707; orthogonal nodes -> 0
    [[1.0, 0.707, 0.0], [0.707, 1.0, 0.707], [0.0, 0.707, 1.0]]

  Liu, Berrevoets, Qian & van der Schaar, "Learning Representations without Compositional Assumptions" (LEGATO),
  ICML 2023, https://arxiv.org/abs/2305.19726; code github.com/tennisonliu/LEGATO.
  """
  _checks.check_array("node_features", node_features, ndim=3, shape_doc="[b, n, d]")
  return _threshold(_abs_cosine_matrix(_ops.to_float32(node_features)), threshold)


def legato_pool(node_features: jax.Array, adjacency: jax.Array, assignment_logits: jax.Array, *,
                unpool: bool = False, threshold: float = 0.1) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""LEGATO's (un)pooling step: node features and thresholded adjacency of the coarser (or finer) graph.

  With the assignment logits :math:`L \in \mathbb{R}^{n \times m}` of each example (n input nodes, m output
  nodes, from the caller's assignment GCN) and the node embeddings Z (from its embedding GCN),

  .. math::
      S = \operatorname{softmax}_{\text{input nodes}}(L) \ \text{(pool)}, \quad
      S = \operatorname{softmax}_{\text{output nodes}}(L) \ \text{(unpool)}, \qquad
      Z' = S^\top Z, \quad A' = T(S^\top A S),

  T the threshold of `legato_graph`. Pooling normalises each column of S (over the input nodes): every latent
  node is a convex combination of the view nodes. Unpooling (latent graph back to one node per view) normalises
  each row, DiffPool's convention. The unpooled adjacency is the reconstructed graph of `legato_loss`, the pooled
  features of the encoder's pooling layer the latent nodes (and the representation).

  Source: after the authors' code, `GraphPooling.forward` (LEGATO, method/GraphPooling.py: `F.softmax(s_l, dim=1)`
  when `pool` else `dim=-1`, `s_l^T z_l`, `s_l^T A s_l`, `nn.Threshold(0.1, 0)`). In the code's `rgcn` variant a
  BatchNorm without affine parameters then normalises each pooled node over the batch; that layer is the
  caller's.

  Args:
    node_features: [b, n, f] the embeddings Z of the n input nodes (the embedding GCN's output, after its
      LeakyReLU).
    adjacency: [b, n, n] the input graph A.
    assignment_logits: [b, n, m] the logits L assigning input nodes to the m output nodes.
    unpool: False for pooling (softmax over the n input nodes), True for unpooling (over the m output nodes).
    threshold: tau; entries of S^T A S not above it become 0.

  Returns:
    (features [b, m, f], adjacency [b, m, m], assignment S [b, n, m]), float32 for float32/bfloat16 input.

  Example:
    >>> z = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    >>> a = jnp.ones((1, 3, 3))
    >>> pooled, adj, s = legato_pool(z, a, jnp.zeros((1, 3, 2)))  # uniform: each latent node averages all 3
    >>> np.round(np.asarray(pooled[0], np.float64), 3).tolist(), np.round(np.asarray(adj[0], np.float64), 3).tolist()
    ([[0.667, 0.667], [0.667, 0.667]], [[1.0, 1.0], [1.0, 1.0]])

  Liu, Berrevoets, Qian & van der Schaar, "Learning Representations without Compositional Assumptions" (LEGATO),
  ICML 2023, https://arxiv.org/abs/2305.19726; code github.com/tennisonliu/LEGATO.
  """
  _checks.check_array("node_features", node_features, ndim=3, shape_doc="[b, n, f]")
  b, n, _ = node_features.shape
  _checks.check_array("adjacency", adjacency, ndim=3, shape_doc=f"[{b}, {n}, {n}]")
  if tuple(adjacency.shape) != (b, n, n):
    raise ValueError(f"adjacency must have shape [{b}, {n}, {n}] (the nodes of node_features, [b, n, f]); "
                     f"got shape {tuple(adjacency.shape)}.")
  _checks.check_array("assignment_logits", assignment_logits, ndim=3, shape_doc=f"[{b}, {n}, m]")
  if tuple(assignment_logits.shape[:2]) != (b, n):
    raise ValueError(f"assignment_logits must have shape [{b}, {n}, m] (one row per node of node_features, "
                     f"[b, n, f]); got shape {tuple(assignment_logits.shape)}.")
  z, a, logits = _ops.to_float32(node_features, adjacency, assignment_logits)
  s = jax.nn.softmax(logits, axis=2 if unpool else 1)
  pooled = jnp.einsum("bnm,bnf->bmf", s, z)
  pooled_adjacency = _threshold(jnp.einsum("bnm,bnk,bkl->bml", s, a, s), threshold)
  return pooled, pooled_adjacency, s


def legato_loss(views: Sequence[jax.Array], reconstructions: Sequence[jax.Array], latent_nodes: jax.Array,
                input_graph: jax.Array, reconstructed_graph: jax.Array, *, alpha: float = 0.1, beta: float = 0.1,
                return_terms: bool = False,
                axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""LEGATO's training objective: views and graph reconstructed, latent nodes orthogonal, input graph sparse.

  With V views :math:`x_v \in \mathbb{R}^{B \times d_v}` and their reconstructions :math:`\hat x_v`, the latent
  nodes :math:`z_{bk}` (k = 1..K), the learned input graph :math:`A_b` (mean over heads in the first term, summed
  over heads in the last) and the unpooled graph :math:`\hat A_b`,

  .. math::
      L = \frac{1}{V} \sum_v \frac{\lVert x_v - \hat x_v \rVert_F^2}{B d_v}
        + \frac{\lVert A - \hat A \rVert_F}{B}
        + \alpha \frac{\sum_b \sum_{k \ne l} |\cos(z_{bk}, z_{bl})|}{B K (K - 1)}
        + \beta \frac{\sum_b \lVert A_b - I \rVert_1}{B},

  where the graph term is ONE Frobenius norm over the whole batch (not a sum of per-example norms) divided by B,
  and :math:`\lVert \cdot \rVert_1` sums absolute entries. The third term pushes the latent nodes to carry
  different information; the last keeps few edges (the diagonal of A is 1). As the code, the orthogonality sum
  is :math:`\sum_{k,l} (|\cos| - \delta_{kl})`, which equals the off-diagonal sum when no latent node has norm
  below eps = 1e-3.

  With `axis_name` every sum (the squared graph error before its square root included) and B run over all
  devices. Nothing is detached: the code trains the graph learner through both graph terms. The absolute values
  have PyTorch's gradient, 0 at 0 (the diagonal of A - I), and the graph norm's gradient at 0 is 0.

  Source: after the authors' code, `RegLoss.forward` (LEGATO, training_utils/losses.py: `MSELoss` per view averaged
  over views, `recon_graph_loss`, `cos_loss`, `graph_loss`, `loss = recon + recon_graph + alpha cos + beta
  graph`) as `pretrain` calls it (training_utils/train_evaluate.py: the pooled latent features, the graph
  learner's stacked head graphs and the unpooled adjacency). The defaults alpha = beta = 0.1 are `RegLoss`'s;
  the experiments tune both over {0.01, 0.1, 1} (exps/*/configs.json: UCI 0.01 / 0.1, TCGA 1 / 1,
  UK Biobank 0.01 / 0.01).

  Args:
    views: a sequence of V arrays [b, d_v], the inputs (the reconstruction target).
    reconstructions: a sequence of V arrays [b, d_v], the decoders' outputs, in the order of `views`.
    latent_nodes: [b, K, d] the latent graph's node features (`legato_pool`'s pooled features), K >= 2.
    input_graph: [b, n, n] the learned input graph (`legato_graph`), or [b, heads, n, n] one per head.
    reconstructed_graph: [b, n, n] the unpooled adjacency (`legato_pool(..., unpool=True)`).
    alpha: weight of the orthogonality term.
    beta: weight of the sparsity term.
    return_terms: also return the four unweighted terms.
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where
      they are this device's examples and every sum runs over all devices.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), or `(loss, {"reconstruction", "graph_reconstruction",
    "orthogonality", "sparsity"})` with `return_terms`.

  Example:
    >>> x = [jnp.ones((2, 3)), jnp.zeros((2, 5))]
    >>> z = jnp.array([[[1.0, 0.0], [0.0, 1.0]]] * 2)  # orthogonal latent nodes
    >>> graph = jnp.broadcast_to(jnp.eye(4), (2, 4, 4))  # no edges
    >>> loss, terms = legato_loss(x, [v + 1.0 for v in x], z, graph, graph, return_terms=True)
    >>> float(loss), {k: float(v) for k, v in terms.items()}
    (1.0, {'reconstruction': 1.0, 'graph_reconstruction': 0.0, 'orthogonality': 0.0, 'sparsity': 0.0})

  Liu, Berrevoets, Qian & van der Schaar, "Learning Representations without Compositional Assumptions" (LEGATO),
  ICML 2023, https://arxiv.org/abs/2305.19726; code github.com/tennisonliu/LEGATO.
  """
  views, reconstructions = tuple(views), tuple(reconstructions)
  if not views or len(views) != len(reconstructions):
    raise ValueError(f"views and reconstructions must be sequences of the same non-zero length (one "
                     f"reconstruction per view); got {len(views)} and {len(reconstructions)}.")
  for v, (x, r) in enumerate(zip(views, reconstructions)):
    _checks.check_array(f"views[{v}]", x, ndim=2, shape_doc="[b, d_v]")
    _checks.check_array(f"reconstructions[{v}]", r, ndim=2, shape_doc="[b, d_v]")
    _checks.check_same_shape(**{f"views[{v}]": x, f"reconstructions[{v}]": r})
  b = views[0].shape[0]
  _checks.check_array("latent_nodes", latent_nodes, ndim=3, shape_doc="[b, K, d]")
  if latent_nodes.shape[1] < 2:
    raise ValueError(f"latent_nodes must have at least 2 nodes (the orthogonality term divides by K (K - 1)); "
                     f"got shape {tuple(latent_nodes.shape)}.")
  _checks.check_array("reconstructed_graph", reconstructed_graph, ndim=3, shape_doc="[b, n, n]")
  n = reconstructed_graph.shape[1]
  if reconstructed_graph.shape[2] != n:
    raise ValueError(f"reconstructed_graph must have shape [b, n, n]; got shape {tuple(reconstructed_graph.shape)}.")
  if not hasattr(input_graph, "shape") or input_graph.ndim not in (3, 4) or input_graph.shape[-2:] != (n, n):
    raise ValueError(f"input_graph must have shape [b, {n}, {n}] or [b, heads, {n}, {n}] (the nodes of "
                     f"reconstructed_graph); got {tuple(getattr(input_graph, 'shape', ())) or type(input_graph)}.")
  _checks.check_array("input_graph", input_graph)
  batches = {f"views[{v}]": x.shape[0] for v, x in enumerate(views)}
  batches.update(latent_nodes=latent_nodes.shape[0], input_graph=input_graph.shape[0],
                 reconstructed_graph=reconstructed_graph.shape[0])
  for name, size in batches.items():
    if size != b:
      raise ValueError(f"views[0] and {name} must have the same batch size; got {b} and {size}.")

  reconstruction = 0.0
  for x, r in zip(views, reconstructions):
    x, r = _ops.to_float32(x, r)
    reconstruction += _collectives.global_mean(jnp.sum((x - r) ** 2), x.size, axis_name)
  reconstruction /= len(views)

  graph = _ops.to_float32(input_graph)
  mean_graph = graph if graph.ndim == 3 else jnp.mean(graph, axis=1)
  squared = _collectives.psum(jnp.sum((mean_graph - _ops.to_float32(reconstructed_graph)) ** 2), axis_name)
  # The norm's gradient at 0 is taken as 0 (as torch.norm's), not NaN.
  frobenius = jnp.where(squared > 0, jnp.sqrt(jnp.where(squared > 0, squared, 1.0)), 0.0)
  graph_reconstruction = frobenius / _collectives.psum(b, axis_name)

  k = latent_nodes.shape[1]
  off = _abs_cosine_matrix(_ops.to_float32(latent_nodes)) - jnp.eye(k)
  orthogonality = _collectives.global_mean(jnp.sum(off), b * k * (k - 1), axis_name)

  sparsity = _collectives.global_mean(jnp.sum(_abs(graph - jnp.eye(n))), b, axis_name)

  loss = reconstruction + graph_reconstruction + alpha * orthogonality + beta * sparsity
  if return_terms:
    return loss, {"reconstruction": reconstruction, "graph_reconstruction": graph_reconstruction,
                  "orthogonality": orthogonality, "sparsity": sparsity}
  return loss


__all__ = ["legato_graph", "legato_pool", "legato_loss"]
