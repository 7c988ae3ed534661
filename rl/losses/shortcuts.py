"""Removing shortcut features: the feature sieve (SiFer) and the adversarial lens of automatic shortcut removal.

Both methods make simple, easily computed features less useful to the network. The feature sieve identifies
them with an auxiliary head on a LOWER layer of the classifier and then erases them from that layer
(`sieve_aux_loss`, `sieve_forget_loss`, `sieve_forget_schedule`). Automatic shortcut removal trains a small
image-to-image "lens" against the pretext task, so that the features it can cheaply destroy are not the ones
the representation learns (`lens_loss`). Which parameters each loss updates is the caller's choice, and it is
part of the method: the docstrings say which.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def _check_logits(name: str, logits) -> None:
  _checks.check_array(name, logits, ndim=2, shape_doc="[b, K]")
  if logits.shape[1] < 2:
    raise ValueError(f"{name} must have shape [b, K] with K >= 2 classes; got shape {tuple(logits.shape)}.")


def sieve_aux_loss(aux_logits: jax.Array, labels: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""The feature sieve's identification step: the auxiliary head learns to predict the label from a low layer.

  An auxiliary head A (SiFer's `ConvAux`: a few conv blocks, average pooling, a linear layer) reads the feature
  map of an early block of the classifier (block `aux_pos`, the first by default) and is trained with the label:

  .. math::
      L_{\text{aux}} = -\frac{1}{B} \sum_{i=1}^{B} \log \operatorname{softmax}\big(A(h_i)\big)_{y_i} .

  What A can predict from the early features are the simple features the sieve will erase
  (`sieve_forget_loss`). Caller's duties: this loss updates ONLY the auxiliary head's parameters (its own
  optimiser, SGD with lr 1e-2 and weight decay 1e-4 in the released config); the backbone gets no gradient from it.
  The main classifier keeps its usual cross-entropy on the final layer.

  Source: `SiFeR._compute_aux_loss` and `SiFeR.update` in google-research/sifer/learning/algorithms.py (the
  authors' code); our stored copies of the paper gave only its abstract and introduction, so its equations could
  not be compared.

  Args:
    aux_logits: [b, K] outputs of the auxiliary head.
    labels: int [b] class labels in [0, K).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar mean cross-entropy over the global batch (float32 for float32/bfloat16 logits).

  Example:
    >>> round(float(sieve_aux_loss(jnp.array([[2.0, 0.0], [0.0, 0.0]]), jnp.array([0, 1]))), 4)
    0.41

  Tiwari & Shenoy, "Overcoming Simplicity Bias in Deep Networks using a Feature Sieve", ICML 2023,
  https://arxiv.org/abs/2301.13293.
  """
  _check_logits("aux_logits", aux_logits)
  _checks.check_labels("labels", labels, aux_logits.shape[0])
  logp = jax.nn.log_softmax(_ops.to_float32(aux_logits), axis=-1)
  nll = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
  return _collectives.global_mean(jnp.sum(nll), aux_logits.shape[0], axis_name)


def sieve_forget_loss(aux_logits: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""The feature sieve's forgetting step: cross-entropy of the auxiliary head against the uniform distribution.

  With K classes, the forgetting loss is the cross-entropy of the auxiliary prediction with the target 1/K for
  every class; minimising it over the LOW layers makes their features useless to the head, i.e. erases what the
  head identified:

  .. math::
      L_{\text{forget}} = -\frac{1}{B} \sum_{i=1}^{B} \frac{1}{K} \sum_{k=1}^{K}
          \log \operatorname{softmax}(a_i)_k
        = \frac{1}{B} \sum_{i=1}^{B} \Big( \log \sum_k e^{a_{ik}} - \frac{1}{K} \sum_k a_{ik} \Big) ,

  which is log K when the head is uniform. Caller's duties: this loss updates ONLY the backbone layers up to and
  including the auxiliary position (SiFer: conv1, bn1 and the first `aux_pos` residual stages), with its own
  plain SGD (lr 1e-2, no momentum, in the released config), and only on the steps `sieve_forget_schedule` marks
  (every 5th). The auxiliary head itself is not updated here.

  Source: `SiFeR._compute_forget_loss` (torch's `CrossEntropyLoss` with the soft target `1 / num_classes`) and
  `SiFeR.update` in google-research/sifer/learning/algorithms.py, the authors' code; the paper's equations were
  not in our stored copies.

  Args:
    aux_logits: [b, K] outputs of the auxiliary head.
    axis_name: None when `aux_logits` is the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where it is this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 logits).

  Example:
    >>> round(float(sieve_forget_loss(jnp.zeros((3, 4)))), 4)  # a uniform head: log 4
    1.3863

  Tiwari & Shenoy, "Overcoming Simplicity Bias in Deep Networks using a Feature Sieve", ICML 2023,
  https://arxiv.org/abs/2301.13293.
  """
  _check_logits("aux_logits", aux_logits)
  a = _ops.to_float32(aux_logits)
  per_example = jax.nn.logsumexp(a, axis=-1) - jnp.mean(a, axis=-1)
  return _collectives.global_mean(jnp.sum(per_example), a.shape[0], axis_name)


def sieve_forget_schedule(step: jax.Array | int, *, forget_after_iters: int = 5) -> jax.Array:
  """Whether the feature sieve runs its forgetting step at `step`: every `forget_after_iters` steps, from step 0.

  The released code runs `sieve_forget_loss` when `step % forget_after_iters == 0` (5 by default, 15 in its
  random hyper-parameter search), after the auxiliary head's update and before the main update of the same step.

  Args:
    step: the training step (an int or an int array, traced or not).
    forget_after_iters: the period k >= 1 (5, the authors' default config).

  Returns:
    A bool array (scalar for a scalar step): True on the forgetting steps.

  Example:
    >>> sieve_forget_schedule(jnp.arange(7)).tolist()
    [True, False, False, False, False, True, False]

  Tiwari & Shenoy, "Overcoming Simplicity Bias in Deep Networks using a Feature Sieve", ICML 2023,
  https://arxiv.org/abs/2301.13293 (google-research/sifer/params.py and learning/algorithms.py).
  """
  if isinstance(forget_after_iters, bool) or not isinstance(forget_after_iters, int) or forget_after_iters < 1:
    raise ValueError(f"forget_after_iters must be an int >= 1; got {forget_after_iters!r}.")
  step = jnp.asarray(step)
  if not jnp.issubdtype(step.dtype, jnp.integer):
    raise ValueError(f"step must be an integer (or an integer array); got dtype {step.dtype}.")
  return step % forget_after_iters == 0


def lens_loss(logits: jax.Array, images: jax.Array, lensed_images: jax.Array, *, reconstruction_weight: float,
              labels: jax.Array | None = None, adversarial: str = "least_likely", return_terms: bool = False,
              axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""The lens objective of automatic shortcut removal: make the pretext task hard, change the image little.

  A lens L (a small image-to-image network) modifies each image before the feature extractor F sees it; F and its
  pretext head are trained as usual on the lensed images (`pretext_cross_entropy` of F(L(x)) with the pretext
  labels), while the lens minimises

  .. math::
      \mathcal{L}_{\text{lens}} = \frac{1}{B} \sum_{i=1}^{B} \Big( \ell^{\text{adv}}_i
          + \lambda \, \lVert x_i - L(x_i) \rVert_2^2 \Big),

  with one of the paper's two adversarial losses on the logits s_i of F(L(x_i)):

  - ``"least_likely"`` (default): the cross-entropy towards the class the network finds least likely,
    :math:`\ell^{\text{adv}}_i = -\log \operatorname{softmax}(s_i)_{y_i^{LL}}`,
    :math:`y_i^{LL} = \arg\min_y p(y \mid F(L(x_i)))` (chosen without gradient);
  - ``"full"``: the negated task loss, :math:`\ell^{\text{adv}}_i = \log \operatorname{softmax}(s_i)_{y_i}`
    (needs `labels`).

  The reconstruction term keeps the lens from the trivial solution of destroying the image. The paper writes both
  terms as sums over the N examples; here both are means over the global batch, which is the same objective
  divided by N (λ keeps its meaning). Caller's duties: this loss updates ONLY the lens (the feature extractor is
  held fixed for this step: pass logits computed with its current parameters, the gradient reaches the lens
  through `lensed_images`); F's own update uses the pretext loss. λ depends on the image scale and the task (the
  paper tunes it); there is no default.

  Source: the paper's equations for L_SSL, L_adv (both variants), L_rec and L_lens, as transcribed in our stored
  summary of the paper (seunghan96.github.io, "(paper 29) Automatic Shortcut Removal"); our stored copies of the
  paper itself gave only its abstract and introduction, and we found no code released by the authors (Papers with
  Code lists none).

  Args:
    logits: [b, K] pretext logits of the feature extractor on the lensed images, F(L(x)).
    images: [b, ...] the original images x (any shape after the batch axis; a constant).
    lensed_images: the lens outputs L(x), shape of `images`.
    reconstruction_weight: λ >= 0, the weight of the reconstruction term (required: no paper default).
    labels: int [b] pretext labels y in [0, K); required for ``adversarial="full"``, unused otherwise.
    adversarial: ``"least_likely"`` or ``"full"``.
    return_terms: also return the unweighted means, {"adversarial": ..., "reconstruction": ...}.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the means run over every device.

  Returns:
    The scalar lens loss (float32 for float32/bfloat16 input); with `return_terms`, `(loss, terms)`.

  Example:
    >>> x = jnp.zeros((1, 2, 2, 1)); lensed = x.at[0, 0, 0, 0].set(1.0)  # one pixel changed by 1
    >>> loss, terms = lens_loss(jnp.array([[0.0, 0.0]]), x, lensed, reconstruction_weight=0.5, return_terms=True)
    >>> round(float(terms["adversarial"]), 4), float(terms["reconstruction"]), round(float(loss), 4)
    (0.6931, 1.0, 1.1931)

  Minderer, Bachem, Houlsby & Tschannen, "Automatic Shortcut Removal for Self-Supervised Representation
  Learning", ICML 2020, https://arxiv.org/abs/2002.08822.
  """
  _check_logits("logits", logits)
  b = logits.shape[0]
  _checks.check_array("images", images, floating=False, shape_doc="[b, ...]")
  _checks.check_array("lensed_images", lensed_images, shape_doc="[b, ...]")
  if images.ndim < 1 or images.shape[0] != b:
    raise ValueError(f"images must have shape [b, ...] with b = {b} (one image per row of logits); got shape "
                     f"{tuple(images.shape)}.")
  _checks.check_same_shape(images=images, lensed_images=lensed_images)
  _checks.check_in_range("reconstruction_weight", reconstruction_weight, 0.0, float("inf"))
  if adversarial not in ("least_likely", "full"):
    raise ValueError(f'adversarial must be "least_likely" or "full"; got {adversarial!r}.')
  logp = jax.nn.log_softmax(_ops.to_float32(logits), axis=-1)
  if adversarial == "least_likely":
    target = jax.lax.stop_gradient(jnp.argmin(logp, axis=-1))
    adv = -jnp.take_along_axis(logp, target[:, None], axis=1)[:, 0]
  else:
    if labels is None:
      raise ValueError('labels must be given (int [b] pretext labels) when adversarial="full"; got None.')
    _checks.check_labels("labels", labels, b)
    adv = jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
  dtype = jnp.promote_types(lensed_images.dtype, jnp.float32)
  diff = images.astype(dtype) - lensed_images.astype(dtype)
  rec = jnp.sum(jnp.square(diff).reshape(b, -1), axis=1)
  adv_mean = _collectives.global_mean(jnp.sum(adv), b, axis_name)
  rec_mean = _collectives.global_mean(jnp.sum(rec), b, axis_name)
  loss = adv_mean + reconstruction_weight * rec_mean
  return (loss, {"adversarial": adv_mean, "reconstruction": rec_mean}) if return_terms else loss


__all__ = ["sieve_aux_loss", "sieve_forget_loss", "sieve_forget_schedule", "lens_loss"]
