"""The `Method` protocol: a method is a small frozen bundle of pure functions, after optax's
`GradientTransformation`. The trainer only ever calls these; it never looks at a method's name.

- `init(key, x) -> (params, method_state)`: `x` is one view-shaped batch (it fixes input shapes).
  `params` are what the optimizer updates; `method_state` is everything else kept between steps (BatchNorm
  statistics, EMA targets, queues, memory banks, centres). Both are checkpointed.
- `loss(params, method_state, batch, key, *, axis_name) -> (loss, (new_method_state, aux))`: `batch` holds
  `'views'` (a tuple of `num_views` augmented arrays of this device's shard), `'label'` (only for methods that
  use labels, and for the online probe) and `'index'` (int32 position of each example in the training split, for
  per-example memories such as NPID's memory bank; -1 when the data source has no record ids). The loss is the global-batch mean (it reduces over `axis_name`), so the
  trainer's gradients are exact. `aux` is a dict with `'metrics'` (scalars, already global) and `'features'`
  (`[b, f]` stop-gradient encoder features of the first view, which the online linear probe trains on).
- `embed(params, method_state, x) -> [b, f]`: the frozen representation used for evaluation.
- `update_after_step(params, method_state, step) -> method_state`: optional (EMA targets), after the optimizer.
- `project(params, method_state, x) -> [b, d]`: optional, the projection head's output, evaluated beside `embed`
  (the pre- vs post-projection comparison of Xue et al., "Investigating the Benefits of Projection Head for
  Representation Learning", ICLR 2024, https://arxiv.org/abs/2403.11391).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

PyTree = Any
InitFn = Callable[[jax.Array, jax.Array], tuple[PyTree, PyTree]]
LossFn = Callable[..., tuple[jax.Array, tuple[PyTree, dict]]]
EmbedFn = Callable[[PyTree, PyTree, jax.Array], jax.Array]
UpdateFn = Callable[[PyTree, PyTree, jax.Array], PyTree]


@dataclasses.dataclass(frozen=True)
class Method:
  """Pure functions that define a self-supervised method; see the module docstring for the contract."""
  name: str
  num_views: int
  init: InitFn
  loss: LossFn
  embed: EmbedFn
  update_after_step: UpdateFn | None = None
  project: EmbedFn | None = None
