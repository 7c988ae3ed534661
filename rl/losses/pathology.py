"""Multi-modal pathology objectives: MIRROR's modality retention and style clustering.

MIRROR pre-trains a slide (WSI) encoder and a transcriptomics (RNA) encoder together with five terms: CLIP's
alignment of the two modalities (inside `mirror_loss`), a retention term per modality (each encoder's masked tokens
are reconstructed from the rest, `mirror_retention_loss`), and a style-clustering module whose Gaussian latent is
held near N(0, I) (`mirror_style_loss`) and whose prototype assignments must agree across the modalities
(`mirror_cluster_loss`). `mirror_loss` adds the five with the released weights.

The paper's method section was not in our stored copies (they gave the abstract and introduction), so every
function follows the authors' released code (github.com/TianyiFranklinWang/MIRROR, losses/mirror_loss.py,
models/mirror.py, configs/pretrain/mirror.template.yaml).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def _check_batch_matrix(name: str, x, shape=None) -> None:
  _checks.check_array(name, x, ndim=2, shape_doc="[b, k]")
  if shape is not None and tuple(x.shape) != tuple(shape):
    raise ValueError(f"{name} must have shape {list(shape)}; got shape {tuple(x.shape)}.")


def _symmetric_cross_entropy(u: jax.Array, v: jax.Array, scale, axis_name: str | None) -> jax.Array:
  """CLIP's two-way cross-entropy of scale * u_i . v_j over the global batch, on the embeddings as given."""
  b = u.shape[0]
  pos = scale * jnp.sum(u * v, axis=1)
  rows = jax.nn.logsumexp(scale * u @ _collectives.all_gather(v, axis_name).T, axis=1) - pos
  cols = jax.nn.logsumexp(scale * v @ _collectives.all_gather(u, axis_name).T, axis=1) - pos
  return _collectives.global_mean(jnp.sum(rows + cols) / 2.0, b, axis_name)


def mirror_retention_loss(pred: jax.Array, target: jax.Array, mask: jax.Array, *,
                          axis_name: str | None = None) -> jax.Array:
  r"""MIRROR's modality retention: mean squared error of the reconstructed tokens, on the masked tokens only.

  With predicted and target tokens :math:`\hat x_{bn}, x_{bn}` (vectors of D entries, or scalars) and the mask
  :math:`m_{bn} = 1` for the tokens the decoder did not see,

  .. math::
      L = \frac{\sum_{b,n} m_{bn}\, \frac{1}{D}\lVert \hat x_{bn} - x_{bn} \rVert^2}{\sum_{b,n} m_{bn}},

  the sums over the GLOBAL batch (`psum` under `axis_name`). The WSI branch reconstructs [b, n, d] patch tokens,
  the RNA branch [b, g] gene values (one scalar per token); both are this formula.

  Source: after the authors' code, `MIRRORLoss.forward` (losses/mirror_loss.py of
  github.com/TianyiFranklinWang/MIRROR). There the target is the encoder's own output, not detached; pass
  `jax.lax.stop_gradient(target)` for a fixed target.

  Args:
    pred: [b, n, ...] the retention decoder's output.
    target: the tokens to reconstruct, the shape of `pred`.
    mask: [b, n] 1 (or True) for the masked tokens that count, 0 for the visible ones.
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map` or `jax.pmap`,
      where they are this device's shard and both sums run over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> pred, target = jnp.array([[1.0, 5.0, 2.0]]), jnp.array([[0.0, 0.0, 0.0]])
    >>> float(mirror_retention_loss(pred, target, jnp.array([[1, 0, 1]])))  # (1 + 4) / 2; the visible 5 is ignored
    2.5

  Wang et al., "MIRROR: Multi-Modal Pathological Self-Supervised Representation Learning via Modality Alignment
  and Retention", 2025, https://arxiv.org/abs/2503.00374; code github.com/TianyiFranklinWang/MIRROR.
  """
  _checks.check_array("pred", pred, shape_doc="[b, n, ...]")
  if pred.ndim < 2:
    raise ValueError(f"pred must have shape [b, n, ...]; got shape {tuple(pred.shape)}.")
  _checks.check_same_shape(pred=pred, target=target)
  b, n = pred.shape[:2]
  if not hasattr(mask, "shape") or tuple(mask.shape) != (b, n):
    got = f"shape {tuple(mask.shape)}" if hasattr(mask, "shape") else type(mask).__name__
    raise ValueError(f"mask must have shape [{b}, {n}] (the [b, n] of pred); got {got}.")
  p, t = _ops.to_float32(pred, target)
  err = jnp.square(p - t).reshape(b, n, -1).mean(axis=-1)
  m = jnp.asarray(mask, p.dtype)
  return _collectives.psum(jnp.sum(err * m), axis_name) / _collectives.psum(jnp.sum(m), axis_name)


def mirror_style_loss(mu: jax.Array, log_var: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""MIRROR's style regulariser for one modality: the KL divergence of the style latent from N(0, I).

  The style encoder gives a diagonal Gaussian :math:`\mathcal N(\mu_b, \operatorname{diag} e^{v_b})`; with K latent
  dimensions,

  .. math::
      L = \frac{1}{B}\sum_{b=1}^{B} \frac{1}{2}\sum_{k=1}^{K} \big(e^{v_{bk}} + \mu_{bk}^2 - 1 - v_{bk}\big),

  the mean over the GLOBAL batch (`psum` under `axis_name`). MIRROR's style term is the sum of this over the WSI
  and the RNA latents (the code's 0.5 (A_wsi + A_rna) with A the batch mean of the inner sum).

  Source: after the authors' code (losses/mirror_loss.py of github.com/TianyiFranklinWang/MIRROR). The code calls
  v `logstd` but samples with std = exp(v / 2) (`MIRROR.reparameterize`), so v is a log-variance, as here.

  Args:
    mu: [b, k] means of the style latent.
    log_var: [b, k] log-variances.
    axis_name: None, or the mapped axis: the mean then runs over every device.

  Returns:
    The scalar KL (float32 for float32/bfloat16 input).

  Example:
    >>> float(mirror_style_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3))))  # already N(0, I)
    0.0

  Wang et al., "MIRROR: Multi-Modal Pathological Self-Supervised Representation Learning via Modality Alignment
  and Retention", 2025, https://arxiv.org/abs/2503.00374; code github.com/TianyiFranklinWang/MIRROR.
  """
  _check_batch_matrix("mu", mu)
  _check_batch_matrix("log_var", log_var, mu.shape)
  m, v = _ops.to_float32(mu, log_var)
  per_example = 0.5 * jnp.sum(jnp.exp(v) + jnp.square(m) - 1.0 - v, axis=1)
  return _collectives.global_mean(jnp.sum(per_example), mu.shape[0], axis_name)


def mirror_cluster_loss(wsi_scores: jax.Array, rna_scores: jax.Array, *,
                        axis_name: str | None = None) -> jax.Array:
  r"""MIRROR's style clustering agreement: the symmetric KL between the two modalities' prototype assignments.

  With :math:`p_b = \operatorname{softmax}(s^{\mathrm{wsi}}_b)` and :math:`q_b = \operatorname{softmax}(
  s^{\mathrm{rna}}_b)` over the prototypes,

  .. math::
      L = \frac{1}{2B}\sum_{b=1}^{B} \Big[\mathrm{KL}(q_b \,\|\, p_b) + \mathrm{KL}(p_b \,\|\, q_b)\Big],

  the mean over the GLOBAL batch (`psum` under `axis_name`); both directions are differentiated (neither side is
  a fixed target). Computed with log-softmax (the code takes the log of the softmax).

  Source: after the authors' code, `F.kl_div(wsi_prob.log(), rna_prob, reduction="batchmean")` and its mirror
  (losses/mirror_loss.py of github.com/TianyiFranklinWang/MIRROR); the scores are a shared bias-free linear layer
  of 3000 prototypes applied to each modality's decoded style sample.

  Args:
    wsi_scores: [b, k] prototype scores of the slide branch.
    rna_scores: [b, k] prototype scores of the transcriptomics branch; row i pairs with `wsi_scores[i]`.
    axis_name: None, or the mapped axis: the mean then runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> s = jnp.array([[1.0, 2.0, 3.0]])
    >>> float(mirror_cluster_loss(s, s + 5.0))  # the same assignment: no disagreement
    0.0

  Wang et al., "MIRROR: Multi-Modal Pathological Self-Supervised Representation Learning via Modality Alignment
  and Retention", 2025, https://arxiv.org/abs/2503.00374; code github.com/TianyiFranklinWang/MIRROR.
  """
  _check_batch_matrix("wsi_scores", wsi_scores)
  _check_batch_matrix("rna_scores", rna_scores, wsi_scores.shape)
  lp = jax.nn.log_softmax(_ops.to_float32(wsi_scores), axis=1)
  lq = jax.nn.log_softmax(_ops.to_float32(rna_scores), axis=1)
  p, q = jnp.exp(lp), jnp.exp(lq)
  per_example = 0.5 * (jnp.sum(q * (lq - lp), axis=1) + jnp.sum(p * (lp - lq), axis=1))
  return _collectives.global_mean(jnp.sum(per_example), wsi_scores.shape[0], axis_name)


def mirror_loss(wsi_embedding: jax.Array, rna_embedding: jax.Array, logit_scale, wsi_retention: tuple,
                rna_retention: tuple, wsi_style: tuple, rna_style: tuple, wsi_scores: jax.Array,
                rna_scores: jax.Array, *, alignment_weight: float = 0.5, wsi_retention_weight: float = 0.15,
                rna_retention_weight: float = 0.15, style_weight: float = 0.1, cluster_weight: float = 0.1,
                normalize: bool = False, return_terms: bool = False,
                axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""MIRROR's pre-training loss: alignment, retention of each modality, style and clustering, weighted.

  With :math:`L_{\mathrm{CLIP}}(u, v) = \frac{1}{2B}\sum_i [\log\sum_j e^{s u_i^\top v_j} + \log\sum_j
  e^{s v_i^\top u_j} - 2 s u_i^\top v_i]` on the contrastive embeddings as given (the code does not normalise
  them after its heads' linear layer),

  .. math::
      L = w_a L_{\mathrm{CLIP}}(u, v) + w_{rw} L_{\mathrm{ret}}^{\mathrm{wsi}} + w_{rr} L_{\mathrm{ret}}^{\mathrm{rna}}
          + w_s \big(\mathrm{KL}^{\mathrm{wsi}} + \mathrm{KL}^{\mathrm{rna}}\big) + w_c L_{\mathrm{cluster}},

  `mirror_retention_loss` for each modality, `mirror_style_loss` for each style latent and `mirror_cluster_loss`.
  The default weights (0.5, 0.15, 0.15, 0.1, 0.1) are the released pre-training config's
  (configs/pretrain/mirror.template.yaml); the `MIRRORLoss` class defaults are (0.5, 0.1, 0.1, 0.1, 0.2).

  Source: after the authors' code, `MIRRORLoss.forward` (losses/mirror_loss.py of
  github.com/TianyiFranklinWang/MIRROR). `normalize=True` L2-normalises the embeddings first, which is
  `rl.losses.clip`'s alignment.

  Args:
    wsi_embedding: [b, e] the slide branch's contrastive embedding.
    rna_embedding: [b, e] the transcriptomics branch's; row i pairs with `wsi_embedding[i]`.
    logit_scale: CLIP's exponentiated scale (learned, initialised to 1 / 0.07).
    wsi_retention: `(pred, target, mask)` of the slide branch for `mirror_retention_loss`.
    rna_retention: `(pred, target, mask)` of the transcriptomics branch.
    wsi_style: `(mu, log_var)` of the slide branch's style latent.
    rna_style: `(mu, log_var)` of the transcriptomics branch's.
    wsi_scores: [b, k] prototype scores of the slide branch.
    rna_scores: [b, k] prototype scores of the transcriptomics branch.
    alignment_weight: w_a.
    wsi_retention_weight: w_rw.
    rna_retention_weight: w_rr.
    style_weight: w_s.
    cluster_weight: w_c.
    normalize: L2-normalise the contrastive embeddings before the alignment (the code does not).
    return_terms: also return the unweighted terms.
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map` or `jax.pmap`,
      where every batched array is this device's shard (CLIP's negatives are gathered, every mean is global).

  Returns:
    The scalar loss, or `(loss, {"alignment", "wsi_retention", "rna_retention", "style", "cluster"})` with
    `return_terms`.

  Example:
    >>> e = jnp.eye(2)
    >>> ret = (jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> sty = (jnp.zeros((2, 4)), jnp.zeros((2, 4)))
    >>> loss, terms = mirror_loss(e, e, 1.0, ret, ret, sty, sty, e, e, return_terms=True)
    >>> {k: round(float(v), 4) for k, v in terms.items()}  # matching pairs, nothing to reconstruct
    {'alignment': 0.3133, 'wsi_retention': 0.0, 'rna_retention': 0.0, 'style': 0.0, 'cluster': 0.0}

  Wang et al., "MIRROR: Multi-Modal Pathological Self-Supervised Representation Learning via Modality Alignment
  and Retention", 2025, https://arxiv.org/abs/2503.00374; code github.com/TianyiFranklinWang/MIRROR.
  """
  for name, value, size in (("wsi_retention", wsi_retention, 3), ("rna_retention", rna_retention, 3),
                            ("wsi_style", wsi_style, 2), ("rna_style", rna_style, 2)):
    if not isinstance(value, (tuple, list)) or len(value) != size:
      what = "(pred, target, mask)" if size == 3 else "(mu, log_var)"
      raise ValueError(f"{name} must be a tuple {what}; got {type(value).__name__}"
                       f"{' of length ' + str(len(value)) if isinstance(value, (tuple, list)) else ''}.")
  _check_batch_matrix("wsi_embedding", wsi_embedding)
  _check_batch_matrix("rna_embedding", rna_embedding, wsi_embedding.shape)
  u, v = _ops.to_float32(wsi_embedding, rna_embedding)
  if normalize:
    u, v = l2_normalize(u), l2_normalize(v)
  terms = {
      "alignment": _symmetric_cross_entropy(u, v, logit_scale, axis_name),
      "wsi_retention": mirror_retention_loss(*wsi_retention, axis_name=axis_name),
      "rna_retention": mirror_retention_loss(*rna_retention, axis_name=axis_name),
      "style": (mirror_style_loss(*wsi_style, axis_name=axis_name)
                + mirror_style_loss(*rna_style, axis_name=axis_name)),
      "cluster": mirror_cluster_loss(wsi_scores, rna_scores, axis_name=axis_name),
  }
  weights = {"alignment": alignment_weight, "wsi_retention": wsi_retention_weight,
             "rna_retention": rna_retention_weight, "style": style_weight, "cluster": cluster_weight}
  loss = sum(weights[k] * terms[k] for k in terms)
  return (loss, terms) if return_terms else loss


__all__ = ["mirror_retention_loss", "mirror_style_loss", "mirror_cluster_loss", "mirror_loss"]
