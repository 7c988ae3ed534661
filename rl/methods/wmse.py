"""W-MSE: an encoder and a BN projector whose embeddings are whitened in sub-batches, then matched across views.

Ermolov, Siarohin, Sangineto & Sebe, "Whitening for Self-Supervised Representation Learning", ICML 2021,
https://arxiv.org/abs/2007.06346. As in the authors' code (github.com/htdt/self-supervised, `methods/w_mse.py`):
the encoder runs on each view separately (`[self.model(x) for x in samples]`), the projector (`model.get_head`:
Linear-BN-ReLU-Linear, 1024 hidden, 64 out) runs once on the concatenated views, and the loss whitens each view
within random sub-batches of `whitening_size` examples drawn afresh each step (`torch.randperm`), averaged over
`whitening_iters` draws and over all view pairs. Sub-batches are drawn over the GLOBAL batch with a key that is the
same on every device, so they may span devices (`losses.wmse`).

Any number of views >= 2 works (W-MSE 4 is `config.augment.views` with four recipes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods.simclr import EncoderProjector, build_network


def _project(module: EncoderProjector, h: jax.Array) -> jax.Array:
  return module.projector(h, train=True)


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The W-MSE `Method` for a config with `model`, `augment.views` and `wmse.{whitening_size, whitening_iters,
  whitening_eps}`.

  Example:
    >>> from configs import wmse as wmse_config
    >>> config = wmse_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.wmse.make(config)
    >>> x = np.random.RandomState(0).randn(16, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['wmse'], (16, 16))
  """
  num_views = len(config.augment.views)
  whitening_size = int(config.wmse.whitening_size)
  whitening_iters = int(config.wmse.whitening_iters)
  eps = float(config.wmse.whitening_eps)
  out_dim = config.model.projector_kwargs.get("out_dim")
  if eps == 0 and out_dim is not None and whitening_size <= out_dim:
    raise ValueError(f"config.wmse.whitening_size={whitening_size} must be greater than the projector's out_dim="
                     f"{out_dim} (the covariance of a sub-batch must have full rank); or set whitening_eps > 0.")
  if whitening_iters < 1:
    raise ValueError(f"config.wmse.whitening_iters must be >= 1; got {whitening_iters}.")
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def loss(params, state, batch, key, *, axis_name=None):
    views = batch["views"]
    net = build_network(config, axis_name=axis_name)
    hs = []
    for view in views:
      h, state = net.apply({"params": params, **state}, view, train=True, method=EncoderProjector.encode,
                           mutable=list(state))
      state = dict(state)
      hs.append(h)
    z, state = net.apply({"params": params, **state}, jnp.concatenate(hs), method=_project, mutable=list(state))
    # `key` is the same on every device (the trainer's method stream), so every device draws the same sub-batches.
    draws = [losses.wmse(z, num_views=num_views, whitening_size=whitening_size, eps=eps,
                         key=jax.random.fold_in(key, i), axis_name=axis_name) for i in range(whitening_iters)]
    value = sum(draws) / whitening_iters
    aux = {"metrics": {"wmse": value}, "features": jax.lax.stop_gradient(hs[0])}
    return value, (dict(state), aux)

  def embed(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.encode)

  def project(params, state, x):
    return eval_net.apply({"params": params, **state}, x, method=EncoderProjector.project)

  return base.Method(name="wmse", num_views=num_views, init=init, loss=loss, embed=embed, project=project)
