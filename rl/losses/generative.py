"""Generative objectives that learn a representation: BiGAN's adversarial feature learning and the beta-VAE bound.

Both are means over the examples of the batch; with `axis_name` the sums are `psum`-ed over devices so the value
and gradients equal the single-device computation on the global batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def _check_logits(name: str, x) -> jax.Array:
  _checks.check_array(name, x, shape_doc="[b] or [b, 1] (one discriminator logit per example)")
  if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] != 1) or x.shape[0] == 0:
    raise ValueError(f"{name} must have shape [b] or [b, 1] (one discriminator logit per example, b >= 1); "
                     f"got shape {tuple(x.shape)}.")
  return _ops.to_float32(x).reshape(-1)


def _mean_log_sigmoid(logits: jax.Array, axis_name: str | None) -> jax.Array:
  """Global-batch mean of log sigmoid(logits) (log_sigmoid = -softplus(-x): finite for any logit)."""
  return _collectives.global_mean(jnp.sum(jax.nn.log_sigmoid(logits)), logits.shape[0], axis_name)


def bigan_discriminator_loss(d_real: jax.Array, d_fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""BiGAN discriminator loss: tell the data pairs (x, E(x)) from the generated pairs (G(z), z).

  With the discriminator's logits :math:`a_i = D(x_i, E(x_i))` on data and :math:`c_j = D(G(z_j), z_j)` on
  generated pairs, the discriminator maximises the BiGAN value function V(D, E, G) (paper eq. 1), i.e. minimises

  .. math::
      L_D = -\frac{1}{B}\sum_{i=1}^{B} \log\sigma(a_i) - \frac{1}{B'}\sum_{j=1}^{B'} \log\big(1 - \sigma(c_j)\big),

  computed as `-log_sigmoid(a) - log_sigmoid(-c)` so that no logit overflows. Each mean runs over the GLOBAL
  batch of its own term (the two batches may differ in size).

  The caller trains only D with this loss: pass the logits computed from `jax.lax.stop_gradient` of E(x) and
  G(z) (or take gradients with respect to D's parameters only).

  Args:
    d_real: [b] or [b, 1] logits D(x, E(x)) on data examples paired with their encodings.
    d_fake: [b'] or [b', 1] logits D(G(z), z) on generated examples paired with their latent codes.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> round(float(bigan_discriminator_loss(jnp.zeros(4), jnp.zeros(4))), 4)  # D undecided: 2 log 2
    1.3863

  Donahue, Kraehenbuehl & Darrell, "Adversarial Feature Learning", ICLR 2017, https://arxiv.org/abs/1605.09782
  (eq. 1 and Section 3).
  """
  a = _check_logits("d_real", d_real)
  c = _check_logits("d_fake", d_fake)
  return -_mean_log_sigmoid(a, axis_name) - _mean_log_sigmoid(-c, axis_name)


def bigan_generator_encoder_loss(d_real: jax.Array, d_fake: jax.Array, *, saturating: bool = False,
                                 axis_name: str | None = None) -> jax.Array:
  r"""BiGAN generator-and-encoder loss: fool D in both directions.

  G and E minimise V(D, E, G). The default is the non-saturating form used in practice (the paper's learning
  section, 3.4, optimises the "inverse" objective, inverting the discriminator's labels as Goodfellow et al. do
  for G): generated pairs should look real and data pairs should look generated,

  .. math::
      L_{GE} = -\frac{1}{B'}\sum_{j} \log\sigma(c_j) - \frac{1}{B}\sum_{i} \log\big(1 - \sigma(a_i)\big),

  with :math:`a_i = D(x_i, E(x_i))` and :math:`c_j = D(G(z_j), z_j)`. With `saturating=True` it is the literal
  minimax objective, :math:`L_{GE} = V = \frac{1}{B}\sum_i \log\sigma(a_i) + \frac{1}{B'}\sum_j \log(1-\sigma(c_j))
  = -L_D`, whose gradients vanish when D is confident (hence "saturating"). Both forms have the same fixed point.

  The caller differentiates this loss with respect to E's and G's parameters only (D is held fixed during this
  update, e.g. its parameters are not passed to the optimiser, or are wrapped in `jax.lax.stop_gradient`).

  Args:
    d_real: [b] or [b, 1] logits D(x, E(x)); gradients reach E through them.
    d_fake: [b'] or [b', 1] logits D(G(z), z); gradients reach G through them.
    saturating: False (default) for the non-saturating, label-inverted loss; True for the minimax form -L_D.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), the same on every device.

  Example:
    >>> d_real, d_fake = jnp.array([3.0]), jnp.array([-3.0])  # D is winning: a large loss for G and E
    >>> bool(bigan_generator_encoder_loss(d_real, d_fake) > bigan_discriminator_loss(d_real, d_fake))
    True

  Donahue, Kraehenbuehl & Darrell, "Adversarial Feature Learning", ICLR 2017, https://arxiv.org/abs/1605.09782
  (eq. 1; Section 3.4 for the inverse objective); non-saturating trick from Goodfellow et al.,
  "Generative Adversarial Nets", NeurIPS 2014, https://arxiv.org/abs/1406.2661.
  """
  a = _check_logits("d_real", d_real)
  c = _check_logits("d_fake", d_fake)
  if saturating:
    return _mean_log_sigmoid(a, axis_name) + _mean_log_sigmoid(-c, axis_name)
  return -_mean_log_sigmoid(c, axis_name) - _mean_log_sigmoid(-a, axis_name)


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  r"""A sample of N(mean, diag(exp(log_var))) that is differentiable in `mean` and `log_var`.

  .. math:: z = \mu + \exp(\tfrac12 \log\sigma^2) \odot \epsilon, \qquad \epsilon \sim N(0, I).

  Args:
    key: a `jax.random` key; the caller splits a fresh one per step.
    mean: [b, k] posterior means.
    log_var: [b, k] posterior log-variances.

  Returns:
    [b, k] samples in the dtype of `mean`.

  Example:
    >>> z = reparameterize(jax.random.key(0), jnp.zeros((2, 3)), jnp.full((2, 3), -jnp.inf))
    >>> z.tolist()  # zero variance: the mean itself
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]

  Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, https://arxiv.org/abs/1312.6114 (Section 2.4).
  """
  _checks.check_array("mean", mean, ndim=2, shape_doc="[b, k]")
  _checks.check_same_shape(mean=mean, log_var=log_var)
  _checks.check_array("log_var", log_var, ndim=2, shape_doc="[b, k]")
  eps = jax.random.normal(key, mean.shape, jnp.promote_types(mean.dtype, jnp.float32))
  return (mean + jnp.exp(0.5 * log_var) * eps).astype(mean.dtype)


def beta_vae(recon: jax.Array, x: jax.Array, mean: jax.Array, log_var: jax.Array, *, beta: float = 4.0,
             likelihood: str = "gaussian", return_terms: bool = False,
             axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""The beta-VAE objective: reconstruction plus beta times the KL divergence to the unit Gaussian prior.

  For an example with data x, decoder output r and Gaussian posterior q(z|x) = N(mu, diag(exp(log_var))):

  .. math::
      \ell = \underbrace{\textstyle\sum_j \mathrm{rec}(r_j, x_j)}_{-\log p(x|z)\,+\,\mathrm{const}}
             + \beta\, \underbrace{\tfrac12 \textstyle\sum_{m=1}^{k}
               \big(e^{\log\sigma_m^2} + \mu_m^2 - 1 - \log\sigma_m^2\big)}_{KL(q(z|x)\,\|\,N(0, I))},
      \qquad L = \frac{1}{B}\sum_{i=1}^{B} \ell_i ,

  summing over all data dimensions j and latent dimensions m, averaging over the GLOBAL batch. beta = 1 is the
  negative evidence lower bound of the VAE; beta > 1 presses the posterior towards the factorised prior, which
  Higgins et al. show disentangles the latent factors (they use beta = 4 on dSprites-like data; the EEG study
  of Honke et al., "Representation learning for improved interpretability and classification accuracy of
  clinical factors from EEG", 2020, https://arxiv.org/abs/2010.15274, applies the same objective to EEG).

  Likelihoods:
    - "gaussian": rec = (r - x)^2, i.e. -log N(x; r, sigma^2 I) with a FIXED variance sigma^2 = 1/2, dropping
      the constant (the squared error summed over dimensions, as in the common beta-VAE implementations).
      Another fixed variance amounts to rescaling beta by 2 sigma^2.
    - "bernoulli": `recon` are LOGITS and rec = -x log sigmoid(r) - (1 - x) log sigmoid(-r), the sigmoid
      cross-entropy (x in [0, 1]).

  Args:
    recon: [b, ...] decoder output (means for "gaussian", logits for "bernoulli") for the z the caller sampled,
      e.g. with `reparameterize`.
    x: [b, ...] data, the same shape as `recon`.
    mean: [b, k] posterior means.
    log_var: [b, k] posterior log-variances.
    beta: weight of the KL term, >= 0 (4.0).
    likelihood: "gaussian" or "bernoulli".
    return_terms: also return the batch means of the terms, {"reconstruction": ..., "kl": ...} (unweighted).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input); with `return_terms`, `(loss, terms)`.

  Example:
    >>> x = jnp.zeros((2, 5)); mu = jnp.zeros((2, 3)); log_var = jnp.zeros((2, 3))
    >>> float(beta_vae(x, x, mu, log_var))  # perfect reconstruction, posterior equals the prior
    0.0

  Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework",
  ICLR 2017, https://openreview.net/forum?id=Sy2fzU9gl (eq. 4); the bound and KL in closed form: Kingma &
  Welling, "Auto-Encoding Variational Bayes", ICLR 2014, https://arxiv.org/abs/1312.6114 (Appendix B).
  """
  _checks.check_array("recon", recon, shape_doc="[b, ...]")
  _checks.check_array("x", x, shape_doc="[b, ...]")
  if recon.ndim < 1:
    raise ValueError(f"recon must have shape [b, ...]; got shape {tuple(recon.shape)}.")
  _checks.check_same_shape(recon=recon, x=x)
  _checks.check_array("mean", mean, ndim=2, shape_doc="[b, k]")
  _checks.check_array("log_var", log_var, ndim=2, shape_doc="[b, k]")
  _checks.check_same_shape(mean=mean, log_var=log_var)
  if mean.shape[0] != recon.shape[0]:
    raise ValueError(f"mean must have one row per example of recon; got shapes {tuple(mean.shape)} and "
                     f"{tuple(recon.shape)}.")
  if likelihood not in ("gaussian", "bernoulli"):
    raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli'; got {likelihood!r}.")
  if isinstance(beta, (int, float)) and beta < 0:
    raise ValueError(f"beta must be >= 0; got {beta}.")
  b = recon.shape[0]
  r, x, mu, lv = _ops.to_float32(recon, x, mean, log_var)
  if likelihood == "gaussian":
    rec = jnp.sum(jnp.square(r - x))
  else:
    rec = -jnp.sum(x * jax.nn.log_sigmoid(r) + (1.0 - x) * jax.nn.log_sigmoid(-r))
  kl = 0.5 * jnp.sum(jnp.exp(lv) + jnp.square(mu) - 1.0 - lv)
  rec = _collectives.global_mean(rec, b, axis_name)
  kl = _collectives.global_mean(kl, b, axis_name)
  loss = rec + beta * kl
  return (loss, {"reconstruction": rec, "kl": kl}) if return_terms else loss
