"""The EMA-target family: an online network, and a target network that is its exponential moving average.

BYOL, MoCo v3 (online encoder + projector + predictor) and MoCo v2 (online encoder + projector, plus a queue) are
each their objective plus a few lines on `make`; DINO's teacher (`rl.methods.dino`) follows the same schedule.

The online network is `rl.methods.two_view.build_network` (parameters `encoder`, `projector` and, with
`predictor_kwargs`, `predictor`). The target is a copy of the online `encoder` and `projector` VARIABLES (params
and BatchNorm statistics) that lives in `method_state['target']`, never in the params the optimizer sees, so it
receives no gradient by construction. It starts equal to the online network (BYOL and MoCo initialise both the
same) and after each optimizer step moves as

    target <- m * target + (1 - m) * online,   m = 1 - (1 - m0) (cos(pi k / K) + 1) / 2

(BYOL Sec. 3.2; solo-learn's MomentumUpdater), rising from `base_momentum` m0 to `final_momentum` over
`config.total_steps` K; `base == final` gives MoCo v1/v2's constant momentum. The target runs in training mode, as
BYOL's and MoCo's momentum networks do (its BatchNorm normalises with the statistics of the current cross-device
batch); its running statistics are the EMA of the online ones and are only used if someone evaluates it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from rl.methods import base
from rl.methods import two_view
from rl.models import ema

TARGET_PARTS = ("encoder", "projector")
# objective(online, target, *, axis_name) -> loss or (loss, metrics); online: the predictions per view (the
# projections without a predictor), target: the target's stop-gradient projections per view.
TargetObjective = Callable[..., Any]


def _parts(tree) -> dict[str, Any]:
  return {k: v for k, v in tree.items() if k in TARGET_PARTS}


def _online_encoder_projector(params, state) -> dict[str, Any]:
  """The online variables the target tracks: encoder and projector params and BatchNorm statistics."""
  return {"params": _parts(params), "batch_stats": _parts(state["batch_stats"])}


def _init_target(params, state) -> dict[str, Any]:
  """The target at step 0: a copy of the online encoder and projector."""
  return jax.tree.map(jnp.array, _online_encoder_projector(params, state))


def target_projections(config: ml_collections.ConfigDict, target, views, *, axis_name: str | None
                       ) -> tuple[jax.Array, ...]:
  """The target's stop-gradient projections of each view (all views as one batch, in training mode).

  Example:
    >>> from configs import byol as byol_config
    >>> config = byol_config.get_config("smoke")
    >>> method = rl.methods.get_method(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> [t.shape for t in target_projections(config, state["target"], (x, x + 0.1), axis_name=None)]
    [(8, 8), (8, 8)]
  """
  net = two_view.build_network(config, axis_name)
  (_, z), _ = net.apply(jax.lax.stop_gradient(target), jnp.concatenate(views), train=True, mutable=["batch_stats"])
  return two_view.split_views(jax.lax.stop_gradient(z), len(views))


def _update_target(params, state, momentum) -> dict[str, Any]:
  """`state` with target <- m * target + (1 - m) * online (params and BatchNorm statistics)."""
  return {**state, "target": ema.ema_update(state["target"], _online_encoder_projector(params, state), momentum)}


def momentum_schedule(total_steps: int, base_momentum: float, final_momentum: float
                      ) -> Callable[[jax.Array], jax.Array]:
  """m(step) rising from `base_momentum` to `final_momentum` along a half cosine over `total_steps`.

  Example:
    >>> m = momentum_schedule(100, 0.99, 1.0)
    >>> [round(float(m(s)), 4) for s in (0, 50, 100)]
    [0.99, 0.995, 1.0]
  """
  return lambda step: ema.cosine_momentum(step, int(total_steps), base=float(base_momentum),
                                          final=float(final_momentum))


def make(config: ml_collections.ConfigDict, objective: TargetObjective | None = None, *, name: str,
         base_momentum: float, final_momentum: float,
         predictor_kwargs: ml_collections.ConfigDict | None = None,
         loss_fn: two_view.LossFn | None = None,
         init_state: Callable[[jax.Array, two_view.Outputs], dict[str, Any]] | None = None) -> base.Method:
  """An EMA-target `Method`: `objective(online, target, *, axis_name)` of the online and target outputs.

  `online` is the tuple of the views' predictions (their projections when there is no predictor) and `target`
  the target network's stop-gradient projections of the same views. A method with state of its own (MoCo v2's
  queue) passes `loss_fn` instead, as `two_view.make_method`, and reads the target's projections with
  `target_projections(config, state['target'], batch['views'], axis_name=...)`; `init_state` as there.
  The target is in `method_state['target']` and moves in `update_after_step`.

  Example:
    >>> from configs import byol as byol_config
    >>> config = byol_config.get_config("smoke")
    >>> def objective(p, t, *, axis_name=None):  # BYOL's symmetric regression
    ...   return rl.losses.byol(p[0], t[1], axis_name=axis_name) + rl.losses.byol(p[1], t[0], axis_name=axis_name)
    >>> method = make(config, objective, name="my_byol", base_momentum=0.99, final_momentum=1.0,
    ...               predictor_kwargs=config.byol.predictor_kwargs)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> summary = rl.methods.base.describe(method, {"views": (x, x + 0.1)})
    >>> summary["params"], summary["state"]
    (['encoder', 'predictor', 'projector'], ['batch_stats', 'target'])
  """
  if (objective is None) == (loss_fn is None):
    raise ValueError(f"{name}: give exactly one of objective and loss_fn.")
  momentum = momentum_schedule(config.total_steps, base_momentum, final_momentum)

  if loss_fn is None:
    def loss_fn(out, state, batch, key, *, axis_name=None):  # pylint: disable=function-redefined
      del key  # deterministic given the views
      target = target_projections(config, state["target"], batch["views"], axis_name=axis_name)
      online = out.z if out.p is None else out.p
      value, metrics = two_view.loss_and_metrics(objective(online, target, axis_name=axis_name), name)
      return value, metrics, state

  def update_after_step(params, state, step):
    return _update_target(params, state, momentum(step))

  method = two_view.make_method(config, loss_fn, name=name, predictor_kwargs=predictor_kwargs,
                                init_state=init_state, update_after_step=update_after_step)

  def init(key, x):
    params, state = method.init(key, x)
    return params, {**state, "target": _init_target(params, state)}

  return dataclasses.replace(method, init=init)


__all__ = ["TARGET_PARTS", "make", "momentum_schedule", "target_projections"]
