"""Automatic shortcut removal: RotNet's task, with a "lens" trained against it.

Minderer, Bachem, Houlsby & Tschannen, "Automatic Shortcut Removal for Self-Supervised Representation Learning",
ICML 2020, https://arxiv.org/abs/2002.08822. A pretext task's network first learns the cheapest features that
solve it (shortcuts: for rotation on photographs, e.g. chromatic aberration or a watermark). A small image-to-image
network, the lens L, modifies each task input before the feature extractor F sees it, and is trained
adversarially: it makes the task as hard as it can while changing the input little (`rl.losses.lens_loss`, the
least-likely-class or the full adversarial loss plus lambda times the squared reconstruction error). F and its
head are trained on the lensed inputs with the task's cross-entropy, as RotNet is on the raw ones:

    L_F    = CE(F(L(x_i)), y_i)                      (F and the head; the lens is a constant here)
    L_lens = l_adv(F(L(x_i))) + lambda ||x_i - L(x_i)||^2   (the lens only; F is a constant here)

Both terms are summed into one loss for one optimiser: each reaches only its own parameters, because the task
term sees `stop_gradient(L(x))` and the lens term is computed in a second pass of F with `stop_gradient` of F's
parameters (that pass leaves the BatchNorm statistics alone). The features that the lens can cheaply destroy are
then not the ones F can rely on.

The task is RotNet's (`rl.methods.pretext.rotation_task`): images in their four rotations, signals under our 1-D
analogue (identity, time reversal, negation, both); the lens works on the transformed inputs, as the paper's
L_SSL(F(L(x_i)), y_i) with x_i the task's input.

Ours, not the paper's (whose method section our stored copies did not have; the equations are from a transcription,
see `rl.losses.lens_loss`): the lens is a small residual convolutional network (`Lens`: a few 'SAME' convolutions
with ReLU, the last one zero-initialised, added to the input, so the lens starts as the identity), not the paper's
U-Net-like network; evaluation reads the encoder's features of the raw, un-lensed inputs (the paper also reports
features of lensed and un-lensed images combined); the lens and F share the optimiser (one learning rate).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import pretext

NUM_CLASSES = 4
ADVERSARIAL = ("least_likely", "full")


class Lens(nn.Module):
  """x + r(x), r a few 'SAME' convolutions with ReLU (1-D for signals [n, l] / [n, l, c], 2-D for images
  [n, h, w, c]); the last convolution is zero-initialised, so the lens starts as the identity.

  Attributes:
    widths: channels of the hidden convolutions.
    kernel_size: the kernel's length (signals) or side (images).
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> lens = Lens(widths=(8,), kernel_size=3)
    >>> x = jnp.arange(12.0).reshape(2, 6)
    >>> variables = lens.init(jax.random.key(0), x)
    >>> bool(jnp.array_equal(lens.apply(variables, x), x))  # the identity at initialisation
    True
  """
  widths: Sequence[int] = (16, 16)
  kernel_size: int = 5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    squeeze = x.ndim == 2  # single-channel signals
    h = x[..., None] if squeeze else x
    kernel = (self.kernel_size,) * (h.ndim - 2)
    r = h.astype(self.dtype)
    for i, width in enumerate(self.widths):
      r = nn.relu(nn.Conv(width, kernel, padding="SAME", dtype=self.dtype, name=f"conv{i}")(r))
    r = nn.Conv(h.shape[-1], kernel, padding="SAME", kernel_init=nn.initializers.zeros, dtype=self.dtype,
                name="out")(r)
    out = h + r.astype(h.dtype)
    return out[..., 0] if squeeze else out


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The shortcut-lens `Method` for a config with `model` and `shortcut_lens.{head_hidden_dims, lens_widths,
  lens_kernel_size, reconstruction_weight, adversarial}`.

  Example:
    >>> from configs import shortcut_lens as shortcut_lens_config
    >>> rl.methods.base.describe(make(shortcut_lens_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'head', 'lens'], 'state': ['batch_stats'], 'metrics': ['lens_adversarial',
     'lens_reconstruction', 'pretext_accuracy', 'pretext_cross_entropy'], 'embedding': (8, 16)}
  """
  cfg = config.shortcut_lens
  if cfg.adversarial not in ADVERSARIAL:
    raise ValueError(f"config.shortcut_lens.adversarial: expected one of {', '.join(ADVERSARIAL)}; "
                     f"got {cfg.adversarial!r}.")
  if not cfg.reconstruction_weight >= 0:
    raise ValueError(f"config.shortcut_lens.reconstruction_weight must be >= 0; got {cfg.reconstruction_weight}.")
  weight = float(cfg.reconstruction_weight)
  lens = Lens(widths=tuple(cfg.lens_widths), kernel_size=int(cfg.lens_kernel_size), dtype=base.compute_dtype(config))

  def network(axis_name):
    return pretext.build_network(config, tuple(cfg.head_hidden_dims), NUM_CLASSES, axis_name)

  def init(key, x):
    parts, _ = pretext.rotation_task(key, x, None)
    net_key, lens_key = jax.random.split(key)
    variables = network(None).init(net_key, parts, train=False)
    params = variables.pop("params")
    return {**params, "lens": lens.init(lens_key, parts[:, 0])["params"]}, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    (x,) = batch["views"]
    parts, labels = pretext.rotation_task(key, x, axis_name)
    inputs = parts[:, 0]
    lensed = lens.apply({"params": params["lens"]}, inputs)
    net = network(axis_name)
    f_params = {k: v for k, v in params.items() if k != "lens"}
    # F and its head learn the task on the lensed inputs; no gradient reaches the lens from this term.
    (h, logits), new_state = net.apply({"params": f_params, **state}, jax.lax.stop_gradient(lensed)[:, None],
                                       train=True, mutable=list(state))
    task_loss = losses.pretext_cross_entropy(logits, labels, axis_name=axis_name)
    # The lens against a fixed F: the same forward pass (batch statistics in training mode), F's parameters
    # gradient-free and its BatchNorm statistics not updated a second time.
    (_, adv_logits), _ = net.apply({"params": jax.lax.stop_gradient(f_params), **state}, lensed[:, None],
                                   train=True, mutable=list(state))
    lens_value, terms = losses.lens_loss(adv_logits, inputs, lensed, reconstruction_weight=weight,
                                         labels=labels, adversarial=cfg.adversarial, return_terms=True,
                                         axis_name=axis_name)
    metrics = {"pretext_cross_entropy": task_loss, "pretext_accuracy": pretext.accuracy(logits, labels, axis_name),
               "lens_adversarial": terms["adversarial"], "lens_reconstruction": terms["reconstruction"]}
    # The online probe's features: the encoder on the lensed, untransformed copies (rows 4 i) of this pass.
    features = jax.lax.stop_gradient(h[::NUM_CLASSES, 0])
    return task_loss + lens_value, (dict(new_state), {"metrics": metrics, "features": features})

  def embed(params, state, x):
    f_params = {k: v for k, v in params.items() if k != "lens"}
    return network(None).apply({"params": f_params, **state}, x, method=pretext.PretextNet.encode)

  return base.Method(name="shortcut_lens", num_views=1, init=init, loss=loss, embed=embed)
