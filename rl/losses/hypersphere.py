"""Alignment and uniformity: the two properties of contrastive features on the hypersphere, as losses."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def l2_normalize(x: jax.Array, *, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  r"""Unit L2 norm along `axis`: x / max(||x||, eps), with a finite gradient at x = 0.

  The one L2 normalisation of `rl` (losses, heads, methods, evaluation), as `torch.nn.functional.normalize`; the
  projection onto the unit hypersphere on which SimCLR's cosine similarity (Chen et al. 2020,
  https://arxiv.org/abs/2002.05709) and Wang & Isola's alignment and uniformity are defined:

  .. math:: \operatorname{normalize}(x) = \frac{x}{\max(\|x\|_2, \epsilon)}
            = x \cdot \operatorname{rsqrt}(\max(\|x\|_2^2, \epsilon^2)).

  Written with the rsqrt of the clamped squared norm, so that an all-zero row maps to zero with the finite
  gradient 1 / eps of x / eps (x / ||x|| would give NaN there). It computes in the input dtype: upcast bfloat16 inputs
  first when the norm must accumulate in float32.

  Example:
    >>> l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]]))
    Array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    >>> jax.grad(lambda x: l2_normalize(x).sum())(jnp.zeros((1, 2)))  # finite at zero: 1 / eps
    Array([[1.e+12, 1.e+12]], dtype=float32)
    >>> l2_normalize(jnp.array([[3.0], [4.0]]), axis=0).ravel()  # columns
    Array([0.6, 0.8], dtype=float32)

  Args:
    x: any array.
    axis: the axis whose slices get unit norm.
    eps: the smallest norm divided by (smaller norms are treated as `eps`).

  Returns:
    The normalised array, same shape and dtype as `x`.
  """
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def alignment(z1: jax.Array, z2: jax.Array, *, alpha: float = 2, axis_name: str | None = None) -> jax.Array:
  r"""Alignment loss: the mean distance, to the power alpha, between the two views of each example.

  .. math::
      L_{\mathrm{align}} = \frac{1}{B} \sum_{i=1}^{B} \lVert z^{(1)}_i - z^{(2)}_i \rVert_2^{\alpha}
      \quad \text{over the B pairs of the global batch.}

  As in the paper's code, the inputs are used as given: pass L2-normalised features (e.g. `z / |z|`, the output
  of an encoder that ends in a normalisation); nothing is normalised here, so the loss also serves for features
  on other scales. For normalised inputs it lies in [0, 2^alpha]. The gradient at identical views is 0.

  Args:
    z1: [b, d] features of the first view (L2-normalised by the caller).
    z2: [b, d] features of the second view; row i is paired with `z1[i]`.
    alpha: alpha > 0 (2 in the paper).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where the arrays are this device's shard (the mean is global).

  Returns:
    The scalar mean over the global batch (float32 for float32/bfloat16 input).

  Example:
    >>> z = jnp.eye(2)
    >>> float(alignment(z, z[::-1]))  # |e1 - e2|^2 = 2 for both pairs
    2.0

  Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
  Hypersphere", ICML 2020, https://arxiv.org/abs/2005.10242 (sec. 4.1).
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  _checks.check_positive("alpha", alpha)
  a, b2 = _ops.to_float32(z1, z2)
  sq = jnp.sum(jnp.square(a - b2), axis=1)
  # Double `where`: |d|^alpha = (|d|^2)^(alpha/2) has an infinite derivative in |d|^2 at 0 for alpha < 2.
  positive = sq > 0
  dist = jnp.where(positive, jnp.where(positive, sq, 1.0) ** (alpha / 2), 0.0)
  return _collectives.global_mean(jnp.sum(dist), z1.shape[0], axis_name)


def uniformity(z: jax.Array, *, t: float = 2, axis_name: str | None = None) -> jax.Array:
  r"""Uniformity loss: log of the mean Gaussian potential over all distinct pairs of the global batch.

  .. math::
      L_{\mathrm{uniform}} = \log \frac{1}{B(B-1)} \sum_{i \ne j} \exp(-t \lVert z_i - z_j \rVert_2^2),

  the mean over ordered pairs i != j, equal to the paper's mean over i < j (`torch.pdist`). Computed as a
  log-sum-exp: each device sums its own rows against the gathered batch, and the per-device log-sum-exps are
  combined stably around their maximum, so value and gradients equal the single-device ones. Inputs are used as
  given, as in the paper's code: pass L2-normalised features.

  Args:
    z: [b, d] features (L2-normalised by the caller); the global batch needs B >= 2 rows.
    t: t > 0 (2 in the paper).
    axis_name: None when `z` is the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where `z` is this device's shard.

  Returns:
    The scalar loss over the global batch (float32 for float32/bfloat16 input); at most 0, lower is more uniform.

  Example:
    >>> z = jnp.array([[1.0, 0.0], [-1.0, 0.0]])  # one antipodal pair: log exp(-2 * 4)
    >>> float(uniformity(z))
    -8.0

  Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
  Hypersphere", ICML 2020, https://arxiv.org/abs/2005.10242 (sec. 4.1).
  """
  _checks.check_array("z", z, ndim=2, shape_doc="[b, d]")
  _checks.check_positive("t", t)
  x = _ops.to_float32(z)
  b = x.shape[0]
  everyone = _collectives.all_gather(x, axis_name)  # [B, d]
  big_b = everyone.shape[0]
  if big_b < 2:
    raise ValueError(f"uniformity needs at least 2 rows in the global batch; got z of shape {tuple(z.shape)}.")
  sq = (jnp.sum(jnp.square(x), axis=1)[:, None] + jnp.sum(jnp.square(everyone), axis=1)[None, :]
        - 2.0 * (x @ everyone.T))
  rows = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  is_self = jnp.arange(big_b)[None, :] == rows[:, None]
  log_potential = jnp.where(is_self, -jnp.inf, -t * jnp.maximum(sq, 0.0))
  return _collectives.global_logsumexp(log_potential, axis_name) - math.log(big_b * (big_b - 1))
