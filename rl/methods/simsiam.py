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
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import _target
from rl.methods import base


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SimSiam `Method` for a config with `model` and `simsiam.predictor_kwargs`.

  Example:
    >>> from configs import simsiam as simsiam_config
    >>> config = simsiam_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.simsiam.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'predictor', 'projector'], ['batch_stats'])
    >>> loss, (state, aux) = method.loss(params, state, {"views": (x, x + 0.1)}, jax.random.key(1))
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['negative_cosine'], (8, 16))
  """
  cfg = config.simsiam
  eval_net = _target.build_online(config, None, cfg.predictor_kwargs)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    return params, {"batch_stats": variables.get("batch_stats", {})}

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # deterministic given the views
    v1, v2 = batch["views"]
    b = v1.shape[0]
    net = _target.build_online(config, axis_name, cfg.predictor_kwargs)
    (h, z, p), new_bs = net.apply(_target.variables(params, state), jnp.concatenate([v1, v2]), train=True,
                                  mutable=["batch_stats"])
    z = jax.lax.stop_gradient(z)
    value = (losses.negative_cosine(p[:b], z[b:], axis_name=axis_name)
             + losses.negative_cosine(p[b:], z[:b], axis_name=axis_name)) / 2
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {})}
    aux = {"metrics": {"negative_cosine": value}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (new_state, aux)

  def embed(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=_target.EncoderProjectorPredictor.encode)

  def project(params, state, x):
    return eval_net.apply(_target.variables(params, state), x, method=_target.EncoderProjectorPredictor.project)

  return base.Method(name="simsiam", num_views=2, init=init, loss=loss, embed=embed, project=project)
