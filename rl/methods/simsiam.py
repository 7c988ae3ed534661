"""SimSiam: an encoder+projector+predictor whose predictions regress the stop-gradient projections of the other view.

Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021, https://arxiv.org/abs/2011.10566.
No target network and no negatives: the stop-gradient on the projections (eq. 3) is what prevents collapse.
The loss is symmetric and AVERAGED over the two directions (eq. 4; solo-learn's `solo/methods/simsiam.py` divides
each term by 2):

    L = negative_cosine(p1, sg(z2)) / 2 + negative_cosine(p2, sg(z1)) / 2.

The projector ends with a BatchNorm without affine parameters and the predictor is a bottleneck MLP with BN in its
hidden layer and none on its output (Sec. 4 of the paper; `model.projector_kwargs.last_bn`). Both views go
through the network as one concatenated batch (BatchNorm over both views and every device).
"""
from __future__ import annotations

import jax
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import two_view


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SimSiam `Method` for a config with `model` and `simsiam.predictor_kwargs`.

  Example:
    >>> from configs import simsiam as simsiam_config
    >>> rl.methods.base.describe(make(simsiam_config.get_config("smoke")))  # mnist1d signals, a tiny encoder
    {'params': ['encoder', 'predictor', 'projector'], 'state': ['batch_stats'], 'metrics': ['negative_cosine'],
     'embedding': (8, 16)}
  """

  def loss_fn(out, state, batch, key, *, axis_name=None):
    del batch, key  # deterministic given the views
    (p1, p2), (z1, z2) = out.p, jax.lax.stop_gradient(out.z)
    value = (losses.negative_cosine(p1, z2, axis_name=axis_name)
             + losses.negative_cosine(p2, z1, axis_name=axis_name)) / 2
    return value, {"negative_cosine": value}, state

  return two_view.make_method(config, loss_fn, name="simsiam", predictor_kwargs=config.simsiam.predictor_kwargs)
