"""Supervised reference: the same encoder trained with cross-entropy on the class labels, through a linear head.

Not self-supervised: it reads `batch["label"]`, so it is the "supervised encoder on the same architecture" row of the
results table, the ceiling the self-supervised methods are compared with. One augmented view per example (the
method's first view recipe); the loss is the global-batch mean softmax cross-entropy. `embed` returns the
encoder's features (the head is dropped, as for every method), so the probe, kNN and few-shot numbers are
comparable with the self-supervised rows.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from rl.methods import base


class EncoderClassifier(nn.Module):
  """Encoder and linear classifier; returns (features h, logits)."""
  encoder: nn.Module
  classifier: nn.Module

  def __call__(self, x, *, train: bool):
    h = self.encoder(x, train=train)
    return h, self.classifier(h, train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def build_network(config: ml_collections.ConfigDict, axis_name: str | None) -> EncoderClassifier:
  """The encoder of `config.model` and a linear classifier over `config.supervised.num_classes` classes.

  Example:
    >>> from configs import supervised as supervised_config
    >>> net = build_network(supervised_config.get_config("smoke"), axis_name=None)
    >>> x = np.zeros((8, 40), np.float32)
    >>> out = net.apply(net.init(jax.random.key(0), x, train=False), x, train=False)
    >>> jax.tree.map(jnp.shape, out)
    ((8, 16), (8, 10))
  """
  encoder = base.get_model(config, config.model.encoder, axis_name=axis_name, **config.model.encoder_kwargs.to_dict())
  classifier = base.get_model(config, "linear", num_classes=int(config.supervised.num_classes))
  return EncoderClassifier(encoder=encoder, classifier=classifier)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The supervised `Method` for a config with `model` and `supervised.{num_classes, label_smoothing}`.

  Example:
    >>> from configs import supervised as supervised_config
    >>> rl.methods.base.describe(make(supervised_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['classifier', 'encoder'], 'state': ['batch_stats'], 'metrics': ['cross_entropy', 'train_accuracy'],
     'embedding': (8, 16)}
  """
  smoothing = float(config.supervised.label_smoothing)
  num_classes = int(config.supervised.num_classes)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    del key
    if batch.get("label") is None:
      raise ValueError("supervised needs 'label' ([b] int class labels) in the batch; got keys "
                       f"{sorted(batch)}.")
    (x,) = batch["views"]
    net = build_network(config, axis_name=axis_name)
    (h, logits), new_state = net.apply({"params": params, **state}, x, train=True, mutable=list(state))
    targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], num_classes), smoothing)
    ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
    n = ce.shape[0]
    total, count = jnp.sum(ce), n
    if axis_name is not None:
      total, count = jax.lax.psum(total, axis_name), jax.lax.psum(n, axis_name)
    value = total / count
    correct = jnp.sum(jnp.argmax(logits, -1) == batch["label"])
    if axis_name is not None:
      correct = jax.lax.psum(correct, axis_name)
    aux = {"metrics": {"cross_entropy": value, "train_accuracy": correct / count},
           "features": jax.lax.stop_gradient(h)}
    return value, (dict(new_state), aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderClassifier.encode)

  return base.Method(name="supervised", num_views=1, init=init, loss=loss, embed=embed)
