"""Kinship verification: FaCoRNet's contrastive loss with a temperature guided by cross-attention.

FaCoRNet (Su et al. 2023) encodes two face images, relates their components (eyes, nose, ...) by cross-attention
and trains on pairs of kin with a symmetric in-batch contrastive loss. Its change to that loss is the
temperature: instead of one constant, each pair gets its own, computed from the pair's cross-attention map, so
pairs whose attention is concentrated (large sum of squared weights) are scored at a softer temperature.

The encoder, the cross-attention module and the fusion of the two faces' features are the caller's. The paper's
method section was not in our stored copies (they gave its abstract and introduction), so `facornet_loss`
follows the authors' released code, named in its docstring.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def facornet_loss(x1: jax.Array, x2: jax.Array, *, attention: jax.Array | None = None, temperature: float = 0.08,
                  attention_scale: float = 500.0, axis_name: str | None = None) -> jax.Array:
  r"""FaCoRNet's attention-guided contrastive loss over pairs of kin.

  Row i of `x1` and row i of `x2` are the features of two related faces. The 2B features z of the global batch
  are compared by cosine; each is an anchor whose positive is the other face of its pair and whose negatives are
  the other 2B - 2 faces, at the temperature of its pair, computed from the pair's cross-attention map A_i:

  .. math::
      \tau_i = \frac{1}{s}\sum_{u, v} A_{i,uv}^2, \qquad
      \ell_r = -\log \frac{\exp(\cos(z_r, z_{p(r)}) / \tau_{i(r)})}
                          {\sum_{j \ne r} \exp(\cos(z_r, z_j) / \tau_{i(r)})}, \qquad
      L = \frac{1}{2B}\sum_{r=1}^{2B} \ell_r ,

  the denominator including the positive, s = `attention_scale` (500 in the released training), and the
  gradient flowing into the attention through tau (the released code does not detach it). Without `attention`,
  tau is the constant `temperature` (the code's plain `contrastive_loss`, beta = 0.08). Under `axis_name` the
  negatives come from every device (all-gather) and the mean runs over the global batch.

  Source: after the authors' code, wtnthu/FaCoR, losses.py (`contrastive_loss`, with `beta` the attention map
  returned by `Net_ada3`, models.py) and train_p.py (`method == 'cont'`); the paper's equation was not
  available to us. Every training pair there is a kin pair (no labels enter the loss).

  Args:
    x1: [b, d] features of the first face of each pair (normalised here).
    x2: [b, d] features of the second face; row i is kin of `x1[i]`.
    attention: optional [b, ...] cross-attention map of each pair (e.g. [b, n, n] softmax weights over the
      components); its squared entries, summed per pair, give tau.
    temperature: the constant tau when `attention` is None.
    attention_scale: s, the divisor of the summed squared attention.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard, negatives come from every device and the mean runs over
      the global batch.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> x = jnp.eye(4)
    >>> bool(facornet_loss(x, x) < facornet_loss(x, x[::-1]))  # kin pairs that agree cost less
    True
    >>> att = jnp.full((4, 10, 10), 0.1)  # uniform attention over 10 components: tau = 1 / 500
    >>> round(float(facornet_loss(x, x, attention=att, attention_scale=1.0)), 4)  # tau = 1: log(1 + 6 / e)
    1.1654

  Su, Chen, Wang, Lai & Chen, "Kinship Representation Learning with Face Componential Relation", ICCV 2023
  Workshops (AMFG), https://arxiv.org/abs/2304.04546; code github.com/wtnthu/FaCoR.
  """
  _checks.check_embeddings(x1=x1, x2=x2)
  b = x1.shape[0]
  if attention is None:
    _checks.check_positive("temperature", temperature)
    tau = jnp.full((b,), temperature, jnp.float32)
  else:
    _checks.check_array("attention", attention, shape_doc="[b, ...]")
    if attention.ndim < 2 or attention.shape[0] != b:
      raise ValueError(f"attention must have shape [{b}, ...] (one map per pair of x1, {tuple(x1.shape)}); got "
                       f"shape {tuple(attention.shape)}.")
    _checks.check_positive("attention_scale", attention_scale)
    a = _ops.to_float32(attention)
    tau = jnp.sum(jnp.square(a).reshape(b, -1), axis=1) / attention_scale
  u = l2_normalize(jnp.concatenate(_ops.to_float32(x1, x2), axis=0))  # local anchors [2b, d]
  keys = jnp.concatenate([_collectives.all_gather(u[:b], axis_name), _collectives.all_gather(u[b:], axis_name)])
  big_b = keys.shape[0] // 2
  tau2 = jnp.concatenate([tau, tau])
  logits = (u @ keys.T) / tau2[:, None]  # [2b, 2B]
  rows = jnp.arange(b) + _collectives.axis_index(axis_name) * b
  self_col = jnp.concatenate([rows, rows + big_b])
  pos_col = jnp.concatenate([rows + big_b, rows])
  cols = jnp.arange(2 * big_b)
  pos_logit = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  logits = jnp.where(cols[None, :] == self_col[:, None], -jnp.inf, logits)
  per_anchor = jax.nn.logsumexp(logits, axis=1) - pos_logit
  return _collectives.global_mean(jnp.sum(per_anchor), 2 * b, axis_name)


__all__ = ["facornet_loss"]
