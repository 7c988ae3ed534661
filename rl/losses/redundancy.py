"""Non-contrastive objectives: predictive (BYOL, SimSiam) and redundancy-reduction (Barlow Twins, VICReg, W-MSE).

None of these needs negatives. Predictive losses compare an online prediction with a target; the
redundancy-reduction losses add a term built from statistics of the GLOBAL batch (per-dimension means,
cross-correlation, covariance, whitening matrices), which under `axis_name` come from `psum` of per-device sums so
that value and gradients equal those of the single-device computation.

Stop-gradient convention (`byol`, `negative_cosine`): the losses are pure and never stop gradients themselves.
The caller (the method) passes a target that already went through `jax.lax.stop_gradient` (and, for BYOL, comes
from the EMA target network), and symmetrises over the two views.
"""
from __future__ import annotations

import itertools

import jax
from jax import lax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def _cosine(p: jax.Array, z: jax.Array) -> jax.Array:
  """Row-wise cosine similarity in float32 (float64 stays float64)."""
  p, z = _ops.to_float32(p, z)
  return jnp.sum(l2_normalize(p) * l2_normalize(z), axis=-1)


def byol(p: jax.Array, z: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""BYOL's normalised mean squared error between an online prediction and a target projection.

  .. math::
      \ell_i = \Big\| \frac{p_i}{\|p_i\|} - \frac{z_i}{\|z_i\|} \Big\|_2^2
             = 2 - 2\,\frac{p_i^\top z_i}{\|p_i\|\,\|z_i\|},
      \qquad L = \frac{1}{B} \sum_{i=1}^{B} \ell_i .

  Gradient: this function does NOT stop gradients. BYOL's target `z` is the projection of the other view by the
  EMA target network and receives no gradient: the caller passes `jax.lax.stop_gradient(z_target)`. The caller
  also keeps the EMA target parameters and symmetrises the loss (`byol(p1, sg(z2)) + byol(p2, sg(z1))`).

  Args:
    p: [b, d] online predictor outputs q_theta(z_theta) for one view.
    z: [b, d] target projections z'_xi of the other view; row i pairs with `p[i]`.
    axis_name: None when `p, z` are the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where they are this device's shard (the mean is over the global batch).

  Returns:
    The scalar mean over the B examples of the global batch (float32), in [0, 4].

  Example:
    >>> p = jnp.array([[1.0, 0.0], [0.0, 2.0]]); z = jnp.array([[3.0, 0.0], [1.0, 0.0]])
    >>> float(byol(p, z))  # (0 + 2) / 2
    1.0

  Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020,
  https://arxiv.org/abs/2006.07733 (eq. 2).
  """
  _checks.check_embeddings(p=p, z=z)
  per_example = 2.0 - 2.0 * _cosine(p, z)
  return _collectives.global_mean(jnp.sum(per_example), p.shape[0], axis_name)


def negative_cosine(p: jax.Array, z: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""SimSiam's negative cosine similarity D(p, z) between a prediction and a projection.

  .. math::
      L = -\frac{1}{B} \sum_{i=1}^{B} \frac{p_i^\top z_i}{\|p_i\|\,\|z_i\|} .

  Gradient: this function does NOT stop gradients. SimSiam's collapse-avoiding stop-gradient on `z` (eq. 3 of the
  paper) is the caller's: pass `jax.lax.stop_gradient(z)`, and symmetrise,
  `negative_cosine(p1, sg(z2)) / 2 + negative_cosine(p2, sg(z1)) / 2` (eq. 4).

  Args:
    p: [b, d] predictor outputs h(f(x1)).
    z: [b, d] projections f(x2) of the other view; row i pairs with `p[i]`.
    axis_name: None when `p, z` are the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`.

  Returns:
    The scalar mean over the B examples of the global batch (float32), in [-1, 1].

  Example:
    >>> p = jnp.array([[1.0, 0.0], [0.0, 2.0]]); z = jnp.array([[3.0, 0.0], [1.0, 0.0]])
    >>> float(negative_cosine(p, z))  # -(1 + 0) / 2
    -0.5

  Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021, https://arxiv.org/abs/2011.10566
  (eq. 1-4).
  """
  _checks.check_embeddings(p=p, z=z)
  return -_collectives.global_mean(jnp.sum(_cosine(p, z)), p.shape[0], axis_name)


def _global_center(z: jax.Array, axis_name: str | None) -> tuple[jax.Array, int]:
  """z minus its per-dimension mean over the global batch, and the global batch size."""
  big_b = z.shape[0] * _collectives.axis_size(axis_name)
  mean = _collectives.psum(jnp.sum(z, axis=0), axis_name) / big_b
  return z - mean, big_b


def barlow_twins(z1: jax.Array, z2: jax.Array, *, lambda_: float = 5e-3,
                 axis_name: str | None = None) -> jax.Array:
  r"""Barlow Twins: push the cross-correlation matrix of the two views' embeddings towards the identity.

  Each dimension of each view is standardised over the GLOBAL batch of B examples, as
  `BatchNorm1d(affine=False)` (synchronised) in the authors' code: biased variance and eps = 1e-5,
  :math:`\hat z = (z - \mu) / \sqrt{\sigma^2 + 10^{-5}}`. Then

  .. math::
      C_{ij} = \frac{1}{B} \sum_{b=1}^{B} \hat z^{1}_{b,i}\, \hat z^{2}_{b,j}, \qquad
      L = \sum_i (1 - C_{ii})^2 + \lambda \sum_i \sum_{j \ne i} C_{ij}^2 .

  Under `axis_name` the means, variances and C are `psum`s of per-device sums: the value is NOT the mean of
  per-device losses computed on local statistics.

  Args:
    z1: [b, d] projector outputs of the first view.
    z2: [b, d] projector outputs of the second view; row i is the same example as `z1[i]`.
    lambda_: weight of the redundancy (off-diagonal) term; the paper's 5e-3 (the authors' script uses 0.0051).
    axis_name: None when `z1, z2` are the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`.

  Returns:
    The scalar loss (float32), the same on every device. No stop-gradient and no state.

  Example:
    >>> z = jnp.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    >>> round(float(barlow_twins(z, z)), 6)  # C = I / (1 + 1e-5): both diagonal terms ~1e-10, no off-diagonal
    0.0

  Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021,
  https://arxiv.org/abs/2103.03230 (eq. 1-2).
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  _checks.check_in_range("lambda_", lambda_, 0.0, float("inf"))
  z1, z2 = _ops.to_float32(z1, z2)

  def standardise(z):
    zc, big_b = _global_center(z, axis_name)
    var = _collectives.psum(jnp.sum(jnp.square(zc), axis=0), axis_name) / big_b
    return zc * lax.rsqrt(var + 1e-5), big_b

  n1, big_b = standardise(z1)
  n2, _ = standardise(z2)
  c = _collectives.psum(n1.T @ n2, axis_name) / big_b
  on_diag = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
  off_diag = jnp.sum(jnp.square(_ops.off_diagonal(c)))
  return on_diag + lambda_ * off_diag


def vicreg_terms(z1: jax.Array, z2: jax.Array, *, axis_name: str | None = None) -> dict[str, jax.Array]:
  """The three unweighted VICReg terms {'invariance', 'variance', 'covariance'}; see `vicreg` for the formulas.

  `vicreg` is sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance of these terms; log them to see
  which one drives training.

  Args:
    z1: [b, d] embeddings of the first view (float32 or bfloat16; computed in float32).
    z2: [b, d] embeddings of the second view.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard (means and covariances over the global batch).

  Returns:
    {"invariance": mean squared distance between the views, "variance": hinge on the standard deviation of each
    dimension (the mean of both views'), "covariance": squared off-diagonal covariances / d (the sum of both
    views')}: float32 scalars, unweighted.

  Example:
    >>> z = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> {k: round(float(v), 4) for k, v in vicreg_terms(z, z).items()}
    {'invariance': 0.0, 'variance': 0.1834, 'covariance': 0.0}

  Bardes et al., "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning", ICLR 2022,
  https://arxiv.org/abs/2105.04906.
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  z1, z2 = _ops.to_float32(z1, z2)
  b, d = z1.shape
  if b * _collectives.axis_size(axis_name) < 2:
    raise ValueError(f"vicreg needs a global batch of at least 2 examples (unbiased variance); got z1 of shape "
                     f"{(b, d)} on {_collectives.axis_size(axis_name)} device(s).")
  invariance = _collectives.global_mean(jnp.sum(jnp.square(z1 - z2)), b * d, axis_name)

  def variance_and_covariance(z):
    zc, big_b = _global_center(z, axis_name)
    cov = _collectives.psum(zc.T @ zc, axis_name) / (big_b - 1)
    std = jnp.sqrt(jnp.diagonal(cov) + 1e-4)
    return jnp.mean(jax.nn.relu(1.0 - std)), jnp.sum(jnp.square(_ops.off_diagonal(cov))) / d

  var1, cov1 = variance_and_covariance(z1)
  var2, cov2 = variance_and_covariance(z2)
  return {"invariance": invariance, "variance": (var1 + var2) / 2, "covariance": cov1 + cov2}


def vicreg(z1: jax.Array, z2: jax.Array, *, sim_coeff: float = 25.0, std_coeff: float = 25.0,
           cov_coeff: float = 1.0, axis_name: str | None = None) -> jax.Array:
  r"""VICReg: invariance between views plus variance and covariance regularisers on each view.

  With B the GLOBAL batch size, :math:`\bar z` the per-dimension global mean and d the embedding size:

  .. math::
      s = \frac{1}{Bd} \sum_{b,k} (z^1_{bk} - z^2_{bk})^2, \qquad
      C(z) = \frac{(z - \bar z)^\top (z - \bar z)}{B - 1},

      v(z) = \frac{1}{d} \sum_k \max\big(0,\, 1 - \sqrt{C(z)_{kk} + 10^{-4}}\big), \qquad
      c(z) = \frac{1}{d} \sum_{k \ne l} C(z)_{kl}^2,

      L = \lambda\, s + \mu\, \tfrac{1}{2}\big(v(z^1) + v(z^2)\big) + \nu\, \big(c(z^1) + c(z^2)\big),

  exactly as in the authors' `main_vicreg.py` (unbiased variance, the variance term averaged over the two
  branches, the covariance term summed). Statistics come from `psum` of per-device sums under `axis_name`.
  `vicreg_terms` returns s, the averaged v and the summed c separately for logging.

  Args:
    z1: [b, d] expander outputs of the first view.
    z2: [b, d] expander outputs of the second view; row i is the same example as `z1[i]`.
    sim_coeff: lambda, the invariance weight (paper: 25).
    std_coeff: mu, the variance weight (paper: 25).
    cov_coeff: nu, the covariance weight (paper: 1).
    axis_name: None when `z1, z2` are the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`.

  Returns:
    The scalar loss (float32), the same on every device. No stop-gradient and no state.

  Example:
    >>> z = jnp.array([[1.0, 0.0], [-1.0, 0.0]])  # var (2, 0): v = (0 + (1 - sqrt(1e-4))) / 2 = 0.495
    >>> round(float(vicreg(z, z)), 4)  # s = 0, c = 0: 25 * (0.495 + 0.495) / 2
    12.375

  Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
  ICLR 2022, https://arxiv.org/abs/2105.04906 (eq. 1-6).
  """
  for name, value in (("sim_coeff", sim_coeff), ("std_coeff", std_coeff), ("cov_coeff", cov_coeff)):
    _checks.check_in_range(name, value, 0.0, float("inf"))
  t = vicreg_terms(z1, z2, axis_name=axis_name)
  return sim_coeff * t["invariance"] + std_coeff * t["variance"] + cov_coeff * t["covariance"]


def _whiten(x: jax.Array, sub_batch: jax.Array, num_sub: int, w: int, eps: float,
            axis_name: str | None) -> jax.Array:
  """Whitens each row of x [n, d] with the Cholesky whitening matrix of its sub-batch (global statistics)."""
  onehot = jax.nn.one_hot(sub_batch, num_sub, dtype=x.dtype)  # [n, S]
  mean = _collectives.psum(onehot.T @ x, axis_name) / w  # [S, d]
  xc = x - onehot @ mean
  cov = _collectives.psum(jnp.einsum("is,id,ie->sde", onehot, xc, xc), axis_name) / (w - 1)  # [S, d, d]
  eye = jnp.eye(x.shape[1], dtype=x.dtype)
  chol = jnp.linalg.cholesky((1.0 - eps) * cov + eps * eye)
  whitening = jax.scipy.linalg.solve_triangular(chol, jnp.broadcast_to(eye, chol.shape), lower=True)  # L^{-1}
  return jnp.einsum("ide,ie->id", whitening[sub_batch], xc)  # row i: W_s (x_i - mean_s) for its sub-batch s


def wmse(z: jax.Array, *, num_views: int = 2, whitening_size: int = 128, eps: float = 0.0,
         key: jax.Array | None = None, axis_name: str | None = None) -> jax.Array:
  r"""W-MSE: whiten each view's embeddings within sub-batches, then the normalised MSE between views.

  The global batch of B examples is cut into sub-batches of w = `whitening_size` examples. Within each sub-batch
  s, each view v is whitened on its own with Cholesky whitening (the authors' `Whitening2d`):

  .. math::
      \mu = \frac{1}{w} \sum_{i \in s} z_i, \quad
      \Sigma = \frac{1}{w-1} \sum_{i \in s} (z_i - \mu)(z_i - \mu)^\top, \quad
      (1-\epsilon)\Sigma + \epsilon I = L L^\top, \quad \hat z_i = L^{-1} (z_i - \mu),

  and the loss is the mean over all view pairs (v < v') and all B examples of
  :math:`2 - 2 \cos(\hat z^{v}_i, \hat z^{v'}_i)`.

  Sub-batches: without `key`, example g (global index) belongs to sub-batch g // w (contiguous, deterministic);
  with `key`, to sub-batch pi^{-1}(g) // w for a random permutation pi of the B examples, as the authors draw
  each step (pass the same key to every device). The authors' `w_iter` repetitions are the caller's: average
  several calls with different keys. Under `axis_name`, device k holds examples k*b .. (k+1)*b - 1 of every
  view, and each sub-batch's mean and covariance are `psum`s of per-device contributions, so sub-batches may
  span devices and the gradients are exact.

  Args:
    z: [num_views * b, d] embeddings stacked view-major: rows v*b .. (v+1)*b - 1 are view v (the authors' layout).
    num_views: number of views (>= 2).
    whitening_size: w, examples per sub-batch (authors' default 128). B must be a multiple of w and, unless
      eps > 0, w must exceed d so that the covariance has full rank.
    eps: shrinkage of the covariance towards the identity (authors' `w_eps`, default 0).
    key: optional PRNG key for the random assignment of examples to sub-batches.
    axis_name: None when `z` is the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`.

  Returns:
    The scalar loss (float32), the same on every device. No stop-gradient and no state.

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (2 * 8, 2))
    >>> float(wmse(jnp.concatenate([z[:8], z[:8]]), whitening_size=4)) < 1e-5  # identical views
    True

  Ermolov et al., "Whitening for Self-Supervised Representation Learning", ICML 2021,
  https://arxiv.org/abs/2007.06346 (eq. 3-6, Algorithm 1).
  """
  _checks.check_array("z", z, ndim=2, shape_doc="[num_views * b, d]")
  if not isinstance(num_views, int) or num_views < 2:
    raise ValueError(f"num_views must be an int >= 2; got {num_views!r}.")
  if not isinstance(whitening_size, int) or whitening_size < 2:
    raise ValueError(f"whitening_size must be an int >= 2; got {whitening_size!r}.")
  _checks.check_in_range("eps", eps, 0.0, 1.0, high_inclusive=False)
  rows, d = z.shape
  if rows % num_views:
    raise ValueError(f"z must have num_views * b rows; got shape {(rows, d)} with num_views={num_views}.")
  b = rows // num_views
  big_b = b * _collectives.axis_size(axis_name)
  w = whitening_size
  if big_b % w:
    raise ValueError(f"the global batch size B={big_b} must be a multiple of whitening_size={w}.")
  if isinstance(eps, (int, float)) and eps == 0 and w <= d:
    raise ValueError(f"whitening_size={w} must be greater than the embedding dimension d={d} "
                     "(the covariance of w examples has rank <= w - 1); raise whitening_size or set eps > 0.")
  z = _ops.to_float32(z)
  global_index = _collectives.axis_index(axis_name) * b + jnp.arange(b)
  if key is not None:
    position = jnp.argsort(jax.random.permutation(key, big_b))  # pi^{-1}: where each example was drawn
    global_index = position[global_index]
  sub_batch = global_index // w
  views = [_whiten(z[v * b:(v + 1) * b], sub_batch, big_b // w, w, eps, axis_name) for v in range(num_views)]
  pairs = list(itertools.combinations(range(num_views), 2))
  local = sum(jnp.sum(2.0 - 2.0 * _cosine(views[i], views[j])) for i, j in pairs)
  return _collectives.global_mean(local, b * len(pairs), axis_name)
