"""The multi-crop prototype family (SwAV, DINO): views of several sizes through one encoder and one head.

Caron et al. 2020 (https://arxiv.org/abs/2006.09882, Sec. 3.2) train on 2 global crops and V - 2 small local crops.
The encoder runs once per group of consecutive views with the same shape (global crops together, local crops
together, as the official `MultiCropWrapper`), and the head runs once on all features, crop-major. Each group's
BatchNorm statistics are its own (as in the official code); the head's cover every crop.

`make_method` is what SwAV and DINO share: the network (`config.model` encoder and the method's head), the first
`num_global` views as the global crops (checked), a step counter in `method_state['step']` (for the schedules
and freezes, since `loss` is not given the step), a part of the head that gets no gradient for its first steps
(SwAV's prototypes, DINO's last layer), and `embed` = the encoder of the network the optimizer trains.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl.methods import base


def shape_groups(views: Sequence[jax.Array]) -> list[list[int]]:
  """Indices of consecutive views with the same shape, e.g. [[0, 1], [2, 3, 4, 5]] for 2 global + 4 local.

  Example:
    >>> shape_groups([jnp.zeros((2, 40)), jnp.zeros((2, 40)), jnp.zeros((2, 20))])
    [[0, 1], [2]]
  """
  groups: list[list[int]] = []
  for i, v in enumerate(views):
    if groups and views[groups[-1][0]].shape == v.shape:
      groups[-1].append(i)
    else:
      groups.append([i])
  return groups


class MultiCropNetwork(nn.Module):
  """Encoder on each same-shape group of views, then `head` on all features; returns (features h, head(h)).

  `h` is crop-major: rows c*b..(c+1)*b-1 belong to view c. `views` may also be a single array (one view).
  """
  encoder: nn.Module
  head: nn.Module

  def __call__(self, views, *, train: bool):
    views = (views,) if hasattr(views, "ndim") else tuple(views)  # one array (NumPy or JAX) is one view
    feats = [self.encoder(jnp.concatenate([views[i] for i in group]), train=train)
             for group in shape_groups(views)]
    h = jnp.concatenate(feats)
    return h, self.head(h, train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)


def _variables(params, state) -> dict[str, Any]:
  """Flax variables of the network (params and BatchNorm statistics)."""
  return {"params": params, "batch_stats": state["batch_stats"]}


def freeze_while(tree, frozen: jax.Array):
  """`tree` with no gradient while `frozen` is true (SwAV's first-epoch prototypes, DINO's last layer).

  Example:
    >>> jax.grad(lambda w: freeze_while(w, jnp.bool_(True)).sum())(jnp.ones(2))
    Array([0., 0.], dtype=float32)
  """
  return jax.tree.map(lambda x: jnp.where(frozen, jax.lax.stop_gradient(x), x), tree)


def teacher_temperature(step, *, warmup: float, final: float, warmup_steps: int) -> jax.Array:
  """DINO's teacher temperature tau_t: linear from `warmup` to `final` over the first `warmup_steps` steps, then
  `final` (DINO Sec. 3.1; SCFS keeps it).

  Example:
    >>> [round(float(teacher_temperature(s, warmup=0.04, final=0.07, warmup_steps=30)), 3) for s in (0, 15, 30, 100)]
    [0.04, 0.055, 0.07, 0.07]
  """
  if warmup_steps <= 0:
    return jnp.asarray(final, jnp.float32)
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / warmup_steps, 0.0, 1.0)
  return warmup + (final - warmup) * frac


def _check_views(views: Sequence[jax.Array], num_global: int, method: str) -> None:
  """The first `num_global` views must share one shape (they are the global crops)."""
  if len(views) < max(2, num_global):
    raise ValueError(f"{method} needs at least {max(2, num_global)} views (config.augment.views); got {len(views)}.")
  shapes = {tuple(v.shape) for v in views[:num_global]}
  if len(shapes) != 1:
    raise ValueError(f"{method}: the {num_global} global views must have one shape (config.augment.view_sizes); "
                     f"got shapes {[tuple(v.shape) for v in views[:num_global]]}.")


@dataclasses.dataclass(frozen=True)
class Network:
  """`config.model`'s encoder and the head `head(config, axis_name)` as a `MultiCropNetwork`, as pure functions.

  Example:
    >>> from configs import dino as dino_config
    >>> from rl.methods import dino
    >>> net = Network(dino_config.get_config("smoke"), dino.build_head)
    >>> x = np.zeros((8, 40), np.float32)
    >>> params, state = net.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state), net.embed(params, state, x).shape
    (['encoder', 'head'], ['batch_stats'], (8, 16))
  """
  config: ml_collections.ConfigDict
  head: Callable[[ml_collections.ConfigDict, str | None], nn.Module]

  def module(self, axis_name: str | None = None) -> MultiCropNetwork:
    model = self.config.model
    encoder = base.get_model(self.config, model.encoder, axis_name=axis_name, **model.encoder_kwargs.to_dict())
    return MultiCropNetwork(encoder=encoder, head=self.head(self.config, axis_name))

  def init(self, key, x) -> tuple[Any, dict[str, Any]]:
    """(params, {'batch_stats'}) for inputs shaped like `x`."""
    params = self.module().init(key, x, train=False)
    return params.pop("params"), {"batch_stats": params.get("batch_stats", {})}

  def apply(self, variables_, views, *, axis_name: str | None):
    """The training pass of `variables_` over `views`: ((h, head output), new BatchNorm statistics)."""
    out, new = self.module(axis_name).apply(variables_, views, train=True, mutable=["batch_stats"])
    return out, new.get("batch_stats", {})

  def apply_capturing(self, variables_, views, layers: Sequence[str], *, axis_name: str | None):
    """`apply`, and the outputs of the encoder's submodules named in `layers` (Flax's `capture_intermediates`):
    ((h, head output), new BatchNorm statistics, {layer: [map of each same-shape group of views]}), the maps
    crop-major within a group (SCFS's feature maps of the global and the local crops).

    Raises:
      ValueError: a layer that the encoder does not have, naming the encoder.
    """
    wanted = set(layers)
    capture = lambda module, method_name: method_name == "__call__" and module.name in wanted
    out, new = self.module(axis_name).apply(variables_, views, train=True,
                                            mutable=["batch_stats", "intermediates"], capture_intermediates=capture)
    found = new.get("intermediates", {}).get("encoder", {})
    missing = [layer for layer in layers if layer not in found]
    if missing:
      raise ValueError(f"the encoder {self.config.model.encoder!r} has no submodule named {missing} (its feature "
                       f"maps were asked for; e.g. 'bn1' of conv1d, 'stage2_block1' of a ResNet).")
    return out, new.get("batch_stats", {}), {layer: list(found[layer]["__call__"]) for layer in layers}

  def embed(self, params, state, x):
    """Encoder features of `x` (evaluation mode)."""
    return self.module().apply(_variables(params, state), x, method=MultiCropNetwork.encode)


def make_method(config: ml_collections.ConfigDict, loss_fn: Callable, *, name: str, head: Callable,
                num_global: int, frozen_part: str, freeze_steps: int,
                init_state: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
                update_after_step: base.UpdateFn | None = None, capture: Sequence[str] = (),
                init_extra_params: Callable[..., dict[str, Any]] | None = None) -> base.Method:
  """A multi-crop `Method`; `loss_fn(net, params, state, out, batch, *, axis_name) -> (loss, metrics, state)`.

  `loss_fn` gets the network, the params (with `params['head'][frozen_part]` gradient-free for the first
  `freeze_steps` steps), the method state with the new BatchNorm statistics, and `out = (h, head output)` of the
  training pass over every view (crop-major); with `capture` (names of encoder submodules), `out = (h, head
  output, maps)`, maps as `Network.apply_capturing`'s. `init_state(params, state)` adds the method's own state to
  {'batch_stats', 'step'}; `init_extra_params(key, x, params, state)` adds parameters beside the network's (SCFS's
  layer heads);
  `update_after_step` runs after the step counter has moved.

  Example:
    >>> from configs import swav as swav_config
    >>> from rl.methods import swav
    >>> config = swav_config.get_config("smoke")  # 2 global crops of 40 samples, 4 local ones of 20
    >>> def loss_fn(net, params, state, out, batch, *, axis_name=None):  # the crops agree on their codes
    ...   scores = out[1][1]
    ...   value = rl.losses.swav(scores, num_crops=6, crops_for_assign=(0, 1), axis_name=axis_name)
    ...   return value, {"codes": value}, state
    >>> method = make_method(config, loss_fn, name="my_swav", head=swav.build_head, num_global=2,
    ...                      frozen_part="prototypes", freeze_steps=10)
    >>> rl.methods.base.describe(method, view_sizes=config.augment.view_sizes)["state"]
    ['batch_stats', 'step']
  """
  net = Network(config, head)
  num_views = len(config.augment.views)

  def init(key, x):
    params, state = net.init(key, x)
    if init_extra_params is not None:
      params = {**params, **init_extra_params(jax.random.fold_in(key, 1), x, params, state)}
    state = {**state, "step": jnp.zeros((), jnp.int32)}
    return params, {**state, **(init_state(params, state) if init_state else {})}

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # SwAV and DINO are deterministic given the views
    views = batch["views"]
    _check_views(views, num_global, name)
    b = views[0].shape[0]
    frozen = state["step"] < freeze_steps
    head_params = params["head"]
    params = {**params, "head": {**head_params, frozen_part: freeze_while(head_params[frozen_part], frozen)}}
    if capture:
      out, batch_stats, maps = net.apply_capturing(_variables(params, state), views, capture, axis_name=axis_name)
      out = (*out, maps)
    else:
      out, batch_stats = net.apply(_variables(params, state), views, axis_name=axis_name)
    value, metrics, state = loss_fn(net, params, {**state, "batch_stats": batch_stats}, out, batch,
                                    axis_name=axis_name)
    return value, (state, {"metrics": metrics, "features": jax.lax.stop_gradient(out[0][:b])})

  def after_step(params, state, step):
    state = {**state, "step": step + 1}
    return state if update_after_step is None else update_after_step(params, state, step)

  return base.Method(name=name, num_views=num_views, init=init, loss=loss, embed=net.embed,
                     update_after_step=after_step)


__all__ = ["MultiCropNetwork", "Network", "freeze_while", "make_method", "shape_groups", "teacher_temperature"]
