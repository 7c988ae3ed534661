"""Contrastive objectives: losses that tell a positive pair apart from negatives."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.1,
            axis_name: str | None = None) -> jax.Array:
  r"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR.

  The two views of a batch of b examples give 2b embeddings, L2-normalised to u. Each of the 2b views is an
  anchor; its positive is the other view of the same example; the other 2b-2 views of the GLOBAL batch (all
  devices) are its negatives:

  .. math::
      \ell_i = -\frac{u_i^\top u_{p(i)}}{\tau} + \log \sum_{k \ne i} \exp(u_i^\top u_k / \tau),
      \qquad L = \frac{1}{2B} \sum_{i=1}^{2B} \ell_i .

  The log-sum-exp runs in float32 even for bfloat16 inputs.

  Args:
    z1: [b, d] embeddings of the first view (projector outputs; normalised here).
    z2: [b, d] embeddings of the second view; row i is the positive of `z1[i]`.
    temperature: tau > 0 (SimCLR uses 0.1 at large batch and 0.5 on CIFAR).
    axis_name: None when `z1, z2` are the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`,
      where `z1, z2` are this device's shard and negatives come from every device (see `_collectives` for the
      gradient convention under each).

  Returns:
    The scalar mean loss over the 2B anchors of the global batch (float32), the same on every device.

  Example:
    >>> z1 = jnp.eye(4); z2 = jnp.eye(4)
    >>> bool(nt_xent(z1, z2) < nt_xent(z1, z2[::-1]))
    True

  Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
  https://arxiv.org/abs/2002.05709 (eq. 1).
  """
  _checks.check_embeddings(z1=z1, z2=z2)
  _checks.check_positive("temperature", temperature)
  b = z1.shape[0]
  u = _ops.l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))  # local anchors [2b, d]
  u1_all = _collectives.all_gather(u[:b], axis_name)  # [B, d]
  u2_all = _collectives.all_gather(u[b:], axis_name)  # [B, d]
  keys = jnp.concatenate([u1_all, u2_all], axis=0)  # [2B, d]: view-1 block, then view-2 block
  big_b = u1_all.shape[0]
  logits = (u @ keys.T) / temperature  # [2b, 2B]

  # Global column index of each local anchor itself (masked out) and of its positive.
  offset = _collectives.axis_index(axis_name) * b
  rows = jnp.arange(b) + offset
  self_col = jnp.concatenate([rows, rows + big_b])
  pos_col = jnp.concatenate([rows + big_b, rows])
  cols = jnp.arange(2 * big_b)
  logits = jnp.where(cols[None, :] == self_col[:, None], -jnp.inf, logits)
  pos_logit = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  per_anchor = jax.nn.logsumexp(logits, axis=1) - pos_logit
  return _collectives.global_mean(jnp.sum(per_anchor), 2 * b, axis_name)
