"""Variational lower bounds on mutual information, estimated from a critic's score matrix.

Every estimator takes `scores` [n, n] with `scores[i, j] = f(x_i, y_j)`: the diagonal holds the n samples of the
joint p(x, y) and the n(n - 1) off-diagonal entries serve as samples of the product of marginals p(x)p(y).
They return the ESTIMATE of the bound (a quantity to MAXIMISE); the training loss is its negative. The batch is the
whole score matrix, so there is no `axis_name`: build `scores` from all-gathered embeddings if needed.

References: Tschannen et al., "On Mutual Information Maximization for Representation Learning", ICLR 2020,
https://arxiv.org/abs/1907.13625 (Section 2); Poole et al., "On Variational Bounds of Mutual Information",
ICML 2019, https://arxiv.org/abs/1905.06922 (Section 2, whose estimators these follow term by term).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _ops


def _check_scores(scores) -> jax.Array:
  _checks.check_array("scores", scores, ndim=2, shape_doc="[n, n]")
  n, m = scores.shape
  if n != m:
    raise ValueError(f"scores must be a square [n, n] critic matrix (rows x_i, columns y_j); got shape {(n, m)}.")
  if n < 2:
    raise ValueError(f"scores needs n >= 2 so that off-diagonal (negative) pairs exist; got shape {(n, m)}.")
  return _ops.to_float32(scores)


def _log_mean_exp_off_diagonal(s: jax.Array) -> jax.Array:
  n = s.shape[0]
  return jax.nn.logsumexp(_ops.off_diagonal(s)) - math.log(n * (n - 1))


def mi_infonce(scores: jax.Array) -> jax.Array:
  r"""InfoNCE (CPC) lower bound on I(X; Y), in nats.

  .. math::
      \hat I_{\mathrm{NCE}} = \frac{1}{n} \sum_{i=1}^{n}
          \Big[ s_{ii} - \log \sum_{j=1}^{n} e^{s_{ij}} \Big] + \log n \;\le\; \log n .

  The bound is tight for f = log p(y|x) + c(y) only while I(X; Y) << log n; it can never exceed log n.

  Args:
    scores: [n, n] critic values f(x_i, y_j); the diagonal pairs are the joint samples.

  Returns:
    The scalar estimate in nats (float32); minimise its negative.

  Example:
    >>> round(float(mi_infonce(jnp.zeros((4, 4)))), 6)  # an uninformative critic: log(1/4) + log 4
    0.0

  van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018,
  https://arxiv.org/abs/1807.03748; Poole et al. 2019, https://arxiv.org/abs/1905.06922 (eq. 12).
  """
  s = _check_scores(scores)
  n = s.shape[0]
  return jnp.mean(jnp.diagonal(s) - jax.nn.logsumexp(s, axis=1)) + math.log(n)


def mi_nwj(scores: jax.Array) -> jax.Array:
  r"""NWJ (f-GAN KL, "MINE-f") lower bound on I(X; Y), in nats.

  .. math::
      \hat I_{\mathrm{NWJ}} = \frac{1}{n} \sum_i s_{ii}
          - \frac{1}{e}\, \frac{1}{n(n-1)} \sum_{i \ne j} e^{s_{ij}},

  with the marginal term over the off-diagonal entries only, as in Poole et al.'s `nwj_lower_bound`, and computed
  as exp(log-mean-exp(s) - 1). The optimal critic is f = 1 + log p(x, y) / (p(x) p(y)).

  Args:
    scores: [n, n] critic values f(x_i, y_j); the diagonal pairs are the joint samples.

  Returns:
    The scalar estimate in nats (float32); minimise its negative.

  Example:
    >>> round(float(mi_nwj(jnp.ones((3, 3)))), 6)  # 1 - e^{-1} e^{1}
    0.0

  Nguyen, Wainwright & Jordan, "Estimating divergence functionals and the likelihood ratio by convex risk
  minimization", IEEE Trans. Inf. Theory 2010, https://arxiv.org/abs/0809.0853; Poole et al. 2019,
  https://arxiv.org/abs/1905.06922 (eq. 6, with a(y) = e).
  """
  s = _check_scores(scores)
  return jnp.mean(jnp.diagonal(s)) - jnp.exp(_log_mean_exp_off_diagonal(s) - 1.0)


def mi_dv(scores: jax.Array) -> jax.Array:
  r"""Donsker-Varadhan (MINE) lower bound on I(X; Y), in nats.

  .. math::
      \hat I_{\mathrm{DV}} = \frac{1}{n} \sum_i s_{ii}
          - \log \frac{1}{n(n-1)} \sum_{i \ne j} e^{s_{ij}},

  the log-mean-exp taken with a log-sum-exp over the off-diagonal entries. Invariant to adding a constant to the
  critic; optimal for f = log p(x, y) / (p(x) p(y)) + c. Its mini-batch gradient is biased (MINE corrects it with a
  moving average of the denominator, which is the caller's to keep).

  Args:
    scores: [n, n] critic values f(x_i, y_j); the diagonal pairs are the joint samples.

  Returns:
    The scalar estimate in nats (float32); minimise its negative.

  Example:
    >>> round(float(mi_dv(jnp.eye(3) * 2.0)), 6)  # 2 - log(mean of six e^0)
    2.0

  Belghazi et al., "Mutual Information Neural Estimation", ICML 2018, https://arxiv.org/abs/1801.04062 (eq. 10);
  Poole et al. 2019, https://arxiv.org/abs/1905.06922 (Section 2.2).
  """
  s = _check_scores(scores)
  return jnp.mean(jnp.diagonal(s)) - _log_mean_exp_off_diagonal(s)


def mi_jsd(scores: jax.Array) -> jax.Array:
  r"""Jensen-Shannon (f-GAN JS) estimator of Deep InfoMax; NOT a bound on MI in nats.

  .. math::
      \hat I_{\mathrm{JSD}} = \frac{1}{n} \sum_i -\mathrm{softplus}(-s_{ii})
          - \frac{1}{n(n-1)} \sum_{i \ne j} \mathrm{softplus}(s_{ij}) .

  This is the variational lower bound on 2 JS(p(x, y) || p(x)p(y)) - log 4, reached by the critic
  f = log p(x, y) / (p(x) p(y)); it always lies in (-inf, 0) and its maximum over critics is in [-log 4, 0]. It
  orders critics like MI but is not measured in nats (Hjelm et al. 2019, eq. 4; Poole et al.'s
  `js_fgan_lower_bound`, which also averages the marginal term over off-diagonal entries).

  Args:
    scores: [n, n] critic values f(x_i, y_j); the diagonal pairs are the joint samples.

  Returns:
    The scalar estimate (float32), a lower bound on 2 JS - log 4; minimise its negative.

  Example:
    >>> round(float(mi_jsd(jnp.zeros((3, 3)))), 6)  # -2 log 2 for an uninformative critic
    -1.386294

  Hjelm et al., "Learning deep representations by mutual information estimation and maximization", ICLR 2019,
  https://arxiv.org/abs/1808.06670 (eq. 4); Nowozin et al., "f-GAN", NeurIPS 2016, https://arxiv.org/abs/1606.00709.
  """
  s = _check_scores(scores)
  joint = jnp.mean(-jax.nn.softplus(-jnp.diagonal(s)))
  marginal = jnp.mean(jax.nn.softplus(_ops.off_diagonal(s)))
  return joint - marginal
