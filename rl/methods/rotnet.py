"""RotNet: an encoder and a small classifier trained to recognise which rotation was applied to the input.

Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018,
https://arxiv.org/abs/1803.07728. As in the paper, every input of the batch goes through the network in all four
rotations (0, 90, 180, 270 degrees; `rl.losses.rotation_task`) and the network is trained with a 4-way
cross-entropy (`rl.losses.pretext_cross_entropy`). The rotated copies share one forward pass, so BatchNorm
statistics cover all four (and, through `axis_name`, every device).

Signals ([b, l] or [b, l, c], MNIST-1D) cannot be rotated; for them the task is OUR 1-D analogue, not the paper's:
the four symmetries {identity, time reversal, negation, reversal + negation} of a signal, 4-way
(`rl.methods._signal_pretext.signal_symmetry_task`). The method dispatches on the input rank.

Differences from the paper: the classifier is an MLP head on the pooled encoder features (the paper's NIN keeps
its last conv blocks as the rotation classifier and reads features from an intermediate block); evaluation reads
the pooled encoder features. `aux['features']` are the encoder features of the unrotated copy (label 0) from the
same training pass, so the online probe sees the whole, upright inputs.

This module also holds the network shared by the three pretext methods (`PretextNet`): parts of each example
(1 rotated input, 2 patches, 9 tiles) go through the shared encoder as one batch; the head classifies the
concatenation of their features in part order.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl import models
from rl.methods import _signal_pretext
from rl.methods import base

NUM_CLASSES = 4


class PretextNet(nn.Module):
  """Shared encoder on every part of an example, then a head on the features concatenated in part order."""
  encoder: nn.Module
  head: nn.Module

  def __call__(self, parts, *, train: bool):
    """parts [n, p, ...] -> (features [n, p, f], logits [n, classes])."""
    n, p = parts.shape[:2]
    h = self.encoder(parts.reshape((n * p,) + parts.shape[2:]), train=train)
    h = h.reshape(n, p, h.shape[-1])
    return h, self.head(h.reshape(n, p * h.shape[-1]), train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def build_pretext_network(config: ml_collections.ConfigDict, head_hidden_dims, num_classes: int,
                          axis_name: str | None) -> PretextNet:
  """The encoder of `config.model` and an MLP head (Linear-BN-ReLU per hidden layer, then Linear to the classes).

  Example:
    >>> from configs import rotnet as rotnet_config
    >>> config = rotnet_config.get_config("smoke")
    >>> net = build_pretext_network(config, head_hidden_dims=(16,), num_classes=4, axis_name=None)
    >>> params, state = init_on_parts(net, jax.random.key(0), jnp.zeros((8, 1, 40)))
    >>> jax.tree.map(jnp.shape, params["head"])
    {'bn0': {'bias': (16,), 'scale': (16,)}, 'dense0': {'kernel': (16, 16)}, 'out': {'bias': (4,), 'kernel': (16, 4)}}
  """
  encoder = models.get_model(config.model.encoder, axis_name=axis_name, **config.model.encoder_kwargs.to_dict())
  head = models.get_model("mlp_projector", axis_name=axis_name, hidden_dims=tuple(head_hidden_dims),
                          out_dim=int(num_classes))
  return PretextNet(encoder=encoder, head=head)


def is_signal(x: jax.Array) -> bool:
  """Signals are [b, l] or [b, l, c]; images [b, h, w, c].

  Example:
    >>> is_signal(jnp.zeros((8, 40))), is_signal(jnp.zeros((8, 40, 2))), is_signal(jnp.zeros((8, 32, 32, 3)))
    (True, True, False)
  """
  if x.ndim in (2, 3):
    return True
  if x.ndim == 4:
    return False
  raise ValueError(f"the view must be signals [b, l] / [b, l, c] or images [b, h, w, c]; got shape "
                   f"{tuple(x.shape)}.")


def accuracy(logits: jax.Array, labels: jax.Array, axis_name: str | None) -> jax.Array:
  """Fraction of the global batch whose arg-max logit is the label.

  Example:
    >>> logits, labels = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), jnp.array([0, 1, 1])
    >>> round(float(accuracy(logits, labels, axis_name=None)), 3)
    0.667
  """
  correct = jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  n = jnp.float32(labels.shape[0])
  if axis_name is not None:
    correct, n = jax.lax.psum(correct, axis_name), jax.lax.psum(n, axis_name)
  return correct / n


def init_on_parts(net: PretextNet, key: jax.Array, parts: jax.Array):
  """(params, method_state) of `net` initialised on pretext inputs [n, p, ...].

  Example:
    >>> from configs import rotnet as rotnet_config
    >>> config = rotnet_config.get_config("smoke")
    >>> net = build_pretext_network(config, head_hidden_dims=(), num_classes=4, axis_name=None)
    >>> params, state = init_on_parts(net, jax.random.key(0), jnp.zeros((8, 1, 40)))
    >>> sorted(params), sorted(state)
    (['encoder', 'head'], ['batch_stats'])
  """
  variables = net.init(key, parts, train=False)
  params = variables.pop("params")
  return params, dict(variables)


def _task(key, x, axis_name):
  """(inputs [4 b, 1, ...], labels [4 b]), example-major: row 4 i is input i untransformed."""
  if is_signal(x):
    inputs, labels = _signal_pretext.signal_symmetry_task(x)
  else:
    inputs, labels = losses.rotation_task(key, x, axis_name=axis_name)
  return inputs[:, None], labels


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The RotNet `Method` for a config with `model` and `rotnet.head_hidden_dims`.

  Example:
    >>> from configs import rotnet as rotnet_config
    >>> config = rotnet_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.rotnet.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'head'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x,)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['pretext_accuracy', 'pretext_cross_entropy'], (8, 16))
  """
  hidden = tuple(config.rotnet.head_hidden_dims)
  eval_net = build_pretext_network(config, hidden, NUM_CLASSES, axis_name=None)

  def init(key, x):
    inputs, _ = _task(key, x, None)
    return init_on_parts(eval_net, key, inputs)

  def loss(params, state, batch, key, *, axis_name=None):
    (x,) = batch["views"]
    inputs, labels = _task(key, x, axis_name)
    net = build_pretext_network(config, hidden, NUM_CLASSES, axis_name=axis_name)
    (h, logits), new_state = net.apply({"params": params, **state}, inputs, train=True, mutable=list(state))
    value = losses.pretext_cross_entropy(logits, labels, axis_name=axis_name)
    aux = {"metrics": {"pretext_cross_entropy": value, "pretext_accuracy": accuracy(logits, labels, axis_name)},
           "features": jax.lax.stop_gradient(h[0::NUM_CLASSES, 0])}
    return value, (dict(new_state), aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=PretextNet.encode)

  return base.Method(name="rotnet", num_views=1, init=init, loss=loss, embed=embed)
