"""W-MSE: an encoder and a BN projector whose embeddings are whitened in sub-batches, then matched across views.

Ermolov, Siarohin, Sangineto & Sebe, "Whitening for Self-Supervised Representation Learning", ICML 2021,
https://arxiv.org/abs/2007.06346. As in the authors' code (github.com/htdt/self-supervised, `methods/w_mse.py`):
the encoder runs on each view separately (`[self.model(x) for x in samples]`), the projector (`model.get_head`:
Linear-BN-ReLU-Linear, 1024 hidden, 64 out) runs once on the concatenated views (`forward='encoder_per_view'`),
and the loss whitens each view within random sub-batches of `whitening_size` examples drawn afresh each step
(`torch.randperm`), averaged over `whitening_iters` draws and over all view pairs. Sub-batches are drawn over the
GLOBAL batch with a key that is the same on every device, so they may span devices (`losses.wmse`).

Any number of views >= 2 works (W-MSE 4 is `config.augment.views` with four recipes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def objective(config: ml_collections.ConfigDict) -> two_view.Objective:
  """W-MSE of the views' projections, averaged over `config.wmse.whitening_iters` sub-batch draws.

  Example:
    >>> from configs import wmse as wmse_config
    >>> wmse = objective(wmse_config.get_config("smoke"))  # sub-batches of 16, whitened per view
    >>> z = jax.random.normal(jax.random.key(0), (32, 8))
    >>> bool(wmse(z, z, key=jax.random.key(1)) < wmse(z, z[::-1], key=jax.random.key(1)))
    True

  Raises:
    ValueError: a sub-batch too small for a full-rank covariance without `whitening_eps`, or no draw.
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

  def wmse(*zs, key, axis_name=None):
    z = jnp.concatenate(zs)
    # `key` is the same on every device (the trainer's method stream), so every device draws the same sub-batches.
    draws = [losses.wmse(z, num_views=num_views, whitening_size=whitening_size, eps=eps,
                         key=jax.random.fold_in(key, i), axis_name=axis_name) for i in range(whitening_iters)]
    return sum(draws) / whitening_iters

  return wmse


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The W-MSE `Method` for a config with `model`, `augment.views` and `wmse.{whitening_size, whitening_iters,
  whitening_eps}`.

  Example:
    >>> from configs import wmse as wmse_config
    >>> rl.methods.base.describe(make(wmse_config.get_config("smoke")), batch_size=16)
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['wmse'], 'embedding': (16, 16)}
  """
  return two_view.make(config, objective(config), name="wmse", forward="encoder_per_view",
                       num_views=len(config.augment.views), with_key=True)
