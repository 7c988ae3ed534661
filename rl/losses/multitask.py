"""Multi-task objectives over a shared representation: ESMM's entire-space CTR / CVR model."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def _check_task(name: str, x, shape) -> None:
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise ValueError(f"{name} must be an array of shape {shape}; got {type(x).__name__}.")
  if tuple(x.shape) != tuple(shape):
    raise ValueError(f"{name} must have the shape of ctr_logits, {tuple(shape)}; got shape {tuple(x.shape)}.")


def esmm(ctr_logits: jax.Array, cvr_logits: jax.Array, click: jax.Array, conversion: jax.Array, *,
         return_terms: bool = False,
         axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""ESMM: learn CVR over the entire impression space through pCTCVR = pCTR * pCVR.

  Post-click conversion rate (CVR) is observed only on clicked impressions; ESMM never fits it directly.
  Over ALL N impressions it fits the click label y with pCTR = sigmoid(ctr) and the click-AND-conversion label
  y * z with pCTCVR = pCTR * pCVR, pCVR = sigmoid(cvr) (paper eqs. 2-3, with a mean instead of a sum):

  .. math::
      L = \frac{1}{N}\sum_{i=1}^{N} \mathrm{BCE}(y_i, \mathrm{pCTR}_i)
          + \frac{1}{N}\sum_{i=1}^{N} \mathrm{BCE}(y_i z_i, \mathrm{pCTR}_i \cdot \mathrm{pCVR}_i),
      \qquad \mathrm{BCE}(y, p) = -y\log p - (1 - y)\log(1 - p).

  Computed in log space without ever forming a probability: log pCTCVR = log_sigmoid(ctr) + log_sigmoid(cvr),
  and, since 1 - s(a) s(b) = s(-a) + s(a) s(-b),
  log(1 - pCTCVR) = logaddexp(log_sigmoid(-ctr), log_sigmoid(ctr) + log_sigmoid(-cvr)), which stays exact
  where log1p(-exp(log pCTCVR)) would round to log(0) (both logits large). The CVR tower is trained only
  through the product; the two towers usually share the embedding layer (the "feature representation
  transfer" of the paper), which is the caller's model. Serve pCVR = sigmoid(cvr_logits).

  Args:
    ctr_logits: [b] (or any shape, the same for every argument) logits of the CTR tower.
    cvr_logits: logits of the CVR tower, the shape of `ctr_logits`.
    click: click labels y in {0, 1} (bool, int or float; soft labels in [0, 1] also work).
    conversion: conversion labels z; only y * z enters the loss, so z on unclicked impressions is ignored.
    return_terms: also return the two terms, {"ctr": ..., "ctcvr": ...}.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard.

  Returns:
    The scalar loss (float32 for float32/bfloat16 logits); with `return_terms`, `(loss, terms)`.

  Example:
    >>> z = jnp.zeros(2)  # pCTR = 1/2, pCTCVR = 1/4; one click without conversion, one impression without click
    >>> loss = esmm(z, z, jnp.array([1, 0]), jnp.array([0, 0]))
    >>> round(float(loss), 4)  # log 2 + (-log(3/4))
    0.9808

  Ma et al., "Entire Space Multi-Task Model: An Effective Approach for Estimating Post-Click Conversion Rate",
  SIGIR 2018, https://arxiv.org/abs/1804.07931 (Section 2.3, eqs. 2-3).
  """
  _checks.check_array("ctr_logits", ctr_logits, shape_doc="[b]")
  if ctr_logits.ndim < 1 or ctr_logits.size == 0:
    raise ValueError(f"ctr_logits must have shape [b] with b >= 1; got shape {tuple(ctr_logits.shape)}.")
  shape = ctr_logits.shape
  _check_task("cvr_logits", cvr_logits, shape)
  _checks.check_array("cvr_logits", cvr_logits, shape_doc=str(list(shape)))
  _check_task("click", click, shape)
  _check_task("conversion", conversion, shape)
  ctr, cvr = _ops.to_float32(ctr_logits, cvr_logits)
  y = jnp.asarray(click, ctr.dtype)
  yz = y * jnp.asarray(conversion, ctr.dtype)
  ls_ctr, ls_not_ctr = jax.nn.log_sigmoid(ctr), jax.nn.log_sigmoid(-ctr)
  log_ctcvr = ls_ctr + jax.nn.log_sigmoid(cvr)
  log_not_ctcvr = jnp.logaddexp(ls_not_ctr, ls_ctr + jax.nn.log_sigmoid(-cvr))
  ctr_sum = -jnp.sum(y * ls_ctr + (1.0 - y) * ls_not_ctr)
  ctcvr_sum = -jnp.sum(yz * log_ctcvr + (1.0 - yz) * log_not_ctcvr)
  n = ctr.size
  ctr_loss = _collectives.global_mean(ctr_sum, n, axis_name)
  ctcvr_loss = _collectives.global_mean(ctcvr_sum, n, axis_name)
  loss = ctr_loss + ctcvr_loss
  return (loss, {"ctr": ctr_loss, "ctcvr": ctcvr_loss}) if return_terms else loss
