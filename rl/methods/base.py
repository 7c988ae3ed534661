"""The `Method` protocol, and what every method's module uses to build it.

A method is a small frozen bundle of pure functions, after optax's
`GradientTransformation`. The trainer only ever calls these; it never looks at a method's name.

- `init(key, x) -> (params, method_state)`: `x` is one view-shaped batch (it fixes input shapes).
  `params` are what the optimizer updates; `method_state` is everything else kept between steps (BatchNorm
  statistics, EMA targets, queues, memory banks, centres). Both are checkpointed.
- `loss(params, method_state, batch, key, *, axis_name) -> (loss, (new_method_state, aux))`: `batch` holds
  `'views'` (a tuple of `num_views` augmented arrays of this device's shard), `'label'` (only for methods that
  use labels, and for the online probe) and `'index'` (int32 position of each example in the training split, for
  per-example memories such as NPID's memory bank; -1 when the data source has no record ids). The loss is the
  global-batch mean (it reduces over `axis_name`), so the trainer's gradients are exact. `aux` is a dict with
  `'metrics'` (scalars, already global) and `'features'` (`[b, f]` stop-gradient encoder features of the first view,
  which the online linear probe trains on).
- `embed(params, method_state, x) -> [b, f]`: the frozen representation used for evaluation.
- `update_after_step(params, method_state, step) -> method_state`: optional (EMA targets), after the optimizer.
- `project(params, method_state, x) -> [b, d]`: optional, the projection head's output, evaluated beside `embed`
  (the pre- vs post-projection comparison of Xue et al., "Investigating the Benefits of Projection Head for
  Representation Learning", ICLR 2024, https://arxiv.org/abs/2403.11391).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rl import models

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


COMPUTE_DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
  """The computation dtype named by `config.compute_dtype` (a workdir's older config without it: float32).

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> compute_dtype(config)
    dtype('float32')
    >>> config.compute_dtype = "bfloat16"
    >>> compute_dtype(config)
    dtype(bfloat16)

  Args:
    config: the run's config.

  Returns:
    `jnp.dtype('float32')` or `jnp.dtype('bfloat16')`.

  Raises:
    ValueError: for any other value, naming the key, the accepted values and the value given.
  """
  name = config.get("compute_dtype", "float32")
  if not isinstance(name, str) or name not in COMPUTE_DTYPES:
    raise ValueError(f"config.compute_dtype: expected one of {', '.join(repr(k) for k in COMPUTE_DTYPES)}; "
                     f"got {name!r}.")
  return jnp.dtype(COMPUTE_DTYPES[name])


def get_model(config: ml_collections.ConfigDict, name: str, **kwargs) -> nn.Module:
  """`rl.models.get_model(name, **kwargs)` computing in `config.compute_dtype` (Flax's `dtype=`).

  Every network of a method is built here, so mixed precision is decided where the networks are made:
  with `compute_dtype='bfloat16'` convolutions and matmuls take bfloat16 operands while the parameters stay
  float32 (Flax casts them per op), and so do the gradients and the optimizer state.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> config.compute_dtype = "bfloat16"
    >>> get_model(config, "mlp_projector", hidden_dims=(16,), out_dim=8).dtype
    dtype(bfloat16)
  """
  return models.get_model(name, dtype=compute_dtype(config), **kwargs)


def base_method(config: ml_collections.ConfigDict, bases) -> str:
  """The name of the method that `config.<method>.base` names, checked: a known base whose section is in `config`.

  For the methods built on another one (Matryoshka, Hallucinator), whose base's hyper-parameters live in the
  base's own section (`config.simclr.temperature`).

  Example:
    >>> from configs import matryoshka as matryoshka_config
    >>> config = matryoshka_config.get_config("smoke,vicreg")
    >>> base_method(config, ("simclr", "vicreg"))
    'vicreg'
    >>> base_method(config, ("simclr",))
    Traceback (most recent call last):
    ValueError: config.matryoshka.base: unknown base 'vicreg'; known bases: simclr.
  """
  method, name = config.method, config[config.method].base
  if name not in bases:
    raise ValueError(f"config.{method}.base: unknown base {name!r}; known bases: {', '.join(sorted(bases))}.")
  if name not in config:
    raise ValueError(f"config.{method}.base={name!r} needs the section config.{name} with its hyper-parameters; "
                     f"build the config with configs/{method}.py:VARIANT,{name}.")
  return name


def describe(method: Method, batch: dict[str, Any] | None = None, *, view_sizes: Sequence[int | None] = (),
             batch_size: int = 8, seed: int = 0) -> dict[str, Any]:
  """What `method` keeps and reports: its parameter and state names, its metrics and its embedding shape.

  Traces `init` on the first view, one `loss` on `batch` and `embed` on the first view (`jax.eval_shape`), for
  examples and quick checks of a new method. Without `batch`, the batch is `batch_size` random mnist1d-like signals of
  length 40 (or `view_sizes[i]` for view i, e.g. multi-crop's local views), with labels and indices.

  Example:
    >>> from configs import simclr as simclr_config
    >>> method = rl.methods.get_method(simclr_config.get_config("smoke"))
    >>> describe(method)
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['nt_xent'], 'embedding': (8, 16)}
    >>> x = np.ones((4, 40), np.float32)
    >>> describe(method, {"views": (x, -x)})["embedding"]
    (4, 16)

  Args:
    method: a `Method`.
    batch: a training batch: `'views'` (a tuple of `method.num_views` arrays), and `'label'` / `'index'` for the
      methods that read them; None for random signals.
    view_sizes: the length of each random view (None or missing: 40).
    batch_size: the rows of the random batch.
    seed: the seed of the random batch and of the init and loss keys.

  Returns:
    {'params': sorted top-level parameter names, 'state': sorted method-state names, 'metrics': sorted metric
    names, 'embedding': the shape of `embed` on the first view}.
  """
  if batch is None:
    rng = np.random.RandomState(seed)
    sizes = [(view_sizes[i] if i < len(view_sizes) else None) or 40 for i in range(method.num_views)]
    signal = rng.randn(batch_size, max(sizes)).astype(np.float32)
    batch = {"views": tuple(signal[:, :n] + 0.1 * i for i, n in enumerate(sizes)),
             "label": np.arange(batch_size) % 10, "index": np.arange(batch_size)}
  x = batch["views"][0]
  # Abstract evaluation: every function is traced (shapes, names, the Python of the method) but nothing is
  # compiled or computed, so the examples of 30 methods cost seconds.
  params, state = jax.eval_shape(method.init, jax.random.key(seed), x)
  _, (_, aux) = jax.eval_shape(method.loss, params, state, batch, jax.random.key(seed + 1))
  return {"params": sorted(params), "state": sorted(state), "metrics": sorted(aux["metrics"]),
          "embedding": tuple(jax.eval_shape(method.embed, params, state, x).shape)}
