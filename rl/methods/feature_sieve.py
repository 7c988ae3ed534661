"""The feature sieve (SiFer): a supervised classifier whose early layer is kept from learning the simplest features.

Tiwari & Shenoy, "Overcoming Simplicity Bias in Deep Networks using a Feature Sieve", ICML 2023,
https://arxiv.org/abs/2301.13293. Deep networks learn the features that are easiest to compute first and may stop
there. The sieve finds those features with an auxiliary head on an EARLY layer of the encoder, trained to predict
the label from it (`rl.losses.sieve_aux_loss`), and every few steps erases them: the early layers are trained to
make the auxiliary head's prediction uniform (`rl.losses.sieve_forget_loss`, on the steps
`rl.losses.sieve_forget_schedule` marks). The main classifier keeps its cross-entropy on the final features. With
labels, so a reference row of the results table beside `supervised`, not a self-supervised method.

The released code runs three optimisers per step: the auxiliary head's (its loss only), the forgetting step's (the
layers up to the auxiliary position only) and the main one (everything but the auxiliary head). Here one loss and
one optimiser give each part only the gradient of its own term, in one forward pass:

    L = CE(classifier(encoder(x)), y)                                  (everything but the auxiliary head)
      + sieve_aux_loss(A(stop_gradient(h_early)), y)                   (the auxiliary head A only)
      + [forget step] * forget_weight * sieve_forget_loss(A_fixed(h_early))   (the layers before h_early only)

`h_early` is the output of the encoder's submodule named `aux_layer` (captured with Flax's
`capture_intermediates`: e.g. `bn0` of the conv1d encoder, `stage1_block1` of a ResNet); `A_fixed` is A with
`stop_gradient` parameters; the forgetting term's gradient can only reach the layers that computed `h_early`.

Ours, not the released code: one optimiser (the released code's forgetting and auxiliary optimisers are plain SGD
with their own learning rates; `forget_weight` stands in for the ratio); the auxiliary head (`AuxHead`: 'SAME'
convolutions with ReLU, global average pooling, a linear layer) has no BatchNorm. `embed` returns the encoder's
features, as `supervised` does.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from rl import losses
from rl.methods import base


class AuxHead(nn.Module):
  """The auxiliary head: ReLU, then per width a 'SAME' convolution (kernel 3, 1-D or 2-D as the input) and ReLU,
  global average pooling over the spatial axes, a linear layer to the classes.

  Example:
    >>> head = AuxHead(widths=(8,), num_classes=10)
    >>> h = jnp.ones((2, 20, 4))  # an early feature map of signals: [b, l, c]
    >>> head.apply(head.init(jax.random.key(0), h), h).shape
    (2, 10)
  """
  widths: Sequence[int]
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    if h.ndim < 3:
      raise ValueError(f"the auxiliary head reads a feature map [b, l, c] or [b, h, w, c]; got shape {h.shape}.")
    kernel = (3,) * (h.ndim - 2)
    h = nn.relu(h.astype(self.dtype))
    for i, width in enumerate(self.widths):
      h = nn.relu(nn.Conv(width, kernel, padding="SAME", dtype=self.dtype, name=f"conv{i}")(h))
    h = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="out")(h)


class SieveNet(nn.Module):
  """Encoder, linear classifier and the auxiliary head; returns (features, logits)."""
  encoder: nn.Module
  classifier: nn.Module
  aux_head: nn.Module

  def __call__(self, x, *, train: bool):
    h = self.encoder(x, train=train)
    return h, self.classifier(h, train=train)

  def aux(self, early):
    return self.aux_head(early)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The feature-sieve `Method` for a config with `model`, `supervised.{num_classes, label_smoothing}` and
  `feature_sieve.{base ("supervised"), aux_layer, aux_widths, forget_every, forget_weight}`.

  Example:
    >>> from configs import feature_sieve as feature_sieve_config
    >>> rl.methods.base.describe(make(feature_sieve_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['aux_head', 'classifier', 'encoder'], 'state': ['batch_stats', 'step'], 'metrics': ['cross_entropy',
     'forget', 'sieve_aux', 'sieve_aux_accuracy', 'train_accuracy'], 'embedding': (8, 16)}
  """
  cfg = config.feature_sieve
  base.base_method(config, ("supervised",))  # its section, c.supervised, holds the classifier's settings
  num_classes = int(config.supervised.num_classes)
  smoothing = float(config.supervised.label_smoothing)
  aux_layer = str(cfg.aux_layer)
  if isinstance(cfg.forget_every, bool) or not isinstance(cfg.forget_every, int) or cfg.forget_every < 1:
    raise ValueError(f"config.feature_sieve.forget_every must be an int >= 1; got {cfg.forget_every!r}.")
  if not cfg.forget_weight >= 0:
    raise ValueError(f"config.feature_sieve.forget_weight must be >= 0; got {cfg.forget_weight}.")

  def network(axis_name):
    encoder = base.get_model(config, config.model.encoder, axis_name=axis_name,
                             **config.model.encoder_kwargs.to_dict())
    classifier = base.get_model(config, "linear", num_classes=num_classes)
    return SieveNet(encoder=encoder, classifier=classifier,
                    aux_head=AuxHead(widths=tuple(cfg.aux_widths), num_classes=num_classes,
                                     dtype=base.compute_dtype(config)))

  def forward(net, variables, x, mutable):
    """(h, logits), the early feature map and the new state, in one pass of the encoder."""
    capture = lambda module, method_name: method_name == "__call__" and module.name == aux_layer
    out, updates = net.apply(variables, x, train=True, mutable=list(mutable) + ["intermediates"],
                             capture_intermediates=capture)
    updates = dict(updates)
    captured = updates.pop("intermediates", {}).get("encoder", {}).get(aux_layer)
    if captured is None:
      raise ValueError(f"config.feature_sieve.aux_layer: the encoder {config.model.encoder!r} has no submodule "
                       f"named {aux_layer!r} (e.g. 'bn0' of conv1d, 'stage1_block1' of a ResNet).")
    return out, captured["__call__"][0], updates

  def init(key, x):
    net = network(None)
    variables = net.init(key, x, train=False)
    _, early, _ = forward(net, variables, x, [k for k in variables if k != "params"])
    aux = net.init(jax.random.fold_in(key, 1), early, method=SieveNet.aux)["params"]["aux_head"]
    params = dict(variables.pop("params"))
    params["aux_head"] = aux
    return params, {**dict(variables), "step": jnp.zeros((), jnp.int32)}

  def mean(total, n, axis_name):
    if axis_name is not None:
      total, n = jax.lax.psum(total, axis_name), jax.lax.psum(n, axis_name)
    return total / n

  def loss(params, state, batch, key, *, axis_name=None):
    del key
    if batch.get("label") is None:
      raise ValueError(f"feature_sieve needs 'label' ([b] int class labels) in the batch; got keys {sorted(batch)}.")
    (x,) = batch["views"]
    labels = batch["label"]
    net = network(axis_name)
    stats = {k: v for k, v in state.items() if k != "step"}
    (h, logits), early, new_stats = forward(net, {"params": params, **stats}, x, list(stats))
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing)
    ce = mean(jnp.sum(optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)), labels.shape[0], axis_name)
    # The auxiliary head learns to read the label from the early features; the encoder gets nothing from it.
    aux_logits = net.apply({"params": params}, jax.lax.stop_gradient(early), method=SieveNet.aux)
    aux_value = losses.sieve_aux_loss(aux_logits, labels, axis_name=axis_name)
    # The early layers erase what a fixed auxiliary head reads, on the forgetting steps only.
    fixed = {"params": {**params, "aux_head": jax.lax.stop_gradient(params["aux_head"])}}
    forget = losses.sieve_forget_loss(net.apply(fixed, early, method=SieveNet.aux), axis_name=axis_name)
    on = losses.sieve_forget_schedule(state["step"], forget_after_iters=int(cfg.forget_every)).astype(jnp.float32)
    correct = mean(jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32), labels.shape[0], axis_name)
    aux_correct = mean(jnp.sum(jnp.argmax(aux_logits, -1) == labels).astype(jnp.float32), labels.shape[0],
                       axis_name)
    metrics = {"cross_entropy": ce, "train_accuracy": correct, "sieve_aux": aux_value,
               "sieve_aux_accuracy": aux_correct, "forget": forget}
    new_state = {**new_stats, "step": state["step"] + 1}
    value = ce + aux_value + on * float(cfg.forget_weight) * forget
    return value, (new_state, {"metrics": metrics, "features": jax.lax.stop_gradient(h)})

  def embed(params, state, x):
    stats = {k: v for k, v in state.items() if k != "step"}
    return network(None).apply({"params": params, **stats}, x, method=SieveNet.encode)

  return base.Method(name="feature_sieve", num_views=1, init=init, loss=loss, embed=embed)
